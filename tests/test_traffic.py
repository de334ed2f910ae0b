"""Tests for :mod:`bidenv.traffic`: the diurnal curve, built-in sources and batches."""

from __future__ import annotations

import numpy as np
import pytest

from bidenv.campaign import Campaign, CampaignArrays
from bidenv.env import AutoBiddingEnv
from bidenv.traffic import (
    SOURCE_FEED,
    SOURCE_SEARCH,
    FeedTraffic,
    ImpressionBatch,
    SearchTraffic,
    SlotSettings,
    TrafficMix,
    diurnal_shares,
    make_traffic,
    merge_batches,
)

# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def bound_traffic(traffic="mixed", seed=0, opportunities_per_day=20_000, n_competitors=11):
    """The traffic source an env binds for episode ``seed``."""
    env = AutoBiddingEnv(opportunities_per_day=opportunities_per_day,
                         n_competitors=n_competitors, traffic=traffic)
    env.reset(seed=seed)
    return env.traffic, env


def day_batches(source, seed=0, n_ticks=48):
    rng = np.random.default_rng(seed)
    return [source.sample(t, rng) for t in range(n_ticks)]


def stack(batches, field):
    return np.concatenate([np.asarray(getattr(b, field)) for b in batches])


def campaigns(categories):
    return CampaignArrays.from_campaigns(
        [Campaign(budget=100.0, target_cpa=50.0, category=int(c)) for c in categories])


# --------------------------------------------------------------------------- #
# Diurnal curve
# --------------------------------------------------------------------------- #


def test_diurnal_shares_match_the_public_reference():
    s = diurnal_shares(48)
    assert s.shape == (48,) and np.all(s > 0)
    assert s.sum() == pytest.approx(1.0, abs=1e-12)
    assert 10.0 <= s.max() / s.min() <= 15.0
    # Ticks of 30 minutes: tick 7 is 03:30-04:00, tick 18 is 09:00-09:30.
    assert int(np.argmin(s)) in (6, 7, 8)
    assert int(np.argmax(s)) in (17, 18, 19)
    assert s[:12].sum() == pytest.approx(0.095, abs=0.015)  # 00-06h
    assert s[12:36].sum() == pytest.approx(0.615, abs=0.015)  # 06-18h
    assert s[36:].sum() == pytest.approx(0.29, abs=0.015)  # 18-24h


def test_diurnal_shares_consistent_across_tick_counts_and_shift():
    s48 = diurnal_shares(48)
    s24 = diurnal_shares(24)
    assert s24.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(s24, s48.reshape(24, 2).sum(axis=1), rtol=0.01)
    np.testing.assert_allclose(diurnal_shares(1), [1.0])
    # Two hours later: the peak moves by 4 half-hour ticks.
    shifted = diurnal_shares(48, shift_hours=2.0)
    assert int(np.argmax(shifted)) == int(np.argmax(s48)) + 4
    with pytest.raises(ValueError, match="n_ticks"):
        diurnal_shares(0)


# --------------------------------------------------------------------------- #
# Batches from bound sources
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("traffic", ["mixed", "feed", "search"])
def test_batches_carry_the_contract_fields(traffic):
    source, env = bound_traffic(traffic)
    assert source.bound
    k = env.k
    batches = day_batches(source, n_ticks=12)
    for b in batches:
        assert isinstance(b, ImpressionBatch)
        n = b.n
        b.validate()
        for field in ("pvalue", "pvalue_sigma", "p_conversion", "eligible",
                      "conversion_value"):
            arr = np.asarray(getattr(b, field))
            assert arr.shape == (n, k), field
        assert b.eligible.dtype == bool
        assert b.source.shape == (n,)
        assert set(np.unique(b.source).tolist()) <= {SOURCE_FEED, SOURCE_SEARCH}
        assert np.all(b.pvalue >= 0) and np.all(np.isfinite(b.pvalue))
        assert np.all((b.p_conversion >= 0) & (b.p_conversion <= 1))
        assert np.all(b.conversion_value >= 0)
        assert np.all((b.click_rate >= 0) & (b.click_rate <= 1))
    labels = set(stack(batches, "source").tolist())
    want = {"mixed": {0, 1}, "feed": {0}, "search": {1}}[traffic]
    assert labels == want


