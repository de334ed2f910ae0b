"""Hindsight oracle: the best expected score a campaign could have reached on a recorded day.

After an episode of an env made with ``record=True``, :func:`hindsight` answers two questions
about the agent's campaign on that day, with the competitors' bids held at their recorded
values:

* ``oracle_score``: the largest *expected* penalised score (docs/design.md's scoring contract with
  the env's ``beta``) of any choice, opportunity by opportunity, of which slot (if any) to buy
  at that slot's recorded price, fractional choices allowed, expected spend within the budget;
* ``best_fixed_alpha`` / ``best_fixed_alpha_score``: the constant multiplier in
  ``[1/max_alpha, max_alpha]`` that would have scored best had the agent bid
  ``alpha x truthful bid`` on every opportunity all day, and its expected score.

Options of one opportunity
--------------------------
Let the rivals' entering bids of a row be ``r_0 >= r_1 >= ...`` (``rival_bids``; a missing bid
is ``-inf``), ``K_r`` its slot count, ``e_j`` the marginal exposure probability of slot ``j``
(``e_j = 0`` for ``j >= K_r``) and ``q_j = max(reserve, r_j)``. To win slot ``j`` (0-based) the
agent must beat ``r_j`` and the reserve, i.e. bid at least ``q_j``. Its expected cost there is

* GSP: it pays the next bid below it, ``r_j``, or the reserve: ``cost_j = e_j * q_j``;
* first price: it pays its own bid, at least ``q_j``; the oracle uses the infimum,
  ``cost_j = e_j * q_j`` (any real bid costs as much or more, and the score never rises with
  cost at equal conversions, so this is still an upper bound);
* VCG: with the agent in slot ``j`` the rivals ``j, j+1, ...`` each move one slot down, rival
  ``l`` (``l >= j``) from slot ``l`` to ``l + 1``, losing ``(e_l - e_{l+1})`` exposures worth
  ``max(reserve, r_l)`` each to it (a missing bid counts as the reserve, as in
  :mod:`bidenv.auction`). The agent's expected payment is that externality::

      cost_j = sum_{l=j}^{K_r-1} (e_l - e_{l+1}) * q_l,      e_{K_r} = 0,

  i.e. ``cost_j / e_j`` per exposure, which is :mod:`bidenv.auction`'s VCG price for the
  ranking with the agent in slot ``j`` (its ``b_{l+1}`` is ``r_l`` there).

Its expected gain is ``e_j * p`` conversions (``p`` the true conversion probability) or
``e_j * p * conversion_value`` sales value for an ROI campaign (the objective ``g``). Only
opportunities the agent could enter are kept (eligible, truthful bid > 0). A slot below the
last rival (``r_{j-1}`` missing) cannot be won alone, but its option lies on the segment from
``(0, 0)`` to the slot just below the last rival (same price per exposure, the reserve), so it
changes nothing.

The oracle (proof sketch)
-------------------------
1. *Value-vs-spend curve.* ``V(c)`` = max total gain over fractional choices ``x_ij >= 0``,
   ``sum_j x_ij <= 1`` with expected spend ``sum cost_ij x_ij <= c``. This is the LP relaxation
   of a multiple-choice knapsack. Its optimum only uses, per opportunity, points on the upper
   concave hull of the options together with ``(0, 0)`` (a point under the hull is dominated by
   a mix of hull vertices of the same cost and at least the gain); along that hull the
   increments ``(d cost, d gain)`` have decreasing efficiency ``d gain / d cost``. Taking all
   hull segments of all opportunities greedily in order of decreasing efficiency is optimal
   (an exchange argument; Sinha and Zoltners 1979, "The multiple-choice knapsack problem",
   Operations Research 27(3)), so ``V`` is the concave piecewise-linear curve whose pieces
   are those segments in that order: one sort of all segments.
2. *Penalised score.* Any fractional choice has expected gain ``G <= V(C)`` at its expected
   spend ``C``, and the score ``F(G, C) = G * min(1, T * G / C) ** beta`` (``T`` = target CPA;
   for ROI ``G`` is value and ``T = 1 / target_roi``; ``F(G, 0) = G``) rises with ``G`` and never
   rises with ``C``. The greedy reaches gain ``V(c)`` at spend exactly ``c`` for every ``c`` up to
   the total ``C_max``, so the oracle is ``max_{0 <= c <= min(budget, C_max)} f(c)``,
   ``f(c) = F(V(c), c)``. Because ``V`` is concave with ``V(0) >= 0``, ``V(c) / c`` never rises,
   so ``T V(c) >= c`` exactly on an interval ``[0, c*]``, where ``f = V`` rises. Beyond ``c*``,
   on a linear piece ``V = a + s c`` (``a >= 0`` by concavity), ``f = T**beta (a + s c) **
   (1 + beta) / c**beta``: ``d log f / dc = (1 + beta) s / (a + s c) - beta / c`` is negative
   below its only zero ``c = beta a / s`` and positive above, so that stationary point is a
   *minimum* and ``f`` is largest at one end of the piece. The maximum is therefore at ``c*``
   or at a breakpoint of ``V`` in ``[c*, min(budget, C_max)]`` (the cap included): all are
   evaluated (vectorised) and the best kept. A budget-only campaign scores
   ``V(min(budget, C_max))``.
3. *Bound.* A policy's outcome on one opportunity is one slot (or none) at a price at least
   the option's (equal for GSP and VCG), or a mix of those over its randomness, so its
   expected (conversions, value, cost) is a fractional choice, dominated by the oracle,
   provided (a) the rivals' bids are those recorded (they react to the agent through their
   pacing, so for a policy other than the recorded one this is an approximation) and (b) its
   *expected* spend is within the budget: the env stops on *realised* spend, which may leave
   the expected spend a little above the budget near the end of the day (the contract's
   "small noise of realised spend near the budget").

One yardstick per day
---------------------
Competitors pace their budgets, so the prices of a day depend on the agent's own bidding, and
the oracle of each agent's own recording is a different number (``own_oracle_score`` in the
evaluation): on the same day they differ by a few percent, as much as the gaps between
neighbouring agents. Agents are therefore divided by one *yardstick* per day,
:func:`reference_hindsight`: the oracle of the same day (seed and campaign) recorded with the
agent **out of the market**, the competitors bidding as they would without it. Why this
reference: it depends on no policy at all (not on the agents of a run, nor on a chosen
reference bidder whose quirks would favour agents that resemble it), it is "what the day
offered" at the prices the rest of the market set, and it costs one env day and one oracle
per day, shared by all agents. It is not a strict bound for an agent that takes part: the
competitors react to its purchases (usually by paying more, so it is rarely exceeded); the
evaluation reports how often and by how much a policy's expected score exceeds it.

Only the ticks recorded are used. When the agent's day ends early (budget gone), the env
(``record=True``) plays and records the rest of the day with the agent out of the market,
so the oracle covers the whole day; called mid-episode it covers the ticks played so far
(``complete`` is then False).

Best fixed alpha
----------------
Bidding ``alpha * b`` (``b`` the truthful bid) on a row wins slot
``#{j < K_r : q_j / b > alpha}`` (none when that is ``K_r``): the row's outcome changes only at
the thresholds ``alpha = q_j / b`` (ties count as won). Its expected cost is ``cost_j`` (GSP,
VCG) or ``e_j * alpha * b`` (first price). Spend is accumulated in arrival order (tick, then
row) and, like the env, the first opportunity whose purchase would take the expected spend
above the budget and all later ones are dropped.

* Where the whole day fits the budget (``alpha`` up to the first threshold where the
  untruncated expected spend exceeds it) the score is evaluated **exactly at every threshold**
  (one sort of all thresholds and cumulative sums). For GSP/VCG the outcome is constant
  between thresholds; for first price the cost rises inside an interval at equal gain, so the
  interval's left end (a threshold) is its best point.
* Beyond, where the budget truncates the day, scores are exact at the alphas evaluated
  (:func:`fixed_alpha_outcomes`: per-tick totals by binning the thresholds, then the cut-off
  tick row by row), and the best threshold is searched at multiple resolutions: 128 thresholds
  evenly spaced (by rank) over the range, then 128 between the neighbours of the best, until
  at most 256 remain, which are all evaluated. This is exact where the score is unimodal in
  ``alpha`` over that range and otherwise a lower estimate of the best (on Lite days with
  budgets of 0.3x and 1x it matched the evaluation of every threshold to 1e-13).

``best_fixed_alpha_score <= oracle_score`` always holds: a fixed alpha's outcome is an integral
choice within the budget, at costs at least the options'.

All of it is sorting, cumulative sums and per-row hulls over at most ``K`` slots: a full
500k-opportunity day (about 415k the agent could enter) takes about 0.5 s on two CPU cores.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bidenv.scoring import campaign_score

__all__ = [
    "Day",
    "ValueCurve",
    "day_from_recording",
    "fixed_alpha_outcomes",
    "hindsight",
    "maximise_penalised",
    "reference_hindsight",
    "value_curve",
]

#: Thresholds evaluated per round of the search over the budget-truncated alphas.
SEARCH_POINTS = 128
#: Ranges of at most this many thresholds are evaluated in full.
SEARCH_FULL = 256
_CELLS = 1 << 22  # working-set size (alphas x rows x slots) of one evaluation chunk


class Day(NamedTuple):
    """The agent's recorded day, one row per opportunity it could enter (arrival order).

    Attributes:
        conversions: (n,) true conversion probability per exposure.
        value: (n,) expected sales value per exposure (probability x conversion value).
        bid: (n,) truthful bid (money) at ``alpha = 1``.
        exposure: (n, K + 1) marginal exposure probability of each slot, 0 beyond the row's
            slots (column K, always 0, stands for "no slot").
        cost: (n, K + 1) expected cost of buying slot j at its recorded price (infimum bid for
            first price), 0 beyond the row's slots.
        threshold: (n, K) least multiplier ``alpha`` that wins slot j (``-inf`` beyond the
            row's slots).
        tick_start: (T + 1,) row offsets of the recorded ticks.
        mechanism: ``"gsp"``, ``"first_price"`` or ``"vcg"``.
        rows_recorded: All opportunities of the recorded ticks, eligible or not.
    """

    conversions: np.ndarray
    value: np.ndarray
    bid: np.ndarray
    exposure: np.ndarray
    cost: np.ndarray
    threshold: np.ndarray
    tick_start: np.ndarray
    mechanism: str
    rows_recorded: int

    @property
    def n(self) -> int:
        return len(self.bid)

    @property
    def n_ticks(self) -> int:
        return len(self.tick_start) - 1


class ValueCurve(NamedTuple):
    """Concave piecewise-linear best gain vs expected spend (breakpoints, from (0, 0)).

    Attributes:
        spend: (S + 1,) non-decreasing spend at the breakpoints, ``spend[0] == 0``.
        gain: (S + 1,) best objective (conversions, or value) at each spend.
        aux: (S + 1,) the other quantity (value, or conversions) of that best choice.
    """

    spend: np.ndarray
    gain: np.ndarray
    aux: np.ndarray

    def at(self, c):
        """Gain and aux at spend ``c`` (linear between breakpoints, flat beyond the end; at a
        spend shared by several breakpoints, such as the free gains at 0, the last one)."""
        c = np.asarray(c, dtype=np.float64)
        last = len(self.spend) - 1
        i = np.clip(np.searchsorted(self.spend, c, side="right") - 1, 0, last)
        j = np.minimum(i + 1, last)
        span = self.spend[j] - self.spend[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(span > 0, np.clip((c - self.spend[i]) / span, 0.0, 1.0), 0.0)
        return (self.gain[i] + frac * (self.gain[j] - self.gain[i]),
                self.aux[i] + frac * (self.aux[j] - self.aux[i]))


# --------------------------------------------------------------------------------------------
# The recorded day
# --------------------------------------------------------------------------------------------


def _width(arr) -> int:
    arr = np.asarray(arr)
    return int(arr.shape[1]) if arr.ndim == 2 else 1


def day_from_recording(recording, *, constraint: str, mechanism: str = "gsp",
                       reserve_price: float = 0.0) -> Day:
    """Stack the env's per-tick recording into a :class:`Day`.

    Args:
        recording: List of per-tick dicts as kept by ``AutoBiddingEnv(record=True)``: keys
            ``pvalue``, ``p_conversion``, ``conversion_value``, ``eligible``, ``rival_bids``,
            ``n_slots``, ``exposure``, ``bid_scale``.
        constraint: The agent campaign's ``"cpa"``, ``"roi"`` or ``"budget"`` (ROI bids
            scale with the conversion value).
        mechanism: Pricing rule of the auctions.
        reserve_price: Minimum bid and price.

    Returns:
        The :class:`Day` (rows the agent could not enter are dropped).
    """
    if mechanism not in ("gsp", "first_price", "vcg"):
        raise ValueError(f"mechanism must be 'gsp', 'first_price' or 'vcg', got {mechanism!r}")
    if constraint not in ("cpa", "roi", "budget"):
        raise ValueError(f"constraint must be 'cpa', 'roi' or 'budget', got {constraint!r}")
    if not recording:
        raise ValueError("the recording is empty: play at least one tick before calling the oracle")
    K = max(_width(r["rival_bids"]) for r in recording)
    parts = {k: [] for k in ("p", "cv", "bid", "rival", "slots", "expo")}
    counts, total = [], 0
    for r in recording:
        pvalue = np.asarray(r["pvalue"], dtype=np.float64)
        n = len(pvalue)
        total += n
        cv = np.broadcast_to(np.asarray(r["conversion_value"], dtype=np.float64), (n,))
        bid = pvalue * float(r["bid_scale"])
        if constraint == "roi":
            bid = bid * cv
        keep = np.flatnonzero(np.asarray(r["eligible"], bool) & (bid > 0))
        parts["p"].append(np.asarray(r["p_conversion"], dtype=np.float64)[keep])
        parts["cv"].append(cv[keep])
        parts["bid"].append(bid[keep])
        parts["slots"].append(np.broadcast_to(np.asarray(r["n_slots"]), (n,))[keep])
        for name, fill in (("rival", -np.inf), ("expo", 0.0)):
            src = np.asarray(r["rival_bids" if name == "rival" else "exposure"],
                             dtype=np.float64).reshape(n, -1)[keep]
            if src.shape[1] < K + (name == "expo"):
                pad = np.full((len(keep), K + (name == "expo") - src.shape[1]), fill)
                src = np.hstack([src, pad])
            parts[name].append(src[:, :K + (name == "expo")])
        counts.append(len(keep))
    p, cv, bid = (np.concatenate(parts[k]) for k in ("p", "cv", "bid"))
    slots = np.concatenate(parts["slots"]).astype(np.int64)
    q = np.concatenate(parts["rival"])  # becomes the least price of each slot, in place
    expo = np.concatenate(parts["expo"])  # (n, K + 1)
    del parts
    outside = np.arange(K + 1)[None, :] >= slots[:, None]
    expo[outside] = 0.0
    np.maximum(q, reserve_price, out=q)  # a missing rival (-inf) leaves the reserve
    np.maximum(q, 0.0, out=q)
    q[outside[:, :K]] = 0.0
    cost = np.zeros_like(expo)
    if mechanism == "vcg":
        # cost_j = sum_{l >= j} (e_l - e_{l+1}) q_l, a reversed cumulative sum.
        np.multiply(expo[:, :K] - expo[:, 1:], q, out=cost[:, :K])
        cost[:, :K] = np.cumsum(cost[:, K - 1::-1], axis=1)[:, ::-1]
    else:
        np.multiply(expo[:, :K], q, out=cost[:, :K])
    with np.errstate(divide="ignore"):
        threshold = np.divide(q, bid[:, None], out=q)
    threshold[outside[:, :K]] = -np.inf
    return Day(conversions=p, value=p * cv, bid=bid, exposure=expo, cost=cost,
               threshold=threshold, tick_start=np.concatenate([[0], np.cumsum(counts)]),
               mechanism=mechanism, rows_recorded=total)


# --------------------------------------------------------------------------------------------
# The oracle: value-vs-spend curve and the penalised optimum
# --------------------------------------------------------------------------------------------


_INF_BITS = np.float64(np.inf).view(np.int64)


def _order(keys: np.ndarray, descending: bool = False) -> np.ndarray:
    """Stable argsort of non-negative float64 keys (``inf`` allowed, no NaN), fast.

    Sorting the keys' bit patterns (monotone for non-negative floats) with the index packed
    into the low bits is about twice as fast as ``argsort``; it orders by all but the lowest
    mantissa bits, and a stable timsort pass over the nearly sorted keys restores the exact
    order.
    """
    n = len(keys)
    shift = max(1, (n - 1).bit_length())
    if shift > 32:  # pragma: no cover - beyond any day's size
        return np.argsort(-keys if descending else keys, kind="stable")
    bits = (keys + 0.0).view(np.int64)  # a fresh copy; + 0.0 turns -0.0 into 0.0
    if descending:
        np.subtract(_INF_BITS, bits, out=bits)
    np.right_shift(bits, shift, out=bits)
    np.left_shift(bits, shift, out=bits)
    bits |= np.arange(n, dtype=np.int64)
    bits.sort()
    order = np.bitwise_and(bits, (1 << shift) - 1, out=bits)
    near = keys[order]
    if descending:
        np.negative(near, out=near)
    return order[np.argsort(near, kind="stable")]


def _upper_hulls(cost, gain, aux):
    """Per-row upper concave hull from (0, 0) of the options (vectorised over rows).

    Returns ``(hx, hy, ha, size)``: (n, J + 1) hull vertices (cost, gain, aux) in increasing
    cost, the first being (0, 0), and the number of vertices of each row.
    """
    n, J = cost.shape
    if np.all(cost[:, 1:] <= cost[:, :-1]):  # slots: cheaper down the page, no sort needed
        c, g, a = cost[:, ::-1], gain[:, ::-1], aux[:, ::-1]
    else:
        order = np.argsort(cost, axis=1, kind="stable")
        c = np.take_along_axis(cost, order, axis=1)
        g = np.take_along_axis(gain, order, axis=1)
        a = np.take_along_axis(aux, order, axis=1)
    W = J + 1
    hx, hy, ha = np.zeros(n * W), np.zeros(n * W), np.zeros(n * W)  # flat (n, W) stacks
    base = np.arange(n, dtype=np.int64) * W
    size = np.ones(n, np.int64)
    top_gain = np.zeros(n)
    for j in range(J):
        px, py = c[:, j], g[:, j]
        # A point with no more gain than the hull's last vertex (which costs no more) is
        # dominated.
        r = np.flatnonzero(py > top_gain)
        active = r[size[r] >= 2]
        while len(active):
            top = base[active] + size[active] - 1
            ax, ay = hx[top - 1], hy[top - 1]
            bx, by = hx[top], hy[top]
            cross = (bx - ax) * (py[active] - ay) - (by - ay) * (px[active] - ax)
            active = active[cross >= 0]  # the last vertex is not strictly above: drop it
            size[active] -= 1
            active = active[size[active] >= 2]
        at = base[r] + size[r]
        hx[at], hy[at], ha[at] = px[r], py[r], a[r, j]
        size[r] += 1
        top_gain[r] = py[r]
    return hx.reshape(n, W), hy.reshape(n, W), ha.reshape(n, W), size


def value_curve(cost, gain, aux=None) -> ValueCurve:
    """Best gain vs expected spend of the LP relaxation of a multiple-choice knapsack.

    Each row is one opportunity whose options (columns) are ``(cost, gain)`` pairs; at most
    one option per row, fractions allowed. Options with ``gain <= 0`` are ignored.

    Args:
        cost: (n, J) non-negative finite costs.
        gain: (n, J) non-negative finite gains.
        aux: Optional (n, J) second quantity carried along (e.g. value beside conversions).

    Returns:
        The :class:`ValueCurve` (greedy over all per-row hull segments by decreasing
        efficiency, as the module docstring explains).
    """
    cost = np.atleast_2d(np.asarray(cost, dtype=np.float64))
    gain = np.atleast_2d(np.asarray(gain, dtype=np.float64))
    aux = np.zeros_like(gain) if aux is None else np.atleast_2d(np.asarray(aux, np.float64))
    if cost.shape != gain.shape or aux.shape != gain.shape:
        raise ValueError(f"cost, gain and aux must have one shape, got {cost.shape}, "
                         f"{gain.shape}, {aux.shape}")
    if not (np.all(np.isfinite(cost)) and np.all(np.isfinite(gain))) or np.any(cost < 0):
        raise ValueError("cost and gain must be finite and cost >= 0")
    hx, hy, ha, size = _upper_hulls(cost, np.maximum(gain, 0.0), aux)
    # Hull segments of every row, row by row and in order along each row.
    keep = np.arange(hx.shape[1] - 1)[None, :] < (size - 1)[:, None]
    dc, dg, da = (np.diff(h, axis=1)[keep] for h in (hx, hy, ha))
    with np.errstate(divide="ignore"):
        efficiency = dg / dc  # dg > 0 on every segment; inf where it costs nothing
    # Stable: within a row efficiencies strictly decrease and earlier segments come first.
    order = _order(efficiency, descending=True)
    curve = []
    for d in (dc, dg, da):
        out = np.zeros(len(d) + 1)
        np.cumsum(np.take(d, order), out=out[1:])
        curve.append(out)
    return ValueCurve(*curve)


def _penalised(gain, spend, target, beta):
    """``gain * min(1, target * gain / spend) ** beta`` (no penalty at zero spend)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(spend > 0, target * gain / np.where(spend > 0, spend, 1.0), 1.0)
    return gain * np.minimum(1.0, ratio) ** beta


