"""``bidenv collect`` and ``bidenv import-auctionnet``: offline datasets as Parquet files.

``bidenv collect --episodes N --behavior NAME --seed S --out FILE.parquet`` logs N simulated
days of a behaviour mix (:func:`collect`); ``bidenv import-auctionnet CSV --out
FILE.parquet`` converts a public AuctionNet traffic log (:mod:`bidenv.auctionnet`). Both write
the file atomically and print what they wrote.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.campaign import (
    AGENT_BUDGET_RANGE,
    AGENT_ROI_SHARE,
    AGENT_TIGHTNESS_RANGE,
    MARKET_CPA,
    MARKET_REFERENCE_BUDGET,
    MARKET_ROI,
    draw_agent_campaign,
)
from bidenv.offline import COLUMNS, OBS_COLUMNS
from bidenv.validation import check_int

#: Default behaviour mix: heuristic bidders and their weights.
DEFAULT_BEHAVIORS = {"pid_cpa": 0.3, "online_lp": 0.25, "pid_budget": 0.2, "fixed": 0.15,
                     "truthful": 0.05, "random": 0.05}


# --------------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CollectConfig:
    """How logged days are generated.

    Attributes:
        episodes: Number of days.
        seed: Day ``i`` is ``reset(seed=seed + i)``; behaviour randomness comes from
            ``SeedSequence([seed, i])``.
        behaviors: ``{agent name: weight}`` (agents of :mod:`agents`); one per episode.
        noise: Exploration: each episode draws sigma ~ U(0, noise) and multiplies every
            tick's alpha by ``exp(sigma * N(0, 1))``.
        env_id: Environment; ``env_kwargs`` go to ``gym.make``.
        budget_range: Campaign budgets (log-uniform) for the reference day of 500k
            opportunities, scaled to the environment's volume.
        tightness_range: Targets are the category's market reference x a tightness drawn
            log-uniform in this range (CPA ``MARKET_CPA[c] / tightness``, ROI
            ``MARKET_ROI[c] x tightness``; see :mod:`bidenv.campaign`).
        roi_share: Share of ROI campaigns.

    The campaign ranges default to the agent's campaign distribution of the environment
    (:func:`bidenv.campaign.draw_agent_campaign`), which each episode's campaign is drawn
    from.
        fixed_alpha_range: For the ``fixed`` behaviour, alpha log-uniform in this range.
    """

    episodes: int = 200
    seed: int = 0
    behaviors: dict = field(default_factory=lambda: dict(DEFAULT_BEHAVIORS))
    noise: float = 0.3
    env_id: str = "bidenv/AutoBiddingLite-v0"
    env_kwargs: dict = field(default_factory=dict)
    budget_range: tuple = AGENT_BUDGET_RANGE
    tightness_range: tuple = AGENT_TIGHTNESS_RANGE
    roi_share: float = AGENT_ROI_SHARE
    fixed_alpha_range: tuple = (0.5, 2.0)

    def __post_init__(self):
        import agents

        check_int("episodes", self.episodes, 1)
        seed_ok = isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool)
        if not seed_ok or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.behaviors, dict) or not self.behaviors:
            raise ValueError("behaviors must be a non-empty {agent name: weight} dict")
        known = set(agents.available())
        for name, w in self.behaviors.items():
            if name not in known:
                raise ValueError(f"behaviors: unknown agent {name!r}; available: "
                                 f"{sorted(known)}")
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ValueError(f"behaviors: weight of {name!r} must be a number >= 0, "
                                 f"got {w!r}")
        if sum(self.behaviors.values()) <= 0:
            raise ValueError("behaviors: weights must not all be 0")
        if not (isinstance(self.noise, (int, float)) and 0 <= self.noise <= 3):
            raise ValueError(f"noise must be a number in [0, 3], got {self.noise!r}")
        if not 0 <= self.roi_share <= 1:
            raise ValueError(f"roi_share must be in [0, 1], got {self.roi_share!r}")
        for name in ("budget_range", "tightness_range", "fixed_alpha_range"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got "
                                 f"{getattr(self, name)!r}")

    def metadata(self) -> dict:
        return {"episodes": self.episodes, "seed": self.seed, "behaviors": self.behaviors,
                "noise": self.noise, "env_id": self.env_id, "env_kwargs": self.env_kwargs,
                "budget_range": list(self.budget_range),
                "tightness_range": list(self.tightness_range), "roi_share": self.roi_share,
                "campaign_distribution": "bidenv.campaign.draw_agent_campaign",
                "market_reference_budget": MARKET_REFERENCE_BUDGET,
                "market_cpa": list(MARKET_CPA), "market_roi": list(MARKET_ROI),
                "fixed_alpha_range": list(self.fixed_alpha_range)}


def behavior_plan(config: CollectConfig, episode: int) -> dict:
    """The behaviour, noise and campaign of one episode (deterministic in seed and episode)."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed & (2**63 - 1), episode]))
    names = list(config.behaviors)
    w = np.array([config.behaviors[n] for n in names], np.float64)
    name = names[int(rng.choice(len(names), p=w / w.sum()))]
    kwargs = {}
    if name == "fixed":
        lo, hi = config.fixed_alpha_range
        kwargs["alpha"] = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    elif name == "random":
        kwargs["seed"] = int(rng.integers(2**31))
    sigma = float(rng.uniform(0.0, config.noise))
    drawn = draw_agent_campaign(rng, budget_range=config.budget_range,
                                tightness_range=config.tightness_range,
                                roi_share=config.roi_share)
    campaign = {k: v for k, v in drawn.to_dict().items() if v is not None}
    return {"behavior": name, "kwargs": kwargs, "noise": sigma, "campaign": campaign,
            "noise_seed": int(rng.integers(2**63 - 1))}


