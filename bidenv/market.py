"""Clearing a tick's auctions under budgets: who can still afford what, in arrival order."""

from __future__ import annotations

import numpy as np

from bidenv.auction import AuctionResult, run_auction


def clear_with_budgets(bids: np.ndarray, budget_left: np.ndarray, shown: np.ndarray, *,
                       n_slots, rng: np.random.Generator, reserve: float = 0.0,
                       mechanism: str = "gsp", exposure=None, eligible=None,
                       result: AuctionResult | None = None,
                       dropped: np.ndarray | None = None) -> AuctionResult:
    """Run a tick's auctions so that no advertiser spends more than its remaining budget.

    Opportunities (rows) are served in arrival order and an advertiser pays
    ``prices[r, j]`` only where its slot is ``shown[r, j]``. When an advertiser's next
    purchase would take its spend in the tick above ``budget_left``, it is dropped from that
    auction and from every later one of the tick (its bids are withdrawn and those auctions
    re-run without it), exactly as a row-by-row simulation would do. Events are processed in
    row order (the earliest unaffordable purchase first), so the result equals the sequential
    simulation; each re-run touches only the rows where the dropped advertiser was among the
    top ``K + 1`` bids, which keeps this cheap (at most one re-run per advertiser that runs
    out of money in the tick).

    Args:
        bids: (n, k) bids; columns of dropped advertisers are set to 0 **in place**.
        budget_left: (k,) money each advertiser may still spend (>= 0).
        shown: (n, K) bool, whether slot j of row r is exposed (the cascade drawn by the
            caller; exposure does not depend on who wins).
        n_slots, rng, reserve, mechanism, exposure, eligible: As :func:`run_auction`.
        result: The auction already run on ``bids`` (saves one run), or None.
        dropped: Optional (k,) bool array; advertisers dropped for lack of budget are set True.

    Returns:
        The :class:`~bidenv.auction.AuctionResult` after all drops.
    """
    n, k = bids.shape
    per_row = np.ndim(n_slots) > 0
    res = result if result is not None else run_auction(
        bids, n_slots=n_slots, rng=rng, reserve=reserve, mechanism=mechanism,
        exposure=exposure, eligible=eligible)
    for _ in range(k + 1):
        won = res.winners >= 0
        cost = np.where(won & shown, res.prices, 0.0)
        paying = won & (cost > 0)
        adv_cost = np.bincount(res.winners[paying], weights=cost[paying], minlength=k)
        over = np.nonzero(adv_cost > budget_left)[0]
        if len(over) == 0:
            return res
        # The earliest row at which some advertiser cannot afford its purchase.
        first_row, first_adv = n, -1
        for a in over:
            rows, slots = np.nonzero((res.winners == a) & paying)
            spend = np.cumsum(cost[rows, slots])
            cut = int(rows[np.searchsorted(spend, budget_left[a], side="right")])
            if cut < first_row:
                first_row, first_adv = cut, a
        bids[first_row:, first_adv] = 0.0
        if dropped is not None:
            dropped[first_adv] = True
        tail = res.order[first_row:]
        idx = first_row + np.nonzero((tail == first_adv).any(axis=1))[0]
        sub = run_auction(
            bids[idx], n_slots=n_slots[idx] if per_row else n_slots, rng=rng, reserve=reserve,
            mechanism=mechanism,
            exposure=exposure[idx] if exposure is not None and np.ndim(exposure) == 2
            else exposure,
            eligible=None if eligible is None else eligible[idx])
        for name in AuctionResult._fields:
            getattr(res, name)[idx] = getattr(sub, name)
    raise RuntimeError("budget clearing did not converge")  # pragma: no cover
