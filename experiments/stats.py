"""Statistics for comparing bidding agents: bootstrap intervals over training runs and days.

An ``episodes.csv`` (from ``bidenv evaluate`` or ``bidenv benchmark``) has one row per
(agent, run, scenario, episode). Two sources of randomness matter:

* **runs**: a learned agent is trained with several seeds; a heuristic has one run;
* **days**: the (scenario, episode) pairs. Every agent is scored on the same days (common random
  numbers), so rows of different agents on the same day are *paired*.

Every function here works on a ``runs x days`` matrix (:func:`agent_matrix`). Runs and days are
*crossed*, not nested: each run is scored on every day. A bootstrap replicate therefore resamples
runs with replacement and, independently, days with replacement, using the *same* resampled days
for every run (and, in :func:`paired_difference`, for both agents). This is the two-level
(hierarchical) bootstrap of Davison & Hinkley (1997, *Bootstrap Methods and their Application*,
section 3.8: resample the clusters, then the units), adapted to a crossed design as in Owen
(2007, "The pigeonhole bootstrap", *Ann. Appl. Stat.* 1(2)), which is mildly conservative.
With one run it is the ordinary one-level bootstrap over days; with ``strata`` (the scenario of
each day) days are resampled within each scenario, so every replicate keeps each scenario's day
count.

The summary statistics follow Agarwal et al. (2021), "Deep Reinforcement Learning at the Edge of
the Statistical Precipice", NeurIPS: interquartile mean (IQM), optimality gap, probability of
improvement and performance profiles. The ``rliable`` package is not used on purpose: its
stratified bootstrap resamples runs within each task, so with tasks = days it treats days as fixed
and gives zero-width intervals to single-run heuristics.

Missing cells (NaN, or any non-finite value) are ignored: a statistic is computed over the finite
cells of a (resampled) matrix; runs or days without a finite cell are dropped first.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.validation import check_int, check_number

STATISTICS = ("mean", "iqm", "median", "optimality_gap")

# Upper bound on the number of cells materialised at once by a vectorised bootstrap chunk.
_CHUNK_CELLS = 4_000_000

__all__ = [
    "STATISTICS",
    "agent_matrix",
    "day_columns",
    "iqm",
    "optimality_gap",
    "paired_difference",
    "paired_table",
    "performance_profile",
    "probability_of_improvement",
    "profile_curve",
    "summary_table",
    "two_level_bootstrap",
]


# ---------------------------------------------------------------------------------------------
# Point statistics
# ---------------------------------------------------------------------------------------------

def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50% of the finite values.

    Agarwal et al. (2021) recommend it as a robust aggregate. Non-finite values are dropped
    (the same convention as :func:`experiments.evaluate.iqm`).

    Args:
        values: Array-like of any shape; it is flattened.

    Returns:
        ``scipy.stats.trim_mean(x, 0.25)`` of the finite values, or NaN if there are none.
    """
    from scipy.stats import trim_mean

    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    return float(trim_mean(x, 0.25)) if len(x) else math.nan