def maximise_penalised(curve: ValueCurve, budget: float, target: float | None,
                       beta: float) -> dict:
    """Maximise ``f(c) = V(c) * min(1, target * V(c) / c) ** beta`` over ``0 <= c <= budget``.

    Args:
        curve: The concave value-vs-spend curve.
        budget: Spend cap.
        target: ``T``: the CPA target, ``1 / target_roi`` for ROI, or None for no penalty.
        beta: Penalty exponent.

    Returns:
        ``{"score", "spend", "gain", "aux"}`` of the best spend level. Exact: ``f = V`` rises
        up to the end ``c*`` of the penalty-free range (``T V(c) >= c``); beyond it ``f`` has
        no interior maximum on a linear piece (its stationary point ``beta a / s`` on
        ``V = a + s c`` is a minimum), so ``c*`` and the breakpoints beyond it are compared.
    """
    spend, gain, aux = curve
    cap = float(min(budget, spend[-1]))
    # Breakpoints up to the cap, and the cap itself.
    k = int(np.searchsorted(spend, cap, side="right"))
    g_cap, a_cap = curve.at(cap)
    c = np.append(spend[:k], cap)
    v = np.append(gain[:k], g_cap)
    w = np.append(aux[:k], a_cap)
    if target is None or beta == 0:
        return {"score": float(v[-1]), "spend": cap, "gain": float(v[-1]), "aux": float(w[-1])}
    # T V(c) - c is concave and >= 0 at c = 0: it is >= 0 exactly on [0, c*].
    over = np.flatnonzero(target * v < c)
    if len(over) == 0:  # the whole range meets the target
        return {"score": float(v[-1]), "spend": cap, "gain": float(v[-1]), "aux": float(w[-1])}
    i = int(over[0])  # 1 <= i: the piece (i - 1, i) holds c*
    slope = (v[i] - v[i - 1]) / (c[i] - c[i - 1])
    intercept = v[i - 1] - slope * c[i - 1]
    c_star = min(c[i], target * intercept / (1 - target * slope))  # T s < 1 on this piece
    frac = (c_star - c[i - 1]) / (c[i] - c[i - 1])
    cand_c = np.append(c_star, c[i:])
    cand_v = np.append(v[i - 1] + frac * (v[i] - v[i - 1]), v[i:])
    cand_w = np.append(w[i - 1] + frac * (w[i] - w[i - 1]), w[i:])
    scores = _penalised(cand_v, cand_c, target, beta)
    best = int(np.argmax(scores))
    return {"score": float(scores[best]), "spend": float(cand_c[best]),
            "gain": float(cand_v[best]), "aux": float(cand_w[best])}


