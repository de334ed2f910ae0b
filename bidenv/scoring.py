"""Penalised campaign scores (the scoring contract of docs/design.md).

A CPA campaign with target ``C`` that bought ``conversions`` for ``cost`` scores::

    cpa   = cost / conversions
    score = conversions * min(1, (C / cpa) ** beta)

An ROI campaign with target ``R`` that earned sales ``value`` for ``cost`` scores::

    roi   = value / cost
    score = value * min(1, (roi / R) ** beta)

A budget-only campaign scores its conversions (or value when ``use_value``). Zero conversions
(or value) scores 0; zero cost means no penalty. The exponent is exactly ``beta`` (default 2)
everywhere. Because every score is a function of the cumulative totals, the per-tick increments
``S_t - S_{t-1}`` telescope to the final score.

All functions accept scalars or numpy arrays and broadcast.

The action bijection lives here too (one home for it): the environment's action ``a`` in
``[-1, 1]`` bids ``alpha = max_alpha ** a`` times the campaign's value, so ``a = 0`` is the
truthful bid (:func:`action_to_alpha`, :func:`alpha_to_action`, :data:`MAX_ALPHA`); and the
campaign's natural score scale, :func:`score_unit`, by which learned agents divide scores.
"""

from __future__ import annotations

import math

import numpy as np

CONSTRAINTS = ("cpa", "roi", "budget")
#: The environment's default action scale: ``alpha = MAX_ALPHA ** action``, so actions in
#: ``[-1, 1]`` bid between a tenth and ten times the campaign's value.
MAX_ALPHA = 10.0


def action_to_alpha(action, max_alpha: float = MAX_ALPHA):
    """Bid multiplier of an action: ``alpha = max_alpha ** clip(a, -1, 1)``.

    A scalar (or a one-element action such as the env's ``(1,)`` array) gives a float; a
    longer array gives an array of the same shape.

    >>> action_to_alpha(0.0), round(action_to_alpha([1.0]), 12)
    (1.0, 10.0)
    >>> round(action_to_alpha(-0.5, max_alpha=100.0), 12)
    0.1
    >>> round(action_to_alpha(7.0), 12)  # clipped to the largest multiplier
    10.0
    """
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    out = np.exp(a * math.log(max_alpha))
    return float(out.reshape(-1)[0]) if out.size == 1 else out


def alpha_to_action(alpha, max_alpha: float = MAX_ALPHA) -> np.ndarray:
    """The action ``a`` with ``max_alpha ** a == alpha``, clipped to ``[-1, 1]``, as float32.

    A scalar gives the env's ``(1,)`` action; an array keeps its shape. ``alpha <= 0`` (or NaN)
    is refused: no action bids nothing, the smallest bid is ``1 / max_alpha`` times the value.

    >>> alpha_to_action(10.0), alpha_to_action(1000.0), alpha_to_action(np.array([0.1, 1.0]))
    (array([1.], dtype=float32), array([1.], dtype=float32), array([-1.,  0.], dtype=float32))
    """
    arr = np.asarray(alpha, dtype=np.float64)
    if np.any(~(arr > 0)):
        raise ValueError(f"alpha must be > 0, got {np.array2string(arr, threshold=6)}")
    out = np.clip(np.log(arr) / math.log(max_alpha), -1.0, 1.0).astype(np.float32)
    return out.reshape(1) if out.ndim == 0 else out


def score_unit(campaign) -> float:
    """The campaign's natural score scale: what the whole budget buys at the target.

    ``budget / target_cpa`` conversions for CPA (and budget-only with a CPA target) campaigns,
    ``budget * target_roi`` sales value for ROI ones, ``budget`` otherwise. Scores divided by it
    are comparable across campaigns (about 1 for a day that spends the budget at the target),
    which is how the offline agents scale rewards and returns-to-go. ``campaign`` is a dict
    (``Campaign.to_dict()``) or anything with those attributes.

    >>> score_unit({"budget": 4000.0, "constraint": "cpa", "target_cpa": 80.0})
    50.0
    >>> score_unit({"budget": 4000.0, "constraint": "roi", "target_roi": 2.0})
    8000.0
    """
    get = campaign.get if isinstance(campaign, dict) else (
        lambda key, default=None: getattr(campaign, key, default))
    budget = float(get("budget"))
    if get("constraint") == "roi":
        return budget * float(get("target_roi"))
    target = get("target_cpa")
    return budget / float(target) if target else budget