def optimality_gap(values, threshold: float = 100.0) -> float:
    """Optimality gap of Agarwal et al. (2021): the mean of ``max(0, threshold - x)``.

    Args:
        values: Array-like of any shape; non-finite values are dropped.
        threshold: The score counted as optimal (100 for percent-of-oracle scores).

    Returns:
        The gap (0 when every score reaches the threshold), or NaN if there are no finite values.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    return float(np.maximum(0.0, threshold - x).mean()) if len(x) else math.nan


def probability_of_improvement(a, b) -> float:
    """Probability of improvement P(X > Y) of Agarwal et al. (2021), for one pair of agents.

    On each day, over every pair (run i of ``a``, run j of ``b``), counts 1 if ``a[i] > b[j]``,
    0.5 if they tie and 0 otherwise; averages over pairs, then over days.

    Args:
        a: ``runs_a x days`` scores (1-D = one run).
        b: ``runs_b x days`` scores on the same days (columns aligned with ``a``).

    Returns:
        The probability in [0, 1]; NaN if no day has finite scores for both agents.
    """
    return paired_difference(a, b, n_boot=1)["prob_improvement"]


def profile_curve(scores, taus) -> np.ndarray:
    """Performance profile (Agarwal et al., 2021): the fraction of scores above each ``tau``.

    Args:
        scores: Array-like of any shape (e.g. runs x days); non-finite values are dropped.
        taus: 1-D thresholds.

    Returns:
        Array shaped like ``taus``: fraction of finite scores strictly greater than each tau
        (NaN everywhere if there are no finite scores).
    """
    x = np.asarray(scores, dtype=np.float64).ravel()
    x = np.sort(x[np.isfinite(x)])
    t = np.asarray(taus, dtype=np.float64)
    if len(x) == 0:
        return np.full(t.shape, math.nan)
    return 1.0 - np.searchsorted(x, t, side="right") / len(x)


# Row-wise (vectorised) versions: x is (n, cells) with NaN = missing; they return (n,) or (n, T).

def _quiet(fn: Callable) -> Callable:
    def wrapped(*args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args)
    return wrapped


@_quiet
def _mean_rows(x: np.ndarray) -> np.ndarray:
    return np.nanmean(x, axis=1)


@_quiet
def _median_rows(x: np.ndarray) -> np.ndarray:
    return np.nanmedian(x, axis=1)


def _iqm_rows(x: np.ndarray) -> np.ndarray:
    s = np.sort(x, axis=1)  # NaN sorts last
    count = np.isfinite(s).sum(axis=1)
    low = (0.25 * count).astype(np.int64)  # scipy.stats.trim_mean: int(0.25 * n) cut each side
    pos = np.arange(s.shape[1])
    keep = (pos >= low[:, None]) & (pos < (count - low)[:, None])
    n = keep.sum(axis=1)
    total = np.where(keep, s, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def _gap_rows(threshold: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: _mean_rows(np.maximum(0.0, threshold - x))


def _profile_rows(taus: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def fn(x: np.ndarray) -> np.ndarray:
        count = np.isfinite(x).sum(axis=1)
        above = (x[:, :, None] > taus[None, None, :]).sum(axis=1)  # NaN > tau is False
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count[:, None] > 0, above / np.maximum(count, 1)[:, None], np.nan)
    return fn


def _statistic_fn(statistic: str, threshold: float) -> Callable[[np.ndarray], np.ndarray]:
    if statistic == "mean":
        return _mean_rows
    if statistic == "median":
        return _median_rows
    if statistic == "iqm":
        return _iqm_rows
    if statistic == "optimality_gap":
        return _gap_rows(threshold)
    raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")


# ---------------------------------------------------------------------------------------------
# Validation and resampling machinery
# ---------------------------------------------------------------------------------------------

def _as_matrix(values, name: str) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric (runs x days): {exc}") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must be 1-D (days) or 2-D (runs x days), got shape {x.shape}")
    return np.where(np.isfinite(x), x, np.nan)


def _strata_codes(strata, n_days: int) -> np.ndarray | None:
    if strata is None:
        return None
    labels = np.asarray(strata)
    if labels.ndim != 1 or len(labels) != n_days:
        raise ValueError(f"strata must be 1-D with one label per day column ({n_days}), "
                         f"got shape {labels.shape}")
    codes, _ = pd.factorize(labels, sort=True)
    if (codes < 0).any():
        raise ValueError("strata must not contain missing labels")
    return codes


def _draw_days(rng: np.random.Generator, codes: np.ndarray | None, n_days: int,
               n_boot: int) -> np.ndarray:
    """Resampled day columns (n_boot, n_days), within each stratum when ``codes`` is given."""
    if codes is None:
        return rng.integers(0, n_days, size=(n_boot, n_days))
    parts = []
    for s in range(codes.max() + 1):
        cols = np.flatnonzero(codes == s)
        if len(cols):
            parts.append(cols[rng.integers(0, len(cols), size=(n_boot, len(cols)))])
    return np.concatenate(parts, axis=1)


def _draw_runs(rng: np.random.Generator, n_runs: int, n_boot: int) -> np.ndarray:
    """Resampled runs (n_boot, n_runs); a single run consumes no random numbers."""
    if n_runs == 1:
        return np.zeros((n_boot, 1), dtype=np.int64)
    return rng.integers(0, n_runs, size=(n_boot, n_runs))


def _interval(reps: np.ndarray, level: float) -> tuple[float, float]:
    reps = np.asarray(reps, dtype=np.float64)
    if not np.isfinite(reps).any():
        return math.nan, math.nan
    lo, hi = np.nanquantile(reps, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    return lo, hi


def _bootstrap(values, strata, fns: Sequence[Callable], n_boot: int, seed: int):
    """Point estimates and two-level bootstrap replicates of row-wise statistics.

    Returns ``(points, replicates)``: lists with one entry per function, each point shaped like
    one row of that function's output and each replicate array ``(n_boot, ...)``; ``None`` when
    the matrix has no finite cell.
    """
    x = _as_matrix(values, "values")
    codes = _strata_codes(strata, x.shape[1])
    finite = np.isfinite(x)
    keep_days = finite.any(axis=0)
    x = x[finite.any(axis=1)][:, keep_days]
    if codes is not None:
        codes = codes[keep_days]
    if x.size == 0:
        return None, None
    n_runs, n_days = x.shape
    points = [fn(x.reshape(1, -1))[0] for fn in fns]
    rng = np.random.default_rng(seed)
    days = _draw_days(rng, codes, n_days, n_boot)  # days first: one run == one-level bootstrap
    runs = _draw_runs(rng, n_runs, n_boot)
    reps: list[list[np.ndarray]] = [[] for _ in fns]
    step = max(1, _CHUNK_CELLS // x.size)
    for start in range(0, n_boot, step):
        r, d = runs[start:start + step], days[start:start + step]
        sample = x[r[:, :, None], d[:, None, :]].reshape(len(r), -1)
        for out, fn in zip(reps, fns):
            out.append(fn(sample))
    return points, [np.concatenate(out, axis=0) for out in reps]


# ---------------------------------------------------------------------------------------------
# Public bootstrap functions
# ---------------------------------------------------------------------------------------------

def two_level_bootstrap(values, *, statistic: str = "mean", strata=None, threshold: float = 100.0,
                        n_boot: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float, float]:
    """Percentile interval of a statistic from a two-level bootstrap over runs and days.

    Each replicate resamples runs (training seeds) with replacement and days with replacement
    (within each stratum if ``strata`` is given); the same resampled days are used for every run
    because runs and days are crossed (every run is scored on the same days), not nested. The
    statistic is computed over all finite cells of the resampled ``runs x days`` matrix. See the
    module docstring for references (Davison & Hinkley 1997, sec. 3.8; Owen 2007; Agarwal et al.
    2021). With one run (or 1-D ``values``) and no strata, this is exactly the one-level
    bootstrap of :func:`experiments.evaluate.bootstrap_ci` for the same seed.

    Args:
        values: ``runs x days`` scores; 1-D is one run. NaN marks a missing cell.
        statistic: ``"mean"``, ``"iqm"``, ``"median"`` or ``"optimality_gap"``.
        strata: Optional 1-D label per day column (e.g. the scenario); days are resampled within
            each stratum, so every replicate keeps each stratum's day count.
        threshold: Optimal score for ``"optimality_gap"`` (100 for percent-of-oracle).
        n_boot: Number of bootstrap replicates (>= 1).
        level: Interval coverage in (0, 1).
        seed: Seed of ``numpy.random.default_rng``; equal seeds give equal results.

    Returns:
        ``(point, low, high)``: the statistic on the full matrix and the percentile interval.
        All NaN if there is no finite value.

    Raises:
        ValueError: On a bad ``statistic``, ``n_boot``, ``level``, ``values`` or ``strata``.
    """
    check_int("n_boot", n_boot, 1)
    check_number("level", level, 0, 1, low_open=True, high_open=True)
    fn = _statistic_fn(statistic, threshold)
    points, reps = _bootstrap(values, strata, [fn], n_boot, seed)
    if points is None:
        return math.nan, math.nan, math.nan
    lo, hi = _interval(reps[0], level)
    return float(points[0]), float(lo), float(hi)


def _paired_stats(a0, va, b0, vb, s0, vs, wa, wb, days) -> tuple[np.ndarray, np.ndarray]:
    """Mean difference and probability of improvement for run weights and resampled days.

    ``a0``/``b0``: scores with NaN set to 0, ``va``/``vb``: validity masks (runs x days);
    ``s0``/``vs``: pairwise comparison scores and validity (runs_a x runs_b x days);
    ``wa``/``wb``: (n, runs) multiplicity of each run in a replicate; ``days``: (n, days).
    """
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_a = (wa @ a0) / (wa @ va)  # per-day mean over the resampled runs, (n, days)
        mean_b = (wb @ b0) / (wb @ vb)
        diff = np.take_along_axis(mean_a - mean_b, days, axis=1)
        tmp = np.einsum("ki,ijd->kjd", wa, s0)
        tmp_v = np.einsum("ki,ijd->kjd", wa, vs)
        poi = np.einsum("kj,kjd->kd", wb, tmp) / np.einsum("kj,kjd->kd", wb, tmp_v)
        poi = np.take_along_axis(poi, days, axis=1)
        return np.nanmean(diff, axis=1), np.nanmean(poi, axis=1)


def mean_intervals(days: pd.DataFrame, columns: dict) -> dict:
    """``{name: mean, name_low: ..., name_high: ...}`` for each ``column: name`` of
    ``columns`` (in its order): the mean of that column over the rows of ``days`` (NaN rows
    left out) with its :func:`two_level_bootstrap` 95% interval."""
    row = {}
    for col, name in columns.items():
        point, low, high = two_level_bootstrap(days[col].dropna().to_numpy(np.float64))
        row.update({name: point, f"{name}_low": low, f"{name}_high": high})
    return row


def paired_difference(a, b, *, strata=None, n_boot: int = 2000, level: float = 0.95,
                      seed: int = 0) -> dict:
    """Paired comparison of two agents scored on the same days.

    The per-day difference is the mean over ``a``'s runs minus the mean over ``b``'s runs; the
    point estimate is its mean over the days where both agents have a finite score. Each
    bootstrap replicate resamples ``a``'s runs and ``b``'s runs independently (they are different
    training runs) and the days *jointly* (the same resampled days for both agents), so
    day-to-day variation common to both agents cancels. ``prob_improvement`` is the probability of
    improvement of Agarwal et al. (2021): P(X > Y) + 0.5 P(X = Y), X a run of ``a`` and Y a run
    of ``b`` on the same day, averaged over run pairs and days; it is bootstrapped with the same
    replicates.

    Args:
        a: ``runs_a x days`` scores (1-D = one run); NaN = missing.
        b: ``runs_b x days`` scores on the same days, columns aligned with ``a``.
        strata: Optional 1-D label per day column; days are resampled within each stratum.
        n_boot: Number of bootstrap replicates (>= 1).
        level: Interval coverage in (0, 1).
        seed: Seed of ``numpy.random.default_rng``.

    Returns:
        Dict with ``mean_diff``, ``ci_low``, ``ci_high`` (difference a - b and its percentile
        interval), ``prob_improvement``, ``poi_low``, ``poi_high``, ``n_days`` (days with finite
        scores for both), ``runs_a`` and ``runs_b`` (runs with a finite score). Values are NaN
        when no day is shared.

    Raises:
        ValueError: If the day counts of ``a`` and ``b`` differ, or on bad ``n_boot``,
            ``level`` or ``strata``.
    """
    check_int("n_boot", n_boot, 1)
    check_number("level", level, 0, 1, low_open=True, high_open=True)
    xa, xb = _as_matrix(a, "a"), _as_matrix(b, "b")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"a and b must have the same number of days (columns), got "
                         f"{xa.shape[1]} and {xb.shape[1]}")
    codes = _strata_codes(strata, xa.shape[1])
    shared = np.isfinite(xa).any(axis=0) & np.isfinite(xb).any(axis=0)
    xa, xb = xa[:, shared], xb[:, shared]
    if codes is not None:
        codes = codes[shared]
    xa = xa[np.isfinite(xa).any(axis=1)]
    xb = xb[np.isfinite(xb).any(axis=1)]
    n_days = int(shared.sum())
    out = {"mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "prob_improvement": math.nan, "poi_low": math.nan, "poi_high": math.nan,
           "n_days": n_days, "runs_a": len(xa), "runs_b": len(xb)}
    if n_days == 0:
        return out
    va, vb = np.isfinite(xa), np.isfinite(xb)
    a0, b0 = np.where(va, xa, 0.0), np.where(vb, xb, 0.0)
    pa, pb = xa[:, None, :], xb[None, :, :]
    vs = va[:, None, :] & vb[None, :, :]
    s0 = np.where(vs, (pa > pb) + 0.5 * (pa == pb), 0.0)
    va, vb, vs = va.astype(np.float64), vb.astype(np.float64), vs.astype(np.float64)
    args = (a0, va, b0, vb, s0, vs)

    ra, rb = len(xa), len(xb)
    diff, poi = _paired_stats(*args, np.ones((1, ra)), np.ones((1, rb)),
                              np.arange(n_days)[None, :])
    out["mean_diff"], out["prob_improvement"] = float(diff[0]), float(poi[0])

    rng = np.random.default_rng(seed)
    days = _draw_days(rng, codes, n_days, n_boot)
    runs_a = _draw_runs(rng, ra, n_boot)
    runs_b = _draw_runs(rng, rb, n_boot)
    diffs, pois = [], []
    step = max(1, _CHUNK_CELLS // (n_days * max(ra * rb, ra + rb)))
    for start in range(0, n_boot, step):
        sl = slice(start, start + step)
        wa = (runs_a[sl, :, None] == np.arange(ra)).sum(axis=1).astype(np.float64)
        wb = (runs_b[sl, :, None] == np.arange(rb)).sum(axis=1).astype(np.float64)
        d, p = _paired_stats(*args, wa, wb, days[sl])
        diffs.append(d)
        pois.append(p)
    lo, hi = _interval(np.concatenate(diffs), level)
    plo, phi = _interval(np.concatenate(pois), level)
    out.update(ci_low=float(lo), ci_high=float(hi), poi_low=float(plo), poi_high=float(phi))
    return out


# ---------------------------------------------------------------------------------------------
# Episodes frames
# ---------------------------------------------------------------------------------------------

def _require_columns(frame: pd.DataFrame, columns: Sequence[str], value: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if value in missing:
        raise ValueError(f"value column {value!r} is not in the frame")
    if missing:
        raise ValueError(f"frame lacks columns {missing}")


def day_columns(frame: pd.DataFrame, scenario=None) -> pd.DataFrame:
    """The days of an episodes frame: the column order used by :func:`agent_matrix`.

    Args:
        frame: Episodes frame with ``scenario`` and ``episode`` columns.
        scenario: Restrict to one scenario; ``None`` keeps every scenario.

    Returns:
        DataFrame with columns ``scenario`` and ``episode``, one row per day, sorted; its
        ``scenario`` column is the ``strata`` argument for a pooled comparison.

    Raises:
        ValueError: If ``scenario`` is not in the frame.
    """
    _require_columns(frame, ["scenario", "episode"], "scenario")
    days = frame[["scenario", "episode"]].drop_duplicates()
    if scenario is not None:
        days = days[days["scenario"] == scenario]
        if days.empty:
            raise ValueError(f"scenario {scenario!r} is not in the frame")
    return days.sort_values(["scenario", "episode"]).reset_index(drop=True)


def agent_matrix(frame: pd.DataFrame, agent, scenario=None,
                 value: str = "pct_of_oracle") -> np.ndarray:
    """The ``runs x days`` score matrix of one agent.

    Runs are the sorted distinct values of the ``run`` column (benchmark output; a missing
    ``run`` column or a missing entry counts as one run named after the agent). Days are
    :func:`day_columns` of the *whole* frame, so matrices of different agents have aligned
    columns (a day an agent was not scored on is NaN).

    Args:
        frame: Episodes frame (``agent``, ``scenario``, ``episode``, ``value``, optional ``run``).
        agent: The agent label.
        scenario: One scenario, or ``None`` for all scenarios (days of every scenario).
        value: Score column.

    Returns:
        Float array ``(runs, days)``.

    Raises:
        ValueError: If the agent, scenario or value column is missing, or a (run, scenario,
            episode) appears twice.
    """
    _require_columns(frame, ["agent", "scenario", "episode", value], value)
    rows = frame[frame["agent"] == agent]
    if rows.empty:
        raise ValueError(f"agent {agent!r} is not in the frame")
    days = day_columns(frame, scenario)
    if scenario is not None:
        rows = rows[rows["scenario"] == scenario]
    run = rows["run"].fillna(rows["agent"]) if "run" in rows else rows["agent"]
    run = run.astype(str)
    key = pd.DataFrame({"run": run, "scenario": rows["scenario"], "episode": rows["episode"]})
    if key.duplicated().any():
        raise ValueError(f"agent {agent!r} has duplicate (run, scenario, episode) rows")
    runs = np.sort(run.unique())
    matrix = np.full((len(runs), len(days)), np.nan)
    col = pd.MultiIndex.from_frame(days).get_indexer(
        pd.MultiIndex.from_arrays([rows["scenario"], rows["episode"]]))
    matrix[np.searchsorted(runs, run.to_numpy()), col] = rows[value].to_numpy(dtype=np.float64)
    return matrix


def _counts(matrix: np.ndarray) -> tuple[int, int]:
    finite = np.isfinite(matrix)
    return int(finite.any(axis=1).sum()), int(finite.any(axis=0).sum())


def summary_table(frame: pd.DataFrame, *, value: str = "pct_of_oracle", threshold: float = 100.0,
                  n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per-agent aggregate over all scenarios with two-level bootstrap intervals.

    Days are resampled within each scenario (stratified) and runs with replacement; the mean,
    IQM and optimality gap of an agent share the same replicates.

    Args:
        frame: Episodes frame (see :func:`agent_matrix`).
        value: Score column.
        threshold: Optimal score for the optimality gap (100 for percent-of-oracle).
        n_boot: Number of bootstrap replicates.
        level: Interval coverage in (0, 1).
        seed: Seed (the same for every agent).

    Returns:
        One row per agent (order of first appearance): ``agent``, ``runs``, ``days``, ``mean``,
        ``mean_low``, ``mean_high``, ``iqm``, ``iqm_low``, ``iqm_high``, ``optimality_gap``,
        ``optimality_gap_low``, ``optimality_gap_high``.
    """
    check_int("n_boot", n_boot, 1)
    check_number("level", level, 0, 1, low_open=True, high_open=True)
    strata = day_columns(frame)["scenario"].to_numpy()
    names = ("mean", "iqm", "optimality_gap")
    fns = [_mean_rows, _iqm_rows, _gap_rows(threshold)]
    rows = []
    for agent in pd.unique(frame["agent"]):
        m = agent_matrix(frame, agent, value=value)
        runs, days = _counts(m)
        row = {"agent": agent, "runs": runs, "days": days}
        points, reps = _bootstrap(m, strata, fns, n_boot, seed)
        for i, name in enumerate(names):
            lo, hi = (math.nan, math.nan) if reps is None else _interval(reps[i], level)
            row[name] = math.nan if points is None else float(points[i])
            row[f"{name}_low"], row[f"{name}_high"] = float(lo), float(hi)
        rows.append(row)
    return pd.DataFrame(rows)


