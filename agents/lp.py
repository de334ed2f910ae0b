"""The allocation linear program behind the online-LP bidder, as pure functions.

:func:`solve_allocation_lp` maximises the value bought from a set of opportunities under a
budget and a CPA constraint (the offline problem of budget- and CPA-constrained bidding, in the
primal-dual view of He et al., "A Unified Solution to Constrained Bidding in Online Display
Advertising", KDD 2021). Its optimum buys every opportunity above one efficiency threshold on
``value / cost``, so it is solved exactly by one sort (``O(n log n)``, numpy only: importing
:mod:`agents` stays free of scipy); ``tests/test_agents.py`` checks it against scipy's HiGHS
(``scipy.optimize.linprog``). :class:`agents.online_lp.OnlineLpAgent` re-solves it every tick.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class LpSolution(NamedTuple):
    """Solution of :func:`solve_allocation_lp`.

    Attributes:
        x: Share of each opportunity bought, in [0, 1] (one fractional entry at most).
        threshold: value/cost of the marginal (last, possibly fractional) opportunity bought;
            ``inf`` when nothing is bought.
        value: ``sum(x * value)``, the objective.
        cost: ``sum(x * cost)``.
        feasible: False when no allocation meets both constraints (then ``x`` is the
            best-efficiency prefix that the budget allows, up to where the CPA stops falling).
        binding: ``"budget"``, ``"cpa"``, or ``None`` when everything is bought.
    """

    x: np.ndarray
    threshold: float
    value: float
    cost: float
    feasible: bool
    binding: str | None


def _last_below(y: np.ndarray, level: float) -> float:
    """Largest real ``k`` in [0, len(y) - 1] with ``y(k) <= level``, ``y`` non-decreasing and
    linearly interpolated between integer points (``-1`` when ``y[0] > level``)."""
    j = int(np.searchsorted(y, level, side="right")) - 1
    if j < 0:
        return -1.0
    if j >= len(y) - 1:
        return float(len(y) - 1)
    return j + (level - y[j]) / (y[j + 1] - y[j])


def solve_allocation_lp(value, cost, *, budget: float = math.inf,
                        bid_scale: float | None = None, slack: float = 0.0) -> LpSolution:
    """Maximise value under a budget and a CPA constraint, by sorting.

    The linear program over opportunities ``i`` (value ``v_i >= 0``, cost ``c_i > 0``)::

        max  sum_i x_i v_i
        s.t. sum_i x_i c_i               <= B          (budget)
             sum_i x_i (c_i - s v_i)     <= D          (CPA: cost <= s x value + D)
             0 <= x_i <= 1

    ``s`` is the target CPA (money per unit of value) and ``D`` the slack carried from what was
    already bought (``s x value so far - cost so far``; ``bid_scale=None`` drops the CPA row).

    Why sorting solves it: with multipliers ``lam, mu >= 0`` of the two constraints, the
    Lagrangian is ``sum_i x_i [v_i (1 + mu s) - c_i (lam + mu)] + lam B + mu D``, maximised
    over the box by ``x_i = 1`` iff ``v_i / c_i > (lam + mu) / (1 + mu s)``. So an optimum
    (strong duality holds for a feasible LP) buys every opportunity above one *efficiency
    threshold* on ``v / c``: a prefix of the opportunities sorted by ``v / c`` descending,
    with at most one fractional item at the boundary. Along that order the cumulative cost
    ``C`` grows and ``G = sum (c_i - s v_i)`` is convex in ``C`` (slope ``1 - s v_i / c_i``
    increases): it falls while ``v / c > 1 / s`` and rises after. The feasible prefixes are
    therefore an interval, and since value grows along the prefix the optimum is its right
    end, capped by the budget. Cost: one sort, ``O(n log n)``.

    Args:
        value: (n,) values ``v_i >= 0`` (e.g. predicted conversions).
        cost: (n,) costs ``c_i > 0`` (e.g. least winning costs).
        budget: ``B``, money left to spend (``inf``: no budget row).
        bid_scale: ``s``; ``None`` for no CPA row.
        slack: ``D``.

    Returns:
        :class:`LpSolution`.
    """
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    cost = np.asarray(cost, dtype=np.float64).reshape(-1)
    if value.shape != cost.shape:
        raise ValueError(f"value and cost must have the same length, got {value.shape} and "
                         f"{cost.shape}")
    if np.any(~(cost > 0)) or np.any(~(value >= 0)) or not np.all(np.isfinite(value + cost)):
        raise ValueError("need finite costs > 0 and values >= 0")
    if math.isnan(budget) or math.isnan(slack) or (bid_scale is not None and not bid_scale > 0):
        raise ValueError(f"budget and slack must be numbers and bid_scale > 0, got "
                         f"budget={budget!r}, slack={slack!r}, bid_scale={bid_scale!r}")
    n = len(value)
    order = np.argsort(-(value / cost))
    v, c = value[order], cost[order]
    cum_cost = np.concatenate([[0.0], np.cumsum(c)])
    k_budget = _last_below(cum_cost, budget) if budget < math.inf else float(n)
    feasible = k_budget >= 0
    k_budget = max(k_budget, 0.0)
    binding = "budget" if k_budget < n else None
    k = k_budget
    if bid_scale is not None:
        g = np.concatenate([[0.0], np.cumsum(c - bid_scale * v)])
        j_min = int(np.count_nonzero(c - bid_scale * v <= 0))  # g falls on the first j_min
        if g[j_min] > slack:  # even the best prefix breaks the CPA
            feasible, k, binding = False, min(float(j_min), k_budget), "cpa"
        else:
            k_cpa = j_min + _last_below(g[j_min:], slack)  # right end of {g <= slack}
            falling = -g[: j_min + 1]  # non-decreasing
            k_enter = max(0.0, _first_above(falling, -slack))  # left end of {g <= slack}
            if k_budget < k_enter:
                feasible, k, binding = False, k_budget, "budget"
            elif k_cpa < k_budget:
                k, binding = k_cpa, "cpa"
    x_sorted = np.zeros(n)
    whole = int(math.floor(k + 1e-12))
    x_sorted[:whole] = 1.0
    if whole < n and k - whole > 1e-12:
        x_sorted[whole] = k - whole
    x = np.empty(n)
    x[order] = x_sorted
    last = int(math.ceil(k - 1e-12)) - 1
    threshold = float(v[last] / c[last]) if last >= 0 else math.inf
    return LpSolution(x, threshold, float(x @ value), float(x @ cost), bool(feasible), binding)


def _first_above(y: np.ndarray, level: float) -> float:
    """Smallest real ``k`` with ``y(k) >= level``, ``y`` non-decreasing, interpolated."""
    j = int(np.searchsorted(y, level, side="left"))
    if j == 0:
        return 0.0
    if j >= len(y):
        return math.inf
    return j - 1 + (level - y[j - 1]) / (y[j] - y[j - 1])
