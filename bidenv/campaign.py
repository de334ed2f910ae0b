"""Campaigns: budget, constraint and target of one advertiser for one day.

A :class:`Campaign` is validated on construction. The *truthful* bid of a campaign for an
opportunity (the bid at multiplier ``alpha = 1``) is its predicted value at the target:

* CPA campaign: ``pvalue * target_cpa`` (money per expected conversion at the target CPA);
* ROI campaign: ``pvalue * conversion_value / target_roi``;
* budget-only campaign: ``pvalue * target_cpa``, where ``target_cpa`` only sets the bid scale
  (default :data:`DEFAULT_BUDGET_BID_SCALE`) and no constraint is scored.

:func:`draw_competitor_campaigns` draws the market's campaigns for an episode (budgets
2,000-8,000, CPA targets 25-130, ROI targets 1-4, whatever the category: the market is
calibrated with them).

Market reference
----------------
Categories have different pValue levels (``bidenv.traffic.latent.CATEGORY_LEVELS``, x0.3 to
x1.7), so a conversion costs several times more in one category than in another and a CPA
target is only hard or easy relative to its category. :data:`MARKET_CPA` holds, per category,
the **cost per conversion of a constant-multiplier bidder that spends the market's typical
budget** (:data:`MARKET_REFERENCE_BUDGET`, 4,000 on the 500k-opportunity day) at the prices the
rest of the market sets, measured with the agent out of the market on the calibrated full
environment (geometric mean over days); :data:`MARKET_ROI` is
:data:`MARKET_CONVERSION_VALUE` (the market's typical sales value per conversion) over it.
``experiments/market_targets.py`` measures and documents them. Why this definition:

* it is what an analyst would ask of the market, "what does a conversion cost an advertiser
  of this category with a typical budget", in the units of the target;
* it makes tightness 1 the balance point: a campaign with the reference budget and the target
  ``MARKET_CPA`` can just spend its budget at its target by bidding a constant multiple of its
  values (a looser target leaves the budget binding, a tighter one the CPA); a price
  statistic without a budget (say the median last-slot price per pValue) sits far above what
  a typical budget buys (about twice as high here), as budgets spend only the cheapest part
  of a category's traffic;
* it depends on no agent, target or policy (the agent is out of the market), it is stable
  (the geometric mean of 16 days: days vary with log-sd about 0.25, so about 6% standard
  error) and cheap (one recorded day and one sort per category and day).

The agent's campaigns
---------------------
:func:`draw_agent_campaign` draws the agent's campaign when none is given: inside the market of
a uniformly drawn category, budget log-uniform over ``MARKET_REFERENCE_BUDGET x [0.5, 1.5]``
(:data:`AGENT_BUDGET_RANGE`), tightness log-uniform over [0.7, 1.4]
(:data:`AGENT_TIGHTNESS_RANGE`), 20% ROI campaigns (:data:`AGENT_ROI_SHARE`), targets
:func:`market_target`: ``MARKET_CPA[c] / tightness`` or ``MARKET_ROI[c] x tightness``. The
evaluation's scenarios (``experiments.evaluate.PRESETS``) and the offline data collection
(``experiments.collect.CollectConfig``) use the same reference and ranges.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from bidenv.scoring import CONSTRAINTS
from bidenv.validation import check_choice, check_int, check_number, short_repr

#: Number of advertiser categories; each has its own pValue level (see traffic).
N_CATEGORIES = 8
#: Bid scale (money per conversion) of budget-only campaigns without a target.
DEFAULT_BUDGET_BID_SCALE = 50.0
#: Daily volume the budget ranges below are calibrated to (the public benchmark's day).
REFERENCE_DAILY_OPPORTUNITIES = 500_000
#: The market's typical daily budget on the reference day (the geometric mean of the
#: competitors' 2,000-8,000): the spend at which the market reference below is measured.
MARKET_REFERENCE_BUDGET = 4000.0

# Market reference per category (index = category), measured on the calibrated full env with
# the agent out of the market (experiments/market_targets.py; about 3 minutes on one core):
#     python -m experiments.market_targets --days 16 --seed 1000
#: Cost per conversion of a constant-multiplier bidder of the category that spends
#: :data:`MARKET_REFERENCE_BUDGET` over the day (geometric mean over days).
MARKET_CPA = (269.4, 173.3, 116.0, 100.7, 87.6, 75.5, 68.7, 55.7)
#: The market's typical sales value per conversion (geometric mean over advertisers and days).
MARKET_CONVERSION_VALUE = 101.3
#: ROI of that bidder for an advertiser of typical conversion value:
#: ``MARKET_CONVERSION_VALUE / MARKET_CPA``.
MARKET_ROI = (0.376, 0.585, 0.873, 1.006, 1.156, 1.341, 1.475, 1.818)

#: The agent's campaigns (:func:`draw_agent_campaign`, the evaluation's scenarios): budgets
#: on the reference day, log-uniform in ``MARKET_REFERENCE_BUDGET x [0.5, 1.5]``.
AGENT_BUDGET_RANGE = (0.5 * MARKET_REFERENCE_BUDGET, 1.5 * MARKET_REFERENCE_BUDGET)
#: Tightness of the agent's targets, log-uniform (> 1: harder than the market reference).
AGENT_TIGHTNESS_RANGE = (0.7, 1.4)
#: Share of ROI campaigns among the agent's campaigns.
AGENT_ROI_SHARE = 0.2

_FIELDS = ("budget", "constraint", "target_cpa", "target_roi", "category", "cold_start",
           "marketing_style", "popularity")
#: The campaign's traffic profile flags (default False; omitted from :meth:`Campaign.to_dict`
#: when False, so a default campaign's dict is what it always was).
PROFILE_FLAGS = ("cold_start", "marketing_style")
#: Default :attr:`Campaign.popularity`: the market's median advertiser (omitted from
#: :meth:`Campaign.to_dict` at this value, like the profile flags when False).
DEFAULT_POPULARITY = 0.5

# Bounds that keep the environment's bids finite. Bids are float32 (the env's bid matrix):
# ``bid = pvalue * alpha * scale`` (times the conversion value for ROI campaigns), with
# ``scale = target_cpa`` (CPA and budget-only campaigns) or ``1 / target_roi`` (ROI), pValue
# <= 1, alpha <= max_alpha (10 by default) and conversion values around
# MARKET_CONVERSION_VALUE (~100). float32 overflows to inf above ~3.4e38, and an inf bid never
# wins, so a target of 3e38 (or an ROI target of 1e-37) silently bought nothing. Capping the
# bid scale at 1e30 leaves alpha x conversion value a headroom of 3.4e8 (8 orders of magnitude
# above the defaults) before overflow; the floor 1e-30 on targets is the mirror image (bids of
# ~1e-30 are still normal float32 numbers, though far below any price). Budgets get the same
# cap: they pay for float32-priced slots, and a budget near the float32 limit is a typo, not a
# campaign. Real campaigns sit many orders of magnitude inside these bounds.
#: Largest budget and CPA target, and the inverse of the smallest ROI target.
MAX_MONEY = 1e30
#: Smallest CPA or ROI target, and the inverse of the largest ROI target.
MIN_TARGET = 1e-30


#: Why values beyond those bounds are refused (quoted in the error message).
_FLOAT32_BIDS = "beyond it the environment's float32 bids overflow or vanish"


@dataclass(frozen=True)
class Campaign:
    """One advertiser's day: budget, constraint kind and target.

    Attributes:
        budget: Daily budget in money units, in ``(0, 1e30]`` (:data:`MAX_MONEY`).
        constraint: ``"cpa"`` (cost per conversion <= ``target_cpa``), ``"roi"`` (sales value
            per unit cost >= ``target_roi``) or ``"budget"`` (spend the budget, no constraint).
        target_cpa: CPA target, in ``[1e-30, 1e30]``; required for ``"cpa"``. For ``"budget"``
            it only scales bids.
        target_roi: ROI target, in ``[1e-30, 1e30]``; required for ``"roi"``.

    The bounds keep the environment's float32 bids finite (see :data:`MAX_MONEY`); anything
    else raises a one-line ``ValueError`` naming the field and its allowed range.
        category: Advertiser category in ``[0, N_CATEGORIES)``; sets its pValue level.
        cold_start: The campaign's ads are new (little history): the platform's predictions
            of its conversion rate are wider and biased, exactly as for the market's
            cold-start competitors (:class:`bidenv.traffic.latent.AdvertiserProfile`), and
            the feed's exploration favours it as it does them.
        marketing_style: The campaign runs "marketing-style" ads: the platform predicts a
            rate ``marketing_boost`` times higher than for a plain ad while the true rate is
            ``marketing_true_ratio`` times the prediction, as for the market's marketing
            competitors. Both flags default to False (the established advertiser whose
            truthful bid is the calibrated one).
        popularity: Rank of the campaign's engagement history among the market's
            advertisers, in ``[0, 1]``: the cascade's recall favours popular advertisers
            (docs/design.md, Traffic; :func:`bidenv.traffic.latent.popularity_z`). 0.5
            (default) is the median advertiser, 0.1 a small account, 0.9 a big one; it does
            not move with the budget. Only the agent's (column 0) is used; a competitor's
            popularity is its budget.
    """

    budget: float
    constraint: str = "cpa"
    target_cpa: float | None = None
    target_roi: float | None = None
    category: int = 0
    cold_start: bool = False
    marketing_style: bool = False
    popularity: float = DEFAULT_POPULARITY

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("budget", check_number("budget", self.budget, 0, MAX_MONEY, low_open=True,
                                    why="prices are float32 bids; a budget over 1e30 is a typo"))
        check_choice("constraint", self.constraint, CONSTRAINTS)
        if self.constraint == "cpa" and self.target_cpa is None:
            raise ValueError("target_cpa is required for a 'cpa' campaign (a number > 0)")
        if self.constraint == "roi" and self.target_roi is None:
            raise ValueError("target_roi is required for an 'roi' campaign (a number > 0)")
        if self.constraint == "budget" and self.target_cpa is None:
            set_("target_cpa", DEFAULT_BUDGET_BID_SCALE)
        if self.target_cpa is not None:
            set_("target_cpa", check_number("target_cpa", self.target_cpa, MIN_TARGET,
                                            MAX_MONEY, why=_FLOAT32_BIDS))
        if self.target_roi is not None:
            set_("target_roi", check_number("target_roi", self.target_roi, MIN_TARGET,
                                            1.0 / MIN_TARGET, why=_FLOAT32_BIDS))
        category = self.category
        if isinstance(category, (float, np.floating)) and float(category).is_integer():
            category = int(category)  # a whole float, e.g. from a float data column
        set_("category", check_int("category", category, 0, N_CATEGORIES - 1))
        for flag in PROFILE_FLAGS:
            value = getattr(self, flag)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{flag} must be True or False, got {short_repr(value)}")
            set_(flag, bool(value))
        set_("popularity", check_number("popularity", self.popularity, 0.0, 1.0,
                                        why="a rank among the market's advertisers"))

    @classmethod
    def coerce(cls, spec) -> Campaign:
        """Build a campaign from a :class:`Campaign` or a dict with the campaign fields."""
        if isinstance(spec, Campaign):
            return spec
        if not isinstance(spec, dict):
            raise ValueError(f"campaign must be a Campaign or a dict, got {type(spec).__name__}")
        unknown = set(spec) - set(_FIELDS)
        if unknown:
            raise ValueError(f"campaign has unknown keys {short_repr(sorted(map(str, unknown)))}"
                             f"; allowed: {_FIELDS}")
        if "budget" not in spec:
            raise ValueError("campaign needs a 'budget' (a number > 0)")
        return cls(**spec)

    def replace(self, **overrides) -> Campaign:
        """A copy with some fields replaced (validated). Switching ``constraint`` keeps targets."""
        unknown = set(overrides) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown campaign overrides {short_repr(sorted(map(str, unknown)))}"
                             f"; allowed: {_FIELDS}")
        data = self.to_dict()
        data.update({k: v for k, v in overrides.items() if v is not None})
        if data["constraint"] == "budget" and "target_cpa" not in overrides:
            data["target_cpa"] = self.target_cpa
        return Campaign(**data)

    @property
    def target(self) -> float:
        """The target of the campaign's constraint (CPA or ROI; bid scale for budget-only)."""
        return self.target_roi if self.constraint == "roi" else self.target_cpa

    def to_dict(self) -> dict:
        """Plain dict of the campaign fields (JSON friendly); a profile flag
        (``cold_start``, ``marketing_style``) only when it is True, ``popularity`` only when
        it is not the default 0.5."""
        data = asdict(self)
        for flag in PROFILE_FLAGS:
            if not data[flag]:
                del data[flag]
        if data["popularity"] == DEFAULT_POPULARITY:
            del data["popularity"]
        return data


