"""Tests for :func:`bidenv.market.clear_with_budgets` against a row-by-row simulation.

The reference processes opportunities one at a time in arrival order. Each row is auctioned
(with :func:`run_auction` on that single row, itself checked against a from-scratch reference
in ``test_auction.py``) among the advertisers not yet dropped; if a winner's price on a shown
slot would take its spend in the tick above its ``budget_left``, that advertiser is dropped
from this row on and the row is re-run. When several winners of one row cannot afford their
slots at once, the one in the highest slot is dropped first (the documented order: the
earliest unaffordable purchase, in row-major order).
"""

from __future__ import annotations

import numpy as np
import pytest

from bidenv.auction import MECHANISMS, numba_available, run_auction, use_backend
from bidenv.market import clear_days_with_budgets, clear_with_budgets

BACKENDS_HERE = ["numpy"] + (["numba"] if numba_available() else [])


def sequential_reference(bids, budget_left, shown, *, n_slots, reserve, mechanism, exposure,
                         eligible):
    n, k = bids.shape
    per_row = np.ndim(n_slots) > 0
    K = int(np.max(n_slots)) if per_row else int(n_slots)
    exposure = None if exposure is None else np.asarray(exposure, dtype=np.float64)
    rng = np.random.default_rng(0)  # continuous bids: no ties, never used
    dropped = np.zeros(k, bool)
    spend = np.zeros(k)
    winners = np.full((n, K), -1, np.int64)
    prices = np.zeros((n, K))
    for r in range(n):
        k_r = int(n_slots[r]) if per_row else K
        expo_r = None
        if exposure is not None:
            expo_r = exposure if exposure.ndim == 1 else exposure[r:r + 1]
        while True:
            row = bids[r:r + 1].copy()
            row[0, dropped] = 0.0
            res = run_auction(row, n_slots=k_r, rng=rng, reserve=reserve, mechanism=mechanism,
                              exposure=expo_r, eligible=None if eligible is None
                              else eligible[r:r + 1])
            over = [int(res.winners[0, j]) for j in range(k_r)
                    if res.winners[0, j] >= 0 and shown[r, j]
                    and spend[res.winners[0, j]] + res.prices[0, j] > budget_left[
                        res.winners[0, j]]]
            if not over:
                break
            dropped[over[0]] = True  # the highest slot first
        for j in range(k_r):
            a = int(res.winners[0, j])
            winners[r, j] = a
            prices[r, j] = res.prices[0, j]
            if a >= 0 and shown[r, j]:
                spend[a] += res.prices[0, j]
    return winners, prices, spend, dropped


