"""The observation features of the environment: names, meanings, bounds and units.

One home for what every part that reads or writes observations needs (the env, the
competitors' batch policies, the offline dataset columns, the AuctionNet import, the agents):
``FEATURES`` is ``(name, meaning, min, max)`` per entry of the observation vector, in order;
``FEATURE_NAMES`` the names; ``FEATURE_INDEX`` name -> position. Prices are in units of
``PRICE_UNIT`` (money / 0.1) and pValues in units of ``PVALUE_UNIT`` (x1000).
:func:`observe` turns a day's running sums into observations: the one formula behind the
environment's observations (:meth:`bidenv.day.MarketDay.observe`) and the AuctionNet import's
(:func:`bidenv.auctionnet.import_auctionnet`). Importing it imports numpy only.
"""

from __future__ import annotations

import numpy as np

#: Upper bound of unbounded features (finite so that checkers and normalisers are happy).
BIG = 1e6
PRICE_UNIT = 0.1
FEATURES = (
    ("time_left", "share of the day's ticks still to come", 0.0, 1.0),
    ("budget_left", "share of the budget not yet spent", 0.0, 1.0),
    ("hist_bid_mean", "mean own bid over past ticks (money / 0.1)", 0.0, BIG),
    ("last3_bid_mean", "mean own bid over the last 3 ticks (money / 0.1)", 0.0, BIG),
    ("hist_lwc_mean", "mean least winning cost over past ticks (money / 0.1)", 0.0, BIG),
    ("last3_lwc_mean", "mean least winning cost, last 3 ticks (money / 0.1)", 0.0, BIG),
    ("hist_pvalue_mean", "mean pValue of own opportunities, past ticks (x1000)", 0.0, BIG),
    ("last3_pvalue_mean", "mean pValue, last 3 ticks (x1000)", 0.0, BIG),
    ("hist_conversion_mean", "conversions per tick over past ticks", 0.0, BIG),
    ("last3_conversion_mean", "conversions per tick, last 3 ticks", 0.0, BIG),
    ("hist_win_rate", "slots won per opportunity over past ticks", 0.0, 1.0),
    ("last3_win_rate", "slots won per opportunity, last 3 ticks", 0.0, 1.0),
    ("cur_pvalue_mean", "mean pValue of this tick's opportunities (x1000)", 0.0, BIG),
    ("cur_opportunities", "this tick's opportunities / mean per tick", 0.0, BIG),
    ("last3_opportunities", "opportunities per tick, last 3 ticks / mean per tick", 0.0, BIG),
    ("hist_opportunities", "opportunities per tick, past ticks / mean per tick", 0.0, BIG),
    ("traffic_elapsed", "expected share of the day's opportunities already past", 0.0, 1.0),
    ("pace_error", "share of budget spent minus traffic_elapsed", -1.0, 1.0),
    ("constraint_ratio", "CPA / target (CPA) or target / ROI (ROI) so far, 0 if no spend",
     0.0, 10.0),
    ("is_roi", "1 for an ROI campaign, 0 otherwise", 0.0, 1.0),
)
FEATURE_NAMES = tuple(f[0] for f in FEATURES)
PVALUE_UNIT = 1e-3
#: Position of each feature in the observation vector.
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
#: The per-tick quantities whose means over the past ticks (``hist_<stem>``) and over the last
#: three (``last3_<stem>``) are features, in this order, with their unit (``None``: the day's mean
#: opportunities per tick): mean own bid, mean least winning cost and mean pValue over the
#: opportunities the advertiser could enter, conversions, slots won per opportunity, and
#: opportunities.
HISTORY_STEMS = (("bid_mean", PRICE_UNIT), ("lwc_mean", PRICE_UNIT),
                 ("pvalue_mean", PVALUE_UNIT), ("conversion_mean", 1.0), ("win_rate", 1.0),
                 ("opportunities", None))
_LOW = np.array([f[2] for f in FEATURES], np.float64)
_HIGH = np.array([f[3] for f in FEATURES], np.float64)