# --------------------------------------------------------------------------------------------
# Fixed multipliers
# --------------------------------------------------------------------------------------------


class _Events(NamedTuple):
    """Thresholds where a row moves up one slot, sorted, with the row's tick and the change.

    ``deltas`` is (3, N): the increments of expected conversions, expected value and the
    cost coefficient (the expected cost for GSP/VCG, the expected cost per unit of alpha for
    first price) when the row moves from slot ``j + 1`` (or none) to slot ``j``.
    """

    alpha: np.ndarray
    tick: np.ndarray
    deltas: np.ndarray


def _events(day: Day, max_alpha: float) -> _Events:
    K = day.threshold.shape[1]
    W = K + 1
    alpha, flat = [], []
    for j in range(K):
        t = day.threshold[:, j]
        r = np.flatnonzero((t <= max_alpha) & (day.exposure[:, j] > 0))
        alpha.append(t[r])
        flat.append(r * W + j)
    alpha = np.concatenate(alpha)
    order = _order(alpha)
    alpha = alpha[order]
    flat = np.concatenate(flat)[order]
    del order
    rows = flat // W
    e = day.exposure.ravel()
    drop = e[flat] - e[flat + 1]  # exposure gained by moving up to the slot
    deltas = np.empty((3, len(flat)))
    np.multiply(drop, day.conversions[rows], out=deltas[0])
    np.multiply(drop, day.value[rows], out=deltas[1])
    if day.mechanism == "first_price":
        np.multiply(drop, day.bid[rows], out=deltas[2])
    else:
        c = day.cost.ravel()
        np.subtract(c[flat], c[flat + 1], out=deltas[2])
    tick = (np.searchsorted(day.tick_start, rows, side="right") - 1).astype(np.int64)
    return _Events(alpha, tick, deltas)


