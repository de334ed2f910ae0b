"""Offline datasets: logged days of bidding, stored as Parquet, and the arrays agents train on.

One row per (episode, tick), per DESIGN.md's offline-data contract:

* ``episode``, ``tick`` (0-based: the row's observation was seen before bidding in tick
  ``tick``), one ``obs_<feature>`` column per observation feature
  (:data:`bidenv.env.FEATURE_NAMES`), ``action`` (the executed action in [-1, 1]), ``alpha``
  (its bid multiplier), ``reward`` (the score increment ``S_t - S_{t-1}``), ``done``;
* the campaign: ``budget``, ``constraint`` (``"cpa"``/``"roi"``/``"budget"``), ``target_cpa``,
  ``target_roi`` (NaN where not applicable), ``category``;
* the tick's outcomes ``cost``, ``conversions``, ``value`` and the penalised ``score`` *so
  far* (``S_t``, cumulative, so that any return-to-go can be computed later), plus the
  noise-free cumulative ``expected_score``, ``expected_conversions``, ``expected_cost``,
  ``expected_value``;
* ``behavior`` (the behaviour policy of the episode) and ``noise`` (its exploration sigma).

The file's Parquet metadata (key ``bidenv``) holds the behaviour mix, the noise, the seed, the
environment and the campaign ranges (:func:`load_dataset` returns it). Datasets are written
atomically and read without unpickling anything (Parquet is a columnar format, not pickle).

:class:`Trajectories` turns a frame into padded ``(episodes, ticks)`` arrays with the
score-based return-to-go of the decision transformer and the ``(s, a, r, s', done)``
transitions of the critics; :class:`Normalizer` holds the state statistics computed on the
training split (saved with every checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import math
from concurrent.futures import ProcessPoolExecutor
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
from bidenv.env import FEATURE_NAMES
from bidenv.io import atomic_path

#: Observation columns of a dataset, in the environment's feature order.
OBS_COLUMNS = [f"obs_{name}" for name in FEATURE_NAMES]
CAMPAIGN_COLUMNS = ["budget", "constraint", "target_cpa", "target_roi", "category"]
OUTCOME_COLUMNS = ["cost", "conversions", "value", "score", "expected_score",
                   "expected_conversions", "expected_cost", "expected_value"]
#: Every column of a dataset and its kind: "i" integer, "f" float, "b" bool, "s" string.
COLUMNS = {"episode": "i", "tick": "i", **{c: "f" for c in OBS_COLUMNS}, "action": "f",
           "alpha": "f", "reward": "f", "done": "b", "budget": "f", "constraint": "s",
           "target_cpa": "f", "target_roi": "f", "category": "i",
           **{c: "f" for c in OUTCOME_COLUMNS}, "behavior": "s", "noise": "f"}
METADATA_KEY = b"bidenv"

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

        if not isinstance(self.episodes, int) or self.episodes < 1:
            raise ValueError(f"episodes must be an integer >= 1, got {self.episodes!r}")
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
        agent = agents.make(plan["behavior"], **plan["kwargs"])
        noise_rng = np.random.default_rng(plan["noise_seed"])
        options = dict(plan["campaign"], budget=plan["campaign"]["budget"] * scale)
        obs, info = env.reset(seed=config.seed + ep, options=options)
        camp = base.agent_campaign
        agent.reset(camp.to_dict())
        update = getattr(agent, "update", None)
        log_max = math.log(base.max_alpha)
        tick = 0
        while True:
            a = float(np.asarray(agent.act(obs), np.float64).reshape(-1)[0])
            if plan["noise"] > 0:
                a += plan["noise"] * noise_rng.standard_normal() / log_max
            a = float(np.clip(a, -1.0, 1.0))
            next_obs, reward, terminated, truncated, info = env.step(np.array([a], np.float32))
            if update is not None:
                update(info, base.last_tick_opportunities())
            done = bool(terminated or truncated)
            row = {"episode": ep, "tick": tick}
            row.update(zip(OBS_COLUMNS, obs.astype(np.float64)))
            row.update(action=a, alpha=info["alpha"], reward=reward, done=done,
                       budget=camp.budget, constraint=camp.constraint,
                       target_cpa=camp.target_cpa if camp.target_cpa is not None else math.nan,
                       target_roi=camp.target_roi if camp.target_roi is not None else math.nan,
                       category=camp.category, cost=info["cost"],
                       conversions=info["conversions"], value=info["value"],
                       score=info["score"], expected_score=info["expected_score"],
                       expected_conversions=info["expected_conversions"],
                       expected_cost=info["expected_cost"],
                       expected_value=info["expected_value"], behavior=plan["behavior"],
                       noise=plan["noise"])
            rows.append(row)
            obs = next_obs
            tick += 1
            if done:
                break
    env.close()
    return rows


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
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    chunk = 10
    tasks = [(config, list(range(i, min(i + chunk, config.episodes))))
             for i in range(0, config.episodes, chunk)]
    rows: list[dict] = []
    bar = tqdm(total=config.episodes, desc="collecting", unit="day", disable=not progress)
    if workers == 1:
        for task in tasks:
            rows += _collect_chunk(task)
            bar.update(len(task[1]))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for task, r in zip(tasks, pool.map(_collect_chunk, tasks)):
                rows += r
                bar.update(len(task[1]))
    bar.close()
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame.attrs["bidenv"] = {"source": "bidenv.collect", **config.metadata()}
    return frame


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def validate_frame(frame: pd.DataFrame, *, where: str = "dataset") -> pd.DataFrame:
    """Check columns, dtypes and values; returns the frame with canonical dtypes.

    Raises:
        ValueError: naming the missing column, the column with a wrong type or NaN, or the
            episode whose ticks are not 0, 1, 2, ... in order.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing columns {missing}")
    if len(frame) == 0:
        raise ValueError(f"{where}: has no rows")
    out = frame.copy()
    for col, kind in COLUMNS.items():
        s = out[col]
        if kind == "s":
            if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
                raise ValueError(f"{where}: column {col!r} must hold strings, got {s.dtype}")
            out[col] = s.astype(str)
            continue
        if kind == "b":
            if not pd.api.types.is_bool_dtype(s):
                raise ValueError(f"{where}: column {col!r} must be bool, got {s.dtype}")
            continue
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            raise ValueError(f"{where}: column {col!r} must be numeric, got {s.dtype}")
        if kind == "i":
            if s.isna().any() or not np.all(np.asarray(s) == np.round(np.asarray(s))):
                raise ValueError(f"{where}: column {col!r} must hold integers")
            out[col] = s.astype(np.int64)
        else:
            out[col] = s.astype(np.float64)
    bad = set(out["constraint"]) - {"cpa", "roi", "budget"}
    if bad:
        raise ValueError(f"{where}: column 'constraint' must be cpa, roi or budget; found "
                         f"{sorted(bad)}")
    nan_ok = {"target_cpa", "target_roi", "noise"}
    for col, kind in COLUMNS.items():
        if kind == "f" and col not in nan_ok:
            v = out[col].to_numpy()
            if not np.all(np.isfinite(v)):
                first = int(np.flatnonzero(~np.isfinite(v))[0])
                raise ValueError(f"{where}: column {col!r} has NaN or infinite values "
                                 f"(first at row {first})")
    for col, kind in (("target_cpa", "cpa"), ("target_roi", "roi")):
        rows = (out["constraint"] == kind).to_numpy()
        v = out[col].to_numpy()[rows]
        if not np.all(np.isfinite(v) & (v > 0)):
            raise ValueError(f"{where}: {kind} campaigns need a finite {col} > 0")
    a = out["action"].to_numpy()
    if np.any(np.abs(a) > 1.0 + 1e-6):
        raise ValueError(f"{where}: column 'action' must lie in [-1, 1]")
    out = out.sort_values(["episode", "tick"], kind="stable").reset_index(drop=True)
    ticks = out["tick"].to_numpy()
    starts = np.r_[True, out["episode"].to_numpy()[1:] != out["episode"].to_numpy()[:-1]]
    expected = np.arange(len(out)) - np.maximum.accumulate(np.where(starts,
                                                                    np.arange(len(out)), 0))
    if np.any(ticks != expected):
        ep = int(out["episode"].to_numpy()[np.flatnonzero(ticks != expected)[0]])
        raise ValueError(f"{where}: episode {ep} has ticks that are not 0, 1, 2, ... "
                         "without gaps or duplicates")
    out.attrs = dict(frame.attrs)
    return out