def random_market(seed):
    g = np.random.default_rng(seed)
    n = int(g.integers(1, 61))
    k = int(g.integers(1, 7))
    K = int(g.integers(1, 4))
    bids = g.lognormal(0.0, 0.7, size=(n, k))
    if g.random() < 0.5:
        bids = bids.astype(np.float32)
    # Tight budgets: a few purchases' worth, some zero, some ample.
    budget_left = g.uniform(0.0, 6.0, k) * g.choice([0.0, 0.3, 1.0, 1.0, 10.0], k)
    reserve = float(g.choice([0.0, 0.2, 0.5]))
    per_row = g.random() < 0.3
    n_slots = g.integers(1, K + 1, n) if per_row else K
    if per_row:
        n_slots[0] = K
    exposure = -np.sort(-g.random(K))
    if g.random() < 0.3:
        exposure = -np.sort(-g.random((n, K)), axis=1)
    shown = g.random((n, 1)) < (exposure if exposure.ndim == 2 else exposure[None, :])
    eligible = None if g.random() < 0.5 else g.random((n, k)) < 0.8
    return bids, budget_left, shown, n_slots, reserve, exposure, eligible


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_matches_sequential_reference(mechanism):
    budget_bound = 0
    for seed in range(150):
        bids, budget_left, shown, n_slots, reserve, exposure, eligible = random_market(seed)
        w_ref, p_ref, spend_ref, dropped_ref = sequential_reference(
            bids, budget_left, shown, n_slots=n_slots, reserve=reserve, mechanism=mechanism,
            exposure=exposure, eligible=eligible)
        dropped = np.zeros(bids.shape[1], bool)
        res = clear_with_budgets(bids.copy(), budget_left, shown, n_slots=n_slots,
                                 rng=np.random.default_rng(seed), reserve=reserve,
                                 mechanism=mechanism, exposure=exposure, eligible=eligible,
                                 dropped=dropped)
        np.testing.assert_array_equal(res.winners, w_ref, err_msg=f"seed {seed}")
        np.testing.assert_array_equal(dropped, dropped_ref, err_msg=f"seed {seed}")
        np.testing.assert_allclose(res.prices, p_ref, rtol=1e-12, atol=0,
                                   err_msg=f"seed {seed}")
        cost = np.where((res.winners >= 0) & shown, res.prices, 0.0)
        spend = np.bincount(res.winners[res.winners >= 0], weights=cost[res.winners >= 0],
                            minlength=bids.shape[1])
        assert np.all(spend <= budget_left), f"seed {seed}"
        np.testing.assert_allclose(spend, spend_ref, rtol=1e-12, atol=1e-12)
        plain = run_auction(bids, n_slots=n_slots, rng=np.random.default_rng(0),
                            reserve=reserve, mechanism=mechanism, exposure=exposure,
                            eligible=eligible)
        budget_bound += not np.array_equal(plain.winners, res.winners)
    # The cases really exercise the drop logic.
    assert budget_bound > 40


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_ample_budgets_equal_plain_auction(mechanism):
    for seed in range(30):
        bids, _, shown, n_slots, reserve, exposure, eligible = random_market(seed)
        budget_left = np.full(bids.shape[1], 1e9)
        before = bids.copy()
        res = clear_with_budgets(bids, budget_left, shown, n_slots=n_slots,
                                 rng=np.random.default_rng(1), reserve=reserve,
                                 mechanism=mechanism, exposure=exposure, eligible=eligible)
        plain = run_auction(before, n_slots=n_slots, rng=np.random.default_rng(1),
                            reserve=reserve, mechanism=mechanism, exposure=exposure,
                            eligible=eligible)
        for name in plain._fields:
            np.testing.assert_array_equal(getattr(res, name), getattr(plain, name))
        np.testing.assert_array_equal(bids, before)  # nothing dropped, nothing zeroed


def test_hand_worked_drop():
    # One slot, second price, three advertisers; advertiser 0 can afford two purchases.
    bids = np.array([[3.0, 2.0, 1.0]] * 4)
    shown = np.ones((4, 1), bool)
    res = clear_with_budgets(bids, np.array([4.5, 100.0, 100.0]), shown, n_slots=1,
                             rng=np.random.default_rng(0), mechanism="gsp")
    # Rows 0, 1: advertiser 0 wins at 2 (spend 4). Row 2 would take it to 6 > 4.5: dropped,
    # advertiser 1 wins at 1 from then on.
    assert res.winners[:, 0].tolist() == [0, 0, 1, 1]
    assert res.prices[:, 0].tolist() == [2.0, 2.0, 1.0, 1.0]
    # Bids of the dropped advertiser are zeroed in place from the drop row on.
    assert bids[:, 0].tolist() == [3.0, 3.0, 0.0, 0.0]


def test_unshown_slots_cost_nothing():
    # Advertiser 0 has no money but its slot is never shown: it keeps winning.
    bids = np.array([[3.0, 2.0, 1.0]] * 3)
    shown = np.zeros((3, 1), bool)
    res = clear_with_budgets(bids, np.array([0.0, 0.0, 0.0]), shown, n_slots=1,
                             rng=np.random.default_rng(0))
    assert res.winners[:, 0].tolist() == [0, 0, 0]


def test_exact_budget_is_affordable():
    # Spend may reach the budget exactly ("above budget_left" is what triggers a drop).
    bids = np.array([[3.0, 2.0]] * 3)
    shown = np.ones((3, 1), bool)
    res = clear_with_budgets(bids, np.array([4.0, 10.0]), shown, n_slots=1,
                             rng=np.random.default_rng(0))
    assert res.winners[:, 0].tolist() == [0, 0, 1]