def fixed_alpha_outcomes(day: Day, alphas, budget: float, *, _cache=None) -> dict:
    """Expected conversions, value and cost of bidding ``alpha x truthful`` all day.

    Spend accumulates in arrival order; the first opportunity whose purchase would take the
    expected spend above ``budget`` and every later one are dropped (as the env does with
    realised spend).

    Args:
        day: The recorded day.
        alphas: Multipliers (any order).
        budget: The campaign's budget.

    Returns:
        ``{"alpha", "conversions", "value", "cost"}`` arrays in the order of ``alphas``.
    """
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if np.any(~(alphas > 0)) or not np.all(np.isfinite(alphas)):
        raise ValueError(f"alphas must be finite and > 0, got {alphas}")
    ev = _cache if _cache is not None else _events(day, float(alphas.max()))
    ev_alpha, ev_tick, deltas = ev
    first_price = day.mechanism == "first_price"
    sort = np.argsort(alphas, kind="stable")
    A = alphas[sort]
    G, T = len(A), day.n_ticks
    # Per-tick totals at each alpha: an event counts for alpha >= its threshold. Those below
    # the smallest alpha count for all (one bincount by tick); those above the largest for none.
    lo = int(np.searchsorted(ev_alpha, A[0], side="left"))
    hi = int(np.searchsorted(ev_alpha, A[-1], side="right"))
    bins = np.searchsorted(A, ev_alpha[lo:hi], side="left") * T + ev_tick[lo:hi]
    per_tick = np.stack([
        np.bincount(bins, weights=d[lo:hi], minlength=G * T).reshape(G, T).cumsum(axis=0)
        + np.bincount(ev_tick[:lo], weights=d[:lo], minlength=T)[None, :]
        for d in deltas])
    tick_cost = per_tick[2] * A[:, None] if first_price else per_tick[2]
    cum_cost = np.cumsum(tick_cost, axis=1)
    cum_conv = np.cumsum(per_tick[0], axis=1)
    cum_value = np.cumsum(per_tick[1], axis=1)
    out = np.stack([cum_conv[:, -1], cum_value[:, -1], cum_cost[:, -1]])
    over = cum_cost > budget
    cut = np.flatnonzero(over.any(axis=1))
    if len(cut):
        # The tick where the budget runs out, then its rows one by one.
        tau = np.argmax(over[cut], axis=1)
        prev = np.maximum(tau - 1, 0)
        first = tau == 0
        prior = np.stack([np.where(first, 0.0, cum_conv[cut, prev]),
                          np.where(first, 0.0, cum_value[cut, prev]),
                          np.where(first, 0.0, cum_cost[cut, prev])])
        e_flat, c_flat = day.exposure.ravel(), day.cost.ravel()
        W = day.exposure.shape[1]
        for t in np.unique(tau):
            gs = np.flatnonzero(tau == t)
            r0, r1 = int(day.tick_start[t]), int(day.tick_start[t + 1])
            thr = day.threshold[r0:r1]
            at_row = np.arange(r0, r1)[None, :] * W
            step = max(1, _CELLS // max(1, (r1 - r0) * thr.shape[1]))
            for c0 in range(0, len(gs), step):
                g = gs[c0:c0 + step]
                a = A[cut[g]]
                slot = np.zeros((len(g), r1 - r0), np.int64)
                for j in range(thr.shape[1]):
                    slot += thr[None, :, j] > a[:, None]
                idx = at_row + slot
                e = np.take(e_flat, idx)
                if first_price:
                    cost = e * day.bid[None, r0:r1] * a[:, None]
                else:
                    cost = np.take(c_flat, idx)
                run = np.cumsum(cost, axis=1)
                # Rows before the first one that would overrun the budget (run never falls).
                n_ok = (run <= budget - prior[2, g][:, None]).sum(axis=1)
                out[0, cut[g]] = prior[0, g] + _prefix_total(e * day.conversions[r0:r1], n_ok)
                out[1, cut[g]] = prior[1, g] + _prefix_total(e * day.value[r0:r1], n_ok)
                out[2, cut[g]] = prior[2, g] + _prefix_total(run, n_ok, cumulative=True)
    result = np.empty_like(out)
    result[:, sort] = out
    return {"alpha": alphas, "conversions": result[0], "value": result[1], "cost": result[2]}


def _prefix_total(x: np.ndarray, count: np.ndarray, cumulative: bool = False) -> np.ndarray:
    """Sum of the first ``count[i]`` entries of each row of ``x`` (already summed if
    ``cumulative``)."""
    run = x if cumulative else np.cumsum(x, axis=1)
    picked = np.take_along_axis(run, np.maximum(count - 1, 0)[:, None], axis=1)[:, 0]
    return np.where(count > 0, picked, 0.0)


def _best_fixed_alpha(day: Day, score, budget: float, max_alpha: float, cache) -> dict:
    """Best constant multiplier in [1/max_alpha, max_alpha] (see the module docstring)."""
    ev_alpha, deltas = cache.alpha, cache.deltas
    min_alpha = 1.0 / max_alpha
    totals = np.zeros((3, len(ev_alpha) + 1))
    np.cumsum(deltas, axis=1, out=totals[:, 1:])
    # Candidates: the range's left end and every distinct threshold inside the range.
    last = np.append(ev_alpha[1:] != ev_alpha[:-1], True)
    inside = last & (ev_alpha > min_alpha) & (ev_alpha <= max_alpha)
    cand = np.concatenate([[min_alpha], ev_alpha[inside]])
    tot = totals[:, np.searchsorted(ev_alpha, cand, side="right")]
    cost = tot[2] * cand if day.mechanism == "first_price" else tot[2]
    # Spend never falls as alpha rises: the candidates within the budget are a prefix.
    n_fit = int(np.searchsorted(cost > budget, True))
    best = {"alpha": 1.0, "score": -np.inf}
    if n_fit:
        s = score(tot[0, :n_fit], tot[1, :n_fit], cost[:n_fit])
        i = int(np.argmax(s))
        best = {"alpha": float(cand[i]), "score": float(s[i]), "conversions": float(tot[0, i]),
                "value": float(tot[1, i]), "cost": float(cost[i])}
    rest = cand[n_fit:]
    lo, hi = 0, len(rest) - 1
    while hi >= lo:
        if hi - lo + 1 <= SEARCH_FULL:
            idx = np.arange(lo, hi + 1)
        else:
            idx = np.unique(np.linspace(lo, hi, SEARCH_POINTS + 1).round().astype(np.int64))
        out = fixed_alpha_outcomes(day, rest[idx], budget, _cache=cache)
        s = score(out["conversions"], out["value"], out["cost"])
        i = int(np.argmax(s))
        if s[i] > best["score"]:
            best = {"alpha": float(rest[idx[i]]), "score": float(s[i]),
                    "conversions": float(out["conversions"][i]),
                    "value": float(out["value"][i]), "cost": float(out["cost"][i])}
        if len(idx) == hi - lo + 1:
            break
        lo, hi = int(idx[max(i - 1, 0)]), int(idx[min(i + 1, len(idx) - 1)])
    return best


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def hindsight(env) -> dict:
    """Oracle and best fixed multiplier of the agent's campaign on the recorded day.

    Args:
        env: An ``AutoBiddingEnv`` (or a wrapper of one) made with ``record=True``, after at
            least one step (normally at the end of the episode).

    Returns:
        A dict of plain Python scalars (see the module docstring for the maths):

        * ``oracle_score``, ``oracle_spend``, ``oracle_conversions``, ``oracle_value``: the
          best expected penalised score over fractional slot choices at the recorded prices,
          and its expected spend, conversions and value;
        * ``best_fixed_alpha``, ``best_fixed_alpha_score``, ``best_fixed_alpha_spend``,
          ``best_fixed_alpha_conversions``, ``best_fixed_alpha_value``: the best constant
          multiplier in ``[1/max_alpha, max_alpha]`` and its expected outcome;
        * ``truthful_score``, ``truthful_spend``: the same for ``alpha = 1``;
        * ``budget``, ``constraint``, ``target``, ``mechanism``, ``opportunities`` (those the
          agent could enter), ``ticks`` (recorded) and ``complete`` (every tick of the day
          recorded).

    Raises:
        ValueError: If the env does not record (make it with ``record=True``) or no tick
            was played since ``reset``.
    """
    base = getattr(env, "unwrapped", env)
    if not hasattr(base, "recording"):
        raise ValueError(f"hindsight needs a bidenv AutoBiddingEnv, got {type(env).__name__}")
    if base.recording is None:
        raise ValueError("the env does not record: make it with record=True, e.g. "
                         "gym.make('bidenv/AutoBidding-v0', record=True)")
    if len(base.recording) == 0:
        raise ValueError("no tick was played since reset(): the recording is empty; run the "
                         "episode before calling hindsight")
    camp = base.agent_campaign
    beta, max_alpha = float(base.beta), float(base.max_alpha)
    day = day_from_recording(base.recording, constraint=camp.constraint,
                             mechanism=base.mechanism, reserve_price=base.reserve_price)
    budget = float(camp.budget)

    def score(conversions, value, cost):
        return np.asarray(campaign_score(camp.constraint, conversions, value, cost,
                                         target_cpa=camp.target_cpa, target_roi=camp.target_roi,
                                         beta=beta), dtype=np.float64)

    roi = camp.constraint == "roi"
    gain, aux = (day.value, day.conversions) if roi else (day.conversions, day.value)
    K = day.threshold.shape[1]
    expo = day.exposure[:, :K]
    curve = value_curve(day.cost[:, :K], expo * gain[:, None], expo * aux[:, None])
    target = None
    if camp.constraint == "cpa":
        target = float(camp.target_cpa)
    elif roi:
        target = 1.0 / float(camp.target_roi)
    opt = maximise_penalised(curve, budget, target, beta)
    conv, value = (opt["aux"], opt["gain"]) if roi else (opt["gain"], opt["aux"])
    oracle_score = float(score(conv, value, opt["spend"]))

    cache = _events(day, max(max_alpha, 1.0))
    best = _best_fixed_alpha(day, score, budget, max_alpha, cache)
    truthful = fixed_alpha_outcomes(day, [1.0], budget, _cache=cache)
    truthful_score = float(score(truthful["conversions"], truthful["value"],
                                 truthful["cost"])[0])
    return {
        "oracle_score": oracle_score,
        "oracle_spend": float(opt["spend"]),
        "oracle_conversions": float(conv),
        "oracle_value": float(value),
        "best_fixed_alpha": best["alpha"],
        "best_fixed_alpha_score": max(best["score"], 0.0),
        "best_fixed_alpha_spend": best.get("cost", 0.0),
        "best_fixed_alpha_conversions": best.get("conversions", 0.0),
        "best_fixed_alpha_value": best.get("value", 0.0),
        "truthful_score": truthful_score,
        "truthful_spend": float(truthful["cost"][0]),
        "budget": budget,
        "constraint": camp.constraint,
        "target": float(camp.target) if camp.target is not None else math.nan,
        "mechanism": base.mechanism,
        "opportunities": day.n,
        "ticks": day.n_ticks,
        "complete": day.n_ticks >= int(base.n_ticks),
    }


def reference_hindsight(env, *, seed: int, options: dict | None = None) -> dict:
    """The day's common yardstick: :func:`hindsight` on the day without the agent.

    Resets ``env`` (made with ``record=True``) with ``seed`` and ``options`` (the campaign),
    records the whole day with the agent out of the market
    (``AutoBiddingEnv.record_day_without_agent``) and returns the oracle of that recording
    (same keys as :func:`hindsight`). It depends only on the env's settings, the seed and the
    campaign, never on an agent, so every agent evaluated on that day is divided by the same
    number (see "One yardstick per day" in the module docstring). The env's episode is over
    afterwards.
    """
    base = getattr(env, "unwrapped", env)
    if getattr(base, "recording", None) is None and not getattr(base, "record", False):
        raise ValueError("reference_hindsight needs an env made with record=True")
    env.reset(seed=seed, options=options)
    base.record_day_without_agent()
    return hindsight(base)
