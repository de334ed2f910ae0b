"""PID bidders: budget pacing and CPA/ROI tracking.

Each bidder here steers its log bid multiplier with velocity-form PI(D) controllers
(:class:`VelocityPID`; the environment bids ``alpha x s x pvalue``, ``s`` the campaign's bid
scale) and works for CPA, ROI and budget-only campaigns. They are the PID baselines of the
NeurIPS 2024 auto-bidding competition and its AuctionNet benchmark
(Su et al., "AuctionNet: A Novel Benchmark for Decision-Making in Large-Scale Games",
NeurIPS 2024 Datasets and Benchmarks; baselines in ``alimama-tech/AuctionNet``),
after the budget-pacing controller of Zhang et al., "Feedback Control of Real-Time Display
Advertising" (WSDM 2016) and the CPA-tracking one of Yang et al., "Bid Optimization by
Multivariable Control in Display Advertising" (KDD 2019).

==============  ==========================================================================
``pid_budget``  PI(D) pacing of spend along the day's expected traffic curve
                (:func:`pacing_error`).
``pid_cpa``     PI control of the (smoothed) CPA / ROI toward its target, capped by pacing;
                uses ``update`` (:class:`agents.base.DayLedger`) when the harness calls it.
==============  ==========================================================================
"""

from __future__ import annotations

import math

import numpy as np

from agents.base import BaseAgent, DayLedger, feature
from bidenv.scoring import MAX_ALPHA
from bidenv.validation import check_number

# Smallest traffic share left used in the pacing error (the last tick's share is ~1-2%).
_MIN_SHARE_LEFT = 1e-3
# Share of the day added to spend and traffic in the pacing error (steadies the first ticks).
_PACE_SMOOTHING = 0.03


class VelocityPID:
    """A PID controller in velocity (incremental) form.

    ``step(e)`` returns the change of the control variable
    ``ki e_t + kp (e_t - e_{t-1}) + kd (e_t - 2 e_{t-1} + e_{t-2})``; summed over ticks this is
    the textbook ``kp e + ki sum(e) + kd de``. Clipping the accumulated control (here the log
    multiplier) is then a natural anti-windup: nothing integrates past the limits.
    """

    def __init__(self, kp: float, ki: float, kd: float = 0.0):
        self.kp = check_number("kp", kp, 0)
        self.ki = check_number("ki", ki, 0)
        self.kd = check_number("kd", kd, 0)
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
                 max_step: float = 0.5, alpha0: float = 1.0, max_alpha: float = MAX_ALPHA):
        self.pid = VelocityPID(kp, ki, kd)
        self.max_step = check_number("max_step", max_step, 0, low_open=True)
        self.alpha0 = check_number("alpha0", alpha0, 0, low_open=True)
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
      conversions of the opportunities won (:class:`agents.base.DayLedger`) times a calibration
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
                 max_alpha: float = MAX_ALPHA):
        self.pid = VelocityPID(kp, ki)
        self.pace_pid = VelocityPID(pace_kp, pace_ki)
        self.prior_conversions = check_number("prior_conversions", prior_conversions, 0)
        self.prediction_weight = check_number("prediction_weight", prediction_weight, 0)
        self.pace = bool(pace)
        self.max_step = check_number("max_step", max_step, 0, low_open=True)
        self.alpha0 = check_number("alpha0", alpha0, 0, low_open=True)
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