def test_pvalue_level_and_sigma_ratio():
    means = []
    for seed in range(3):
        source, _ = bound_traffic("feed", seed=seed)
        batches = day_batches(source, seed=seed, n_ticks=48)
        pv = stack(batches, "pvalue")
        el = stack(batches, "eligible")
        means.append(pv[el].mean())
        b = batches[20]
        pos = b.pvalue > 0
        expected = np.broadcast_to(0.15 * b.sigma_col[None, :], b.pvalue.shape)
        np.testing.assert_allclose(b.pvalue_sigma[pos] / b.pvalue[pos], expected[pos],
                                   rtol=1e-5)
        established = ~b.cold_start
        assert established.sum() >= 10 and np.all(b.sigma_col[established] == 1.0)
    assert all(3e-4 < m < 8e-4 for m in means)
    assert np.mean(means) == pytest.approx(5e-4, rel=0.25)


def established(batch):
    """(k,) bool: advertisers whose predictions are calibrated (not cold-start, not marketing)."""
    return ~batch.cold_start & ~batch.column_info["marketing"]


@pytest.mark.parametrize("traffic", ["mixed", "feed", "search"])
def test_predictions_are_unbiased_over_a_day(traffic):
    source, _ = bound_traffic(traffic, seed=1, opportunities_per_day=50_000)
    batches = day_batches(source, seed=1)
    cols = established(batches[0])
    pv = stack(batches, "pvalue").astype(np.float64)[:, cols]
    pc = stack(batches, "p_conversion")[:, cols]
    el = stack(batches, "eligible")[:, cols]
    assert pc[el].sum() / pv[el].sum() == pytest.approx(1.0, abs=0.03)
    # Not a copy of the prediction: the true rate varies around it.
    ratio = pc[el & (pv > 0)] / pv[el & (pv > 0)]
    assert 0.1 < np.std(ratio) < 0.2


def test_predictions_are_unbiased_tightly_when_pooled():
    # The sampling error of the pValue-weighted mean of the true/predicted ratio over a 50k
    # day is about 0.1% (sd 0.15 per opportunity); a calibration bias of 1% is not noise.
    pc_sum = pv_sum = 0.0
    for seed in range(3):
        source, _ = bound_traffic("feed", seed=seed, opportunities_per_day=50_000)
        batches = day_batches(source, seed=seed)
        cols = established(batches[0])
        pv_sum += stack(batches, "pvalue").astype(np.float64)[:, cols].sum()
        pc_sum += stack(batches, "p_conversion")[:, cols].sum()
    assert pc_sum / pv_sum == pytest.approx(1.0, abs=0.006)


def test_p_conversion_at_matches_the_matrix():
    source, env = bound_traffic("mixed", seed=2)
    b = source.sample(18, np.random.default_rng(0))
    g = np.random.default_rng(1)
    rows = g.integers(0, b.n, 500)
    cols = g.integers(0, env.k, 500)
    np.testing.assert_array_equal(b.p_conversion_at(rows, cols), b.p_conversion[rows, cols])
    np.testing.assert_array_equal(b.conversion_value_at(rows, cols),
                                  b.conversion_value[rows, cols])


def test_eligibility_is_retrieval_on_the_feed_and_relevance_on_search():
    source, env = bound_traffic("mixed", seed=0, opportunities_per_day=40_000)
    batches = day_batches(source)
    src = stack(batches, "source")
    el = stack(batches, "eligible")
    feed, search = source.sources
    # Feed: the retrieved top share of advertisers plus the exploration candidates.
    m = int(round(feed.retrieval_share * env.k))
    assert np.all(el[src == SOURCE_FEED].sum(axis=1) == m + feed.exploration_size)
    # Search: fewer advertisers per query, and nobody is eligible for every query.
    assert el[src == SOURCE_SEARCH].mean() < 0.5 * el[src == SOURCE_FEED].mean()
    assert not el[src == SOURCE_SEARCH].all(axis=0).any()
    # About a quarter of the day's volume is search.
    assert (src == SOURCE_SEARCH).mean() == pytest.approx(0.25, abs=0.05)
    # pValue is exactly 0 where an advertiser may not bid (no mask needed in the auction).
    assert all(b.pvalue_zero_when_ineligible for b in batches)
    assert np.all(stack(batches, "pvalue")[~el] == 0)


