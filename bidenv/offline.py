"""Offline datasets: logged days of bidding, stored as Parquet, and the arrays agents train on.

One row per (episode, tick), per docs/design.md's offline-data contract:

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

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.campaign import MAX_MONEY, MIN_TARGET
from bidenv.features import FEATURE_NAMES, OPPORTUNITY_FEATURES
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
#: Optional columns (all or none): the opt-in opportunity features before each tick
#: (:data:`bidenv.features.OPPORTUNITY_FEATURES`), logged by ``bidenv collect``.
OPPORTUNITY_COLUMNS = [f"opp_{name}" for name in OPPORTUNITY_FEATURES]
METADATA_KEY = b"bidenv"


def step_row(*, episode: int, tick: int, obs, action, reward: float, done: bool,
             campaign: dict, info: dict, behavior: str, noise: float) -> dict:
    """One dataset row (the :data:`COLUMNS`, in order) from one agent's env step.

    Args:
        episode, tick: The row's episode and 0-based tick (``obs`` was seen before the tick).
        obs: The observation the action was taken on (the ``obs_*`` columns).
        action: The executed action in [-1, 1] (a number or a ``(1,)`` array).
        reward: The step's reward; done: whether the day ended for the agent with this step.
        campaign: The day's campaign (``Campaign.to_dict()``: ``budget``, ``constraint``,
            ``target_cpa``, ``target_roi`` (None where not applicable), ``category``).
        info: The step's info (the env's keys: ``alpha``, ``cost``, ``conversions``, ``value``,
            ``score`` and the ``expected_*`` totals).
        behavior, noise: The behaviour policy of the episode and its exploration sigma.

    Used by :mod:`experiments.selfplay` for every agent of a multi-agent day; the rows of
    ``bidenv collect`` hold the same values (plus the optional ``opp_*`` columns).
    """
    def num(x):
        return math.nan if x is None else float(x)

    row = {"episode": int(episode), "tick": int(tick)}
    row.update(zip(OBS_COLUMNS, np.asarray(obs, np.float64).reshape(-1).tolist()))
    row.update(action=float(np.asarray(action, np.float64).reshape(-1)[0]),
               alpha=float(info["alpha"]), reward=float(reward), done=bool(done),
               budget=float(campaign["budget"]), constraint=str(campaign["constraint"]),
               target_cpa=num(campaign.get("target_cpa")),
               target_roi=num(campaign.get("target_roi")), category=int(campaign["category"]))
    row.update({c: float(info[c]) for c in OUTCOME_COLUMNS})
    row.update(behavior=str(behavior), noise=float(noise))
    return {c: row[c] for c in COLUMNS}


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
    # The campaign bounds of bidenv.campaign.Campaign (float32 bids stay finite).
    budget = out["budget"].to_numpy()
    bad = ~((budget > 0) & (budget <= MAX_MONEY))
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: column 'budget' must be in (0, {MAX_MONEY:g}] (first bad "
                         f"value {budget[first]:.6g} at row {first})")
    for col, kind in (("target_cpa", "cpa"), ("target_roi", "roi")):
        rows = (out["constraint"] == kind).to_numpy()
        v = out[col].to_numpy()[rows]
        if not np.all(np.isfinite(v) & (v >= MIN_TARGET) & (v <= MAX_MONEY)):
            raise ValueError(f"{where}: {kind} campaigns need {col} in "
                             f"[{MIN_TARGET:g}, {MAX_MONEY:g}]")
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
    present = [c for c in OPPORTUNITY_COLUMNS if c in out.columns]
    if present and len(present) != len(OPPORTUNITY_COLUMNS):
        raise ValueError(f"{where}: the opportunity columns come all or none; missing "
                         f"{[c for c in OPPORTUNITY_COLUMNS if c not in present]}")
    for col in present:
        v = out[col]
        if not pd.api.types.is_numeric_dtype(v) or not np.all(np.isfinite(v.to_numpy())):
            raise ValueError(f"{where}: column {col!r} must hold finite numbers")
        out[col] = v.astype(np.float64)
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


def to_d4rl(dataset) -> dict[str, np.ndarray]:
    """The D4RL-style flat arrays of a dataset, for offline-RL libraries such as d3rlpy.

    One entry per row (episode, tick), episodes one after another in episode order:

    * ``observations`` ``(N, F)`` float32 (the ``obs_*`` columns), ``actions`` ``(N, 1)``
      float32, ``rewards`` ``(N,)`` float32 (score increments);
    * ``terminals`` ``(N,)`` bool: the day ended (its last tick, or the budget ran out: the
      frame's ``done``); ``timeouts`` ``(N,)`` bool: the last row of an episode whose last row
      is not ``done`` (a day cut short in the log). Every episode ends with exactly one of the
      two, so d3rlpy splits the episodes where they are;
    * ``next_observations`` ``(N, F)`` float32: the next row's observation within the episode;
      at an episode's last row its own observation (the frame does not log the state after the
      last tick; the same convention as :mod:`bidenv.minari_export`).

    Args:
        dataset: A trajectory frame or the path of a Parquet dataset.

    Build a d3rlpy dataset from it (d3rlpy 2.x)::

        import d3rlpy
        from bidenv.offline import to_d4rl
        d = to_d4rl("data.parquet")
        dataset = d3rlpy.dataset.MDPDataset(d["observations"], d["actions"], d["rewards"],
                                            d["terminals"], timeouts=d["timeouts"])
    """
    frame = load_dataset(dataset)[0] if not isinstance(dataset, pd.DataFrame) else \
        validate_frame(dataset)
    ep = frame["episode"].to_numpy()
    last = np.r_[ep[1:] != ep[:-1], True]
    done = frame["done"].to_numpy(bool)
    obs = frame[OBS_COLUMNS].to_numpy(np.float32)
    following = np.r_[obs[1:], obs[-1:]]
    return {"observations": obs,
            "actions": frame["action"].to_numpy(np.float32)[:, None],
            "rewards": frame["reward"].to_numpy(np.float32),
            "terminals": last & done,
            "timeouts": last & ~done,
            "next_observations": np.where(last[:, None], obs, following)}


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
        yardsticks: (E,) each day's yardstick (the oracle of the day without the agent) where
            the file's metadata has it (``bidenv collect --yardstick``, key ``day_yardstick``),
            NaN elsewhere; ``None`` when no day has one.
        opportunity_obs: (E, T, 10) float32 opportunity features before each tick
            (:data:`OPPORTUNITY_COLUMNS`) when the file has them, else ``None``.
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
    yardsticks: np.ndarray | None = None
    opportunity_obs: np.ndarray | None = None

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
        opp = (grid(frame[OPPORTUNITY_COLUMNS].to_numpy(np.float32), np.float32)
               if all(c in frame.columns for c in OPPORTUNITY_COLUMNS) else None)
        known = (frame.attrs.get("bidenv") or {}).get("day_yardstick") or {}
        yardsticks = (np.array([float(known.get(str(int(e)), np.nan)) for e in ids])
                      if known else None)
        return cls(obs=obs, actions=grid(frame["action"].to_numpy(np.float32), np.float32),
                   rewards=grid(frame["reward"].to_numpy(np.float32), np.float32),
                   scores=scores, expected_scores=exp_scores,
                   dones=grid(frame["done"].to_numpy(bool), bool, False), mask=mask,
                   lengths=lengths.astype(np.int64), episodes=ids, campaigns=campaigns,
                   yardsticks=yardsticks, opportunity_obs=opp)

    def returns_to_go(self, *, expected: bool = False) -> np.ndarray:
        """Score-based return-to-go ``R_t = S_T - S_{t-1}`` (S_{-1} = 0), shape (E, T).

        With the penalised score S_t after tick t (exact beta, docs/design.md's scoring contract),
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
            episodes=self.episodes[idx], campaigns=[self.campaigns[i] for i in idx],
            yardsticks=None if self.yardsticks is None else self.yardsticks[idx],
            opportunity_obs=(None if self.opportunity_obs is None
                             else self.opportunity_obs[idx]))

    def with_opportunity_obs(self) -> Trajectories:
        """A copy whose states also hold the opportunity features (appended after the
        environment's), for agents trained with ``opportunity_features=True``."""
        if self.opportunity_obs is None:
            raise ValueError("opportunity_features=True needs the opportunity columns "
                             f"({OPPORTUNITY_COLUMNS[0]}, ...) in the data: collect it again "
                             "with this version of bidenv collect")
        return replace(self, obs=np.concatenate([self.obs, self.opportunity_obs], axis=-1))

    def normalizer(self) -> Normalizer:
        """State statistics over the real ticks (compute on the training split)."""
        return Normalizer.fit(self.obs[self.mask])
