"""Campaigns: budget, constraint and target of one advertiser for one day.

A :class:`Campaign` is validated on construction. The *truthful* bid of a campaign for an
opportunity (the bid at multiplier ``alpha = 1``) is its predicted value at the target:

* CPA campaign: ``pvalue * target_cpa`` (money per expected conversion at the target CPA);
* ROI campaign: ``pvalue * conversion_value / target_roi``;
* budget-only campaign: ``pvalue * target_cpa``, where ``target_cpa`` only sets the bid scale
  (default :data:`DEFAULT_BUDGET_BID_SCALE`) and no constraint is scored.

:func:`draw_competitor_campaigns` draws the market's campaigns for an episode.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from bidenv.scoring import CONSTRAINTS

#: Number of advertiser categories; each has its own pValue level (see traffic).
N_CATEGORIES = 8
#: Bid scale (money per conversion) of budget-only campaigns without a target.
DEFAULT_BUDGET_BID_SCALE = 50.0
#: Daily volume the budget ranges below are calibrated to (the public benchmark's day).
REFERENCE_DAILY_OPPORTUNITIES = 500_000

_FIELDS = ("budget", "constraint", "target_cpa", "target_roi", "category")


def _positive(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


@dataclass(frozen=True)
class Campaign:
    """One advertiser's day: budget, constraint kind and target.

    Attributes:
        budget: Daily budget in money units, > 0.
        constraint: ``"cpa"`` (cost per conversion <= ``target_cpa``), ``"roi"`` (sales value
            per unit cost >= ``target_roi``) or ``"budget"`` (spend the budget, no constraint).
        target_cpa: CPA target, > 0; required for ``"cpa"``. For ``"budget"`` it only scales bids.
        target_roi: ROI target, > 0; required for ``"roi"``.
        category: Advertiser category in ``[0, N_CATEGORIES)``; sets its pValue level.
    """

    budget: float
    constraint: str = "cpa"
    target_cpa: float | None = None
    target_roi: float | None = None
    category: int = 0

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        set_("budget", _positive("budget", self.budget))
        if self.constraint not in CONSTRAINTS:
            raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {self.constraint!r}")
        if self.constraint == "cpa" and self.target_cpa is None:
            raise ValueError("target_cpa is required for a 'cpa' campaign (a number > 0)")
        if self.constraint == "roi" and self.target_roi is None:
            raise ValueError("target_roi is required for an 'roi' campaign (a number > 0)")
        if self.constraint == "budget" and self.target_cpa is None:
            set_("target_cpa", DEFAULT_BUDGET_BID_SCALE)
        if self.target_cpa is not None:
            set_("target_cpa", _positive("target_cpa", self.target_cpa))
        if self.target_roi is not None:
            set_("target_roi", _positive("target_roi", self.target_roi))
        try:
            category = int(self.category)
        except (TypeError, ValueError):
            category = -1
        if category != self.category or not 0 <= category < N_CATEGORIES:
            raise ValueError(
                f"category must be an integer in [0, {N_CATEGORIES}), got {self.category!r}")
        set_("category", category)

    @classmethod
    def coerce(cls, spec) -> Campaign:
        """Build a campaign from a :class:`Campaign` or a dict with the campaign fields."""
        if isinstance(spec, Campaign):
            return spec
        if not isinstance(spec, dict):
            raise ValueError(f"campaign must be a Campaign or a dict, got {type(spec).__name__}")
        unknown = set(spec) - set(_FIELDS)
        if unknown:
            raise ValueError(f"campaign has unknown keys {sorted(unknown)}; allowed: {_FIELDS}")
        if "budget" not in spec:
            raise ValueError("campaign needs a 'budget' (a number > 0)")
        return cls(**spec)

    def replace(self, **overrides) -> Campaign:
        """A copy with some fields replaced (validated). Switching ``constraint`` keeps targets."""
        unknown = set(overrides) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown campaign overrides {sorted(unknown)}; allowed: {_FIELDS}")
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
        """Plain dict of the campaign fields (JSON friendly)."""
        return asdict(self)


@dataclass(frozen=True)
class CampaignArrays:
    """Campaigns of all advertisers of an episode as arrays (index 0 is the agent)."""

    budget: np.ndarray  # (k,) float64
    is_roi: np.ndarray  # (k,) bool
    is_budget: np.ndarray  # (k,) bool
    target_cpa: np.ndarray  # (k,) float64; bid scale for ROI rows is unused (nan)
    target_roi: np.ndarray  # (k,) float64; nan where not ROI
    category: np.ndarray  # (k,) int64

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


def draw_competitor_campaigns(rng: np.random.Generator, n: int, *, scale: float = 1.0,
                              roi_share: float = 0.2) -> list[Campaign]:
    """Draw the campaigns of ``n`` competing advertisers for one episode.

    Budgets 2,000-8,000 (log-uniform, times ``scale`` for days of other volumes), CPA targets
    25-130, categories uniform, and a ``roi_share`` of ROI campaigns with targets 1-4.
    """
    return [draw_campaign(rng, scale=scale, roi_share=roi_share) for _ in range(n)]