class _Noisy:
    """A behaviour policy: the agent's action plus Gaussian noise of ``sigma`` (in log-alpha
    units, so the same noise is the same relative change of the bid at any ``max_alpha``),
    clipped to the action space."""

    def __init__(self, agent, sigma: float, seed: int, max_alpha: float):
        self.agent, self.name = agent, agent.name
        self.sigma, self.log_max = sigma, math.log(max_alpha)
        self.rng = np.random.default_rng(seed)
        if callable(getattr(agent, "update", None)):
            self.update = agent.update

    def reset(self, campaign) -> None:
        self.agent.reset(campaign)

    def act(self, obs) -> np.ndarray:
        a = float(np.asarray(self.agent.act(obs), np.float64).reshape(-1)[0])
        if self.sigma > 0:
            a += self.sigma * self.rng.standard_normal() / self.log_max
        return np.array([min(1.0, max(-1.0, a))], np.float32)


def _collect_chunk(task) -> list[dict]:
    import gymnasium as gym

    import agents
    import bidenv  # noqa: F401  (registers the envs)
    from bidenv.campaign import budget_scale

    config, episodes = task
    env = gym.make(config.env_id, **config.env_kwargs)
    base = env.unwrapped
    scale = budget_scale(base.opportunities_per_day)
    rows = []
    for ep in episodes:
        plan = behavior_plan(config, ep)
        behaviour = _Noisy(agents.make(plan["behavior"], **plan["kwargs"]), plan["noise"],
                           plan["noise_seed"], base.max_alpha)
        options = dict(plan["campaign"], budget=plan["campaign"]["budget"] * scale)
        day = {"episode": ep, "behavior": plan["behavior"], "noise": plan["noise"]}

        def record(step, day=day):
            if step.tick == 0:  # the day's campaign, once the env has drawn it
                camp = base.agent_campaign
                day.update(budget=camp.budget, constraint=camp.constraint,
                           target_cpa=math.nan if camp.target_cpa is None else camp.target_cpa,
                           target_roi=math.nan if camp.target_roi is None else camp.target_roi,
                           category=camp.category)
            info = step.info
            row = {"episode": day["episode"], "tick": step.tick}
            row.update(zip(OBS_COLUMNS, step.obs.astype(np.float64)))
            row.update(action=float(step.action[0]), alpha=info["alpha"], reward=step.reward,
                       done=step.done, **{k: day[k] for k in _DAY_COLUMNS},
                       cost=info["cost"], conversions=info["conversions"], value=info["value"],
                       score=info["score"], expected_score=info["expected_score"],
                       expected_conversions=info["expected_conversions"],
                       expected_cost=info["expected_cost"],
                       expected_value=info["expected_value"], behavior=day["behavior"],
                       noise=day["noise"])
            rows.append(row)

        agents.run_episode(env, behaviour, seed=config.seed + ep, options=options,
                           on_step=record)
    env.close()
    return rows


#: Columns that hold the day's campaign (the same on every row of an episode).
_DAY_COLUMNS = ("budget", "constraint", "target_cpa", "target_roi", "category")


def collect(config: CollectConfig | None = None, *, workers: int = 1,
            progress: bool = True, **overrides) -> pd.DataFrame:
    """Log ``config.episodes`` days of the behaviour mix; returns the dataset frame.

    The frame's ``attrs["bidenv"]`` holds the metadata that :func:`save_dataset` stores.
    Results are identical for any ``workers``.

    >>> frame = collect(episodes=2, seed=0, progress=False)
    >>> frame.groupby("episode")["tick"].min().tolist()
    [0, 0]
    """
    from tqdm.auto import tqdm

    if config is None:
        config = CollectConfig(**overrides)
    elif overrides:
        config = dataclasses.replace(config, **overrides)
    workers = check_int("workers", workers, 1)
    chunk = 10
    tasks = [(config, list(range(i, min(i + chunk, config.episodes))))
             for i in range(0, config.episodes, chunk)]
    rows: list[dict] = []
    bar = tqdm(total=config.episodes, desc="collecting", unit="day", disable=not progress)
    from experiments.pool import map_ordered

    def take(task, result):
        rows.extend(result)
        bar.update(len(task[1]))

    map_ordered(_collect_chunk, tasks, workers, on_result=take)
    bar.close()
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame.attrs["bidenv"] = {"source": "bidenv.collect", **config.metadata()}
    return frame