@dataclass(frozen=True)
class CampaignArrays:
    """Campaigns of all advertisers of an episode as arrays (index 0 is the agent)."""

    budget: np.ndarray  # (k,) float64
    is_roi: np.ndarray  # (k,) bool
    is_budget: np.ndarray  # (k,) bool
    target_cpa: np.ndarray  # (k,) float64; bid scale for ROI rows is unused (nan)
    target_roi: np.ndarray  # (k,) float64; nan where not ROI
    category: np.ndarray  # (k,) int64
    cold_start: np.ndarray | None = None  # (k,) bool, the campaigns' own flags (None: all False)
    marketing_style: np.ndarray | None = None  # (k,) bool, likewise
    #: (k,) float, the campaigns' declared popularity rank (None: 0.5 for every row; only
    #: column 0's is used, see :func:`bidenv.traffic.latent.popularity_z`).
    popularity: np.ndarray | None = None

    def __post_init__(self):
        if self.popularity is None:
            object.__setattr__(self, "popularity",
                               np.full(len(self.budget), DEFAULT_POPULARITY))

    @classmethod
    def from_campaigns(cls, campaigns: list[Campaign]) -> CampaignArrays:
        return cls(
            budget=np.array([c.budget for c in campaigns], dtype=np.float64),
            is_roi=np.array([c.constraint == "roi" for c in campaigns]),
            is_budget=np.array([c.constraint == "budget" for c in campaigns]),
            target_cpa=np.array([c.target_cpa if c.target_cpa is not None else np.nan
                                 for c in campaigns], dtype=np.float64),
            target_roi=np.array([c.target_roi if c.target_roi is not None else np.nan
                                 for c in campaigns], dtype=np.float64),
            category=np.array([c.category for c in campaigns], dtype=np.int64),
            cold_start=np.array([getattr(c, "cold_start", False) for c in campaigns], bool),
            marketing_style=np.array([getattr(c, "marketing_style", False) for c in campaigns],
                                     bool),
            popularity=np.array([getattr(c, "popularity", DEFAULT_POPULARITY)
                                 for c in campaigns], np.float64),
        )

    def __len__(self) -> int:
        return len(self.budget)


