"""Classic bidders: constant multipliers, PID controllers and the online linear program.

Every bidder here picks a bid multiplier ``alpha`` per tick (the environment bids
``alpha x s x pvalue`` on each opportunity, ``s`` the campaign's bid scale: the target CPA, or
conversion value / target ROI) and works for CPA, ROI and budget-only campaigns. They are the
baselines of the NeurIPS 2024 auto-bidding competition and its AuctionNet benchmark
(Su et al., "AuctionNet: A Novel Benchmark for Decision-Making in Large-Scale Games",
NeurIPS 2024 Datasets and Benchmarks; baselines in ``alimama-tech/AuctionNet``), where the
"abid"/fixed multiplier, PID and online-LP bidders are the non-learning references.

===============  ==========================================================================
``truthful``     ``alpha = 1``: bid the predicted value at the target.
``fixed``        a constant ``alpha``.
``random``       uniform actions, reproducible per seed.
``pid_budget``   PI(D) pacing of spend along the day's expected traffic curve.
``pid_cpa``      PI control of the (smoothed) CPA / ROI toward its target, capped by pacing.
``online_lp``    re-solves the rest of the day as a linear program over the opportunities
                 seen so far; needs ``update`` (the evaluation harness calls it).
===============  ==========================================================================
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from agents.base import BaseAgent, feature

# Smallest traffic share left used in the pacing error (the last tick's share is ~1-2%).
_MIN_SHARE_LEFT = 1e-3
# Share of the day added to spend and traffic in the pacing error (steadies the first ticks).
_PACE_SMOOTHING = 0.03


def _positive_number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _non_negative(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
            math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------------------------
# Constant bidders
# --------------------------------------------------------------------------------------------
class TruthfulAgent(BaseAgent):
    """Bids the predicted value at the target (``a = 0``, ``alpha = 1``) all day.

    The bid ``s x pvalue`` is what an opportunity is worth at the target CPA (or ROI): the
    truthful bid of a value-maximiser without a budget, and the multiplier-1 reference of the
    AuctionNet baselines. It neither paces the budget nor corrects the realised CPA.
    """

    name = "truthful"

    def _alpha(self, obs: np.ndarray) -> float:
        return 1.0


class FixedAlphaAgent(BaseAgent):
    """A constant bid multiplier all day (AuctionNet's fixed-multiplier "abid" baseline).

    Args:
        alpha: The multiplier, ``1/max_alpha <= alpha <= max_alpha`` (default 1.0, truthful).
        max_alpha: The environment's action scale.
    """

    name = "fixed"

    def __init__(self, alpha: float = 1.0, *, max_alpha: float = 10.0):
        self.alpha = _positive_number("alpha", alpha)
        if not 1.0 / max_alpha <= self.alpha <= max_alpha:
            raise ValueError(f"alpha must be in [1/max_alpha, max_alpha] = "
                             f"[{1.0 / max_alpha:g}, {max_alpha:g}], got {alpha!r}")
        super().__init__(max_alpha=max_alpha)
        self.name = "fixed" if self.alpha == 1.0 else f"fixed_{self.alpha:g}"

    def _alpha(self, obs: np.ndarray) -> float:
        return self.alpha


class RandomAgent(BaseAgent):
    """Uniformly random actions: the floor every bidder should beat.

    The generator is re-seeded with ``seed`` on every :meth:`reset`, so each day gets the same
    action sequence and an evaluation is reproducible whatever order (or process) episodes run
    in.

    Args:
        seed: Seed of the action sequence (default 0).
        low, high: Range of the uniform action, within [-1, 1] (default the whole space).
        max_alpha: The environment's action scale.
    """

    name = "random"

    def __init__(self, seed: int = 0, *, low: float = -1.0, high: float = 1.0,
                 max_alpha: float = 10.0):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not -1.0 <= low <= high <= 1.0:
            raise ValueError(f"need -1 <= low <= high <= 1, got low={low!r}, high={high!r}")
        self.seed, self.low, self.high = int(seed), float(low), float(high)
        super().__init__(max_alpha=max_alpha)

    def reset(self, campaign: dict | None = None) -> None:
        super().reset(campaign)
        self.rng = np.random.default_rng(self.seed)

    def _alpha(self, obs: np.ndarray) -> float:
        return self.max_alpha ** float(self.rng.uniform(self.low, self.high))


# --------------------------------------------------------------------------------------------
# What the day's opportunities say (from update)
# --------------------------------------------------------------------------------------------
class DayLedger:
    """The agent's opportunities of the day so far and what it won, from ``update`` calls.

    Each tick one multiplier prices every opportunity (``alpha x s x pvalue`` against the
    least winning cost ``lwc``), so the ``info["wins"]`` opportunities won are the most
    efficient ones by ``pvalue / lwc``. From them:

    * ``predicted_conversions``: sum over ticks of the pValue won x that tick's exposure rate
      (exposures / wins; cost and conversions only come with exposure), the expected
      conversions by the platform's own predictions, far less noisy than the realised count;
    * ``won_lwc``: the least winning costs of the wins, to compare with the cost paid
      (``cost_seen``).

    Args:
        keep_opportunities: Keep the per-opportunity arrays (for :class:`OnlineLpAgent`).
    """

    def __init__(self, keep_opportunities: bool = False):
        self.keep_opportunities = keep_opportunities
        self.pvalue: list[np.ndarray] = []
        self.lwc: list[np.ndarray] = []
        self.n_seen = 0
        self.ticks = 0
        self.wins = 0
        self.exposures = 0
        self.won_lwc = 0.0
        self.won_pvalue = 0.0
        self.predicted_conversions = 0.0
        self.cost_seen = 0.0
        self.conversions = 0.0

    def update(self, info: dict, opportunities: dict | None) -> None:
        """Record one tick (``info`` of the step and ``last_tick_opportunities()``)."""
        self.ticks += 1
        self.cost_seen += float(info.get("cost", 0.0))
        self.conversions = float(info.get("total_conversions", self.conversions))
        if opportunities is None:
            return
        pvalue = np.asarray(opportunities["pvalue"], dtype=np.float64)
        lwc = np.asarray(opportunities["least_winning_cost"], dtype=np.float64)
        keep = lwc > 0
        pvalue, lwc = pvalue[keep], lwc[keep]
        wins = min(int(info.get("wins", 0)), len(pvalue))
        exposures = int(info.get("exposures", 0))
        if wins > 0:
            won = np.argpartition(-(pvalue / lwc), wins - 1)[:wins]
            won_pvalue = float(pvalue[won].sum())
            self.won_lwc += float(lwc[won].sum())
            self.won_pvalue += won_pvalue
            self.predicted_conversions += won_pvalue * exposures / wins
        self.wins += wins
        self.exposures += exposures
        self.n_seen += len(pvalue)
        if self.keep_opportunities:
            self.pvalue.append(pvalue)
            self.lwc.append(lwc)

    @property
    def has_data(self) -> bool:
        return self.n_seen > 0

    def calibration(self, prior_conversions: float) -> float:
        """Realised / predicted conversions, shrunk to 1 by ``prior_conversions`` (Gamma prior
        of mean 1): ``(n0 + conversions) / (n0 + predicted_conversions)``."""
        n0 = prior_conversions
        if n0 + self.predicted_conversions <= 0:
            return 1.0
        return (n0 + self.conversions) / (n0 + self.predicted_conversions)


# --------------------------------------------------------------------------------------------
# PID controllers
# --------------------------------------------------------------------------------------------
class VelocityPID:
    """A PID controller in velocity (incremental) form.

    ``step(e)`` returns the change of the control variable
    ``ki e_t + kp (e_t - e_{t-1}) + kd (e_t - 2 e_{t-1} + e_{t-2})``; summed over ticks this is
    the textbook ``kp e + ki sum(e) + kd de``. Clipping the accumulated control (here the log
    multiplier) is then a natural anti-windup: nothing integrates past the limits.
    """

    def __init__(self, kp: float, ki: float, kd: float = 0.0):
        self.kp = _non_negative("kp", kp)
        self.ki = _non_negative("ki", ki)
        self.kd = _non_negative("kd", kd)
        self.reset()

    def reset(self) -> None:
        self.e1 = self.e2 = 0.0

    def step(self, e: float) -> float:
        delta = self.ki * e + self.kp * (e - self.e1) + self.kd * (e - 2 * self.e1 + self.e2)
        self.e2, self.e1 = self.e1, e
        return delta


def pacing_error(obs: np.ndarray, smoothing: float = _PACE_SMOOTHING) -> float:
    """How far spend lags the day's traffic curve, in log units: > 0 means spending too slowly.

    The log ratio of the spend rate the rest of the day can afford to the rate achieved so
    far, both per unit of expected traffic::

        e = log[ (budget_left / traffic_left) / ((spent + eps) / (traffic_elapsed + eps)) ]

    (shares of the budget and of the day's expected traffic; ``eps = smoothing`` keeps the
    first ticks finite), clipped to [-1.5, 1.5]. It is 0 when spend follows the traffic curve.
    Early in the day the second factor dominates (a tick with nothing spent reads as far
    behind, whatever the small share of the day it was); late in the day the first does
    (money left with little traffic left reads as far behind), so the day ends on budget.
    To first order it is ``-pace_error`` scaled by ``1 / traffic_elapsed + 1 / traffic_left``.
    """
    budget_left = min(max(feature(obs, "budget_left"), 1e-6), 1.0)
    elapsed = min(max(feature(obs, "traffic_elapsed"), 0.0), 1.0)
    share_left = max(1.0 - elapsed, _MIN_SHARE_LEFT)
    spent = 1.0 - budget_left
    error = (math.log(budget_left / share_left)
             + math.log((elapsed + smoothing) / (spent + smoothing)))
    return float(np.clip(error, -1.5, 1.5))


class PidBudgetAgent(BaseAgent):
    """Paces spend along the expected traffic curve of the day with a PI(D) controller.

    The budget-pacing PID of the auto-bidding literature (e.g. Zhang et al., "Feedback
    Control of Real-Time Display Advertising", WSDM 2016; the PID baseline of the AuctionNet
    benchmark): the reference is the spend share equal to the expected traffic share elapsed
    (``traffic_elapsed``), so little is spent at night and most at the daily peaks, and the
    error is :func:`pacing_error` (from ``budget_left`` and ``traffic_elapsed``). Each tick
    the log multiplier moves by the velocity-form PID increment (see :class:`VelocityPID`),
    at most ``max_step``, within ``[-log max_alpha, log max_alpha]``. It ignores the CPA/ROI
    constraint: it only spends the budget (the right thing for budget-only campaigns and loose
    targets).

    Args:
        kp: Proportional gain (log multiplier per unit change of the error), default 0.5.
        ki: Integral gain (log multiplier per tick per unit error), default 0.5.
        kd: Derivative gain, default 0.0.
        max_step: Largest change of the log multiplier in one tick, default 0.5 (x1.65):
            spend can be very steep in alpha (a market of bidders at similar multipliers), and
            an unlimited step after a cheap first tick would overshoot.
        alpha0: Starting multiplier, default 1.0.
        max_alpha: The environment's action scale.
    """

    name = "pid_budget"

    def __init__(self, kp: float = 0.5, ki: float = 0.5, kd: float = 0.0, *,
                 max_step: float = 0.5, alpha0: float = 1.0, max_alpha: float = 10.0):
        self.pid = VelocityPID(kp, ki, kd)
        self.max_step = _positive_number("max_step", max_step)
        self.alpha0 = _positive_number("alpha0", alpha0)
        super().__init__(max_alpha=max_alpha)

    def reset(self, campaign: dict | None = None) -> None:
        super().reset(campaign)
        self.pid.reset()
        self.log_alpha = math.log(self.alpha0)

    def _alpha(self, obs: np.ndarray) -> float:
        step = float(np.clip(self.pid.step(pacing_error(obs)), -self.max_step, self.max_step))
        self.log_alpha = float(np.clip(self.log_alpha + step, -self.log_max, self.log_max))
        return math.exp(self.log_alpha)


class PidCpaAgent(BaseAgent):
    """Steers the CPA (or ROI) toward the target, without outrunning the budget pace.

    The CPA-tracking PID baseline of the AuctionNet benchmark and of industrial auto-bidders
    (e.g. Yang et al., "Bid Optimization by Multivariable Control in Display Advertising",
    KDD 2019). The controlled quantity is the campaign's ratio ``cost / earned`` (the
    ``constraint_ratio`` feature: CPA / target, or target / ROI), where ``earned`` is what the
    outcome is worth at the target: conversions x ``s``, with ``s`` the bid scale (the target
    CPA, or conversion value / target ROI; see :class:`agents.base.BidScale`).

    Conversions are sparse (a handful a day for small budgets), so the realised ratio is far
    too noisy to steer by; it is smoothed with a prior of ``prior_conversions`` conversions
    bought exactly at the target (a Gamma prior on the conversion rate per unit cost):

    * with :meth:`update` (the evaluation harness calls it): conversions are the *predicted*
      conversions of the opportunities won (:class:`DayLedger`) times a calibration
      ``(w + realised) / (w + predicted)`` (``w = prediction_weight``), which starts at 1 and
      corrects a biased predictor as realised conversions accumulate, slowly enough that a
      day's Poisson noise (a handful of conversions) does not throw the bid around;
    * from observations alone (e.g. as a market competitor):
      ``ratio = (cost + n0 s) / (conversions x s + n0 s)``, with cost from ``budget_left``,
      conversions from ``hist_conversion_mean`` x ticks played (``constraint_ratio`` when it is
      not capped), which is 1 before any spend and never reads an early tick with spend but
      no conversion as an infinite CPA.

    The error ``-log(ratio)`` (> 0 while under target: bid more) drives a velocity-form PI
    controller on the log multiplier. A second PI controller paces the budget as
    :class:`PidBudgetAgent` does, and each tick the multiplier moves by the *smaller* of the
    two increments: it rises only when both the CPA and the budget pace allow it, and falls
    when either asks. For a budget-only campaign only the pacing controller acts.

    Args:
        kp: Proportional gain of the CPA controller, default 0.5.
        ki: Integral gain of the CPA controller, default 0.3.
        prior_conversions: Pseudo-conversions at the target smoothing the realised ratio
            (observation-only mode), default 2.0.
        prediction_weight: Pseudo-conversions of trust in the predicted conversion rate when
            calibrating it against realised conversions (with ``update``), default 10.0.
        pace: Cap the multiplier by budget pacing, default True.
        pace_kp, pace_ki: Gains of the pacing controller, defaults 0.5 and 0.5.
        max_step: Largest change of the log multiplier in one tick, default 0.5.
        alpha0: Starting multiplier, default 1.0.
        max_alpha: The environment's action scale.
    """

    name = "pid_cpa"

    def __init__(self, kp: float = 0.5, ki: float = 0.3, *, prior_conversions: float = 2.0,
                 prediction_weight: float = 10.0, pace: bool = True, pace_kp: float = 0.5,
                 pace_ki: float = 0.5, max_step: float = 0.5, alpha0: float = 1.0,
                 max_alpha: float = 10.0):
        self.pid = VelocityPID(kp, ki)
        self.pace_pid = VelocityPID(pace_kp, pace_ki)
        self.prior_conversions = _non_negative("prior_conversions", prior_conversions)
        self.prediction_weight = _non_negative("prediction_weight", prediction_weight)
        self.pace = bool(pace)
        self.max_step = _positive_number("max_step", max_step)
        self.alpha0 = _positive_number("alpha0", alpha0)
        super().__init__(max_alpha=max_alpha)

    def reset(self, campaign: dict | None = None) -> None:
        super().reset(campaign)
        self.pid.reset()
        self.pace_pid.reset()
        self.log_alpha = math.log(self.alpha0)
        self.ledger = DayLedger()

    def update(self, info: dict, opportunities: dict | None = None) -> None:
        """Record the tick just played (what was won and its predicted conversions)."""
        self.ledger.update(info, opportunities)

    def smoothed_ratio(self, obs: np.ndarray) -> float:
        """``cost / earned`` so far, smoothed by ``prior_conversions`` at the target."""
        s = self.bid_scale.value
        cost = self.budget * max(0.0, 1.0 - feature(obs, "budget_left"))
        if cost <= 0:
            return 1.0
        if self.ledger.has_data:
            conversions = (self.ledger.predicted_conversions
                           * self.ledger.calibration(self.prediction_weight))
            return cost / conversions / s if conversions > 0 else 10.0
        conversions = round(feature(obs, "hist_conversion_mean") * self.tick)
        ratio = feature(obs, "constraint_ratio")
        earned = cost / ratio if conversions > 0 and 0.0 < ratio < 9.99 else conversions * s
        prior = self.prior_conversions * s
        if earned + prior <= 0:
            return 10.0
        return (cost + prior) / (earned + prior)

    def _alpha(self, obs: np.ndarray) -> float:
        delta_pace = self.pace_pid.step(pacing_error(obs))
        if self.constraint == "budget":
            delta = delta_pace
        else:
            error = -math.log(min(max(self.smoothed_ratio(obs), 0.1), 10.0))
            delta = self.pid.step(float(np.clip(error, -1.0, 1.0)))
            if self.pace:
                delta = min(delta, delta_pace)
        delta = float(np.clip(delta, -self.max_step, self.max_step))
        self.log_alpha = float(np.clip(self.log_alpha + delta, -self.log_max, self.log_max))
        return math.exp(self.log_alpha)


# --------------------------------------------------------------------------------------------
# Online linear program
# --------------------------------------------------------------------------------------------
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


class OnlineLpAgent(BaseAgent):
    """Re-plans the rest of the day each tick as a linear program over today's opportunities.

    The online-LP baseline of the AuctionNet benchmark (its ``OnlineLpBidder``), following the
    primal-dual view of budget- and CPA-constrained bidding (e.g. He et al., "A Unified
    Solution to Constrained Bidding in Online Display Advertising", KDD 2021): the optimal
    bid is ``alpha x s x pvalue`` with one multiplier, so the bidder estimates that multiplier
    by solving the offline problem on a sample of the traffic.

    Each tick: the opportunities seen so far today (from :meth:`update`: ``pvalue`` and least
    winning cost ``lwc`` of each) stand for the rest of the day, scaled by the expected
    traffic still to come, ``(1 - traffic_elapsed) / traffic_elapsed`` copies of each.
    :func:`solve_allocation_lp` then maximises value subject to the budget left and the
    whole-day CPA constraint (``cost <= s x conversions``, the slack being what the day has
    earned at the target so far minus its cost; no CPA row for budget-only campaigns). The
    LP's efficiency threshold ``theta`` on ``pvalue / lwc`` becomes the multiplier:
    ``alpha x s x pvalue >= lwc`` (a win) iff ``pvalue / lwc >= 1 / (alpha s)``, so
    ``alpha = 1 / (s theta)``; when nothing binds it bids the maximum multiplier.

    Two calibrations from the ticks already played turn the sample into money and conversions:
    a won opportunity costs ``rho_c x lwc`` on average (paid only when shown, at the price of
    the slot won; ``rho_c`` = realised cost / ``lwc`` of the opportunities won, the top
    ``info["wins"]`` by ``pvalue / lwc``) and yields ``rho_v x pvalue`` expected conversions
    (``rho_v`` = exposures / wins). The day's conversions so far are taken in expectation,
    ``rho_v x`` the pValue won, not the sparse realised count.

    ROI campaigns: the objective would be ``pvalue x conversion value``, which the agent does
    not observe per opportunity. With one conversion value per advertiser (bidenv's built-in
    traffic) the ROI constraint ``value >= R x cost`` is exactly the CPA constraint with
    target ``s = conversion value / R``, the ROI bid scale (estimated as in
    :class:`agents.base.BidScale`), and maximising value is maximising ``pvalue``; with values
    that vary by opportunity this is the approximation used.

    Before ``min_opportunities`` have been seen (the first tick or two) it bids ``alpha0``.
    Without :meth:`update` calls (e.g. as a market competitor) it keeps bidding ``alpha0``.

    Args:
        alpha0: Multiplier while there is no data, default 1.0 (truthful).
        min_opportunities: Opportunities needed before the first LP, default 200.
        max_alpha: The environment's action scale.
    """

    name = "online_lp"

    def __init__(self, *, alpha0: float = 1.0, min_opportunities: int = 200,
                 max_alpha: float = 10.0):
        self.alpha0 = _positive_number("alpha0", alpha0)
        if isinstance(min_opportunities, bool) or not isinstance(
                min_opportunities, (int, np.integer)) or min_opportunities < 1:
            raise ValueError(f"min_opportunities must be an integer >= 1, got "
                             f"{min_opportunities!r}")
        self.min_opportunities = int(min_opportunities)
        super().__init__(max_alpha=max_alpha)

    def reset(self, campaign: dict | None = None) -> None:
        super().reset(campaign)
        self.ledger = DayLedger(keep_opportunities=True)
        self.last_solution: LpSolution | None = None

    def update(self, info: dict, opportunities: dict | None = None) -> None:
        """Record the tick just played: its opportunities and what was won and paid."""
        self.ledger.update(info, opportunities)

    def _alpha(self, obs: np.ndarray) -> float:
        ledger = self.ledger
        elapsed = feature(obs, "traffic_elapsed")
        if ledger.n_seen < self.min_opportunities or not 0.0 < elapsed < 1.0:
            return self.alpha0
        s = self.bid_scale.value
        copies = (1.0 - elapsed) / elapsed
        rho_c = (float(np.clip(ledger.cost_seen / ledger.won_lwc, 0.25, 4.0))
                 if ledger.won_lwc > 0 else 1.0)
        rho_v = (ledger.exposures + 1.0) / (ledger.wins + 1.0)
        budget_left = self.budget * feature(obs, "budget_left")
        scale = copies * rho_c  # money per unit of sample lwc bought
        if self.constraint == "budget":
            bid_scale, slack = None, 0.0
        else:
            cost_so_far = self.budget - budget_left
            earned = s * ledger.predicted_conversions
            bid_scale, slack = s * rho_v / rho_c, (earned - cost_so_far) / scale
        self.last_solution = sol = solve_allocation_lp(
            np.concatenate(ledger.pvalue), np.concatenate(ledger.lwc),
            budget=budget_left / scale, bid_scale=bid_scale, slack=slack)
        if sol.binding is None:
            return self.max_alpha
        if not math.isfinite(sol.threshold) or sol.threshold <= 0:
            return 1.0 / self.max_alpha
        return 1.0 / (s * sol.threshold)
