"""The observation features of the environment: names, meanings, bounds and units.

One home for what every part that reads or writes observations needs (the env, the
competitors' batch policies, the offline dataset columns, the AuctionNet import, the agents):
``FEATURES`` is ``(name, meaning, min, max)`` per entry of the observation vector, in order;
``FEATURE_NAMES`` the names; ``FEATURE_INDEX`` name -> position. Prices are in units of
``PRICE_UNIT`` (money / 0.1) and pValues in units of ``PVALUE_UNIT`` (x1000). Importing it
imports nothing but the standard library.
"""

from __future__ import annotations

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