def budget_scale(opportunities_per_day: float) -> float:
    """Factor applied to reference budget ranges for a day of a different volume."""
    return float(opportunities_per_day) / REFERENCE_DAILY_OPPORTUNITIES


def draw_campaign(rng: np.random.Generator, *, scale: float = 1.0, roi_share: float = 0.0,
                  budget_range=(2000.0, 8000.0), cpa_range=(25.0, 130.0),
                  roi_range=(1.0, 4.0)) -> Campaign:
    """Draw one random campaign (budget log-uniform, target uniform, category uniform)."""
    lo, hi = budget_range
    budget = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * scale
    category = int(rng.integers(N_CATEGORIES))
    if rng.random() < roi_share:
        return Campaign(budget=budget, constraint="roi", target_roi=float(rng.uniform(*roi_range)),
                        category=category)
    return Campaign(budget=budget, constraint="cpa", target_cpa=float(rng.uniform(*cpa_range)),
                    category=category)


def market_target(category: int, constraint: str = "cpa", tightness: float = 1.0) -> float:
    """The target of a campaign of ``category`` at ``tightness`` times the market reference.

    ``MARKET_CPA[category] / tightness`` for ``"cpa"`` (and ``"budget"``, where it is the bid
    scale), ``MARKET_ROI[category] * tightness`` for ``"roi"``: tightness 1 is the market
    reference, above 1 harder (a lower CPA, a higher ROI), below 1 looser.
    """
    check_choice("constraint", constraint, CONSTRAINTS)
    category = Campaign(budget=1.0, target_cpa=1.0, category=category).category
    tightness = check_number("tightness", tightness, 0, low_open=True)
    if constraint == "roi":
        return float(MARKET_ROI[category]) * tightness
    return float(MARKET_CPA[category]) / tightness