def cpa_score(conversions, cost, target_cpa, beta: float = 2.0):
    """Penalised score of a CPA campaign.

    Args:
        conversions: Conversions bought (realised or expected).
        cost: Money spent.
        target_cpa: The campaign's CPA target (money per conversion), > 0.
        beta: Penalty exponent, >= 0.

    Returns:
        ``conversions * min(1, (target_cpa * conversions / cost) ** beta)``, 0 when
        ``conversions == 0`` and ``conversions`` when ``cost == 0``.

    >>> round(cpa_score(10.0, 500.0, 40.0), 9)  # CPA 50 > 40: 10 * (40/50)**2
    6.4
    """
    conversions = np.asarray(conversions, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cost > 0, target_cpa * conversions / np.where(cost > 0, cost, 1.0), 1.0)
    factor = np.minimum(1.0, ratio) ** beta
    out = np.where(conversions > 0, conversions * factor, 0.0)
    return float(out) if out.ndim == 0 else out


def roi_score(value, cost, target_roi, beta: float = 2.0):
    """Penalised score of an ROI campaign.

    Args:
        value: Sales value earned.
        cost: Money spent.
        target_roi: The campaign's ROI target (value per unit of cost), > 0.
        beta: Penalty exponent, >= 0.

    Returns:
        ``value * min(1, (value / cost / target_roi) ** beta)``, 0 when ``value == 0`` and
        ``value`` when ``cost == 0``.

    >>> roi_score(300.0, 200.0, 2.0)  # ROI 1.5 < 2: 300 * 0.75**2
    168.75
    """
    value = np.asarray(value, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cost > 0, value / (target_roi * np.where(cost > 0, cost, 1.0)), 1.0)
    factor = np.minimum(1.0, ratio) ** beta
    out = np.where(value > 0, value * factor, 0.0)
    return float(out) if out.ndim == 0 else out


def campaign_score(constraint: str, conversions, value, cost, *, target_cpa=None,
                   target_roi=None, beta: float = 2.0, budget_objective: str = "conversions"):
    """Score of a campaign of any constraint kind (``"cpa"``, ``"roi"`` or ``"budget"``)."""
    if constraint == "cpa":
        return cpa_score(conversions, cost, target_cpa, beta)
    if constraint == "roi":
        return roi_score(value, cost, target_roi, beta)
    if constraint == "budget":
        out = np.asarray(value if budget_objective == "value" else conversions, dtype=np.float64)
        return float(out) if out.ndim == 0 else out.copy()
    raise ValueError(f"constraint must be one of {CONSTRAINTS}, got {constraint!r}")


def constraint_ratio(constraint: str, conversions, value, cost, *, target_cpa=None,
                     target_roi=None, cap: float = 10.0):
    """How far a campaign is from its constraint: > 1 means it is violated.

    CPA: realised CPA / target; ROI: target / realised ROI; budget: 0. Returns 0 while nothing
    was spent and ``cap`` when money was spent for nothing; values are clipped to ``[0, cap]``.
    """
    conversions = np.asarray(conversions, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    if constraint == "budget":
        out = np.zeros(np.broadcast(conversions, cost).shape)
    else:
        # Money the outcome is worth at the target: conversions x CPA target, or value / ROI
        # target; the ratio cost / earned is CPA / target or target / ROI.
        earned = conversions * target_cpa if constraint == "cpa" else value / target_roi
        earned = np.asarray(earned, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(earned > 0, cost / np.where(earned > 0, earned, 1.0), cap)
        out = np.where(cost > 0, np.minimum(out, cap), 0.0)
    return float(out) if out.ndim == 0 else out


def ratio(num, den):
    """``num / den`` for non-negative figures (CPA = cost / conversions, ROI = value / cost):
    NaN for 0 / 0 and infinity for x / 0 with x > 0. Scalars give a float (``math.nan`` and
    ``math.inf`` themselves, so that infos holding them compare equal with ``==``; it runs every
    tick), arrays an array."""
    if np.ndim(num) == 0 and np.ndim(den) == 0:
        num, den = float(num), float(den)
        if den > 0:
            return num / den
        return math.nan if num == 0 else math.inf
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0),
                       np.where(num == 0, np.nan, np.inf))
    return out