def paired_table(frame: pd.DataFrame, reference, *, value: str = "pct_of_oracle",
                 n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Paired comparison of every agent with a reference, per scenario and overall.

    Args:
        frame: Episodes frame (see :func:`agent_matrix`).
        reference: Agent label every other agent is compared with.
        value: Score column.
        n_boot: Number of bootstrap replicates.
        level: Interval coverage in (0, 1).
        seed: Seed (the same for every row).

    Returns:
        One row per (agent, scenario) plus a row with scenario ``"all"`` per agent (days of all
        scenarios, resampled within scenario): ``agent``, ``reference``, ``scenario``, ``days``,
        ``runs``, ``reference_runs``, ``mean_diff`` (agent minus reference), ``ci_low``,
        ``ci_high``, ``prob_improvement``, ``poi_low``, ``poi_high``, ``significant`` (True when
        the difference interval excludes 0).

    Raises:
        ValueError: If ``reference`` is not an agent of the frame.
    """
    check_int("n_boot", n_boot, 1)
    check_number("level", level, 0, 1, low_open=True, high_open=True)
    _require_columns(frame, ["agent", "scenario", "episode", value], value)
    agents = list(pd.unique(frame["agent"]))
    if reference not in agents:
        raise ValueError(f"reference {reference!r} is not an agent of the frame: {agents}")
    scenarios = list(day_columns(frame)["scenario"].unique())
    rows = []
    for agent in agents:
        if agent == reference:
            continue
        for scenario in [*scenarios, None]:
            a = agent_matrix(frame, agent, scenario, value)
            b = agent_matrix(frame, reference, scenario, value)
            strata = None if scenario is not None else day_columns(frame)["scenario"].to_numpy()
            res = paired_difference(a, b, strata=strata, n_boot=n_boot, level=level, seed=seed)
            rows.append({
                "agent": agent, "reference": reference,
                "scenario": "all" if scenario is None else scenario,
                "days": res["n_days"], "runs": res["runs_a"], "reference_runs": res["runs_b"],
                "mean_diff": res["mean_diff"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
                "prob_improvement": res["prob_improvement"], "poi_low": res["poi_low"],
                "poi_high": res["poi_high"],
                "significant": bool(res["ci_low"] > 0 or res["ci_high"] < 0),
            })
    return pd.DataFrame(rows)


def performance_profile(frame: pd.DataFrame, path, *, value: str = "pct_of_oracle", taus=None,
                        n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Plot performance profiles with bootstrap bands (Agarwal et al., 2021, Fig. 5 style).

    For each agent, the fraction of its (run, day) scores above ``tau`` as a function of tau
    (:func:`profile_curve`), with a percentile band from the two-level bootstrap (runs with
    replacement, days with replacement within each scenario). The figure is written with
    :func:`experiments.io.atomic_save_figure`.

    Args:
        frame: Episodes frame (see :func:`agent_matrix`).
        path: Output image path (e.g. ``performance_profile.png``).
        value: Score column.
        taus: 1-D thresholds; default 101 points from the lowest to the highest finite score.
        n_boot: Number of bootstrap replicates.
        level: Band coverage in (0, 1).
        seed: Seed (the same for every agent).

    Returns:
        Long DataFrame with ``agent``, ``tau``, ``fraction``, ``low``, ``high``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.io import atomic_save_figure

    check_int("n_boot", n_boot, 1)
    check_number("level", level, 0, 1, low_open=True, high_open=True)
    _require_columns(frame, ["agent", "scenario", "episode", value], value)
    if taus is None:
        v = frame[value].to_numpy(dtype=np.float64)
        v = v[np.isfinite(v)]
        taus = np.linspace(v.min(), v.max(), 101) if len(v) else np.zeros(1)
    taus = np.asarray(taus, dtype=np.float64)
    if taus.ndim != 1 or len(taus) == 0:
        raise ValueError(f"taus must be a non-empty 1-D array, got shape {taus.shape}")
    days = day_columns(frame)
    strata = days["scenario"].to_numpy()
    fn = _profile_rows(taus)
    parts = []
    fig, ax = plt.subplots(figsize=(8, 5))
    agents = list(pd.unique(frame["agent"]))
    # Distinct colours for up to 20 agents, and a second line style beyond 10.
    colours = plt.get_cmap("tab20" if len(agents) > 10 else "tab10")
    for i, agent in enumerate(agents):
        m = agent_matrix(frame, agent, value=value)
        points, reps = _bootstrap(m, strata, [fn], n_boot, seed)
        if points is None:
            continue
        lo, hi = _interval(reps[0], level)
        curve = profile_curve(m, taus)
        parts.append(pd.DataFrame({"agent": agent, "tau": taus, "fraction": curve,
                                   "low": lo, "high": hi}))
        runs = _counts(m)[0]
        line, = ax.plot(taus, curve, color=colours(i % colours.N),
                        ls="-" if i < 10 else "--",
                        label=f"{agent} ({runs} run{'s' if runs != 1 else ''})")
        ax.fill_between(taus, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel(f"{value} threshold τ")
    ax.set_ylabel("fraction of (run, day) scores > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"Performance profile: {len(days)} days, {days['scenario'].nunique()} scenarios\n"
                 f"bands: {level * 100:g}% interval (bootstrap over runs and days)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    atomic_save_figure(fig, Path(path))
    if not parts:
        return pd.DataFrame(columns=["agent", "tau", "fraction", "low", "high"])
    return pd.concat(parts, ignore_index=True)