def draw_agent_campaign(rng: np.random.Generator, *, scale: float = 1.0,
                        budget_range=AGENT_BUDGET_RANGE, tightness_range=AGENT_TIGHTNESS_RANGE,
                        roi_share: float = AGENT_ROI_SHARE) -> Campaign:
    """Draw the agent's campaign for an episode, inside the market of its category.

    Category uniform over ``N_CATEGORIES``; budget log-uniform over ``budget_range`` (the
    reference day's, default ``MARKET_REFERENCE_BUDGET x [0.5, 1.5]``) times ``scale``;
    tightness log-uniform over ``tightness_range`` (default 0.7-1.4); with probability
    ``roi_share`` (default 0.2) an ROI campaign with target ``MARKET_ROI[category] x
    tightness``, else a CPA campaign with target ``MARKET_CPA[category] / tightness``
    (:func:`market_target`). Covers the evaluation's scenario presets.

    It takes as many draws from ``rng``, of the same kinds, as :func:`draw_campaign`, so the
    competitors drawn after it are those of the same seed with any campaign distribution.
    """
    lo, hi = budget_range
    t_lo, t_hi = tightness_range
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"budget_range must be (low, high) with 0 < low <= high, got "
                         f"{budget_range!r}")
    if not (0 < t_lo <= t_hi and math.isfinite(t_hi)):
        raise ValueError(f"tightness_range must be (low, high) with 0 < low <= high, got "
                         f"{tightness_range!r}")
    budget = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * scale
    category = int(rng.integers(N_CATEGORIES))
    constraint = "roi" if rng.random() < roi_share else "cpa"
    tightness = float(np.exp(rng.uniform(np.log(t_lo), np.log(t_hi))))
    target = market_target(category, constraint, tightness)
    if constraint == "roi":
        return Campaign(budget=budget, constraint="roi", target_roi=target, category=category)
    return Campaign(budget=budget, constraint="cpa", target_cpa=target, category=category)


def draw_competitor_campaigns(rng: np.random.Generator, n: int, *, scale: float = 1.0,
                              roi_share: float = 0.2) -> list[Campaign]:
    """Draw the campaigns of ``n`` competing advertisers for one episode.

    Budgets 2,000-8,000 (log-uniform, times ``scale`` for days of other volumes), CPA targets
    25-130, categories uniform, and a ``roi_share`` of ROI campaigns with targets 1-4.
    """
    return [draw_campaign(rng, scale=scale, roi_share=roi_share) for _ in range(n)]