def save_dataset(frame: pd.DataFrame, path, metadata: dict | None = None) -> Path:
    """Validate and write ``frame`` to Parquet at ``path`` atomically, with its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = validate_frame(frame)
    meta = dict(frame.attrs.get("bidenv", {}))
    meta.update(metadata or {})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[METADATA_KEY] = json.dumps(meta, sort_keys=True, default=float).encode()
    table = table.replace_schema_metadata(schema_meta)
    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def load_dataset(path) -> tuple[pd.DataFrame, dict]:
    """Read and validate a dataset written by :func:`save_dataset`; returns (frame, metadata).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a readable Parquet file or fails :func:`validate_frame`.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset {str(path)!r} does not exist")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise ValueError(f"dataset {str(path)!r} is not a readable Parquet file: {exc}") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    meta = json.loads(raw.decode()) if raw else {}
    frame = validate_frame(table.to_pandas(), where=f"dataset {path.name}")
    frame.attrs["bidenv"] = meta
    return frame, meta


# --------------------------------------------------------------------------------------------
# Arrays for training
# --------------------------------------------------------------------------------------------
@dataclass
class Normalizer:
    """Per-feature mean and standard deviation of the states (from the training split)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, states: np.ndarray, eps: float = 1e-3) -> Normalizer:
        x = np.asarray(states, np.float64).reshape(-1, np.shape(states)[-1])
        return cls(x.mean(0).astype(np.float32), np.maximum(x.std(0), eps).astype(np.float32))

    def __call__(self, states):
        return ((np.asarray(states, np.float32) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        return cls(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))


@dataclass
class Trajectories:
    """A dataset as padded arrays over (episodes E, ticks T); ``mask`` marks real ticks.

    Attributes:
        obs: (E, T, F) float32 states; ``actions``, ``rewards``, ``scores`` (S_t after the
            tick), ``expected_scores``: (E, T); ``mask``, ``dones``: (E, T) bool;
        lengths: (E,) ticks per episode; ``episodes``: (E,) episode ids; ``campaigns``: one
            dict per episode; ``n_ticks``: T.
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    scores: np.ndarray
    expected_scores: np.ndarray
    dones: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray
    episodes: np.ndarray
    campaigns: list

    @property
    def n_ticks(self) -> int:
        return self.obs.shape[1]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, n_ticks: int | None = None) -> Trajectories:
        frame = frame.sort_values(["episode", "tick"], kind="stable")
        ep = frame["episode"].to_numpy()
        ids, first, lengths = np.unique(ep, return_index=True, return_counts=True)
        T = int(n_ticks or lengths.max())
        if lengths.max() > T:
            raise ValueError(f"n_ticks={T} is shorter than an episode ({lengths.max()} ticks)")
        E = len(ids)
        row_e = np.repeat(np.arange(E), lengths)
        row_t = frame["tick"].to_numpy()

        def grid(values, dtype, fill=0):
            out = np.full((E, T) + values.shape[1:], fill, dtype)
            out[row_e, row_t] = values
            return out

        obs = grid(frame[OBS_COLUMNS].to_numpy(np.float32), np.float32)
        camp_rows = frame.iloc[first]
        campaigns = [
            {"budget": float(r.budget), "constraint": str(r.constraint),
             "target_cpa": None if not np.isfinite(r.target_cpa) else float(r.target_cpa),
             "target_roi": None if not np.isfinite(r.target_roi) else float(r.target_roi),
             "category": int(r.category)}
            for r in camp_rows.itertuples(index=False)]
        scores = grid(frame["score"].to_numpy(np.float64), np.float64)
        exp_scores = grid(frame["expected_score"].to_numpy(np.float64), np.float64)
        mask = grid(np.ones(len(frame), bool), bool, False)
        # Carry the final score over padded ticks so that S_T is read at any t >= length.
        t_idx = np.arange(T)[None, :]
        last = (lengths - 1)[:, None]
        scores = np.where(t_idx <= last, scores, scores[np.arange(E), lengths - 1][:, None])
        exp_scores = np.where(t_idx <= last, exp_scores,
                              exp_scores[np.arange(E), lengths - 1][:, None])
        return cls(obs=obs, actions=grid(frame["action"].to_numpy(np.float32), np.float32),
                   rewards=grid(frame["reward"].to_numpy(np.float32), np.float32),
                   scores=scores, expected_scores=exp_scores,
                   dones=grid(frame["done"].to_numpy(bool), bool, False), mask=mask,
                   lengths=lengths.astype(np.int64), episodes=ids, campaigns=campaigns)

    def returns_to_go(self, *, expected: bool = False) -> np.ndarray:
        """Score-based return-to-go ``R_t = S_T - S_{t-1}`` (S_{-1} = 0), shape (E, T).

        With the penalised score S_t after tick t (exact beta, DESIGN.md's scoring contract),
        ``R_0 = S_T`` and ``R_t - R_{t+1} = S_t - S_{t-1}``: the increments telescope to the
        final score. ``expected=True`` uses the noise-free expected score instead.
        """
        s = self.expected_scores if expected else self.scores
        final = s[np.arange(len(s)), self.lengths - 1][:, None]
        prev = np.concatenate([np.zeros((len(s), 1)), s[:, :-1]], axis=1)
        return ((final - prev) * self.mask).astype(np.float64)

    def final_scores(self, *, expected: bool = False) -> np.ndarray:
        s = self.expected_scores if expected else self.scores
        return s[np.arange(len(s)), self.lengths - 1]

    def transitions(self, *, reward_scale: float = 1.0, expected: bool = False) -> dict:
        """Flat ``(s, a, r, s', done)`` arrays over real ticks (critics' training data).

        The reward is the score increment (realised, or expected with ``expected=True``)
        times ``reward_scale``; the last tick of an episode has ``done = True`` and its
        ``s'`` is its own state (never used: the target is masked by ``done``).
        """
        s = self.expected_scores if expected else self.scores
        prev = np.concatenate([np.zeros((len(s), 1)), s[:, :-1]], axis=1)
        rewards = (s - prev) * reward_scale
        E, T = self.mask.shape
        next_obs = np.concatenate([self.obs[:, 1:], self.obs[:, -1:]], axis=1)
        terminal = np.arange(T)[None, :] == (self.lengths - 1)[:, None]
        next_obs = np.where(terminal[..., None], self.obs, next_obs)
        m = self.mask
        return {"obs": self.obs[m], "actions": self.actions[m][:, None],
                "rewards": rewards[m].astype(np.float32), "next_obs": next_obs[m],
                "dones": terminal[m].astype(np.float32)}

    def split(self, val_fraction: float = 0.1, seed: int = 0) -> tuple[Trajectories,
                                                                         Trajectories]:
        """(train, validation) by whole episodes, deterministic for a seed."""
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        E = len(self.lengths)
        order = np.random.default_rng(seed).permutation(E)
        n_val = int(round(val_fraction * E)) if E > 1 else 0
        n_val = min(n_val, E - 1)
        return self.subset(np.sort(order[n_val:])), self.subset(np.sort(order[:n_val]))

    def subset(self, idx) -> Trajectories:
        idx = np.asarray(idx, np.int64)
        return Trajectories(
            obs=self.obs[idx], actions=self.actions[idx], rewards=self.rewards[idx],
            scores=self.scores[idx], expected_scores=self.expected_scores[idx],
            dones=self.dones[idx], mask=self.mask[idx], lengths=self.lengths[idx],
            episodes=self.episodes[idx], campaigns=[self.campaigns[i] for i in idx])

    def normalizer(self) -> Normalizer:
        """State statistics over the real ticks (compute on the training split)."""
        return Normalizer.fit(self.obs[self.mask])
