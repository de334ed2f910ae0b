"""Clearing a tick's auctions under budgets: who can still afford what, in arrival order."""

from __future__ import annotations

import numpy as np

from bidenv.auction import AuctionResult, price_sorted, run_auction


def clear_with_budgets(bids: np.ndarray, budget_left: np.ndarray, shown: np.ndarray, *,
                       n_slots, rng: np.random.Generator, reserve: float = 0.0,
                       mechanism: str = "gsp", exposure=None, eligible=None,
                       dropped: np.ndarray | None = None) -> AuctionResult:
    """Run a tick's auctions so that no advertiser spends more than its remaining budget.

    Opportunities (rows) are served in arrival order and an advertiser pays
    ``prices[r, j]`` only where its slot is ``shown[r, j]``. When an advertiser's next
    purchase would take its spend in the tick above ``budget_left``, it is dropped from that
    auction and from every later one of the tick (its bids are withdrawn and those auctions
    re-cleared without it), exactly as a row-by-row simulation would do. Events are processed
    in row order (the earliest unaffordable purchase first; within a row, the one in the
    highest slot first), so the result equals the sequential simulation.

    To make a withdrawal cheap, the auction keeps one spare candidate per row (the K+2-th
    best bid): withdrawing a bidder from a row shifts the candidates below it up, and only a
    row that has already used its spare is re-auctioned from the bids.

    Args:
        bids: (n, k) bids; columns of dropped advertisers are set to 0 **in place** from the
            row where they dropped out.
        budget_left: (k,) money each advertiser may still spend (>= 0).
        shown: (n, K) bool, whether slot j of row r is exposed (the cascade drawn by the
            caller; exposure does not depend on who wins).
        n_slots, rng, reserve, mechanism, exposure, eligible: As :func:`run_auction`.
        dropped: Optional (k,) bool array; advertisers dropped for lack of budget are set True.

    Returns:
        The :class:`~bidenv.auction.AuctionResult` after all drops.
    """
    deep = run_auction(bids, n_slots=n_slots + 1, rng=rng, reserve=reserve, mechanism="gsp",
                       eligible=eligible)
    return _enforce_budgets(deep.order, deep.top_bids, bids, budget_left, shown,
                            n_slots=n_slots, rng=rng, reserve=reserve, mechanism=mechanism,
                            exposure=exposure, eligible=eligible, dropped=dropped)


def _enforce_budgets(order, top, bids, budget_left, shown, *, n_slots, rng, reserve,
                     mechanism, exposure, eligible, dropped, priced=None) -> AuctionResult:
    """Price the rows from their K + 2 best entering bids (``order``, ``top``: the deep
    auction, updated in place), then withdraw bidders who cannot afford a purchase, in row
    order, as :func:`clear_with_budgets` describes. ``priced``: the rows already priced from
    those candidates (updated in place), when the caller has them."""
    n, k = bids.shape
    per_row = np.ndim(n_slots) > 0
    deeper = n_slots + 1
    width = order.shape[1] - 1  # K + 1
    spare = np.ones(n, bool)

    def price(rows=None):
        o = order[:, :width] if rows is None else order[rows, :width]
        t = top[:, :width] if rows is None else top[rows, :width]
        slots = n_slots if not per_row else (n_slots if rows is None else n_slots[rows])
        expo = exposure
        if rows is not None and exposure is not None and np.ndim(exposure) == 2:
            expo = exposure[rows]
        return price_sorted(np.ascontiguousarray(o), np.ascontiguousarray(t), n_slots=slots,
                            reserve=reserve, mechanism=mechanism, exposure=expo)

    res = price() if priced is None else priced
    start, base = 0, np.zeros(k)  # rows before `start` are final; `base` is their cost
    K = res.winners.shape[1]
    for _ in range(k + 1):
        # Purchases (shown slots won) from row `start` on, in arrival order (row-major).
        w = res.winners[start:]
        flat = np.flatnonzero((w >= 0) & shown[start:])
        buyer = w.ravel()[flat]
        cost = res.prices[start:].ravel()[flat]
        spent = base + np.bincount(buyer, weights=cost, minlength=k)
        if not np.any(spent > budget_left):
            return res
        # Each buyer's running spend, via a stable sort by buyer; the earliest purchase that
        # overruns a budget (lowest row, then highest slot) is the next event.
        by_buyer = np.argsort(buyer, kind="stable")
        b_sorted, c_sorted = buyer[by_buyer], cost[by_buyer]
        running = np.cumsum(c_sorted)
        group_start = np.searchsorted(b_sorted, b_sorted, side="left")
        running -= running[group_start] - c_sorted[group_start]
        overrun = base[b_sorted] + running > budget_left[b_sorted]
        first_flat = int(flat[by_buyer[overrun]].min())
        first_row = start + first_flat // K
        first_adv = int(w.ravel()[first_flat])
        done = flat < (first_row - start) * K
        base += np.bincount(buyer[done], weights=cost[done], minlength=k)
        start = first_row
        # Withdraw the bidder from row `first_row` on.
        bids[first_row:, first_adv] = 0.0
        if dropped is not None:
            dropped[first_adv] = True
        hit = first_row + np.nonzero((order[first_row:] == first_adv).any(axis=1))[0]
        if len(hit) == 0:
            continue
        # Rows with a spare: shift the candidates below the bidder up by one.
        easy, hard = hit[spare[hit]], hit[~spare[hit]]
        if len(easy):
            o, t = order[easy], top[easy]
            keep = o != first_adv
            pos = np.cumsum(keep, axis=1) - 1
            new_o = np.full_like(o, -1)
            new_t = np.full_like(t, -np.inf)
            r, c = np.nonzero(keep)
            new_o[r, pos[r, c]] = o[r, c]
            new_t[r, pos[r, c]] = t[r, c]
            order[easy], top[easy] = new_o, new_t
            spare[easy] = False
        if len(hard):
            sub = run_auction(
                bids[hard], n_slots=deeper[hard] if per_row else deeper, rng=rng,
                reserve=reserve, mechanism="gsp",
                eligible=None if eligible is None else eligible[hard])
            w_sub = sub.order.shape[1]  # narrower if these rows all have fewer slots
            order[hard] = -1
            top[hard] = -np.inf
            order[hard, :w_sub], top[hard, :w_sub] = sub.order, sub.top_bids
            spare[hard] = True
        sub = price(hit)
        for name in ("winners", "prices", "least_winning_cost"):
            getattr(res, name)[hit] = getattr(sub, name)
        res.order[hit] = order[hit, :width]
        res.top_bids[hit] = top[hit, :width]
    raise RuntimeError("budget clearing did not converge")  # pragma: no cover