def test_daily_volume():
    for traffic in ("mixed", "feed", "search"):
        for seed in range(2):
            source, _ = bound_traffic(traffic, seed=seed, opportunities_per_day=30_000)
            ev = source.expected_volume()
            assert ev.shape == (48,) and np.all(ev > 0)
            assert ev.sum() == pytest.approx(30_000, rel=0.1)
            n = sum(b.n for b in day_batches(source, seed=seed))
            assert n == pytest.approx(ev.sum(), rel=0.03)
    # A source's own daily_volume wins over the env's opportunities_per_day.
    source, _ = bound_traffic(FeedTraffic(daily_volume=5_000), opportunities_per_day=30_000)
    assert source.expected_volume().sum() == pytest.approx(5_000, rel=0.1)


def test_same_seed_same_batches():
    a, _ = bound_traffic("mixed", seed=4)
    b, _ = bound_traffic("mixed", seed=4)
    c, _ = bound_traffic("mixed", seed=5)
    np.testing.assert_array_equal(a.expected_volume(), b.expected_volume())
    assert not np.array_equal(a.expected_volume(), c.expected_volume())
    for ba, bb in zip(day_batches(a, seed=9, n_ticks=6), day_batches(b, seed=9, n_ticks=6)):
        np.testing.assert_array_equal(ba.pvalue, bb.pvalue)
        np.testing.assert_array_equal(ba.source, bb.source)
        np.testing.assert_array_equal(ba.eligible, bb.eligible)
        np.testing.assert_array_equal(ba.p_conversion, bb.p_conversion)
        np.testing.assert_array_equal(ba.click_rate, bb.click_rate)


def test_unbound_source_cannot_sample_and_tick_is_checked():
    with pytest.raises(RuntimeError, match="bound"):
        FeedTraffic().sample(0, np.random.default_rng(0))
    source, _ = bound_traffic("feed")
    with pytest.raises(ValueError, match="tick"):
        source.sample(48, np.random.default_rng(0))
    with pytest.raises(ValueError, match="tick"):
        source.sample(-1, np.random.default_rng(0))


def test_binding_returns_a_copy():
    feed = FeedTraffic()
    bound = feed.bind(campaigns([0, 3, 7]), n_ticks=10, opportunities_per_day=1_000,
                      rng=np.random.default_rng(0))
    assert bound is not feed and bound.bound and not feed.bound
    assert feed.daily_volume is None
    assert bound.sample(0, np.random.default_rng(0)).k == 3


# --------------------------------------------------------------------------- #
# Custom sources in the env
# --------------------------------------------------------------------------- #


def test_custom_traffic_mix_in_env():
    mix = TrafficMix([FeedTraffic(slots=SlotSettings(1, (1.0,))),
                      SearchTraffic(slots=SlotSettings(2, (1.0, 0.7)))], shares=[0.4, 0.6])
    env = AutoBiddingEnv(opportunities_per_day=10_000, n_competitors=7, traffic=mix,
                         record=True)
    env.reset(seed=0)
    assert env.traffic is not mix and isinstance(env.traffic, TrafficMix)
    done, t = False, 0
    while not done:
        done = env.step(np.zeros(1, np.float32))[2]
        t += 1
    src = np.concatenate([r["source"] for r in env.recording])
    slots = np.concatenate([r["n_slots"] for r in env.recording])
    assert (src == SOURCE_SEARCH).mean() == pytest.approx(0.6, abs=0.05)
    # Each source's rows are sold with that source's slots.
    assert np.all(slots[src == SOURCE_FEED] == 1)
    assert np.all(slots[src == SOURCE_SEARCH] == 2)


