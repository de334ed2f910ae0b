"""``bidenv collect`` and ``bidenv import-auctionnet``: offline datasets as Parquet files.

``bidenv collect --episodes N --behavior NAME --seed S --out FILE.parquet`` logs N simulated
days of a behaviour mix (:func:`collect`); ``bidenv import-auctionnet CSV --out
FILE.parquet`` converts public AuctionNet traffic logs or the preprocessed
``trajectory_data.csv`` (:mod:`bidenv.auctionnet`; several files or globs). Both write
the file atomically and print what they wrote.

Hindsight expert and per-day yardstick
--------------------------------------
Besides the registered agents, the mix may hold :data:`EXPERT` (``"expert"``): on such a day
the behaviour is the **best constant multiplier of the day in hindsight**, the
``best_fixed_alpha`` of :func:`bidenv.oracle.reference_hindsight` (the oracle of the same seed
and campaign recorded with the agent out of the market), played by
``agents.make("fixed", alpha=best_fixed_alpha)`` inside the same exploration noise as every
behaviour (sigma ~ U(0, noise) per day), so expert days range from clean to noisy.

Why a fixed multiplier: the oracle's fractional solution buys every option whose value per cost
is above one threshold, and on a stationary day bidding ``alpha x value`` is exactly such a
threshold rule, so one constant alpha is the oracle's policy in the dataset's own action space
(one multiplier per tick). Real days are not stationary, slots are discrete and the budget cuts
the day in arrival order, so its hindsight score ``best_fixed_alpha_score`` is below
``oracle_score`` (80-96% on Lite days). The competitors pace their budgets and so react to the
agent's purchases: the realised expected score is usually a little below that hindsight
estimate of the day without the agent (a few points on Lite, now and then more).

The expert uses information no online bidder has (the whole day's prices in advance): it is
*data* that shows what good bidding looks like, not an agent, and never appears on a
leaderboard.

With ``CollectConfig(yardstick=True)`` (``--yardstick``), every day also gets its yardstick
(expert days reuse theirs: one reference per day), and the metadata reports each behaviour's
percent of it, ``100 x expected score of the day / oracle_score`` (the evaluation's
``pct_of_oracle``), under ``behavior_pct_of_yardstick``: ``{behaviour: {"days", "mean",
"median"}}``. The dataset's columns are unchanged.
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
from bidenv.features import OpportunityStats
from bidenv.offline import COLUMNS, OBS_COLUMNS, OPPORTUNITY_COLUMNS
from bidenv.validation import check_int

#: Default behaviour mix: heuristic bidders and their weights.
DEFAULT_BEHAVIORS = {"pid_cpa": 0.3, "online_lp": 0.25, "pid_budget": 0.2, "fixed": 0.15,
                     "truthful": 0.05, "random": 0.05}
#: The hindsight behaviour: the day's best constant multiplier (see the module docstring).
#: Accepted in a mix beside the registered agent names; it is not an agent.
EXPERT = "expert"
#: Metadata key of the per-behaviour percent of the day's yardstick.
SUMMARY_KEY = "behavior_pct_of_yardstick"


def behavior_names() -> list[str]:
    """Names a behaviour mix may use: the registered agents and :data:`EXPERT`."""
    import agents

    return [*agents.available(), EXPERT]


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
        behaviors: ``{agent name: weight}`` (agents of :mod:`agents`, or :data:`EXPERT`, the
            day's best constant multiplier in hindsight); one per episode.
        noise: Exploration: each episode draws sigma ~ U(0, noise) and multiplies every
            tick's alpha by ``exp(sigma * N(0, 1))``.
        env_id: Environment; ``env_kwargs`` go to ``gym.make``.
        budget_range: Campaign budgets (log-uniform) for the reference day of 500k
            opportunities, scaled to the environment's volume.
        tightness_range: Targets are the category's market reference x a tightness drawn
            log-uniform in this range (CPA ``MARKET_CPA[c] / tightness``, ROI
            ``MARKET_ROI[c] x tightness``; see :mod:`bidenv.campaign`).
        roi_share: Share of ROI campaigns.
        fixed_alpha_range: For the ``fixed`` behaviour, alpha log-uniform in this range.
        yardstick: Compute every day's yardstick (the oracle of the day without the agent,
            :func:`bidenv.oracle.reference_hindsight`; one extra simulated day and oracle per
            day) and report each behaviour's percent of it in the metadata. Expert days
            always have theirs.

    The campaign ranges default to the agent's campaign distribution of the environment
    (:func:`bidenv.campaign.draw_agent_campaign`), which each episode's campaign is drawn
    from.
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
    yardstick: bool = False

    def __post_init__(self):
        check_int("episodes", self.episodes, 1)
        seed_ok = isinstance(self.seed, (int, np.integer)) and not isinstance(self.seed, bool)
        if not seed_ok or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not isinstance(self.behaviors, dict) or not self.behaviors:
            raise ValueError("behaviors must be a non-empty {agent name: weight} dict")
        known = set(behavior_names())
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
        if not isinstance(self.yardstick, (bool, np.bool_)):
            raise ValueError(f"yardstick must be True or False, got {self.yardstick!r}")

    def metadata(self) -> dict:
        return {"episodes": self.episodes, "seed": self.seed, "behaviors": self.behaviors,
                "noise": self.noise, "env_id": self.env_id, "env_kwargs": self.env_kwargs,
                "budget_range": list(self.budget_range),
                "tightness_range": list(self.tightness_range), "roi_share": self.roi_share,
                "campaign_distribution": "bidenv.campaign.draw_agent_campaign",
                "market_reference_budget": MARKET_REFERENCE_BUDGET,
                "market_cpa": list(MARKET_CPA), "market_roi": list(MARKET_ROI),
                "fixed_alpha_range": list(self.fixed_alpha_range),
                "yardstick": bool(self.yardstick)}


def behavior_plan(config: CollectConfig, episode: int) -> dict:
    """The behaviour, noise and campaign of one episode (deterministic in seed and episode).

    An :data:`EXPERT` episode draws nothing beyond the behaviour choice (its alpha comes from
    the day's hindsight at collection time, ``kwargs`` is empty), so every draw of the other
    episodes is the same whether or not the mix holds ``expert`` at the same weights.
    """
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


class Noisy:
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


def _collect_chunk(task) -> tuple[list[dict], list[dict]]:
    """Worker: play some episodes; returns their rows and, for the days with a yardstick,
    ``{"episode", "behavior", "expected_score", "oracle_score", "best_fixed_alpha",
    "best_fixed_alpha_score"}``."""
    import gymnasium as gym

    import agents
    import bidenv  # noqa: F401  (registers the envs)
    from bidenv.campaign import budget_scale
    from bidenv.oracle import reference_hindsight

    config, episodes = task
    env = gym.make(config.env_id, **config.env_kwargs)
    base = env.unwrapped
    scale = budget_scale(base.opportunities_per_day)
    ref_env = None  # the day without the agent (record=True), made once if needed
    rows, days = [], []
    for ep in episodes:
        plan = behavior_plan(config, ep)
        options = dict(plan["campaign"], budget=plan["campaign"]["budget"] * scale)
        ref = None
        if config.yardstick or plan["behavior"] == EXPERT:
            if ref_env is None:
                ref_env = gym.make(config.env_id, **{**config.env_kwargs, "record": True})
            ref = reference_hindsight(ref_env, seed=config.seed + ep, options=options)
        if plan["behavior"] == EXPERT:
            agent = agents.make("fixed", alpha=ref["best_fixed_alpha"],
                                max_alpha=base.max_alpha)
        else:
            agent = agents.make(plan["behavior"], **plan["kwargs"])
        behaviour = Noisy(agent, plan["noise"], plan["noise_seed"], base.max_alpha)
        day = {"episode": ep, "behavior": plan["behavior"], "noise": plan["noise"]}

        def record(step, day=day):
            if step.tick == 0:  # the day's campaign, once the env has drawn it
                camp = base.agent_campaign
                day.update(budget=camp.budget, constraint=camp.constraint,
                           target_cpa=math.nan if camp.target_cpa is None else camp.target_cpa,
                           target_roi=math.nan if camp.target_roi is None else camp.target_roi,
                           category=camp.category)
                day["opportunities"] = OpportunityStats(camp.to_dict())
            info = step.info
            row = {"episode": day["episode"], "tick": step.tick}
            row.update(zip(OBS_COLUMNS, step.obs.astype(np.float64)))
            # what was known before this tick, then this tick's opportunities
            row.update(zip(OPPORTUNITY_COLUMNS,
                           day["opportunities"].features().astype(np.float64)))
            day["opportunities"].update(base.last_tick_opportunities())
            row.update(action=float(step.action[0]), alpha=info["alpha"], reward=step.reward,
                       done=step.done, **{k: day[k] for k in _DAY_COLUMNS},
                       cost=info["cost"], conversions=info["conversions"], value=info["value"],
                       score=info["score"], expected_score=info["expected_score"],
                       expected_conversions=info["expected_conversions"],
                       expected_cost=info["expected_cost"],
                       expected_value=info["expected_value"], behavior=day["behavior"],
                       noise=day["noise"])
            rows.append(row)

        info = agents.run_episode(env, behaviour, seed=config.seed + ep, options=options,
                                  on_step=record)
        if ref is not None:
            days.append({"episode": ep, "behavior": plan["behavior"],
                         "expected_score": float(info["expected_score"]),
                         "oracle_score": ref["oracle_score"],
                         "best_fixed_alpha": ref["best_fixed_alpha"],
                         "best_fixed_alpha_score": ref["best_fixed_alpha_score"]})
    env.close()
    if ref_env is not None:
        ref_env.close()
    return rows, days


#: Columns that hold the day's campaign (the same on every row of an episode).
_DAY_COLUMNS = ("budget", "constraint", "target_cpa", "target_roi", "category")


def collect(config: CollectConfig | None = None, *, workers: int = 1,
            progress: bool = True, **overrides) -> pd.DataFrame:
    """Log ``config.episodes`` days of the behaviour mix; returns the dataset frame.

    The frame's ``attrs["bidenv"]`` holds the metadata that :func:`save_dataset` stores: the
    config and, under :data:`SUMMARY_KEY`, each behaviour's percent of the day's yardstick over
    the days that have one (every day with ``yardstick=True``, else the expert days; see
    :func:`yardstick_summary`). Results are identical for any ``workers``.

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
    days: list[dict] = []
    bar = tqdm(total=config.episodes, desc="collecting", unit="day", disable=not progress)
    from experiments.pool import map_ordered

    def take(task, result):
        rows.extend(result[0])
        days.extend(result[1])

    # the bar moves as tasks finish; results are taken in task order (identical files)
    map_ordered(_collect_chunk, tasks, workers, on_result=take,
                on_done=lambda task: bar.update(len(task[1])))
    bar.close()
    frame = pd.DataFrame(rows, columns=list(COLUMNS) + OPPORTUNITY_COLUMNS)
    summary = yardstick_summary(days, order=list(config.behaviors))
    frame.attrs["bidenv"] = {"source": "bidenv.collect", **config.metadata(),
                             SUMMARY_KEY: summary,
                             # each day's yardstick, for quality-conditioned training
                             "day_yardstick": {str(d["episode"]): d["oracle_score"]
                                               for d in sorted(days, key=lambda d: d["episode"])}}
    return frame


def yardstick_summary(days, order=None) -> dict:
    """Each behaviour's percent of the day's yardstick, as stored in the metadata.

    Args:
        days: Records (dicts or a frame) with ``behavior``, ``expected_score`` (the day's
            noise-free penalised score at its last tick) and ``oracle_score`` (its yardstick,
            :func:`bidenv.oracle.reference_hindsight`).
        order: Behaviour names in display order (others follow, sorted).

    Returns:
        ``{behaviour: {"days": n, "mean": x, "median": y}}`` of
        ``100 x expected_score / oracle_score`` over the behaviour's days whose yardstick is
        above 0 (a day that offered nothing is skipped); plain floats (``None`` when no day
        counts), so it is JSON as it is.

    >>> summary = yardstick_summary([
    ...     {"behavior": "a", "expected_score": 1.0, "oracle_score": 2.0},
    ...     {"behavior": "a", "expected_score": 3.0, "oracle_score": 4.0},
    ...     {"behavior": "b", "expected_score": 1.0, "oracle_score": 0.0}])
    >>> summary["a"], summary["b"]["days"]
    ({'days': 2, 'mean': 62.5, 'median': 62.5}, 0)
    """
    table = pd.DataFrame(days, columns=["behavior", "expected_score", "oracle_score"])
    names = list(dict.fromkeys(n for n in (order or []) if n in set(table["behavior"])))
    names += sorted(set(table["behavior"]) - set(names))
    out = {}
    for name in names:
        g = table[table["behavior"] == name]
        ok = g["oracle_score"] > 0
        pct = (100.0 * g["expected_score"][ok] / g["oracle_score"][ok]).to_numpy(np.float64)
        out[name] = {"days": int(len(pct)),
                     "mean": float(pct.mean()) if len(pct) else None,
                     "median": float(np.median(pct)) if len(pct) else None}
    return out



def parse_behaviors(text: str) -> dict:
    """A behaviour mix from the command line.

    Args:
        text: ``"mix"`` (:data:`DEFAULT_BEHAVIORS`), one agent name
            (``"pid_cpa"``) or weighted names (``"pid_cpa=0.7,fixed=0.3"``); :data:`EXPERT`
            (``"expert"``, the day's best constant multiplier in hindsight) is accepted
            beside the registered agents.

    Returns:
        ``{agent name: weight}``.

    Raises:
        ValueError: for an empty entry, a weight that is not a number >= 0, a repeated name or
            an unknown agent.

    >>> parse_behaviors("pid_cpa=0.7,fixed=0.3")
    {'pid_cpa': 0.7, 'fixed': 0.3}
    >>> parse_behaviors("truthful")
    {'truthful': 1.0}
    >>> parse_behaviors("pid_cpa=0.7,expert=0.3")
    {'pid_cpa': 0.7, 'expert': 0.3}
    """
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
    unknown = sorted(set(mix) - set(behavior_names()))
    if unknown:
        raise ValueError(f"--behavior: unknown agent(s) {unknown}; available: "
                         f"{', '.join(behavior_names())} (or 'mix')")
    if sum(mix.values()) <= 0:
        raise ValueError("--behavior: the weights must not all be 0")
    return mix


def _check_out(out) -> Path:
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out must be a file path like data.parquet, got the folder {out}")
    return out


def behaviors_csv_path(out) -> Path:
    """Where ``bidenv collect`` writes the per-behaviour table: ``<out stem>.behaviors.csv``
    next to the dataset."""
    out = Path(out)
    return out.with_name(f"{out.stem}.behaviors.csv")


def summary_frame(summary: dict) -> pd.DataFrame:
    """The metadata's :data:`SUMMARY_KEY` as a table: behavior, days, mean and median percent
    of the yardstick."""
    return pd.DataFrame([{"behavior": name, "days": s["days"], "mean_pct_of_yardstick": s["mean"],
                          "median_pct_of_yardstick": s["median"]}
                         for name, s in summary.items()],
                        columns=["behavior", "days", "mean_pct_of_yardstick",
                                 "median_pct_of_yardstick"])


def _format_summary(table: pd.DataFrame) -> str:
    def pct(x):
        return "-" if x is None or pd.isna(x) else f"{x:.1f}"

    width = max([len("behavior"), *(len(n) for n in table["behavior"])])
    lines = [f"{'behavior':<{width}}  {'days':>5}  {'mean %':>7}  {'median %':>8}"]
    for r in table.itertuples(index=False):
        lines.append(f"{r.behavior:<{width}}  {r.days:>5}  {pct(r.mean_pct_of_yardstick):>7}  "
                     f"{pct(r.median_pct_of_yardstick):>8}")
    return "\n".join(lines)


def run_collect(*, episodes: int, behavior: str = "mix", seed: int = 0, out,
                noise: float = 0.3, env_id: str = "bidenv/AutoBiddingLite-v0",
                workers: int = 1, progress: bool = True, yardstick: bool = False) -> dict:
    """Collect ``episodes`` days, save them to ``out`` and print a summary.

    With ``yardstick`` (``--yardstick``) every day's yardstick is computed too; the
    per-behaviour percent of it (the metadata's :data:`SUMMARY_KEY`) is printed and, with
    ``yardstick`` or an ``expert`` in the mix, also written to :func:`behaviors_csv_path`.

    Returns:
        ``{"path", "rows", "episodes", "seconds", "days_per_second", "behaviors_csv"}``
        (``behaviors_csv`` is None when no table was written).

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
                           noise=noise, env_id=env_id, yardstick=bool(yardstick))
    start = time.perf_counter()
    frame = collect(config, workers=workers, progress=progress)
    seconds = time.perf_counter() - start
    path = save_dataset(frame, out)
    n_episodes = int(frame["episode"].nunique())
    summary = {"path": str(path), "rows": len(frame), "episodes": n_episodes,
               "seconds": seconds, "days_per_second": n_episodes / max(seconds, 1e-9),
               "behaviors_csv": None}
    mix = ", ".join(f"{k}={v:g}" for k, v in config.behaviors.items())
    print(f"collected {n_episodes} days ({len(frame)} rows) of {env_id} in {seconds:.1f} s "
          f"({summary['days_per_second']:.2f} days/s); behaviour {mix}, noise {noise:g}")
    table = summary_frame(frame.attrs["bidenv"][SUMMARY_KEY])
    if len(table):
        print("expected score in percent of the day's yardstick (oracle of the day without "
              "the agent):")
        print(_format_summary(table))
    print(f"wrote {path}")
    if config.yardstick or EXPERT in config.behaviors:
        from experiments.io import atomic_write_csv

        csv_path = atomic_write_csv(behaviors_csv_path(path), table)
        summary["behaviors_csv"] = str(csv_path)
        print(f"wrote {csv_path}")
    return summary


def expand_log_paths(csv_paths) -> list[Path]:
    """Files named by ``csv_paths`` (a path, a glob or a list of them), in the order given,
    each glob's matches sorted; refuses a pattern that matches nothing and duplicates."""
    import glob

    items = [csv_paths] if isinstance(csv_paths, (str, Path)) else list(csv_paths)
    if not items:
        raise ValueError("csv: name at least one traffic-log file")
    out: list[Path] = []
    for item in items:
        text = str(item)
        if glob.has_magic(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise FileNotFoundError(f"csv: the pattern {text!r} matches no file")
            out += [Path(m) for m in matches]
        else:
            out.append(Path(text))
    seen = set()
    for path in out:
        if path.resolve() in seen:
            raise ValueError(f"csv: {str(path)!r} is named twice")
        seen.add(path.resolve())
    return out


def import_auctionnet_logs(csv_paths, *, n_ticks: int = 48, max_alpha: float = 10.0,
                           beta: float = 2.0) -> pd.DataFrame:
    """Import several AuctionNet files as one dataset: each file as
    :func:`bidenv.auctionnet.import_auctionnet` (a traffic log) or
    :func:`bidenv.auctionnet.import_auctionnet_trajectories` (the preprocessed
    ``trajectory_data.csv``), told apart by the header (:func:`bidenv.auctionnet.file_format`),
    episodes renumbered to follow the previous files' (0, 1, ... over all files in order). The
    metadata's ``episodes`` rows gain the file (``[episode, period, advertiser, file index]``),
    ``sources`` lists the files, ``formats`` their formats and ``rows`` sums their rows."""
    from bidenv.auctionnet import file_format, import_auctionnet, import_auctionnet_trajectories

    frames, episodes, rows, offset = [], [], 0, 0
    paths = expand_log_paths(csv_paths)
    for i, path in enumerate(paths):
        importer = (import_auctionnet_trajectories if file_format(path) == "trajectory"
                    else import_auctionnet)
        frame = importer(path, n_ticks=n_ticks, max_alpha=max_alpha, beta=beta)
        meta = frame.attrs["bidenv"]
        frame = frame.assign(episode=frame["episode"] + offset)
        episodes += [[e + offset, *rest, i] for e, *rest in meta["episodes"]]
        offset += len(meta["episodes"])
        rows += meta["rows"]
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    formats = [f.attrs["bidenv"]["format"] for f in frames]
    out.attrs["bidenv"] = {**frames[0].attrs["bidenv"], "rows": int(rows),
                           "episodes": episodes, "sources": [p.name for p in paths],
                           "formats": formats, "format": "+".join(dict.fromkeys(formats))}
    dropped = [f.attrs["bidenv"].get("dropped_rows", 0) for f in frames]
    if "auctionnet_trajectory" in formats:  # rows after an episode's end
        out.attrs["bidenv"]["dropped_rows"] = int(sum(dropped))
    if len(paths) > 1:
        out.attrs["bidenv"]["source"] = ", ".join(p.name for p in paths)
    return out


def run_import_auctionnet(csv_paths, *, out, n_ticks: int = 48, max_alpha: float = 10.0,
                          beta: float = 2.0) -> dict:
    """Convert AuctionNet traffic-log CSVs (a path, a glob or a list) to one dataset file and
    print a summary (episodes numbered across the files, :func:`import_auctionnet_logs`).

    Returns:
        ``{"path", "log_rows", "rows", "episodes", "seconds"}``.

    Raises:
        FileNotFoundError, ValueError: as :func:`bidenv.auctionnet.import_auctionnet`.
    """
    from bidenv.offline import save_dataset

    out = _check_out(out)
    start = time.perf_counter()
    frame = import_auctionnet_logs(csv_paths, n_ticks=n_ticks, max_alpha=max_alpha, beta=beta)
    path = save_dataset(frame, out)
    seconds = time.perf_counter() - start
    log_rows = frame.attrs["bidenv"]["rows"]
    n_episodes = int(frame["episode"].nunique())
    names = frame.attrs["bidenv"]["sources"]
    print(f"imported {log_rows} log rows of {len(names)} file(s) ({', '.join(names[:3])}"
          f"{', ...' if len(names) > 3 else ''}) into {n_episodes} days ({len(frame)} rows) "
          f"in {seconds:.1f} s")
    print(f"wrote {path}")
    return {"path": str(path), "log_rows": log_rows, "rows": len(frame),
            "episodes": n_episodes, "seconds": seconds}
