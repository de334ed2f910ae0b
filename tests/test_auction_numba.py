"""The numba auction backend against the numpy one: identical results and rng state.

Both backends find each row's entering bids and their ``K + 1`` best; tie-breaking and pricing
are shared, so every :class:`~bidenv.auction.AuctionResult` field and the ``rng`` state after
the call must be bit-identical. The one allowed difference is which of several equal bids sits
at an ``order`` position no outcome depends on (a tie with a bid ranked below the reported
ones, or below a short row's ``K_r + 1``); there the numba kernel takes the lowest index.
"""

from __future__ import annotations

import numpy as np
import pytest

from bidenv import auction
from bidenv.auction import MECHANISMS, run_auction, use_backend

pytest.importorskip("numba")


def _tied_rows(top: np.ndarray, k_max: int, kr) -> np.ndarray:
    """Rows the auction re-ranks with the rng (the same rule as ``_break_ties``)."""
    head = top[:, :k_max]
    tied = (head == top[:, 1:]) & (head > -np.inf)
    if kr is not None:
        tied &= np.arange(k_max) < np.asarray(kr)[:, None]
    return tied.any(axis=1)


def run_both(bids, seed=0, **kwargs):
    """Run the auction under each backend from the same rng state; returns both results."""
    out = {}
    for name in ("numpy", "numba"):
        rng = np.random.default_rng(seed)
        with use_backend(name):
            res = run_auction(bids, rng=rng, **kwargs)
            assert auction.BACKEND == name  # no silent fallback
        out[name] = (res, rng.bit_generator.state)
    return out["numpy"], out["numba"]