def test_make_traffic_and_validation():
    assert isinstance(make_traffic("feed"), FeedTraffic)
    assert isinstance(make_traffic("search"), SearchTraffic)
    assert isinstance(make_traffic("mixed"), TrafficMix)
    feed = FeedTraffic()
    assert make_traffic(feed) is feed
    with pytest.raises(ValueError, match="traffic"):
        make_traffic("tv")
    with pytest.raises(ValueError, match="daily_volume"):
        FeedTraffic(daily_volume=0)
    with pytest.raises(ValueError, match="sigma_ratio"):
        FeedTraffic(sigma_ratio=1.5)
    with pytest.raises(ValueError, match="intent_boost"):
        SearchTraffic(intent_boost=0.5)
    with pytest.raises(ValueError):
        TrafficMix([FeedTraffic(), SearchTraffic()], shares=[1.0])
    with pytest.raises(ValueError, match="shares"):
        TrafficMix([FeedTraffic(), SearchTraffic()], shares=[1.0, -0.5])
    with pytest.raises(ValueError, match="source_id"):
        TrafficMix([FeedTraffic(), FeedTraffic()], shares=[1.0, 1.0])


def test_slot_settings():
    s = SlotSettings(3, (1.0, 0.8, 0.6))
    np.testing.assert_allclose(s.marginal_exposure, [1.0, 0.8, 0.48])
    for bad in [(0, ()), (2, (1.0, 0.8, 0.6)), (2, (0.5, 0.8)), (2, (1.0, 1.5)),
                (2, (1.0, -0.1))]:
        with pytest.raises(ValueError):
            SlotSettings(*bad)


# --------------------------------------------------------------------------- #
# merge_batches and take
# --------------------------------------------------------------------------- #


def _separate_batches(seed=0):
    c = campaigns([0, 1, 2, 3, 4, 5, 6, 7, 2, 5])
    kw = dict(n_ticks=48, opportunities_per_day=20_000)
    feed = FeedTraffic().bind(c, rng=np.random.default_rng(seed), **kw)
    search = SearchTraffic().bind(c, rng=np.random.default_rng(seed + 1), **kw)
    rng = np.random.default_rng(seed + 2)
    return feed.sample(20, rng), search.sample(20, rng)


def _row_keys(batch):
    """One key per row from everything the row carries (identical rows share a key)."""
    info = [batch.row_info.get(name) for name in ("query", "session_position", "user")]
    return [b"|".join([np.ascontiguousarray(batch.pvalue[r]).tobytes(),
                       np.ascontiguousarray(batch.p_conversion[r]).tobytes(),
                       batch.eligible[r].tobytes(), np.float32(batch.click_rate[r]).tobytes(),
                       bytes([int(batch.source[r])])]
                      + [np.int32(x[r] if x is not None else -1).tobytes() for x in info])
            for r in range(batch.n)]


def test_merge_batches_preserves_rows():
    from collections import Counter

    a, b = _separate_batches()
    assert a.n > 0 and b.n > 0
    m = merge_batches([a, b], np.random.default_rng(3))
    assert m.n == a.n + b.n and m.k == a.k
    m.validate()
    # Each input row exactly once (a missing row_info entry reads as -1 in the merge).
    assert Counter(_row_keys(m)) == Counter(_row_keys(a)) + Counter(_row_keys(b))
    # Feed rows keep their user and session position, search rows their query.
    feed_rows = m.source == SOURCE_FEED
    assert np.all(m.row_info["user"][feed_rows] >= 0)
    assert np.all(m.row_info["query"][feed_rows] == -1)
    assert np.all(m.row_info["query"][~feed_rows] >= 0)
    # Groups are kept (stacked tables), so no dense mask is needed.
    assert m.groups is not None and len(m.group_table) == len(a.group_table) + len(b.group_table)
    # Interleaved, not concatenated.
    assert not np.array_equal(m.source, np.concatenate([a.source, b.source]))
    assert merge_batches([a], np.random.default_rng(0)) is a


def test_take():
    _, b = _separate_batches(1)
    idx = np.array([5, 0, 3, 3, b.n - 1])
    t = b.take(idx)
    assert t.n == 5 and t.k == b.k
    for field in ("pvalue", "source", "click_rate", "eligible", "p_conversion",
                  "pvalue_sigma", "conversion_value"):
        np.testing.assert_array_equal(np.asarray(getattr(t, field)),
                                      np.asarray(getattr(b, field))[idx], err_msg=field)
    mask = np.zeros(b.n, bool)
    mask[::3] = True
    tm = b.take(mask)
    assert tm.n == mask.sum()
    np.testing.assert_array_equal(tm.p_conversion, b.p_conversion[mask])
    np.testing.assert_array_equal(tm.eligible, b.eligible[mask])
    tm.validate()
