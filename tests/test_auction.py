"""Tests for :mod:`bidenv.auction`.

The core check compares :func:`run_auction` against a deliberately naive,
per-row pure-Python reference that implements the entry, allocation and
pricing rules from scratch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bidenv.auction import (
    MECHANISMS,
    AuctionResult,
    numba_available,
    run_auction,
    use_backend,
    validate_exposure,
)


@pytest.fixture(
    scope="module",
    autouse=True,
    params=[
        "numpy",
        pytest.param("numba", marks=pytest.mark.skipif(not numba_available(),
                                                       reason="numba not installed")),
    ],
)
def backend(request):
    """Every test of this module runs under each auction backend."""
    with use_backend(request.param):
        yield request.param


HYP = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --------------------------------------------------------------------------- #
# Pure-Python reference
# --------------------------------------------------------------------------- #


def reference_row(bids_row, elig_row, reserve, k_row, k_max, mechanism, expo_row):
    """Clear one row by brute force.

    Returns (winners, winning_bids, prices, lwc, entrants_sorted) where winners
    and prices have length k_max and entrants_sorted is a list of
    (bid, advertiser) of all entrants, highest bid first (ties in arbitrary
    order).
    """
    entrants = []
    for a, raw in enumerate(bids_row):
        b = float(raw)
        if elig_row is not None and not elig_row[a]:
            continue
        if not math.isfinite(b) or b < reserve or b <= 0.0:
            continue
        entrants.append((b, a))
    entrants.sort(key=lambda t: -t[0])

    def bid_at(j):  # j-th highest entering bid (0-based), None if missing
        return entrants[j][0] if j < len(entrants) else None

    def floor_price(j):  # max(reserve, b_{j+1}) in 0-based terms
        nb = bid_at(j + 1)
        return reserve if nb is None else max(reserve, nb)

    winners = [-1] * k_max
    win_bids = [None] * k_max
    prices = [0.0] * k_max
    for j in range(min(k_row, len(entrants))):
        winners[j] = entrants[j][1]
        win_bids[j] = entrants[j][0]
        if mechanism == "gsp":
            prices[j] = floor_price(j)
        elif mechanism == "first_price":
            prices[j] = entrants[j][0]
        else:
            e = [float(x) for x in expo_row[:k_row]] + [0.0]
            if e[j] == 0.0:
                prices[j] = floor_price(j)
            else:
                total = 0.0
                for m in range(j, k_row):
                    total += (e[m] - e[m + 1]) * floor_price(m)
                prices[j] = total / e[j]
    lwc = floor_price(k_row - 1)
    return winners, win_bids, prices, lwc, entrants


def reference(bids, n_slots, reserve, mechanism, exposure=None, eligible=None):
    """Apply :func:`reference_row` to every row; returns numpy arrays."""
    n, _ = bids.shape
    if np.ndim(n_slots) == 0:
        k_rows = [int(n_slots)] * n
        k_max = int(n_slots)
    else:
        k_rows = [int(x) for x in n_slots]
        k_max = max(k_rows) if n else 1
    winners = np.full((n, k_max), -1, dtype=np.int64)
    win_bids = np.full((n, k_max), np.nan)
    prices = np.zeros((n, k_max))
    lwc = np.zeros(n)
    entrants = []
    for r in range(n):
        expo_row = None
        if exposure is not None:
            ex = np.asarray(exposure, dtype=float)
            expo_row = ex if ex.ndim == 1 else ex[r]
        w, wb, p, c, ent = reference_row(
            bids[r],
            None if eligible is None else eligible[r],
            reserve,
            k_rows[r],
            k_max,
            mechanism,
            expo_row,
        )
        winners[r] = w
        win_bids[r] = [np.nan if x is None else x for x in wb]
        prices[r] = p
        lwc[r] = c
        entrants.append(ent)
    return winners, win_bids, prices, lwc, entrants


def random_case(seed, *, integer_bids=False):
    """A random small auction configuration (continuous bids unless asked)."""
    g = np.random.default_rng(seed)
    n = int(g.integers(0, 51))
    k = int(g.integers(1, 9))
    k_max = int(g.integers(1, 5))
    if integer_bids:
        bids = g.integers(0, 5, size=(n, k)).astype(np.float64)
    else:
        bids = g.lognormal(0.0, 1.0, size=(n, k))
        # Some non-entering bids: zero, negative, NaN, +-inf.
        special = g.random((n, k)) < 0.1
        bids[special] = g.choice(
            [0.0, -1.0, np.nan, np.inf, -np.inf], size=int(special.sum())
        )
    if g.random() < 0.5:
        bids = bids.astype(np.float32)
    reserve = float(g.choice([0.0, 0.0, 0.3, 1.0, 2.5]))
    if integer_bids:
        reserve = float(g.choice([0.0, 1.0, 2.0]))
    n_slots = k_max if g.random() < 0.5 else g.integers(1, k_max + 1, size=n)
    if np.ndim(n_slots) == 1 and n > 0:
        n_slots[0] = k_max  # keep the maximum equal to k_max
    eligible = None if g.random() < 0.4 else g.random((n, k)) < 0.8
    if g.random() < 0.5:
        exposure = -np.sort(-g.random(k_max))
        if g.random() < 0.3:
            exposure[-1] = 0.0
    else:
        exposure = -np.sort(-g.random((n, k_max)), axis=1)
        if g.random() < 0.3 and n:
            exposure[:, -1] = 0.0
    return bids, n_slots, k_max, reserve, eligible, exposure


# --------------------------------------------------------------------------- #
# Agreement with the reference
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_matches_reference_continuous_bids(mechanism):
    for seed in range(120):
        bids, n_slots, k_max, reserve, eligible, exposure = random_case(seed)
        res = run_auction(
            bids,
            n_slots=n_slots,
            rng=np.random.default_rng(seed),
            reserve=reserve,
            mechanism=mechanism,
            exposure=exposure,
            eligible=eligible,
            chunk_rows=int(np.random.default_rng(seed).integers(1, 20)),
        )
        assert isinstance(res, AuctionResult)
        w, _, p, c, ent = reference(
            bids, n_slots, reserve, mechanism, exposure, eligible
        )
        n = bids.shape[0]
        assert res.winners.shape == (n, k_max) and res.winners.dtype == np.int64
        assert res.prices.shape == (n, k_max) and res.prices.dtype == np.float64
        assert res.order.shape == (n, k_max + 1) and res.order.dtype == np.int64
        assert res.top_bids.shape == (n, k_max + 1) and res.top_bids.dtype == bids.dtype
        assert res.least_winning_cost.shape == (n,)
        np.testing.assert_array_equal(res.winners, w, err_msg=f"seed {seed}")
        np.testing.assert_allclose(
            res.prices, p, rtol=1e-12, atol=1e-12, err_msg=f"seed {seed}"
        )
        np.testing.assert_allclose(
            res.least_winning_cost, c, rtol=1e-12, err_msg=f"seed {seed}"
        )
        for r in range(n):
            exp_order = [a for _, a in ent[r][: k_max + 1]]
            exp_order += [-1] * (k_max + 1 - len(exp_order))
            assert res.order[r].tolist() == exp_order, f"seed {seed} row {r}"
            got = res.top_bids[r]
            assert np.all(np.isneginf(got[np.asarray(exp_order) < 0]))
            filled = np.asarray(exp_order) >= 0
            np.testing.assert_array_equal(
                got[filled], bids[r, np.asarray(exp_order)[filled]]
            )


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_matches_reference_with_ties(mechanism):
    for seed in range(120):
        bids, n_slots, k_max, reserve, eligible, exposure = random_case(
            1000 + seed, integer_bids=True
        )
        res = run_auction(
            bids,
            n_slots=n_slots,
            rng=np.random.default_rng(seed),
            reserve=reserve,
            mechanism=mechanism,
            exposure=exposure,
            eligible=eligible,
        )
        w, wb, p, c, ent = reference(
            bids, n_slots, reserve, mechanism, exposure, eligible
        )
        filled = w >= 0
        np.testing.assert_array_equal(res.winners >= 0, filled)
        # Winning bid value per slot is unique even though the winner is not.
        got_vals = np.where(
            filled,
            bids[np.arange(bids.shape[0])[:, None], np.maximum(res.winners, 0)],
            np.nan,
        )
        np.testing.assert_array_equal(got_vals, wb)
        np.testing.assert_allclose(res.prices, p, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(res.least_winning_cost, c, rtol=1e-12)
        for r in range(bids.shape[0]):
            won = res.winners[r][res.winners[r] >= 0].tolist()
            assert len(set(won)) == len(won)
            entrants = {a for _, a in ent[r]}
            assert set(won) <= entrants
            # top_bids holds the K+1 largest entering values in order.
            exp_vals = [b for b, _ in ent[r][: k_max + 1]]
            exp_vals += [-np.inf] * (k_max + 1 - len(exp_vals))
            np.testing.assert_array_equal(res.top_bids[r], exp_vals)


# --------------------------------------------------------------------------- #
# Ties: fairness, reproducibility, no rng use without ties
# --------------------------------------------------------------------------- #


def test_two_way_tie_is_fair():
    n = 20_000
    bids = np.zeros((n, 3))
    bids[:, 0] = 2.0
    bids[:, 1] = 2.0
    bids[:, 2] = 1.0
    res = run_auction(bids, n_slots=1, rng=np.random.default_rng(123))
    share = np.bincount(res.winners[:, 0], minlength=3) / n
    assert abs(share[0] - 0.5) < 0.02
    assert abs(share[1] - 0.5) < 0.02
    assert share[2] == 0.0
    np.testing.assert_array_equal(res.prices[:, 0], 2.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_way_tie_straddling_boundary_is_fair(dtype):
    # 10 advertisers tie for 3 slots: each should win some slot in 30% of rows,
    # and each slot individually 10% of the time, even though argpartition only
    # looks at K + 1 = 4 of them.
    n, k, k_slots = 20_000, 12, 3
    bids = np.full((n, k), 5.0, dtype=dtype)
    bids[:, 10:] = 1.0
    res = run_auction(bids, n_slots=k_slots, rng=np.random.default_rng(7))
    assert np.all(res.winners < 10)
    any_slot = np.bincount(res.winners.ravel(), minlength=k)[:10] / n
    np.testing.assert_allclose(any_slot, 0.3, atol=0.02)
    top_slot = np.bincount(res.winners[:, 0], minlength=k)[:10] / n
    np.testing.assert_allclose(top_slot, 0.1, atol=0.02)
    np.testing.assert_array_equal(res.prices, 5.0)
    np.testing.assert_array_equal(res.least_winning_cost, 5.0)


def test_all_advertisers_tied_is_fair():
    n, k = 20_000, 8
    res = run_auction(np.full((n, k), 2.5), n_slots=1, rng=np.random.default_rng(31))
    share = np.bincount(res.winners[:, 0], minlength=k) / n
    np.testing.assert_allclose(share, 1 / k, atol=0.02)


def test_tie_between_winners_randomises_slot_order():
    n = 20_000
    bids = np.tile([5.0, 5.0, 1.0, 0.5], (n, 1))
    res = run_auction(bids, n_slots=2, rng=np.random.default_rng(8))
    assert set(np.unique(res.winners).tolist()) == {0, 1}
    assert abs(np.mean(res.winners[:, 0] == 0) - 0.5) < 0.02
    np.testing.assert_array_equal(res.prices, np.tile([5.0, 1.0], (n, 1)))


def test_tie_results_reproducible_for_same_seed():
    g = np.random.default_rng(5)
    bids = g.integers(1, 4, size=(2000, 8)).astype(np.float64)
    slots = g.integers(1, 4, size=2000)
    a = run_auction(bids, n_slots=slots, rng=np.random.default_rng(99), chunk_rows=300)
    b = run_auction(bids, n_slots=slots, rng=np.random.default_rng(99), chunk_rows=300)
    c = run_auction(bids, n_slots=slots, rng=np.random.default_rng(100), chunk_rows=300)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.winners, c.winners)


def test_no_random_draws_without_relevant_ties():
    g = np.random.default_rng(11)
    bids = g.lognormal(size=(500, 6))
    # Ties that cannot matter: below the boundary and among non-entrants.
    bids[:, 4] = 1e-9
    bids[:, 5] = 1e-9
    bids[:10, :] = 0.0
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    res1 = run_auction(bids, n_slots=2, rng=rng, reserve=0.0)
    assert rng.bit_generator.state == state
    res2 = run_auction(bids, n_slots=2, rng=np.random.default_rng(12345))
    for x, y in zip(res1, res2):
        np.testing.assert_array_equal(x, y)


def test_tie_below_last_slot_of_short_row_draws_nothing():
    # Row has 1 slot: the tie between 2nd and 3rd bid does not matter.
    bids = np.array([[3.0, 2.0, 2.0, 1.0]])
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    res = run_auction(bids, n_slots=np.array([1]), rng=rng)
    assert rng.bit_generator.state == state
    assert res.winners.tolist() == [[0]]
    assert res.prices.tolist() == [[2.0]]


# --------------------------------------------------------------------------- #
# Hypothesis properties
# --------------------------------------------------------------------------- #


@st.composite
def auctions(draw):
    n = draw(st.integers(1, 12))
    k = draw(st.integers(1, 7))
    k_max = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    # Few distinct values so that ties are common.
    values = st.sampled_from([0.0, -1.0, 0.5, 1.0, 1.5, 2.0, 3.0, 7.25, np.nan, np.inf])
    bids = draw(hnp.arrays(dtype, (n, k), elements=values))
    reserve = draw(st.sampled_from([0.0, 0.5, 1.0, 1.7]))
    if draw(st.booleans()):
        n_slots = k_max
    else:
        n_slots = np.array(
            draw(st.lists(st.integers(1, k_max), min_size=n, max_size=n))
        )
    eligible = draw(st.none() | hnp.arrays(np.bool_, (n, k)))
    expo = sorted(draw(st.lists(st.floats(0.0, 1.0), min_size=k_max, max_size=k_max)))[
        ::-1
    ]
    seed = draw(st.integers(0, 2**32 - 1))
    return bids, n_slots, reserve, eligible, np.array(expo), seed


def _entering(bids, reserve, eligible):
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(bids) & (bids.astype(np.float64) >= reserve) & (bids > 0)
    if eligible is not None:
        ok &= eligible
    return ok


@HYP
@given(auctions(), st.sampled_from(MECHANISMS))
def test_properties(case, mechanism):
    bids, n_slots, reserve, eligible, expo, seed = case
    original = bids.copy()
    res = run_auction(
        bids,
        n_slots=n_slots,
        rng=np.random.default_rng(seed),
        reserve=reserve,
        mechanism=mechanism,
        exposure=expo,
        eligible=eligible,
    )
    np.testing.assert_array_equal(bids, original)  # caller's array untouched
    n = bids.shape[0]
    k_max = res.winners.shape[1]
    k_rows = np.broadcast_to(np.asarray(n_slots), (n,))
    enter = _entering(bids, reserve, eligible)
    w = res.winners
    won = w >= 0
    rows = np.arange(n)[:, None]
    win_bid = np.where(won, bids[rows, np.maximum(w, 0)].astype(np.float64), np.nan)

    # Slots are filled from the top, up to min(K_r, entrants).
    n_filled = np.minimum(k_rows, enter.sum(axis=1))
    np.testing.assert_array_equal(won, np.arange(k_max) < n_filled[:, None])
    # Only entrants win, nobody wins twice in a row.
    assert np.all(enter[rows, np.maximum(w, 0)][won])
    for r in range(n):
        ws = w[r][won[r]]
        assert len(set(ws.tolist())) == ws.size
    # Winners are ranked by bid.
    both = won[:, :-1] & won[:, 1:]
    assert np.all(win_bid[:, :-1][both] >= win_bid[:, 1:][both])
    # Price bounds.
    p = res.prices
    assert np.all(p[~won] == 0.0)
    assert np.all(p[won] <= win_bid[won] + 1e-12)
    assert np.all(p[won] >= reserve - 1e-12)
    assert np.all(res.least_winning_cost >= reserve)

    gsp = run_auction(
        bids,
        n_slots=n_slots,
        rng=np.random.default_rng(seed),
        reserve=reserve,
        mechanism="gsp",
        eligible=eligible,
    )
    np.testing.assert_array_equal(gsp.winners, w)  # same draws -> same allocation
    if mechanism == "gsp":
        # Slot j pays the bid of the slot j+1 winner when that slot is filled.
        np.testing.assert_array_equal(p[:, :-1][both], win_bid[:, 1:][both])
    if mechanism == "vcg":
        assert np.all(p <= gsp.prices + 1e-12)
    if mechanism == "first_price":
        np.testing.assert_array_equal(p[won], win_bid[won])


@HYP
@given(auctions())
def test_vcg_equals_gsp_for_single_slot(case):
    bids, _, reserve, eligible, expo, seed = case
    kwargs = {"n_slots": 1, "reserve": reserve, "eligible": eligible}
    v = run_auction(
        bids,
        rng=np.random.default_rng(seed),
        mechanism="vcg",
        exposure=expo[:1],
        **kwargs,
    )
    g = run_auction(bids, rng=np.random.default_rng(seed), mechanism="gsp", **kwargs)
    np.testing.assert_array_equal(v.winners, g.winners)
    np.testing.assert_allclose(v.prices, g.prices, rtol=1e-12)


# --------------------------------------------------------------------------- #
# Economic sanity
# --------------------------------------------------------------------------- #


def test_second_price_truthful_bidding_maximises_surplus():
    g = np.random.default_rng(2024)
    n, k = 5000, 6
    values = g.lognormal(0.0, 0.5, size=n)
    others = g.lognormal(0.0, 0.5, size=(n, k - 1))
    surplus = {}
    for alpha in np.round(np.arange(0.5, 1.51, 0.05), 2):
        bids = np.column_stack([alpha * values, others])
        res = run_auction(bids, n_slots=1, rng=np.random.default_rng(0), reserve=0.2)
        wins = res.winners[:, 0] == 0
        surplus[alpha] = float(np.sum(values[wins] - res.prices[wins, 0]))
    best = surplus[1.0]
    assert all(best >= s - 1e-9 for s in surplus.values())
    assert best > surplus[0.5] and best > surplus[1.5]


def test_vcg_truthful_bidding_maximises_expected_utility():
    g = np.random.default_rng(77)
    n, k, k_slots = 4000, 6, 3
    expo = np.array([1.0, 0.6, 0.25])
    values = g.lognormal(0.0, 0.5, size=n)
    others = g.lognormal(0.0, 0.5, size=(n, k - 1))
    utility = {}
    for alpha in np.round(np.arange(0.5, 1.51, 0.05), 2):
        bids = np.column_stack([alpha * values, others])
        res = run_auction(
            bids,
            n_slots=k_slots,
            rng=np.random.default_rng(0),
            mechanism="vcg",
            exposure=expo,
        )
        slot_won = res.winners == 0
        gain = expo[None, :] * (values[:, None] - res.prices)
        utility[alpha] = float(np.sum(gain[slot_won]))
    best = utility[1.0]
    assert all(best >= u - 1e-9 for u in utility.values())


# --------------------------------------------------------------------------- #
# Edge cases
# --------------------------------------------------------------------------- #


def test_hand_computed_example_all_mechanisms():
    bids = np.array([[4.0, 1.0, 3.0, 2.0]])
    expo = [1.0, 0.5, 0.2]
    rng = np.random.default_rng(0)
    gsp = run_auction(bids, n_slots=3, rng=rng)
    assert gsp.winners.tolist() == [[0, 2, 3]]
    assert gsp.prices.tolist() == [[3.0, 2.0, 1.0]]
    assert gsp.order.tolist() == [[0, 2, 3, 1]]
    assert gsp.least_winning_cost.tolist() == [1.0]
    fp = run_auction(bids, n_slots=3, rng=rng, mechanism="first_price")
    assert fp.prices.tolist() == [[4.0, 3.0, 2.0]]
    vcg = run_auction(bids, n_slots=3, rng=rng, mechanism="vcg", exposure=expo)
    # slot 3: 1; slot 2: (0.3*2 + 0.2*1)/0.5 = 1.6; slot 1: 0.5*3 + 0.3*2 + 0.2*1 = 2.3
    np.testing.assert_allclose(vcg.prices, [[2.3, 1.6, 1.0]])


def test_reserve_fills_missing_prices_and_lwc():
    bids = np.array([[5.0, 0.4, np.nan], [0.1, 0.2, 0.3]])
    res = run_auction(bids, n_slots=2, rng=np.random.default_rng(0), reserve=0.5)
    assert res.winners.tolist() == [[0, -1], [-1, -1]]
    assert res.prices.tolist() == [[0.5, 0.0], [0.0, 0.0]]
    assert res.least_winning_cost.tolist() == [0.5, 0.5]
    assert res.order.tolist() == [[0, -1, -1], [-1, -1, -1]]
    assert np.isneginf(res.top_bids[0, 1:]).all()


def test_per_row_slot_counts():
    bids = np.array([[4.0, 3.0, 2.0, 1.0]] * 3)
    res = run_auction(bids, n_slots=np.array([1, 3, 2]), rng=np.random.default_rng(0))
    assert res.winners.tolist() == [[0, -1, -1], [0, 1, 2], [0, 1, -1]]
    assert res.prices.tolist() == [[3.0, 0.0, 0.0], [3.0, 2.0, 1.0], [3.0, 2.0, 0.0]]
    assert res.least_winning_cost.tolist() == [3.0, 1.0, 2.0]


def test_empty_and_narrow_inputs():
    rng = np.random.default_rng(0)
    res = run_auction(np.zeros((0, 5), dtype=np.float32), n_slots=3, rng=rng)
    assert res.winners.shape == (0, 3) and res.order.shape == (0, 4)
    assert res.top_bids.dtype == np.float32
    res = run_auction(np.zeros((0, 5)), n_slots=np.zeros(0, dtype=int), rng=rng)
    assert res.winners.shape[0] == 0
    # Fewer advertisers than K + 1 columns.
    res = run_auction(np.array([[1.0, 2.0]]), n_slots=3, rng=rng)
    assert res.winners.tolist() == [[1, 0, -1]]
    assert res.order.tolist() == [[1, 0, -1, -1]]
    assert res.prices.tolist() == [[1.0, 0.0, 0.0]]
    # No advertisers at all.
    res = run_auction(np.zeros((2, 0)), n_slots=1, rng=rng, reserve=0.3)
    assert res.winners.tolist() == [[-1], [-1]]
    assert res.least_winning_cost.tolist() == [0.3, 0.3]


def test_integer_bids_and_eligibility_mask():
    bids = np.array([[3, 2, 1]])
    rng = np.random.default_rng(0)
    res = run_auction(
        bids, n_slots=1, rng=rng, eligible=np.array([[False, True, True]])
    )
    assert res.winners.tolist() == [[1]]
    assert res.prices.tolist() == [[1.0]]
    assert res.top_bids.dtype == np.float64


def test_float32_reserve_is_compared_exactly():
    b = np.float32(0.01)  # slightly below 0.01 in float64
    assert float(b) < 0.01
    res = run_auction(
        np.array([[b, 1.0]], dtype=np.float32),
        n_slots=2,
        rng=np.random.default_rng(0),
        reserve=0.01,
    )
    assert res.winners.tolist() == [[1, -1]]
    assert res.prices.tolist() == [[0.01, 0.0]]


def test_exposure_ignored_for_gsp_and_extra_slots_dropped_for_vcg():
    bids = np.array([[3.0, 2.0, 1.0]])
    rng = np.random.default_rng(0)
    run_auction(bids, n_slots=1, rng=rng, exposure="not used")
    a = run_auction(bids, n_slots=2, rng=rng, mechanism="vcg", exposure=[1.0, 0.5, 0.1])
    b = run_auction(bids, n_slots=2, rng=rng, mechanism="vcg", exposure=[1.0, 0.5])
    np.testing.assert_array_equal(a.prices, b.prices)


def test_validate_exposure_accepts_valid_curve():
    out = validate_exposure((1, 0.7, 0.7, 0))
    assert out.dtype == np.float64
    assert out.tolist() == [1.0, 0.7, 0.7, 0.0]


# --------------------------------------------------------------------------- #
# Validation errors
# --------------------------------------------------------------------------- #

GOOD = np.ones((3, 4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bids": np.ones(4)}, "bids"),
        ({"bids": np.ones((2, 2, 2))}, "bids"),
        ({"bids": np.array([["a", "b"]])}, "bids"),
        ({"mechanism": "english"}, "mechanism"),
        ({"mechanism": None}, "mechanism"),
        ({"reserve": -0.1}, "reserve"),
        ({"reserve": float("nan")}, "reserve"),
        ({"reserve": float("inf")}, "reserve"),
        ({"reserve": "1"}, "reserve"),
        ({"n_slots": 0}, "n_slots"),
        ({"n_slots": -2}, "n_slots"),
        ({"n_slots": 1.5}, "n_slots"),
        ({"n_slots": True}, "n_slots"),
        ({"n_slots": np.array([1, 0, 2])}, "n_slots"),
        ({"n_slots": np.array([1, 2])}, "n_slots"),
        ({"n_slots": np.array([[1, 2, 3]])}, "n_slots"),
        ({"n_slots": np.array([1.0, 2.0, 3.0])}, "n_slots"),
        ({"mechanism": "vcg"}, "exposure"),
        ({"mechanism": "vcg", "exposure": [1.0]}, "exposure"),
        ({"mechanism": "vcg", "exposure": [0.5, 1.0]}, "exposure"),
        ({"mechanism": "vcg", "exposure": [1.5, 1.0]}, "exposure"),
        ({"mechanism": "vcg", "exposure": [1.0, -0.5]}, "exposure"),
        ({"mechanism": "vcg", "exposure": [1.0, np.nan]}, "exposure"),
        ({"mechanism": "vcg", "exposure": np.ones((2, 2))}, "exposure"),
        ({"mechanism": "vcg", "exposure": np.ones((3, 2, 1))}, "exposure"),
        ({"mechanism": "vcg", "exposure": [[1, 1], [1, 1], [0.5, 0.9]]}, "exposure"),
        ({"mechanism": "vcg", "exposure": ["x", "y"]}, "exposure"),
        ({"eligible": np.ones((3, 3), dtype=bool)}, "eligible"),
        ({"eligible": np.ones(4, dtype=bool)}, "eligible"),
        ({"chunk_rows": 0}, "chunk_rows"),
    ],
)
def test_run_auction_validation_errors(kwargs, match):
    args = {"bids": GOOD, "n_slots": 2, "rng": np.random.default_rng(0)}
    args.update(kwargs)
    bids = args.pop("bids")
    with pytest.raises(ValueError, match=match):
        run_auction(bids, **args)


def test_run_auction_rejects_non_generator_rng():
    with pytest.raises(TypeError, match="rng"):
        run_auction(GOOD, n_slots=1, rng=np.random.RandomState(0))


@pytest.mark.parametrize(
    "exposure",
    [[], [[1.0, 0.5]], [0.5, 0.9], [1.2], [-0.1], [1.0, float("nan")], ["a"], 0.5],
)
def test_validate_exposure_errors(exposure):
    with pytest.raises(ValueError, match="slot_exposure"):
        validate_exposure(exposure)