def assert_same(bids, a, b, *, n_slots, eligible=None):
    """Bit-identical results and rng state, ``order`` up to outcome-free equal bids."""
    (ra, sa), (rb, sb) = a, b
    assert sa == sb  # the same random numbers were drawn
    for name in ("top_bids", "winners", "prices", "least_winning_cost"):
        x, y = getattr(ra, name), getattr(rb, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert ra.order.shape == rb.order.shape and ra.order.dtype == rb.order.dtype
    n, width = ra.order.shape
    kr = np.broadcast_to(np.asarray(n_slots), (n,))
    np.testing.assert_array_equal(_tied_rows(ra.top_bids, width - 1, kr),
                                  _tied_rows(rb.top_bids, width - 1, kr))
    rows, cols = np.nonzero(ra.order != rb.order)
    for r, p in zip(rows.tolist(), cols.tolist()):
        # Only below the winners, and only between entering advertisers with equal bids.
        assert p >= kr[r], (r, p)
        ia, ib = ra.order[r, p], rb.order[r, p]
        assert ia >= 0 and ib >= 0
        assert bids[r, ia] == bids[r, ib] == ra.top_bids[r, p]
        if eligible is not None:
            assert eligible[r, ia] and eligible[r, ib]


def random_case(seed: int):
    g = np.random.default_rng(seed)
    n = int(g.integers(0, 300))
    k = int(g.integers(1, 12))
    dtype = (np.float32, np.float64)[seed % 2]
    style = seed % 4
    if style == 0:  # continuous
        bids = g.lognormal(0.0, 1.0, (n, k))
    elif style == 1:  # a few values: many exact ties
        bids = g.choice([0.0, 0.5, 1.0, 1.0, 2.0, 3.0], size=(n, k))
    elif style == 2:  # integers with negatives and zeros
        bids = g.integers(-2, 4, size=(n, k)).astype(np.float64)
    else:  # ties plus NaN / inf / -inf / negatives
        bids = g.choice([0.1, 0.2, 0.2, 0.3, 1.0], size=(n, k))
        bad = g.random((n, k)) < 0.2
        bids[bad] = g.choice([np.nan, np.inf, -np.inf, -1.0, 0.0], size=int(bad.sum()))
    bids = bids.astype(dtype)
    if seed % 3 == 0:
        n_slots = int(g.integers(1, 6))  # k < K + 1 happens often
    else:
        n_slots = g.integers(1, 5, size=n)
        if n == 0:
            n_slots = 2
    reserve = float(g.choice([0.0, 0.0, 0.1, 0.2, 1.0, 1e-3]))
    eligible = g.random((n, k)) < 0.8 if g.random() < 0.5 else None
    k_max = int(np.max(n_slots)) if np.ndim(n_slots) and n else int(np.max(n_slots))
    expo = np.sort(g.random(k_max))[::-1]
    if g.random() < 0.3:
        expo[-1] = 0.0
    exposure = expo if g.random() < 0.5 else np.sort(g.random((n, k_max)), axis=1)[:, ::-1]
    return bids, n_slots, reserve, eligible, exposure


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_backends_agree_on_random_inputs(mechanism):
    for seed in range(160):
        bids, n_slots, reserve, eligible, exposure = random_case(seed)
        chunk = int(np.random.default_rng(seed).integers(1, 400))
        kw = dict(n_slots=n_slots, reserve=reserve, mechanism=mechanism, exposure=exposure,
                  eligible=eligible, chunk_rows=chunk)
        a, b = run_both(bids, seed, **kw)
        assert_same(bids, a, b, n_slots=n_slots, eligible=eligible)


def test_ties_are_actually_exercised():
    # The random cases above must re-rank tied rows (draw numbers), or they test little.
    bids, n_slots, reserve, eligible, exposure = random_case(1)
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with use_backend("numba"):
        run_auction(bids, n_slots=n_slots, rng=rng, reserve=reserve, eligible=eligible)
    assert rng.bit_generator.state != state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_reserve_threshold_and_boundaries(dtype):
    # Bids exactly at, just below and just above a reserve that float32 cannot represent.
    reserve = 0.1
    t32 = np.float32(reserve)  # 0.100000001 > 0.1
    vals = [np.nextafter(t32, np.float32(0)), t32, np.nextafter(t32, np.float32(1)),
            reserve, np.nextafter(reserve, 0.0), 0.2, 0.2]
    g = np.random.default_rng(3)
    bids = g.choice(np.array(vals, dtype=np.float64), size=(500, 7)).astype(dtype)
    for n_slots in (1, 2, 6):
        a, b = run_both(bids, 1, n_slots=n_slots, reserve=reserve)
        assert_same(bids, a, b, n_slots=n_slots)


def test_wide_and_narrow_shapes():
    g = np.random.default_rng(9)
    for n, k in [(0, 3), (1, 1), (5, 0), (40, 1), (40, 2), (3000, 48)]:
        bids = g.choice([0.5, 1.0, 1.5], size=(n, k)) if n * k else np.zeros((n, k))
        for n_slots in (1, 3, 8):
            a, b = run_both(bids, n, n_slots=n_slots, reserve=0.6, chunk_rows=700)
            assert_same(bids, a, b, n_slots=n_slots)


def test_non_contiguous_and_integer_inputs():
    g = np.random.default_rng(4)
    base = g.integers(0, 5, size=(200, 20))
    bids = base[:, ::2]  # strided integer view
    elig = (g.random((10, 200)) < 0.7).T  # Fortran-ordered mask
    a, b = run_both(bids, 2, n_slots=2, eligible=elig)
    assert_same(bids.astype(np.float64), a, b, n_slots=2, eligible=elig)


def test_numba_order_is_lowest_index_among_unranked_ties():
    bids = np.array([[5.0, 3.0, 3.0, 3.0], [1.0, 0.0, 2.0, 1.0]])
    with use_backend("numba"):
        res = run_auction(bids, n_slots=1, rng=np.random.default_rng(0))
    assert res.order.tolist() == [[0, 1], [2, 0]]  # 3.0 tied three ways below the winner


def test_set_backend_validates_and_restores():
    before = auction.BACKEND
    with pytest.raises(ValueError, match="backend"):
        auction.set_backend("fortran")
    with use_backend("numpy") as name:
        assert name == "numpy" == auction.BACKEND
    assert auction.BACKEND == before


def test_environment_variable_forces_numpy(monkeypatch):
    monkeypatch.setenv("BIDENV_NUMBA", "0")
    assert auction._default_backend() == "numpy"
    monkeypatch.setenv("BIDENV_NUMBA", "1")
    assert auction._default_backend() == "numba"


def play_day(env_id: str, seed: int, backend: str, **kwargs):
    import gymnasium as gym

    import bidenv  # noqa: F401

    actions = np.linspace(-0.6, 0.8, 7, dtype=np.float32)
    trace = []
    with use_backend(backend):
        env = gym.make(env_id, **kwargs)
        obs, info = env.reset(seed=seed)
        trace.append((obs, info))
        for t in range(200):
            obs, reward, terminated, truncated, info = env.step(actions[t % 7:t % 7 + 1])
            trace.append((obs, reward, terminated, truncated, info))
            if terminated or truncated:
                break
        env.close()
    return trace


def _assert_equal_nested(x, y):
    if isinstance(x, dict):
        assert x.keys() == y.keys()
        for key in x:
            _assert_equal_nested(x[key], y[key])
    elif isinstance(x, (tuple, list)):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            _assert_equal_nested(u, v)
    else:
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lite_day_is_identical_under_both_backends(seed):
    a = play_day("bidenv/AutoBiddingLite-v0", seed, "numpy")
    b = play_day("bidenv/AutoBiddingLite-v0", seed, "numba")
    assert len(a) == len(b) > 2
    _assert_equal_nested(a, b)


def test_full_env_day_with_budgets_is_identical_under_both_backends():
    kw = dict(opportunities_per_day=60_000)
    a = play_day("bidenv/AutoBidding-v0", 5, "numpy", **kw)
    b = play_day("bidenv/AutoBidding-v0", 5, "numba", **kw)
    _assert_equal_nested(a, b)


def test_failed_numba_import_falls_back_to_numpy(monkeypatch):
    import sys

    monkeypatch.setattr(auction, "_NUMBA_KERNEL", None)
    monkeypatch.setitem(sys.modules, "numba", None)  # "import numba" now fails
    monkeypatch.delitem(sys.modules, "bidenv._auction_numba", raising=False)
    monkeypatch.setattr(auction, "BACKEND", "numba")
    with pytest.warns(RuntimeWarning, match="using numpy"):
        res = run_auction(np.array([[3.0, 1.0, 2.0]]), n_slots=2, rng=np.random.default_rng(0))
    assert auction.BACKEND == "numpy"
    assert res.winners.tolist() == [[0, 2]]


def _reference_top(bids, threshold, eligible, width):
    """Each row's ``width`` best entering bids: larger first, equal ones by column."""
    n, k = bids.shape
    order = np.full((n, width), -1, np.int64)
    top = np.full((n, width), -np.inf, bids.dtype)
    with np.errstate(invalid="ignore"):
        enters = (bids > 0) & (bids < np.inf) & (bids >= threshold)
    if eligible is not None:
        enters &= eligible
    for r in range(n):
        cols = np.flatnonzero(enters[r])
        best = cols[np.lexsort((cols, -bids[r, cols]))][:width]
        order[r, :best.size] = best
        top[r, :best.size] = bids[r, best]
    return order, top


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_reference_and_flags_ties_like_tied_rows(dtype):
    # The compiled kernel directly: blocks of rows (n not a multiple of the block), widths
    # from 2 to 7, k below and above the width, ties, NaN/inf/-0.0, thresholds (one subnormal),
    # eligibility and per-row slots; its tie flags are _tied_rows's.
    from bidenv._auction_numba import _BLOCK, top_entering

    g = np.random.default_rng(11)
    for case in range(40):
        n = int(g.choice([1, 7, _BLOCK, 2 * _BLOCK + 37]))
        k = int(g.choice([0, 1, 3, 5, 48, 50]))
        width = int(g.integers(2, 8))
        pool = np.array([0.0, -0.0, 0.1, 0.2, 0.2, 0.3, 1.0, 1.0, np.nan, np.inf, -np.inf, -1.0,
                         1e-45, 2e-45])
        bids = np.where(g.random((n, k)) < 0.5, g.choice(pool, size=(n, k)),
                        g.lognormal(0.0, 1.0, (n, k))).astype(dtype)
        threshold = float(g.choice([0.0, 0.2, float(np.float32(0.1)), 1e-45]))
        use_threshold = threshold > 0.0
        if dtype == np.float32 and threshold > 0:
            threshold = float(np.float32(threshold))  # float32-exact, as run_auction passes it
        eligible = g.random((n, k)) < 0.7 if case % 2 else None
        slots = g.integers(1, width, size=n) if case % 3 else None
        order = np.empty((n, width), np.int64)
        top = np.empty((n, width), dtype)
        tied = np.empty(n, bool)
        top_entering(np.ascontiguousarray(bids), threshold, use_threshold,
                     np.ones((1, 1), bool) if eligible is None else eligible, eligible is not None,
                     np.zeros(1, np.int64) if slots is None else slots, slots is not None,
                     order, top, tied)
        ref_order, ref_top = _reference_top(bids, threshold, eligible, width)
        np.testing.assert_array_equal(order, ref_order, err_msg=f"case {case}")
        np.testing.assert_array_equal(top, ref_top, err_msg=f"case {case}")
        np.testing.assert_array_equal(tied, auction._tied_rows(top, width - 1, slots))