def parse_behaviors(text: str) -> dict:
    """A behaviour mix from the command line.

    Args:
        text: ``"mix"`` (:data:`DEFAULT_BEHAVIORS`), one agent name
            (``"pid_cpa"``) or weighted names (``"pid_cpa=0.7,fixed=0.3"``).

    Returns:
        ``{agent name: weight}``.

    Raises:
        ValueError: for an empty entry, a weight that is not a number >= 0, a repeated name or
            an unknown agent.

    >>> parse_behaviors("pid_cpa=0.7,fixed=0.3")
    {'pid_cpa': 0.7, 'fixed': 0.3}
    >>> parse_behaviors("truthful")
    {'truthful': 1.0}
    """
    import agents

    text = text.strip()
    if text == "mix":
        return dict(DEFAULT_BEHAVIORS)
    mix = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"--behavior: empty agent name in {text!r}; use 'mix', a name or "
                             "name=weight,name=weight")
        if sep:
            try:
                w = float(weight)
            except ValueError:
                w = math.nan
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"--behavior: weight of {name!r} must be a number >= 0, got "
                                 f"{weight.strip()!r}")
        else:
            w = 1.0
        if name in mix:
            raise ValueError(f"--behavior: {name!r} appears twice")
        mix[name] = w
    unknown = sorted(set(mix) - set(agents.available()))
    if unknown:
        raise ValueError(f"--behavior: unknown agent(s) {unknown}; available: "
                         f"{', '.join(agents.available())} (or 'mix')")
    if sum(mix.values()) <= 0:
        raise ValueError("--behavior: the weights must not all be 0")
    return mix


def _check_out(out) -> Path:
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out must be a file path like data.parquet, got the folder {out}")
    return out


def run_collect(*, episodes: int, behavior: str = "mix", seed: int = 0, out,
                noise: float = 0.3, env_id: str = "bidenv/AutoBiddingLite-v0",
                workers: int = 1, progress: bool = True) -> dict:
    """Collect ``episodes`` days, save them to ``out`` and print a summary.

    Returns:
        ``{"path", "rows", "episodes", "seconds", "days_per_second"}``.

    Raises:
        ValueError: for a bad behaviour mix, noise, environment or output path.
    """
    import gymnasium as gym

    import bidenv  # noqa: F401  (registers the environments)
    from bidenv.offline import save_dataset

    out = _check_out(out)
    if env_id not in gym.registry:
        ids = sorted(k for k in gym.registry if k.startswith("bidenv/"))
        raise ValueError(f"--env: unknown environment {env_id!r}; bidenv has {ids}")
    config = CollectConfig(episodes=episodes, seed=seed, behaviors=parse_behaviors(behavior),
                           noise=noise, env_id=env_id)
    start = time.perf_counter()
    frame = collect(config, workers=workers, progress=progress)
    seconds = time.perf_counter() - start
    path = save_dataset(frame, out)
    n_episodes = int(frame["episode"].nunique())
    summary = {"path": str(path), "rows": len(frame), "episodes": n_episodes,
               "seconds": seconds, "days_per_second": n_episodes / max(seconds, 1e-9)}
    mix = ", ".join(f"{k}={v:g}" for k, v in config.behaviors.items())
    print(f"collected {n_episodes} days ({len(frame)} rows) of {env_id} in {seconds:.1f} s "
          f"({summary['days_per_second']:.2f} days/s); behaviour {mix}, noise {noise:g}")
    print(f"wrote {path}")
    return summary


def run_import_auctionnet(csv_path, *, out, n_ticks: int = 48, max_alpha: float = 10.0,
                          beta: float = 2.0) -> dict:
    """Convert an AuctionNet traffic-log CSV to a dataset file and print a summary.

    Returns:
        ``{"path", "log_rows", "rows", "episodes", "seconds"}``.

    Raises:
        FileNotFoundError, ValueError: as :func:`bidenv.auctionnet.import_auctionnet`.
    """
    from bidenv.auctionnet import import_auctionnet
    from bidenv.offline import save_dataset

    out = _check_out(out)
    start = time.perf_counter()
    frame = import_auctionnet(csv_path, n_ticks=n_ticks, max_alpha=max_alpha, beta=beta)
    path = save_dataset(frame, out)
    seconds = time.perf_counter() - start
    log_rows = frame.attrs["bidenv"]["rows"]
    n_episodes = int(frame["episode"].nunique())
    print(f"imported {log_rows} log rows of {Path(csv_path).name} into {n_episodes} days "
          f"({len(frame)} rows) in {seconds:.1f} s")
    print(f"wrote {path}")
    return {"path": str(path), "log_rows": log_rows, "rows": len(frame),
            "episodes": n_episodes, "seconds": seconds}
