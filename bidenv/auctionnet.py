"""Import of the public auto-bidding benchmark's traffic logs (AuctionNet) as bidenv datasets.

The NeurIPS 2024 auto-bidding competition published its logged days as CSV traffic logs
(Su et al., "AuctionNet: A Novel Benchmark for Decision-Making in Large-Scale Games",
NeurIPS 2024 Datasets and Benchmarks), one row per (delivery period, advertiser, tick,
opportunity) with the columns of :data:`AUCTIONNET_COLUMNS`. :func:`import_auctionnet` turns
such a file into the trajectory frame of :mod:`bidenv.offline` (one row per (episode, tick),
the columns of :data:`bidenv.offline.COLUMNS`), so that every offline agent trains on it
unchanged.

How the log maps onto a trajectory:

* one episode per (``deliveryPeriodIndex``, ``advertiserNumber``), numbered 0, 1, ... in
  sorted order (``frame.attrs["bidenv"]["episodes"]`` lists ``[episode, period,
  advertiser]``); its ticks are ``timeStepIndex``; the campaign is ``budget``,
  ``CPAConstraint`` (constraint ``"cpa"``) and ``advertiserCategoryIndex``;
* the episode ends at the first tick where ``isEnd`` is 1 (the advertiser ran out of budget;
  that tick is the last row, ``done = True``) or at its last tick;
* an opportunity costs ``cost`` and converts (``conversionAction``) only when exposed
  (``isExposed``), as in the benchmark's own data generators; a win is ``xi``;
* the observation features are those of :data:`bidenv.env.FEATURE_NAMES` with the
  definitions and units of ``bidenv.day.MarketDay.observe``: history means are means over the
  past ticks of per-tick means (bid and least winning cost in units of
  :data:`~bidenv.env.PRICE_UNIT`, pValue in units of :data:`~bidenv.env.PVALUE_UNIT`),
  conversions are counts per tick, the win rate is wins per opportunity, opportunity counts
  are divided by the day's mean volume per tick, ``traffic_elapsed`` is the share of the
  day's *realised* volume (all ticks of the log, also those after the end) before the tick,
  ``pace_error`` and ``constraint_ratio`` use the spend and conversions before the tick,
  ``is_roi`` is 0; all clipped to the observation space's bounds;
* the action: ``alpha`` is the tick's mean of ``bid / (pValue x CPAConstraint)`` over its
  opportunities with ``pValue > 0`` (1 when there is none), stored as recovered (not
  clipped); ``action = clip(log(alpha) / log(max_alpha), -1, 1)``, the environment's action
  bijection (:func:`bidenv.scoring.alpha_to_action`; ``alpha = 0``, all bids 0, gives -1);
* ``reward`` is the increment of the penalised score (exact ``beta``, :mod:`bidenv.scoring`)
  and ``score`` the score after the tick, so rewards telescope to the final score;
* ``value`` and ``expected_value`` are 0 (the log carries no sales value).

Approximation of the noise-free figures: the log has neither the true conversion
probabilities nor the slots' exposure probabilities, so ``expected_conversions`` is the
cumulative sum of ``pValue`` over the *exposed* opportunities (predicted conversions given the
realised exposures), ``expected_cost`` is the realised cost (cost is only charged when exposed)
and ``expected_score`` the penalised score of those two.

The least winning cost of the log is the price needed for the last slot of each auction, the
same for every advertiser; the environment shows an advertiser that won the clearing price of
its own slot instead, so ``hist_lwc_mean`` of imported days is slightly lower on won ticks.

The file is read in chunks of ``chunk_rows`` rows and reduced to per-tick sums before the
features are computed, so memory grows with the number of ticks, not of opportunities.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.features import observe
from bidenv.offline import COLUMNS, OBS_COLUMNS
from bidenv.scoring import MAX_ALPHA, alpha_to_action, constraint_ratio, cpa_score

#: The columns of the public traffic-log schema, in the published order.
AUCTIONNET_COLUMNS = (
    "deliveryPeriodIndex", "advertiserNumber", "advertiserCategoryIndex", "budget",
    "CPAConstraint", "timeStepIndex", "remainingBudget", "pvIndex", "pValue", "pValueSigma",
    "bid", "xi", "adSlot", "cost", "isExposed", "conversionAction", "leastWinningCost", "isEnd",
)
#: The columns the import reads (the others are not needed for the trajectory).
REQUIRED_COLUMNS = (
    "deliveryPeriodIndex", "advertiserNumber", "advertiserCategoryIndex", "budget",
    "CPAConstraint", "timeStepIndex", "pValue", "bid", "xi", "cost", "isExposed",
    "conversionAction", "leastWinningCost", "isEnd",
)
_INTEGER = ("deliveryPeriodIndex", "advertiserNumber", "advertiserCategoryIndex", "timeStepIndex")
_BINARY = ("xi", "isExposed", "conversionAction", "isEnd")
_NON_NEGATIVE = ("pValue", "bid", "cost", "leastWinningCost", "deliveryPeriodIndex",
                 "advertiserNumber", "advertiserCategoryIndex")
_POSITIVE = ("budget", "CPAConstraint")
_EPISODE = ["deliveryPeriodIndex", "advertiserNumber"]
_KEYS = _EPISODE + ["timeStepIndex"]
#: Per-tick sums kept while reading (``n`` is the number of opportunities).
_SUMS = ("n", "bid", "lwc", "pvalue", "wins", "cost", "conversions", "exp_conversions",
         "ratio", "ratio_n", "end")
_CONSTANTS = {"budget": "budget", "CPAConstraint": "target_cpa",
              "advertiserCategoryIndex": "category"}


def import_auctionnet(csv_path, *, n_ticks: int = 48, max_alpha: float = MAX_ALPHA,
                      beta: float = 2.0, chunk_rows: int = 1_000_000) -> pd.DataFrame:
    """Convert an AuctionNet traffic-log CSV into a bidenv trajectory frame.

    Args:
        csv_path: Path of the CSV file (columns :data:`AUCTIONNET_COLUMNS`; those of
            :data:`REQUIRED_COLUMNS` must be present), or a ``DataFrame`` with those columns.
        n_ticks: Ticks of a day (``timeStepIndex`` must lie in ``[0, n_ticks)``); sets
            ``time_left`` and the mean volume per tick.
        max_alpha: The environment's action scale: ``action = log(alpha) / log(max_alpha)``.
        beta: Exponent of the CPA penalty in the score.
        chunk_rows: Rows read at a time.

    Returns:
        The trajectory frame (columns :data:`bidenv.offline.COLUMNS`, sorted by episode and
        tick, ``behavior = "auctionnet"``), with metadata in ``frame.attrs["bidenv"]``:
        ``source`` (file name), ``rows`` (opportunity rows read), ``episodes`` (``[episode,
        deliveryPeriodIndex, advertiserNumber]`` triples), ``n_ticks``, ``max_alpha``,
        ``beta`` and ``behaviors``.

    Raises:
        FileNotFoundError: if ``csv_path`` does not exist.
        ValueError: for a bad argument, an unreadable file, a missing column, NaN, a
            non-numeric value, a value out of range (each naming the column and the first
            row), a campaign that changes within an episode, or ticks with gaps.

    >>> import pandas as pd
    >>> log = pd.DataFrame({"deliveryPeriodIndex": 0, "advertiserNumber": 3,
    ...     "advertiserCategoryIndex": 1, "budget": 100.0, "CPAConstraint": 8.0,
    ...     "timeStepIndex": [0, 0, 1], "pValue": [0.01, 0.03, 0.02], "bid": [0.1, 0.3, 0.2],
    ...     "xi": [1, 0, 1], "cost": [0.5, 0.0, 4.0], "isExposed": [1, 0, 1],
    ...     "conversionAction": [1, 0, 0], "leastWinningCost": [0.05, 0.2, 0.1], "isEnd": 0})
    >>> frame = import_auctionnet(log, n_ticks=2)
    >>> frame[["tick", "alpha", "cost", "conversions", "score", "done"]].values.tolist()
    [[0, 1.25, 0.5, 1.0, 1.0, False], [1, 1.25, 4.0, 0.0, 1.0, True]]
    >>> round(float(frame["obs_hist_bid_mean"].iloc[1]), 6)  # mean bid of tick 0 / 0.1
    2.0
    """
    _check_arguments(n_ticks=n_ticks, chunk_rows=chunk_rows, max_alpha=max_alpha, beta=beta)

    if isinstance(csv_path, pd.DataFrame):
        source, where = "<DataFrame>", "AuctionNet log"
        _check_columns(csv_path.columns, where)
        chunks = [csv_path]
    else:
        path = Path(csv_path)
        source, where = path.name, f"AuctionNet log {path.name}"
        _check_columns(_csv_header(path, "AuctionNet log"), where)
        chunks = pd.read_csv(path, usecols=list(REQUIRED_COLUMNS), chunksize=chunk_rows)

    parts, rows = [], 0
    try:
        for chunk in chunks:
            if len(chunk):
                parts.append(_tick_sums(_check_chunk(chunk, where, n_ticks, rows), where))
            rows += len(chunk)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} is not a readable CSV file: {exc}") from None
    if rows == 0:
        raise ValueError(f"{where} has no rows")
    ticks = pd.concat(parts, ignore_index=True)
    if len(parts) > 1:  # a tick may span two chunks: add its partial sums
        agg = {c: "sum" for c in _SUMS}
        agg.update({f"{c}_min": "min" for c in _CONSTANTS})
        agg.update({f"{c}_max": "max" for c in _CONSTANTS})
        ticks = ticks.groupby(_KEYS, sort=True).agg(agg).reset_index()
    else:
        ticks = ticks.sort_values(_KEYS, kind="stable").reset_index(drop=True)
    frame, episodes = _trajectories(ticks, where, n_ticks, max_alpha, beta)
    frame.attrs["bidenv"] = {
        "source": source, "rows": int(rows), "format": "auctionnet", "n_ticks": int(n_ticks),
        "max_alpha": float(max_alpha), "beta": float(beta), "behaviors": {"auctionnet": 1.0},
        "episodes": episodes,
    }
    return frame


def _check_columns(columns, where: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in set(columns)]
    if missing:
        raise ValueError(f"{where}: missing columns {missing} (the AuctionNet schema has "
                         f"{list(AUCTIONNET_COLUMNS)})")


def _check_arguments(*, n_ticks, max_alpha, beta, chunk_rows=1) -> None:
    """The importers' arguments: one-line ``ValueError`` naming the bad one."""
    for name, value, low in (("n_ticks", n_ticks, 1), ("chunk_rows", chunk_rows, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not (isinstance(max_alpha, (int, float)) and math.isfinite(max_alpha) and max_alpha > 1):
        raise ValueError(f"max_alpha must be a finite number > 1, got {max_alpha!r}")
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")


def _first_row(mask: np.ndarray, offset: int) -> str:
    i = offset + int(np.flatnonzero(mask)[0])
    return f"first at row {i}, line {i + 2} of a CSV with a header"


def _check_chunk(chunk: pd.DataFrame, where: str, n_ticks: int, offset: int) -> dict:
    """Types and ranges of one chunk of the log (rows ``offset, offset + 1, ...``).

    Returns:
        ``{column: float64 array}`` (int64 for the integer columns).
    """
    out = {}
    for col in REQUIRED_COLUMNS:
        s = chunk[col]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(np.int64)
        if not pd.api.types.is_numeric_dtype(s):
            numeric = pd.to_numeric(s, errors="coerce")
            bad = (numeric.isna() & s.notna()).to_numpy()
            if bad.any():
                value = s.to_numpy()[np.flatnonzero(bad)[0]]
                raise ValueError(f"{where}: column {col!r} must be numeric, found {value!r} "
                                 f"({_first_row(bad, offset)})")
            s = numeric
        v = s.to_numpy(np.float64)
        finite = np.isfinite(v)
        if not finite.all():
            raise ValueError(f"{where}: column {col!r} has NaN or infinite values "
                             f"({_first_row(~finite, offset)})")
        if col in _INTEGER or col in _BINARY:
            frac = v != np.round(v)
            if frac.any():
                raise ValueError(f"{where}: column {col!r} must hold integers "
                                 f"({_first_row(frac, offset)})")
        if col in _BINARY:
            bad = (v != 0) & (v != 1)
            if bad.any():
                raise ValueError(f"{where}: column {col!r} must be 0 or 1 "
                                 f"({_first_row(bad, offset)})")
        if col in _NON_NEGATIVE and (v < 0).any():
            raise ValueError(f"{where}: column {col!r} must be >= 0 "
                             f"({_first_row(v < 0, offset)})")
        if col in _POSITIVE and (v <= 0).any():
            raise ValueError(f"{where}: column {col!r} must be > 0 "
                             f"({_first_row(v <= 0, offset)})")
        if col == "timeStepIndex":
            bad = (v < 0) | (v >= n_ticks)
            if bad.any():
                raise ValueError(f"{where}: column 'timeStepIndex' must lie in [0, {n_ticks}) "
                                 f"for n_ticks={n_ticks} ({_first_row(bad, offset)})")
        out[col] = v.astype(np.int64) if col in _INTEGER else v
    return out


def _tick_sums(log: dict, where: str) -> pd.DataFrame:
    """Per (period, advertiser, tick): the sums the features need and the campaign.

    Grouping is a sort of one int64 key per row (``np.unique``) and ``np.bincount`` sums, which
    is several times faster than a pandas groupby over the millions of rows of a log.
    """
    period, adv, tick = (log[k] for k in _KEYS)
    n_adv, n_tick = int(adv.max()) + 1, int(tick.max()) + 1
    key = (period * n_adv + adv) * n_tick + tick
    uniq, first, group = np.unique(key, return_index=True, return_inverse=True)
    pvalue, exposed = log["pValue"], log["isExposed"]
    valid = pvalue > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(valid, log["bid"] / (np.where(valid, pvalue, 1.0) * log["CPAConstraint"]),
                         0.0)
    weights = {"n": None, "bid": log["bid"], "lwc": log["leastWinningCost"], "pvalue": pvalue,
               "wins": log["xi"], "cost": log["cost"] * exposed,
               "conversions": log["conversionAction"] * exposed,
               "exp_conversions": pvalue * exposed, "ratio": ratio,
               "ratio_n": valid.astype(np.float64), "end": log["isEnd"]}
    out = {k: log[k][first] for k in _KEYS}
    for name in _SUMS:
        out[name] = np.bincount(group, weights=weights[name], minlength=len(uniq))
    for col in _CONSTANTS:
        v = log[col]
        ref = v[first][group]
        changed = v != ref
        if changed.any():
            i = int(np.flatnonzero(changed)[0])
            raise ValueError(f"{where}: column {col!r} changes within deliveryPeriodIndex "
                             f"{period[i]}, advertiserNumber {adv[i]} (found {ref[i]:g} and "
                             f"{v[i]:g}); it must be constant for an advertiser's day")
        out[f"{col}_min"] = out[f"{col}_max"] = v[first]
    return pd.DataFrame(out)


def _trajectories(ticks: pd.DataFrame, where: str, n_ticks: int, max_alpha: float,
                  beta: float) -> tuple[pd.DataFrame, list]:
    """Features, actions and outcomes from the sorted per-tick sums."""
    ep_keys = ticks[_EPISODE].to_numpy()
    n_all = len(ticks)
    new_ep = np.r_[True, np.any(ep_keys[1:] != ep_keys[:-1], axis=1)]
    ep_all = np.cumsum(new_ep) - 1
    # The campaign must not change within an episode.
    for col in _CONSTANTS:
        lo = pd.Series(ticks[f"{col}_min"].to_numpy()).groupby(ep_all).min().to_numpy()
        hi = pd.Series(ticks[f"{col}_max"].to_numpy()).groupby(ep_all).max().to_numpy()
        if np.any(lo != hi):
            e = int(np.flatnonzero(lo != hi)[0])
            p, a = ep_keys[np.flatnonzero(new_ep)[e]]
            raise ValueError(f"{where}: column {col!r} changes within deliveryPeriodIndex {p}, "
                             f"advertiserNumber {a} (found {lo[e]:g} and {hi[e]:g}); it must be "
                             "constant for an advertiser's day")
    # Ticks 0, 1, 2, ... without gaps.
    starts_all = np.flatnonzero(new_ep)
    position = np.arange(n_all) - starts_all[ep_all]
    tick_all = ticks["timeStepIndex"].to_numpy()
    if np.any(tick_all != position):
        i = int(np.flatnonzero(tick_all != position)[0])
        p, a = ep_keys[i]
        raise ValueError(f"{where}: deliveryPeriodIndex {p}, advertiserNumber {a} has no rows for "
                         f"timeStepIndex {position[i]} (found {tick_all[i]} next); an advertiser's "
                         "ticks must be 0, 1, 2, ... without gaps")
    # The day's realised volume (all ticks of the log) sets the per-tick scale and elapsed share.
    n_tick = ticks["n"].to_numpy()
    day_volume = np.bincount(ep_all, weights=n_tick)
    # The episode ends at the first tick with isEnd: drop the ticks after it.
    end = (ticks["end"].to_numpy() > 0).astype(np.int64)
    cum_end = np.cumsum(end)
    ended_before = (cum_end - end - (cum_end - end)[starts_all][ep_all]) > 0
    keep = ~ended_before
    t = ticks.loc[keep].reset_index(drop=True)
    ep = ep_all[keep]
    n = len(t)
    tick = t["timeStepIndex"].to_numpy()
    start = np.flatnonzero(np.r_[True, ep[1:] != ep[:-1]])[ep]
    idx = np.arange(n)

    def past(x):
        """(sum over the episode's ticks before this one, sum over at most the last 3)."""
        cs = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
        return cs[idx] - cs[start], cs[idx] - cs[np.maximum(start, idx - 3)]

    def upto(x):
        cs = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
        return cs[idx + 1] - cs[start]

    count = t["n"].to_numpy()
    per_tick = day_volume[ep] / n_ticks
    budget = t["budget_min"].to_numpy()
    target_cpa = t["CPAConstraint_min"].to_numpy()
    n_past = tick.astype(np.float64)
    n_last3 = np.minimum(n_past, 3.0)
    safe = lambda d: np.maximum(d, 1.0)  # noqa: E731  (the sums are 0 where d is 0)

    # The HISTORY_STEMS quantities of each tick, in order.
    per_tick_values = (t["bid"].to_numpy() / count, t["lwc"].to_numpy() / count,
                       t["pvalue"].to_numpy() / count, t["conversions"].to_numpy(),
                       t["wins"].to_numpy() / count, count)
    sums = [past(x) for x in per_tick_values]
    spent_before, _ = past(t["cost"].to_numpy())
    conv_before, _ = past(t["conversions"].to_numpy())
    volume_before, _ = past(count)
    obs = observe(tick=tick, n_ticks=n_ticks, spent=spent_before, budget=budget,
                  hist_means=[h / safe(n_past) for h, _ in sums],
                  last3_means=[l3 / safe(n_last3) for _, l3 in sums],
                  cur_pvalue_mean=t["pvalue"].to_numpy() / count, cur_count=count,
                  per_tick=per_tick, elapsed=volume_before / day_volume[ep],
                  constraint_ratio=constraint_ratio("cpa", conv_before, 0.0, spent_before,
                                                    target_cpa=target_cpa),
                  is_roi=0.0)

    ratio_n = t["ratio_n"].to_numpy()
    alpha = np.where(ratio_n > 0, t["ratio"].to_numpy() / safe(ratio_n), 1.0)
    # alpha = 0 (all bids 0) is the smallest action, -1: alpha_to_action refuses alpha <= 0.
    action = alpha_to_action(np.maximum(alpha, 1.0 / max_alpha), max_alpha).astype(np.float64)

    cost = t["cost"].to_numpy()
    conversions = t["conversions"].to_numpy()
    cum_cost, cum_conv = upto(cost), upto(conversions)
    score = cpa_score(cum_conv, cum_cost, target_cpa, beta)
    prev_score = cpa_score(conv_before, spent_before, target_cpa, beta)
    exp_conv = upto(t["exp_conversions"].to_numpy())
    done = np.r_[ep[1:] != ep[:-1], True]

    frame = pd.DataFrame({"episode": ep.astype(np.int64), "tick": tick.astype(np.int64)})
    for i, name in enumerate(OBS_COLUMNS):
        frame[name] = obs[:, i].astype(np.float64)
    zeros = np.zeros(n)
    frame = frame.assign(
        action=action, alpha=alpha, reward=score - prev_score, done=done, budget=budget,
        constraint="cpa", target_cpa=target_cpa, target_roi=np.nan,
        category=t["advertiserCategoryIndex_min"].to_numpy().astype(np.int64), cost=cost,
        conversions=conversions, value=zeros, score=score,
        expected_score=cpa_score(exp_conv, cum_cost, target_cpa, beta),
        expected_conversions=exp_conv, expected_cost=cum_cost, expected_value=zeros,
        behavior="auctionnet", noise=np.nan)
    frame = frame[list(COLUMNS)]
    episodes = [[int(e), int(p), int(a)]
                for e, (p, a) in enumerate(ep_keys[starts_all].tolist())]
    return frame, episodes


def synthetic_log(n_periods: int = 2, n_advertisers: int = 4, opportunities_per_tick: float = 20,
                  n_ticks: int = 48, seed: int = 0, budget_range=(2.0, 20.0),
                  cpa_range=(40.0, 120.0), n_slots: int = 3,
                  slot_exposure=(1.0, 0.8, 0.6), reserve: float = 0.01,
                  pvalue_level: float = 5e-4) -> pd.DataFrame:
    """A synthetic traffic log in the AuctionNet schema (for tests, examples and benchmarks).

    Every opportunity of a tick is offered to every advertiser (as in the public logs); each
    advertiser bids ``alpha x pValue x CPAConstraint`` with its own per-tick ``alpha``; the
    ``n_slots`` highest bids win (``xi``, ``adSlot`` 1, 2, ...), each paying the next bid
    (GSP) when exposed (cascaded exposure ``slot_exposure``); an exposed opportunity converts
    with probability ``pValue``; ``leastWinningCost`` is the price of the last slot. An
    advertiser whose spend reaches its budget ends: ``isEnd`` is 1 from that tick on and its
    later bids and costs are 0 (the other advertisers' auctions are not re-run; the log is a
    test fixture, not a market simulation). Volume follows a day curve; pValue is log-normal
    around ``pvalue_level`` times a factor of the advertiser's category (0.4 to 1.65).

    Returns:
        The log with the columns of :data:`AUCTIONNET_COLUMNS`, sorted by period, tick,
        opportunity and advertiser.
    """
    rng = np.random.default_rng(seed)
    k = int(n_advertisers)
    hours = (np.arange(n_ticks) + 0.5) * 24.0 / n_ticks
    shape = 1.0 + 0.9 * np.sin((hours - 9.5) * np.pi / 12.0)
    shape = shape / shape.mean()
    exposure = np.cumprod(np.asarray(slot_exposure, np.float64))[:n_slots]
    frames = []
    for period in range(n_periods):
        category = rng.integers(0, 6, k)
        budget = np.round(np.exp(rng.uniform(*np.log(budget_range), k)), 2)
        cpa = np.round(rng.uniform(*cpa_range, k), 1)
        spent = np.zeros(k)
        ended = np.zeros(k, bool)
        level = pvalue_level * (0.4 + 0.25 * category)
        for t in range(n_ticks):
            n = int(rng.poisson(opportunities_per_tick * shape[t])) + 1
            alpha = np.exp(rng.normal(0.0, 0.3, k))
            pvalue = level[None, :] * np.exp(rng.normal(0.0, 0.5, (n, k)))
            bid = np.where(ended[None, :], 0.0, alpha[None, :] * pvalue * cpa[None, :])
            order = np.argsort(-bid, axis=1, kind="stable")
            ranked = np.take_along_axis(bid, order, axis=1)
            padded = np.concatenate([ranked, np.full((n, n_slots + 1), reserve)], axis=1)
            slot = np.zeros((n, k), np.int64)
            price = np.zeros((n, k))
            rows = np.arange(n)
            for j in range(min(n_slots, k)):
                won = ranked[:, j] >= reserve
                slot[rows[won], order[won, j]] = j + 1
                price[rows[won], order[won, j]] = np.maximum(padded[won, j + 1], reserve)
            lwc = np.maximum(padded[:, n_slots], reserve)
            depth = rng.random(n)
            exposed = (slot > 0) & (depth[:, None] < np.r_[0.0, exposure][slot])
            converted = exposed & (rng.random((n, k)) < pvalue)
            remaining = budget - spent
            spent = spent + (price * exposed).sum(axis=0)
            is_end = ended | (spent >= budget)
            frames.append(pd.DataFrame({
                "deliveryPeriodIndex": period,
                "advertiserNumber": np.tile(np.arange(k), n),
                "advertiserCategoryIndex": np.tile(category, n),
                "budget": np.tile(budget, n),
                "CPAConstraint": np.tile(cpa, n),
                "timeStepIndex": t,
                "remainingBudget": np.tile(remaining, n),
                "pvIndex": np.repeat(np.arange(n), k),
                "pValue": pvalue.ravel(),
                "pValueSigma": 0.15 * pvalue.ravel(),
                "bid": bid.ravel(),
                "xi": (slot > 0).astype(np.int64).ravel(),
                "adSlot": slot.ravel(),
                "cost": price.ravel(),
                "isExposed": exposed.astype(np.int64).ravel(),
                "conversionAction": converted.astype(np.int64).ravel(),
                "leastWinningCost": np.repeat(lwc, k),
                "isEnd": np.tile(is_end.astype(np.int64), n),
            }))
            ended = is_end
    return pd.concat(frames, ignore_index=True)[list(AUCTIONNET_COLUMNS)]


# --------------------------------------------------------------------------------------------
# The preprocessed trajectory file (trajectory_data.csv, *-rlData.csv)
# --------------------------------------------------------------------------------------------
#: The columns of the public trajectory file (one row per delivery period, advertiser and
#: tick), in the published order: ``trajectory_data.csv`` of the competition's AIGB track and
#: the ``*-rlData.csv`` files its baselines' data generators write.
TRAJECTORY_COLUMNS = (
    "deliveryPeriodIndex", "advertiserNumber", "advertiserCategoryIndex", "budget",
    "CPAConstraint", "realAllCost", "realAllConversion", "timeStepIndex", "state", "action",
    "reward", "reward_continuous", "done", "next_state",
)
#: The columns :func:`import_auctionnet_trajectories` reads (``realAllConversion`` and
#: ``next_state`` are implied by the others).
TRAJECTORY_REQUIRED = tuple(c for c in TRAJECTORY_COLUMNS
                            if c not in ("realAllConversion", "next_state"))
#: The 16 entries of the file's ``state`` tuple, in order. Means over past ticks are means of
#: per-tick means over the tick's opportunities (``hist_`` all past ticks, ``last3_`` the last
#: three), in raw units; opportunity counts are sums; 0 before the first tick.
TRAJECTORY_STATE = (
    "time_left", "budget_left", "hist_bid_mean", "last3_bid_mean", "hist_lwc_mean",
    "hist_pvalue_mean", "hist_conversion_rate", "hist_win_rate", "last3_lwc_mean",
    "last3_pvalue_mean", "last3_conversion_rate", "last3_win_rate", "cur_pvalue_mean",
    "cur_opportunities", "last3_opportunities_sum", "hist_opportunities_sum",
)
_TRAJ_INTEGER = ("deliveryPeriodIndex", "advertiserNumber", "advertiserCategoryIndex",
                 "timeStepIndex", "done")
_TRAJ_POSITIVE = ("budget", "CPAConstraint")
_TRAJ_NON_NEGATIVE = ("deliveryPeriodIndex", "advertiserNumber", "advertiserCategoryIndex",
                      "realAllCost", "action", "reward", "reward_continuous")
#: Per episode these must not change (the file repeats them on every row).
_TRAJ_CONSTANT = ("advertiserCategoryIndex", "budget", "CPAConstraint", "realAllCost")


def log_format(columns) -> str:
    """Which public AuctionNet file a header belongs to: ``"trajectory"`` when it has the
    ``state``, ``action`` and ``done`` columns of :data:`TRAJECTORY_COLUMNS`, else
    ``"traffic"`` (the per-opportunity log of :data:`AUCTIONNET_COLUMNS`).

    >>> log_format(TRAJECTORY_COLUMNS), log_format(AUCTIONNET_COLUMNS)
    ('trajectory', 'traffic')
    """
    return "trajectory" if {"state", "action", "done"} <= set(columns) else "traffic"


def file_format(path) -> str:
    """:func:`log_format` of a CSV file's header.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a readable CSV file.
    """
    return log_format(_csv_header(Path(path), "AuctionNet file"))


def _csv_header(path: Path, what: str) -> pd.Index:
    """The column names of CSV file ``path`` (``what`` names it in errors).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if it is not a readable CSV file.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist")
    try:
        return pd.read_csv(path, nrows=0).columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {path.name} is not a readable CSV file: {exc}") from None


def parse_states(values, where: str = "trajectory file", column: str = "state") -> np.ndarray:
    """The ``state`` column's tuples as an ``(n, 16)`` float64 array, without evaluating code.

    Accepts ``"(1.0, 0.5, ...)"`` and ``"[1.0, 0.5, ...]"``, also with numpy 2's
    ``np.float64(0.5)`` spelling of the entries.

    >>> parse_states(["(1.0, 0.5" + ", 0" * 14 + ")"])[0, :2].tolist()
    [1.0, 0.5]
    """
    text = pd.Series(values, dtype=object).astype(str)
    text = text.str.replace(r"(?:np|numpy)\.[A-Za-z_]+\d*\(", "", regex=True)
    text = text.str.replace(r"[()\[\]\s]", "", regex=True)
    parts = text.str.split(",", expand=True)
    width = len(TRAJECTORY_STATE)
    counts = parts.notna().sum(axis=1).to_numpy() if len(parts.columns) else np.zeros(len(text))
    bad = counts != width
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: column {column!r} must hold tuples of {width} numbers, "
                         f"found {counts[i]} ({_first_row(bad, 0)})")
    states = parts.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    finite = np.isfinite(states).all(axis=1)
    if not finite.all():
        raise ValueError(f"{where}: column {column!r} has a value that is not a finite number "
                         f"({_first_row(~finite, 0)})")
    return states


def import_auctionnet_trajectories(csv_path, *, n_ticks: int = 48, max_alpha: float = MAX_ALPHA,
                                   beta: float = 2.0) -> pd.DataFrame:
    """Convert the public AuctionNet trajectory file (``trajectory_data.csv``) into a bidenv
    trajectory frame, the same format :func:`import_auctionnet` makes from traffic logs.

    The file (columns :data:`TRAJECTORY_COLUMNS`) has one row per (``deliveryPeriodIndex``,
    ``advertiserNumber``, ``timeStepIndex``) with a 16-number ``state`` (:data:`TRAJECTORY_STATE`),
    ``action = sum(bid) / sum(pValue)`` over the tick's opportunities, ``reward`` (conversions
    of exposed opportunities), ``reward_continuous`` (their summed pValue) and ``done`` (1 at
    the last tick or once the advertiser's budget ran out). How each of our columns is filled:

    * one episode per (period, advertiser), numbered 0, 1, ... in sorted order; it ends at its
      first ``done`` row (later rows, which the file keeps with zero bids after the budget ran
      out, are dropped; the count is in the metadata); an episode without a ``done`` row keeps
      ``done = False`` on its last row (a day cut short: a truncation, not a termination);
    * the campaign: ``budget``, ``CPAConstraint`` (``"cpa"``), ``advertiserCategoryIndex``;
    * ``cost`` (not in the file per tick) is derived: the spend before a tick is
      ``budget x (1 - state budget_left)``, a tick's cost the difference to the next tick's,
      the last tick's ``realAllCost`` minus the spend before it (clipped at 0);
    * ``conversions`` is ``reward``; ``expected_conversions`` the running sum of
      ``reward_continuous`` and ``expected_cost`` the realised cost, the same approximation
      as :func:`import_auctionnet`; ``value`` and ``expected_value`` are 0; ``noise`` is NaN;
      ``score``, ``expected_score`` and the ``reward`` increments come from these (exact
      ``beta``);
    * ``alpha = action / CPAConstraint`` (our bid is ``alpha x pValue x target``; a ratio of
      sums, equal to :func:`import_auctionnet`'s mean ratio when bids are proportional to
      pValue within a tick, as the public baselines bid); 1 for a tick without opportunities;
      ``action = clip(log(alpha) / log(max_alpha), -1, 1)``;
    * the observation, through :func:`bidenv.features.observe` with the definitions of
      :func:`import_auctionnet`: bid, least winning cost, pValue and win-rate means from the
      state; ``hist_/last3_conversion_mean`` (conversions per tick) from the past rows'
      ``reward`` (the state holds a per-opportunity conversion *rate* instead); opportunity
      counts from the state's sums divided by the day's realised mean volume per tick (all
      rows of the episode, also those after its end); ``traffic_elapsed`` the share of that
      volume before the tick; ``budget_left``, ``pace_error`` and ``constraint_ratio`` from
      the derived spend and ``reward``; ``is_roi`` 0;
    * the optional ``opp_*`` columns are not written (the file has no per-opportunity prices).

    Args:
        csv_path: Path of the CSV file, or a ``DataFrame`` with its columns.
        n_ticks: Ticks of a day (``timeStepIndex`` must lie in ``[0, n_ticks)``).
        max_alpha: The environment's action scale.
        beta: Exponent of the CPA penalty in the score.

    Returns:
        The trajectory frame (:data:`bidenv.offline.COLUMNS`, ``behavior = "auctionnet"``),
        metadata in ``frame.attrs["bidenv"]`` as :func:`import_auctionnet`'s with
        ``format = "auctionnet_trajectory"`` and ``dropped_rows`` (rows after an episode's end).

    Raises:
        FileNotFoundError: if ``csv_path`` does not exist.
        ValueError: for a bad argument, an unreadable file, a missing column, a non-numeric
            or out-of-range value or a malformed ``state`` (naming the column and the first
            row), a campaign or ``realAllCost`` that changes within an episode, or ticks with
            gaps or duplicates.
    """
    _check_arguments(n_ticks=n_ticks, max_alpha=max_alpha, beta=beta)
    if isinstance(csv_path, pd.DataFrame):
        source, where, table = "<DataFrame>", "AuctionNet trajectory file", csv_path
        columns = table.columns
    else:
        path = Path(csv_path)
        source, where = path.name, f"AuctionNet trajectory file {path.name}"
        columns = _csv_header(path, "AuctionNet trajectory file")
    missing = [c for c in TRAJECTORY_REQUIRED if c not in set(columns)]
    if missing:
        raise ValueError(f"{where}: missing columns {missing} (the trajectory file has "
                         f"{list(TRAJECTORY_COLUMNS)})")
    if not isinstance(csv_path, pd.DataFrame):
        try:
            table = pd.read_csv(path, usecols=list(TRAJECTORY_REQUIRED))
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where} is not a readable CSV file: {exc}") from None
    if len(table) == 0:
        raise ValueError(f"{where} has no rows")
    rows = len(table)
    col = {}
    for name in TRAJECTORY_REQUIRED:
        if name == "state":
            continue
        s = table[name]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(np.int64)
        numeric = pd.to_numeric(s, errors="coerce")
        v = numeric.to_numpy(np.float64)
        bad = ~np.isfinite(v)
        if bad.any():
            raise ValueError(f"{where}: column {name!r} must hold finite numbers, found "
                             f"{s.to_numpy()[np.flatnonzero(bad)[0]]!r} ({_first_row(bad, 0)})")
        if name in _TRAJ_INTEGER and (v != np.round(v)).any():
            raise ValueError(f"{where}: column {name!r} must hold integers "
                             f"({_first_row(v != np.round(v), 0)})")
        if name == "done" and ((v != 0) & (v != 1)).any():
            raise ValueError(f"{where}: column 'done' must be 0 or 1 "
                             f"({_first_row((v != 0) & (v != 1), 0)})")
        if name in _TRAJ_POSITIVE and (v <= 0).any():
            raise ValueError(f"{where}: column {name!r} must be > 0 ({_first_row(v <= 0, 0)})")
        if name in _TRAJ_NON_NEGATIVE and (v < 0).any():
            raise ValueError(f"{where}: column {name!r} must be >= 0 ({_first_row(v < 0, 0)})")
        if name == "timeStepIndex" and ((v < 0) | (v >= n_ticks)).any():
            raise ValueError(f"{where}: column 'timeStepIndex' must lie in [0, {n_ticks}) for "
                             f"n_ticks={n_ticks} ({_first_row((v < 0) | (v >= n_ticks), 0)})")
        col[name] = v.astype(np.int64) if name in _TRAJ_INTEGER else v
    state = parse_states(table["state"].to_numpy(), where)
    bad = (state[:, 1] > 1 + 1e-9) | (state[:, 13:] < 0).any(axis=1)
    if bad.any():
        raise ValueError(f"{where}: column 'state' needs budget_left (entry 1) <= 1 and "
                         f"opportunity counts (entries 13-15) >= 0 ({_first_row(bad, 0)})")

    order = np.lexsort((col["timeStepIndex"], col["advertiserNumber"],
                        col["deliveryPeriodIndex"]))
    col = {k: v[order] for k, v in col.items()}
    state = state[order]
    period, adv = col["deliveryPeriodIndex"], col["advertiserNumber"]
    tick_all = col["timeStepIndex"]
    new_ep = np.r_[True, (period[1:] != period[:-1]) | (adv[1:] != adv[:-1])]
    ep_all = np.cumsum(new_ep) - 1
    starts_all = np.flatnonzero(new_ep)
    position = np.arange(len(tick_all)) - starts_all[ep_all]
    if np.any(tick_all != position):
        i = int(np.flatnonzero(tick_all != position)[0])
        raise ValueError(f"{where}: deliveryPeriodIndex {period[i]}, advertiserNumber {adv[i]} "
                         f"has no row for timeStepIndex {position[i]} (found {tick_all[i]} "
                         "next); an advertiser's ticks must be 0, 1, 2, ... once each")
    for name in _TRAJ_CONSTANT:
        v = col[name]
        changed = v != v[starts_all][ep_all]
        if changed.any():
            i = int(np.flatnonzero(changed)[0])
            raise ValueError(f"{where}: column {name!r} changes within deliveryPeriodIndex "
                             f"{period[i]}, advertiserNumber {adv[i]} (found "
                             f"{v[starts_all][ep_all][i]:g} and {v[i]:g}); it must be "
                             "constant for an advertiser's day")
    day_volume = np.bincount(ep_all, weights=state[:, TRAJECTORY_STATE.index("cur_opportunities")])
    # The episode ends at its first done row: drop the rows after it.
    end = col["done"].astype(np.int64)
    before = np.cumsum(end) - end
    keep = (before - before[starts_all][ep_all]) == 0
    ep, s = ep_all[keep], state[keep]
    c = {k: v[keep] for k, v in col.items()}
    n = len(ep)
    idx = np.arange(n)
    first = np.r_[True, ep[1:] != ep[:-1]]
    last = np.r_[ep[1:] != ep[:-1], True]
    start = np.flatnonzero(first)[np.cumsum(first) - 1]
    tick = c["timeStepIndex"]
    budget, target_cpa = c["budget"], c["CPAConstraint"]

    def past(x, window=None):
        cs = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
        lo = start if window is None else np.maximum(start, idx - window)
        return cs[idx] - cs[lo]

    def upto(x):
        cs = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
        return cs[idx + 1] - cs[start]

    # Per-tick cost from the spend before each tick (state's budget_left) and realAllCost.
    spent_file = np.maximum(budget * (1.0 - s[:, 1]), 0.0)
    next_spent = np.r_[spent_file[1:], 0.0]
    cost = np.maximum(np.where(last, c["realAllCost"], next_spent) - spent_file, 0.0)
    conversions = c["reward"]
    spent_before, conv_before = past(cost), past(conversions)
    n_past = tick.astype(np.float64)
    n_last3 = np.minimum(n_past, 3.0)
    safe = lambda d: np.maximum(d, 1.0)  # noqa: E731  (the sums are 0 where d is 0)
    k = {name: s[:, i] for i, name in enumerate(TRAJECTORY_STATE)}
    volume = day_volume[ep]
    with np.errstate(divide="ignore", invalid="ignore"):
        elapsed = np.where(volume > 0, k["hist_opportunities_sum"] / volume, 0.0)
    obs = observe(
        tick=tick, n_ticks=n_ticks, spent=spent_before, budget=budget,
        hist_means=[k["hist_bid_mean"], k["hist_lwc_mean"], k["hist_pvalue_mean"],
                    conv_before / safe(n_past), k["hist_win_rate"],
                    k["hist_opportunities_sum"] / safe(n_past)],
        last3_means=[k["last3_bid_mean"], k["last3_lwc_mean"], k["last3_pvalue_mean"],
                     past(conversions, 3) / safe(n_last3), k["last3_win_rate"],
                     k["last3_opportunities_sum"] / safe(n_last3)],
        cur_pvalue_mean=k["cur_pvalue_mean"], cur_count=k["cur_opportunities"],
        per_tick=np.maximum(volume / n_ticks, 1e-12), elapsed=elapsed,
        constraint_ratio=constraint_ratio("cpa", conv_before, 0.0, spent_before,
                                          target_cpa=target_cpa),
        is_roi=0.0)
    alpha = np.where(k["cur_opportunities"] > 0, c["action"] / target_cpa, 1.0)
    action = alpha_to_action(np.maximum(alpha, 1.0 / max_alpha), max_alpha).astype(np.float64)
    cum_cost, cum_conv = upto(cost), upto(conversions)
    score = cpa_score(cum_conv, cum_cost, target_cpa, beta)
    prev_score = cpa_score(conv_before, spent_before, target_cpa, beta)
    exp_conv = upto(c["reward_continuous"])
    episode = np.cumsum(first) - 1
    frame = pd.DataFrame({"episode": episode.astype(np.int64), "tick": tick.astype(np.int64)})
    for i, name in enumerate(OBS_COLUMNS):
        frame[name] = obs[:, i].astype(np.float64)
    zeros = np.zeros(n)
    frame = frame.assign(
        action=action, alpha=alpha, reward=score - prev_score, done=last & (c["done"] == 1),
        budget=budget, constraint="cpa", target_cpa=target_cpa, target_roi=np.nan,
        category=c["advertiserCategoryIndex"].astype(np.int64), cost=cost,
        conversions=conversions, value=zeros, score=score,
        expected_score=cpa_score(exp_conv, cum_cost, target_cpa, beta),
        expected_conversions=exp_conv, expected_cost=cum_cost, expected_value=zeros,
        behavior="auctionnet", noise=np.nan)
    frame = frame[list(COLUMNS)]
    frame.attrs["bidenv"] = {
        "source": source, "rows": int(rows), "format": "auctionnet_trajectory",
        "n_ticks": int(n_ticks), "max_alpha": float(max_alpha), "beta": float(beta),
        "behaviors": {"auctionnet": 1.0}, "dropped_rows": int(rows - n),
        "episodes": [[int(e), int(p), int(a)] for e, (p, a) in
                     enumerate(zip(period[starts_all].tolist(), adv[starts_all].tolist()))],
    }
    return frame