def observe(*, tick, n_ticks: int, spent, budget, hist_means, last3_means, cur_pvalue_mean,
            cur_count, per_tick, elapsed, constraint_ratio, is_roi) -> np.ndarray:
    """Observations of ``m`` advertisers (or rows) before they bid in a tick, ``(m, F)`` float32.

    Every argument is a scalar or an ``(m,)`` array.

    Args:
        tick: Ticks already played today.
        n_ticks: Ticks in the day.
        spent, budget: Money spent so far and the daily budget.
        hist_means, last3_means: The :data:`HISTORY_STEMS` quantities (six, in order; a
            ``(6, m)`` array or a sequence) averaged over the past ticks and over the last three,
            in raw units; ``None`` before the first tick (the features are then 0).
        cur_pvalue_mean: Mean pValue of this tick's opportunities it could enter.
        cur_count: This tick's opportunities it could enter.
        per_tick: The day's mean opportunities per tick (the unit of the opportunity counts).
        elapsed: Share of the day's opportunities already past (the traffic's prior curve in the
            environment, so no look-ahead).
        constraint_ratio: CPA / target or target / ROI so far (:func:`bidenv.scoring.
            constraint_ratio`).
        is_roi: 1 for ROI campaigns.

    Every feature is clipped to its bounds in :data:`FEATURES`.

    >>> obs = observe(tick=0, n_ticks=48, spent=100.0, budget=400.0, hist_means=None,
    ...               last3_means=None, cur_pvalue_mean=0.002, cur_count=50.0, per_tick=100.0,
    ...               elapsed=0.5, constraint_ratio=0.0, is_roi=0.0)
    >>> [round(float(obs[0, FEATURE_INDEX[n]]), 3) for n in
    ...  ("time_left", "budget_left", "cur_pvalue_mean", "cur_opportunities", "pace_error")]
    [1.0, 0.75, 2.0, 0.5, -0.25]
    """
    spent = np.asarray(spent, np.float64)
    m = np.broadcast(spent, np.asarray(budget), np.asarray(cur_count)).shape
    obs = np.zeros((m[0] if m else 1, len(FEATURES)), np.float64)
    obs[:, FEATURE_INDEX["time_left"]] = (n_ticks - tick) / n_ticks
    obs[:, FEATURE_INDEX["budget_left"]] = 1.0 - spent / budget
    if hist_means is not None:
        for (stem, unit), hist, last3 in zip(HISTORY_STEMS, hist_means, last3_means):
            unit = per_tick if unit is None else unit
            obs[:, FEATURE_INDEX[f"hist_{stem}"]] = hist / unit
            obs[:, FEATURE_INDEX[f"last3_{stem}"]] = last3 / unit
    obs[:, FEATURE_INDEX["cur_pvalue_mean"]] = cur_pvalue_mean / PVALUE_UNIT
    obs[:, FEATURE_INDEX["cur_opportunities"]] = cur_count / per_tick
    obs[:, FEATURE_INDEX["traffic_elapsed"]] = elapsed
    obs[:, FEATURE_INDEX["pace_error"]] = spent / budget - elapsed
    obs[:, FEATURE_INDEX["constraint_ratio"]] = constraint_ratio
    obs[:, FEATURE_INDEX["is_roi"]] = is_roi
    np.clip(obs, _LOW, _HIGH, out=obs)
    return obs.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Information parity: the per-opportunity view the online LP reads, as opt-in features
# --------------------------------------------------------------------------------------------
#: Quantiles of the multiplier a bidder needed to win a slot, summarised per tick and per day.
OPPORTUNITY_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
#: Opt-in features for learned agents (``opportunity_features=True``): ``need_q<p>`` is the
#: ``p`` quantile, over the opportunities of the last tick the agent could enter, of
#: ``log10(least winning cost / (pValue x s))``, the log multiplier it needed to win a slot (s:
#: :func:`prior_bid_scale`); ``day_need_q<p>`` the same over all of today's past ticks. The
#: online LP and PID CPA read the same opportunities through ``update()``.
OPPORTUNITY_FEATURES = (tuple(f"need_q{int(100 * q)}" for q in OPPORTUNITY_QUANTILES)
                        + tuple(f"day_need_q{int(100 * q)}" for q in OPPORTUNITY_QUANTILES))
#: Sales value of one conversion assumed by :func:`prior_bid_scale` for ROI campaigns (the
#: median conversion value of the built-in traffic).
PRIOR_CONVERSION_VALUE = 100.0
_NEED_EDGES = np.linspace(-3.0, 3.0, 241)  # log10 multipliers, 0.025 wide


def prior_bid_scale(campaign: dict) -> float:
    """Money bid per predicted conversion at ``alpha = 1``, from the campaign alone: the CPA
    target (CPA and budget-only campaigns; 1 without one) or ``PRIOR_CONVERSION_VALUE /
    target_roi`` (ROI)."""
    if campaign.get("constraint") == "roi":
        return PRIOR_CONVERSION_VALUE / float(campaign["target_roi"])
    return float(campaign.get("target_cpa") or 1.0)


class OpportunityStats:
    """Running quantiles of the multiplier needed to win, for :data:`OPPORTUNITY_FEATURES`.

    ``update(opportunities)`` after each tick with ``env.last_tick_opportunities()``;
    ``features()`` before bidding gives the 10 features (0 before the first tick with
    opportunities). The day's quantiles come from a fixed histogram (bins 0.025 wide in log10),
    so memory and time per tick do not grow with the day.

    >>> stats = OpportunityStats({"constraint": "cpa", "target_cpa": 2.0})
    >>> stats.update({"pvalue": np.array([0.5, 0.5]), "least_winning_cost": np.array([0.1, 10.0])})
    >>> [round(float(x), 2) for x in stats.features()[[0, 2, 4]]]  # log10(0.1), .., log10(10)
    [-0.8, 0.0, 0.8]
    """

    def __init__(self, campaign: dict):
        self.scale = prior_bid_scale(campaign)
        self.last = np.zeros(len(OPPORTUNITY_QUANTILES))
        self.counts = np.zeros(len(_NEED_EDGES) - 1)

    def update(self, opportunities: dict | None) -> None:
        if not opportunities:
            return
        pvalue = np.asarray(opportunities["pvalue"], np.float64)
        lwc = np.asarray(opportunities["least_winning_cost"], np.float64)
        ok = (pvalue > 0) & (lwc > 0)
        if not ok.any():
            return
        need = np.clip(np.log10(lwc[ok] / (pvalue[ok] * self.scale)), -3.0, 3.0 - 1e-9)
        self.last = np.quantile(need, OPPORTUNITY_QUANTILES)
        self.counts += np.histogram(need, _NEED_EDGES)[0]

    def features(self) -> np.ndarray:
        total = self.counts.sum()
        day = np.zeros(len(OPPORTUNITY_QUANTILES))
        if total > 0:
            cum = np.cumsum(self.counts) / total
            idx = np.searchsorted(cum, OPPORTUNITY_QUANTILES)
            day = 0.5 * (_NEED_EDGES[idx] + _NEED_EDGES[idx + 1])
        return np.concatenate([self.last, day]).astype(np.float32)