@pytest.mark.parametrize("backend", BACKENDS_HERE)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_days_cleared_in_one_pass_equal_days_cleared_alone(mechanism, backend):
    # Several days' ticks in one auction pass: each day's result, in-place withdrawals,
    # dropped bidders and what its generator drew equal clearing that day alone. Bids on a
    # coarse grid make ties common (their draws must come from the right day's generator);
    # tight budgets make days go through the withdrawal loop.
    g = np.random.default_rng(7)
    overran = tied = 0
    with use_backend(backend):
        for case in range(40):
            n_days, k, K = int(g.integers(1, 6)), int(g.integers(2, 9)), int(g.integers(1, 4))
            per_row = bool(g.random() < 0.4)
            curve = -np.sort(-g.random(K))  # one slot layout for days grouped together
            days = []
            for _ in range(n_days):
                n = int(g.integers(0, 40))
                bids = np.round(g.lognormal(0.0, 0.6, size=(n, k)) * 4) / 4
                bids = bids.astype(np.float32 if case % 2 else np.float64)
                n_slots = g.integers(1, K + 1, n) if per_row else K
                if per_row and n:
                    n_slots[0] = K  # every day's tick has K slots (the grouping condition)
                exposure = curve
                if per_row:  # per-row curves may differ
                    exposure = -np.sort(-g.random((n, K)), axis=1)
                shown = g.random((n, 1)) < (exposure if per_row else exposure[None, :])
                budget = g.uniform(0.0, 8.0, k) * g.choice([0.3, 1.0, 10.0], k)
                eligible = g.random((n, k)) < 0.85
                days.append((bids, n_slots, exposure, shown, budget, eligible))
            if per_row and any(len(d[0]) == 0 for d in days):
                continue  # an empty tick has no per-row slot count to group by
            seeds = g.integers(0, 2**31, n_days)
            alone, alone_bids, alone_dropped, alone_rngs = [], [], [], []
            for (bids, n_slots, exposure, shown, budget, eligible), s in zip(days, seeds):
                b, dropped, rng = bids.copy(), np.zeros(k, bool), np.random.default_rng(s)
                alone.append(clear_with_budgets(
                    b, budget, shown, n_slots=n_slots, rng=rng, reserve=0.25,
                    mechanism=mechanism, exposure=exposure, eligible=eligible,
                    dropped=dropped))
                alone_bids.append(b)
                alone_dropped.append(dropped)
                alone_rngs.append(rng.random())
                tied += bool(_tied_rows_of(bids, eligible, K).any())
            bounds = np.concatenate([[0], np.cumsum([len(d[0]) for d in days])])
            cat = lambda i, days=days: np.concatenate([d[i] for d in days])  # noqa: E731
            all_bids = cat(0)
            dropped = [np.zeros(k, bool) for _ in range(n_days)]
            rngs = [np.random.default_rng(s) for s in seeds]
            together = clear_days_with_budgets(
                all_bids, bounds, np.stack([d[4] for d in days]), cat(3),
                n_slots=cat(1) if per_row else K, rngs=rngs, reserve=0.25,
                mechanism=mechanism, exposure=cat(2) if per_row else days[0][2],
                eligible=cat(5), dropped=dropped)
            for d in range(n_days):
                for name in alone[d]._fields:
                    np.testing.assert_array_equal(getattr(together[d], name),
                                                  getattr(alone[d], name),
                                                  err_msg=f"case {case} day {d} {name}")
                np.testing.assert_array_equal(all_bids[bounds[d]:bounds[d + 1]], alone_bids[d])
                np.testing.assert_array_equal(dropped[d], alone_dropped[d])
                assert rngs[d].random() == alone_rngs[d]  # the same draws, day by day
                overran += bool(alone_dropped[d].any())
    assert overran > 10 and tied > 10  # the cases exercise withdrawals and ties


def _tied_rows_of(bids, eligible, K):
    entering = np.where(eligible & (bids >= 0.25), bids, 0)
    top = -np.sort(-entering, axis=1)[:, :K + 1]
    return ((top[:, :-1] == top[:, 1:]) & (top[:, :-1] > 0)).any(axis=1)


def test_row_groups_are_checked():
    bids = np.ones((4, 3))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="row_groups"):
        run_auction(bids, n_slots=1, rng=[rng, rng], row_groups=[0, 3, 5])
    with pytest.raises(TypeError, match="one per row group"):
        run_auction(bids, n_slots=1, rng=rng, row_groups=[0, 2, 4])