def clear_days_with_budgets(bids: np.ndarray, bounds: np.ndarray, budget_left: np.ndarray,
                            shown: np.ndarray, *, n_slots, rngs, reserve: float = 0.0,
                            mechanism: str = "gsp", exposure=None, eligible=None,
                            dropped=None) -> list[AuctionResult]:
    """:func:`clear_with_budgets` for the ticks of several independent days in one pass.

    Day ``d`` owns rows ``bounds[d]:bounds[d + 1]`` of ``bids`` (and of ``shown``, and of
    ``n_slots``, ``exposure`` and ``eligible`` when they are per row), its own budgets
    ``budget_left[d]`` ((D, k) array), tie-breaking generator ``rngs[d]`` and ``dropped[d]``
    (a (k,) bool array per day, or None). Result ``d``
    equals ``clear_with_budgets`` on day ``d``'s rows alone with ``rngs[d]`` (every generator
    draws what it would alone), provided every day's rows have the same slot count
    ``max(n_slots)``. One auction pass finds every row's candidates and prices them; only the
    days where somebody cannot afford a purchase go through the withdrawal loop, each on its
    own rows.
    """
    bounds = np.asarray(bounds, dtype=np.int64)
    n_days, k = budget_left.shape
    deep = run_auction(bids, n_slots=n_slots + 1, rng=list(rngs), row_groups=bounds,
                       reserve=reserve, mechanism="gsp", eligible=eligible)
    order, top = deep.order, deep.top_bids
    width = order.shape[1] - 1
    res = price_sorted(np.ascontiguousarray(order[:, :width]),
                       np.ascontiguousarray(top[:, :width]), n_slots=n_slots,
                       reserve=reserve, mechanism=mechanism, exposure=exposure)
    K = res.winners.shape[1]
    flat = np.flatnonzero((res.winners >= 0) & shown)
    day = np.searchsorted(bounds, flat // K, side="right") - 1
    spent = np.bincount(day * k + res.winners.ravel()[flat], weights=res.prices.ravel()[flat],
                        minlength=n_days * k).reshape(n_days, k)
    over = (spent > budget_left).any(axis=1)
    per_row = lambda a, lo, hi: a[lo:hi] if np.ndim(a) > 0 else a  # noqa: E731
    out = []
    for d in range(n_days):
        lo, hi = int(bounds[d]), int(bounds[d + 1])
        # Day d's rows of the priced result (views: the withdrawal loop updates them).
        day_res = AuctionResult(*(field[lo:hi] for field in res))
        if over[d]:
            day_res = _enforce_budgets(
                order[lo:hi], top[lo:hi], bids[lo:hi], budget_left[d], shown[lo:hi],
                n_slots=per_row(n_slots, lo, hi), rng=rngs[d], reserve=reserve,
                mechanism=mechanism,
                exposure=exposure[lo:hi] if np.ndim(exposure) == 2 else exposure,
                eligible=None if eligible is None else eligible[lo:hi],
                dropped=None if dropped is None else dropped[d], priced=day_res)
        out.append(day_res)
    return out
