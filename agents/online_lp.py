"""The online-LP bidder: re-plans the rest of the day each tick as a linear program.

:class:`OnlineLpAgent` (registered as ``online_lp``) is the online-LP baseline of the NeurIPS
2024 auto-bidding competition and its AuctionNet benchmark
(Su et al., "AuctionNet: A Novel Benchmark for Decision-Making in Large-Scale Games",
NeurIPS 2024 Datasets and Benchmarks; baselines in ``alimama-tech/AuctionNet``):
it treats the opportunities seen so far today (:class:`agents.base.DayLedger`, filled by
``update``; the evaluation harness calls it) as a sample of the rest of the day, solves
:func:`agents.lp.solve_allocation_lp` on them, and bids the multiplier of the LP's efficiency
threshold (He et al., "A Unified Solution to Constrained Bidding in Online Display
Advertising", KDD 2021). Works for CPA, ROI and budget-only campaigns.
"""

from __future__ import annotations

import math

import numpy as np

from agents.base import BaseAgent, DayLedger, feature
from agents.lp import LpSolution, solve_allocation_lp
from bidenv.scoring import MAX_ALPHA
from bidenv.validation import check_int, check_number


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
    :func:`agents.lp.solve_allocation_lp` then maximises value subject to the budget left and the
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
                 max_alpha: float = MAX_ALPHA):
        self.alpha0 = check_number("alpha0", alpha0, 0, low_open=True)
        self.min_opportunities = check_int("min_opportunities", min_opportunities, 1)
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
