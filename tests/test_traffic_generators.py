"""Statistical and behavioural tests of the feed and search generators (fixed seeds).

Each test states the behaviour a user of the traffic relies on: the diurnal shape, search
converting better than the feed for intent-matching advertisers, the Zipf long tail of
queries and its thin eligibility, wider and biased predictions for cold-start ads, fatigue
within feed sessions, calibrated predictions for established advertisers, determinism, the
batch layout, and the environment running (and passing the API checkers) on every source.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import bidenv  # noqa: F401  (registers the environments)
from bidenv.campaign import Campaign, CampaignArrays
from bidenv.env import AutoBiddingEnv
from bidenv.traffic import (
    SOURCE_FEED,
    SOURCE_SEARCH,
    AdvertiserPopulation,
    FeedTraffic,
    ImpressionBatch,
    SearchTraffic,
    SlotSettings,
    TrafficMix,
    TrafficSource,
    make_traffic,
)
from bidenv.traffic.search import zipf_frequencies, zipf_ranks

LITE = "bidenv/AutoBiddingLite-v0"


def campaigns(k, seed=0, budgets=None):
    rng = np.random.default_rng(seed)
    budgets = np.full(k, 100.0) if budgets is None else budgets
    return CampaignArrays.from_campaigns(
        [Campaign(budget=float(b), target_cpa=50.0, category=int(c))
         for b, c in zip(budgets, rng.integers(0, 8, size=k))])


def bind(source, k=24, seed=0, volume=50_000, budgets=None):
    return source.bind(campaigns(k, seed, budgets), n_ticks=48, opportunities_per_day=volume,
                       rng=np.random.default_rng(seed))


def spread_budgets(k, seed=0):
    """Budgets log-uniform over x[0.5, 1.5] of 100, as the market draws them."""
    return 100.0 * np.exp(np.random.default_rng(seed + 99).uniform(np.log(0.5), np.log(1.5), k))


def day(source, seed=0):
    rng = np.random.default_rng(seed)
    return [source.sample(t, rng) for t in range(source.n_ticks)]


def cat(batches, get):
    return np.concatenate([get(b) for b in batches])


@pytest.fixture(scope="module")
def mixed_day():
    """The env's default traffic bound for a 48-advertiser market, and a day of it."""
    env = AutoBiddingEnv(opportunities_per_day=60_000, n_competitors=47)
    env.reset(seed=11)
    batches = day(env.traffic, seed=11)
    return env.traffic, env, batches


# --------------------------------------------------------------------------- #
# Diurnal volume
# --------------------------------------------------------------------------- #


def shape(curve):
    """Peak/trough, night (00-06h), working hours (06-18h) shares and peak tick."""
    curve = np.asarray(curve, dtype=np.float64)
    share = curve / curve.sum()
    return curve.max() / curve.min(), share[:12].sum(), share[12:36].sum(), int(curve.argmax())


@pytest.mark.parametrize("traffic, ratio_band, night_band, day_band", [
    ("mixed", (8.5, 17.0), (0.08, 0.12), (0.57, 0.65)),
    ("feed", (8.5, 19.0), (0.08, 0.13), (0.51, 0.63)),
    ("search", (12.0, 32.0), (0.045, 0.095), (0.62, 0.73)),
])
def test_diurnal_peak_to_trough_and_overnight_share_in_bands(traffic, ratio_band, night_band,
                                                             day_band):
    # Reference (docs/design.md): peak/trough about 12.6, 9.5% of the day at 00-06h, 61.5% at
    # 06-18h; each episode perturbs the curve, so the bands hold for every seed.
    for seed in range(5):
        source = bind(make_traffic(traffic), seed=seed)
        ratio, night, daytime, _ = shape(source.expected_volume())
        assert ratio_band[0] < ratio < ratio_band[1], (seed, ratio)
        assert night_band[0] < night < night_band[1], (seed, night)
        assert day_band[0] < daytime < day_band[1], (seed, daytime)
        if seed == 0:  # what is drawn follows the curve
            counts = [b.n for b in day(source)]
            assert np.corrcoef(counts, source.expected_volume())[0, 1] > 0.99


def test_feed_and_search_peak_at_different_hours():
    peaks = []
    for seed in range(5):
        mix = bind(make_traffic("mixed"), seed=seed)
        feed, search = (shape(s.expected_volume()) for s in mix.sources)
        # Search is a working-hours activity, the feed an evening one.
        assert search[2] > feed[2] + 0.05 and search[1] < feed[1]
        peaks.append((feed[3], search[3]))
    assert np.median([abs(f - s) for f, s in peaks]) >= 6  # at least 3 hours apart


def test_hourly_weights_move_volume_between_sources_and_keep_the_totals():
    weights = np.ones((2, 24))
    weights[1, 11:14] = 4.0  # much more search around midday
    plain = bind(make_traffic("mixed"), seed=3)
    tilted = bind(TrafficMix([FeedTraffic(), SearchTraffic()], [0.75, 0.25],
                             hourly_weights=weights), seed=3)
    np.testing.assert_allclose(tilted.expected_volume(), plain.expected_volume(), rtol=1e-6)
    for a, b in zip(plain.sources, tilted.sources):
        assert a.expected_volume().sum() == pytest.approx(b.expected_volume().sum(), rel=1e-6)
    share = lambda mix: mix.sources[1].expected_volume() / mix.expected_volume()  # noqa: E731
    assert share(tilted)[24] > 1.5 * share(plain)[24]  # 12:00-12:30
    with pytest.raises(ValueError, match="hourly_weights"):
        TrafficMix([FeedTraffic(), SearchTraffic()], [1, 1], hourly_weights=np.ones(24))


# --------------------------------------------------------------------------- #
# Search: intent, conversion rates, long tail
# --------------------------------------------------------------------------- #


def test_search_converts_better_than_feed_for_intent_matching_advertisers(mixed_day):
    source, env, batches = mixed_day
    search = source.sources[1]
    src = cat(batches, lambda b: b.source)
    query = cat(batches, lambda b: b.query)
    el = cat(batches, lambda b: b.eligible)
    pc = cat(batches, lambda b: b.p_conversion)
    intent = np.where(src == SOURCE_SEARCH, search.intent[np.maximum(query, 0)], -1)
    ratios = []
    for a in np.flatnonzero(~batches[0].cold_start & ~batches[0].column_info["marketing"]):
        on_search = (intent == env.c.category[a]) & el[:, a]
        on_feed = (src == SOURCE_FEED) & el[:, a]
        if on_search.sum() >= 100 and on_feed.sum() >= 100:
            ratios.append(pc[on_search, a].mean() / pc[on_feed, a].mean())
    ratios = np.array(ratios)
    assert len(ratios) >= 20
    assert np.mean(ratios > 1.0) >= 0.9, ratios
    assert np.median(ratios) > 1.5, ratios


def test_query_frequencies_follow_a_power_law():
    freq = zipf_frequencies(2000, 0.9)
    assert freq.sum() == pytest.approx(1.0) and np.all(np.diff(freq) < 0)
    ranks = zipf_ranks(np.random.default_rng(0).random(200_000), 2000, 0.9)
    assert ranks.min() >= 1 and ranks.max() <= 2000
    for exponent, band in ((0.9, (-1.05, -0.75)), (1.3, (-1.45, -1.15))):
        search = bind(SearchTraffic(zipf_exponent=exponent), k=8)
        batch = search.sample_rows(100_000, np.random.default_rng(1))
        counts = np.bincount(batch.query, minlength=search.vocabulary_size)
        rank = np.arange(1, 201)
        slope = np.polyfit(np.log(rank), np.log(np.maximum(counts[:200], 1)), 1)[0]
        assert band[0] < slope < band[1], (exponent, slope)
        # Most distinct queries are rare: the tail beyond rank 100 has most of the queries
        # but a minority of the volume.
        assert counts[100:].sum() < 0.6 * counts.sum()


def test_long_tail_queries_have_fewer_eligible_advertisers(mixed_day):
    source, env, batches = mixed_day
    search = source.sources[1]
    per_query = search.group_table.sum(axis=1)
    assert per_query[:20].mean() > 3 * per_query[500:].mean()
    assert per_query[:20].mean() > 0.25 * env.k
    # Also on the opportunities drawn.
    src = cat(batches, lambda b: b.source)
    query = cat(batches, lambda b: b.query)[src == SOURCE_SEARCH]
    n_el = cat(batches, lambda b: b.eligible_per_opportunity())[src == SOURCE_SEARCH]
    assert n_el[query < 20].mean() > 2.5 * n_el[query >= 500].mean()


# --------------------------------------------------------------------------- #
# Feed: sessions, fatigue, retrieval
# --------------------------------------------------------------------------- #


def test_click_probability_and_value_fall_with_ads_seen_in_the_session(mixed_day):
    _, _, batches = mixed_day
    src = cat(batches, lambda b: b.source)
    feed = src == SOURCE_FEED
    pos = cat(batches, lambda b: b.session_position)
    assert np.all(pos[feed] >= 0) and np.all(pos[~feed] == -1)
    click = cat(batches, lambda b: b.click_rate)[feed]
    pv = cat(batches, lambda b: b.pvalue.sum(axis=1) / np.maximum(
        b.eligible_per_opportunity(), 1))[feed]
    pos = pos[feed]
    by_pos = np.array([click[pos == j].mean() for j in range(10)])
    assert np.all(np.diff(by_pos) < 0), by_pos
    assert by_pos[8] < 0.6 * by_pos[0]
    value = np.array([pv[pos == j].mean() for j in (0, 4, 8)])
    assert np.all(np.diff(value) < 0), value
    # Over the day, feed click rates stay in the range typical of feed ads (1.8-4.7%).
    assert 0.018 < click.mean() < 0.047


def _recalled_by_hand(feed, m):
    """(C x V, k) the cascade's recalled top-m, recomputed from its documented score."""
    relevance = feed.cluster_centroids @ feed.profile.ad_factors.astype(np.float64).T
    score = relevance.copy()
    if feed.popularity_bias:
        log_budget = np.log(feed.campaigns.budget)
        log_budget[0] = np.median(log_budget[1:])  # the agent counts as the median rival
        z = (log_budget - log_budget[1:].mean()) / log_budget[1:].std()
        score += feed.popularity_bias * relevance.std() * z
    if not feed.cold_start_recall:
        score[:, feed.profile.cold_start] = -np.inf
    top = np.argsort(-score, axis=1, kind="stable")[:, :m]
    return np.repeat(top, feed.exploration_variants, axis=0)


@pytest.mark.parametrize("recall", [{}, {"popularity_bias": 0.0, "cold_start_recall": True}])
def test_feed_retrieval_and_exploration_favour_cold_start(recall):
    pop = AdvertiserPopulation(cold_start_share=0.2)
    feed = bind(FeedTraffic(population=pop, retrieval_share=0.5, exploration_size=3,
                            cold_start_exploration=50.0, **recall), k=40,
                budgets=spread_budgets(40))
    m = int(round(0.5 * 40))
    assert np.all(feed.group_table.sum(axis=1) == m + 3)
    cold = feed.profile.cold_start
    # Exploration candidates: those outside their cluster's recalled top-m.
    retrieved = _recalled_by_hand(feed, m)
    assert feed.group_table[np.arange(len(retrieved))[:, None], retrieved].all()
    explored = feed.group_table.copy()
    explored[np.arange(len(explored))[:, None], retrieved] = False
    assert explored.sum(axis=1).tolist() == [3] * len(explored)
    assert explored[:, cold].sum() / explored.sum() > 2 * cold.mean()
    if not feed.cold_start_recall:  # the default: only exploration reaches a new ad
        assert not np.isin(retrieved, np.flatnonzero(cold)).any()


def test_cascade_recall_favours_popular_advertisers_and_not_the_agents_budget():
    """The default cascade recalls by popularity (budget); the agent counts as the median."""
    feed = bind(FeedTraffic(), k=48, budgets=spread_budgets(48))
    reach = feed.cascade_reach
    budget = feed.campaigns.budget
    established = ~feed.profile.cold_start
    established[0] = False
    rivals = np.flatnonzero(established)
    big = rivals[budget[rivals] >= np.median(budget[rivals])]
    small = rivals[budget[rivals] < np.quantile(budget[rivals], 0.2)]
    assert reach[big].mean() > reach[small].mean() + 0.3
    # Cold-start ads are only explored: far below every recalled rival.
    assert reach[feed.profile.cold_start].max() < reach[big].min()
    # Without the bias, recall is by relevance alone: popularity does not order reach.
    plain = bind(FeedTraffic(popularity_bias=0.0, cold_start_recall=True), k=48,
                 budgets=spread_budgets(48))
    assert abs(plain.cascade_reach[big].mean() - plain.cascade_reach[small].mean()) < 0.15


# --------------------------------------------------------------------------- #
# Predictions: established, cold-start and marketing advertisers
# --------------------------------------------------------------------------- #


def test_cold_start_predictions_are_wider_and_biased(mixed_day):
    _, env, batches = mixed_day
    b0 = batches[0]
    cold, mkt = b0.cold_start, b0.column_info["marketing"]
    assert cold.sum() == round(0.1 * 47) and mkt.sum() == round(0.05 * 47)
    assert not cold[0] and not mkt[0]  # the agent is an established advertiser
    established = ~cold & ~mkt
    pv = cat(batches, lambda b: b.pvalue).astype(np.float64)
    pc = cat(batches, lambda b: b.p_conversion)
    el = cat(batches, lambda b: b.eligible) & (pv > 0)
    sigma = cat(batches, lambda b: b.pvalue_sigma)
    ratio = np.where(el, sigma / np.where(el, pv, 1.0), np.nan)
    assert np.nanmean(ratio[:, established]) == pytest.approx(0.15, rel=1e-4)
    assert np.nanmean(ratio[:, cold]) > 2.5 * np.nanmean(ratio[:, established])
    # The realised spread of the true rate around the prediction is wider too.
    log_err = np.where(el, np.log(np.where(el, pc, 1.0) / np.where(el, pv, 1.0)), np.nan)
    spread = np.nanstd(log_err, axis=0)
    assert np.all(spread[cold] > 2.0 * np.nanmax(spread[established]))
    # Established: unbiased within a few percent; cold-start: biased; marketing: predicted
    # high, converting at a fraction of it.
    pooled = lambda cols: pc[:, cols][el[:, cols]].sum() / pv[:, cols][el[:, cols]].sum()  # noqa: E731
    assert pooled(established) == pytest.approx(1.0, abs=0.02)
    per_cold = [pooled(np.flatnonzero(cold)[i:i + 1]) for i in range(cold.sum())]
    assert max(abs(np.log(per_cold))) > 0.1, per_cold
    assert pooled(mkt) == pytest.approx(0.35, rel=0.1)
    level = lambda cols: (pv[:, cols][el[:, cols]].mean())  # noqa: E731
    cats = env.c.category
    same_cat = established & np.isin(cats, cats[mkt])
    assert level(mkt) > level(same_cat)


# --------------------------------------------------------------------------- #
# Determinism and layout
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("traffic", ["feed", "search", "mixed"])
def test_same_seed_same_day_and_different_seeds_differ(traffic):
    days = [day(bind(make_traffic(traffic), seed=s, volume=10_000), seed=s)[:8]
            for s in (4, 4, 5)]
    for a, b in zip(days[0], days[1]):
        np.testing.assert_array_equal(a.pvalue, b.pvalue)
        np.testing.assert_array_equal(a.groups, b.groups)
        np.testing.assert_array_equal(a.p_conversion, b.p_conversion)
        np.testing.assert_array_equal(a.click_rate, b.click_rate)
        assert a.row_info.keys() == b.row_info.keys()
        for name in a.row_info:
            np.testing.assert_array_equal(a.row_info[name], b.row_info[name])
    assert not np.array_equal(days[0][5].pvalue[:50], days[2][5].pvalue[:50])


@pytest.mark.parametrize("traffic", ["feed", "search", "mixed"])
def test_batch_shapes_and_dtypes(traffic):
    source = bind(make_traffic(traffic), k=20, volume=20_000)
    b = source.sample(20, np.random.default_rng(0))
    n, k = b.n, 20
    assert n > 100 and b.k == k
    b.validate()
    assert b.pvalue.shape == (n, k) and b.pvalue.dtype == np.float32
    assert b.pvalue_sigma.shape == (n, k) and b.pvalue_sigma.dtype == np.float32
    assert b.p_conversion.shape == (n, k) and b.p_conversion.dtype == np.float64
    assert b.eligible.shape == (n, k) and b.eligible.dtype == bool
    assert b.conversion_value.shape == (n, k)
    assert b.source.shape == (n,) and b.source.dtype == np.int8
    assert b.click_rate.shape == (n,) and b.click_rate.dtype == np.float32
    assert b.groups.shape == (n,) and b.group_table.shape[1] == k
    assert b.sigma_col.shape == (k,)
    for name, arr in b.row_info.items():
        assert arr.shape == (n,) and arr.dtype == np.int32, name
    for name, arr in b.column_info.items():
        assert arr.shape == (k,) and arr.dtype == bool, name
    want = {"feed": {"user", "session_position"}, "search": {"query"},
            "mixed": {"user", "session_position", "query"}}[traffic]
    assert set(b.row_info) == want
    # Cheap to slice: take keeps every field consistent.
    t = b.take(np.arange(0, n, 7))
    t.validate()
    np.testing.assert_array_equal(t.p_conversion, b.p_conversion[::7])
    for name in b.row_info:
        np.testing.assert_array_equal(t.row_info[name], b.row_info[name][::7])


def test_validation_of_generator_arguments():
    for kwargs, word in [(dict(retrieval_share=0), "retrieval_share"),
                         (dict(mean_session_ads=0.5), "mean_session_ads"),
                         (dict(n_users=0), "n_users"), (dict(drift=-1), "drift"),
                         (dict(exploration_size=-1), "exploration_size"),
                         (dict(daytime_tilt=5), "daytime_tilt"),
                         (dict(slots="wide"), "slots")]:
        with pytest.raises(ValueError, match=word):
            FeedTraffic(**kwargs)
    for kwargs, word in [(dict(vocabulary_size=0), "vocabulary_size"),
                         (dict(zipf_exponent=0), "zipf_exponent"),
                         (dict(head_threshold=1.0, tail_threshold=0.5), "tail_threshold"),
                         (dict(commercial_intent=(0, 1)), "commercial_intent"),
                         (dict(related_share=0), "related_share")]:
        with pytest.raises(ValueError, match=word):
            SearchTraffic(**kwargs)
    with pytest.raises(ValueError, match="cold_start_share"):
        AdvertiserPopulation(cold_start_share=1.5)
    with pytest.raises(ValueError, match="population"):
        FeedTraffic(population={"cold_start_share": 0.1})
    assert FeedTraffic(slots="native").slots == SlotSettings(2, (1.0, 0.7))
    assert SearchTraffic(slots="native").slots.n_slots == 4


# --------------------------------------------------------------------------- #
# The environment on every source
# --------------------------------------------------------------------------- #


def custom_mix():
    return TrafficMix([FeedTraffic(slots="native", mean_session_ads=4.0),
                       SearchTraffic(slots="native", vocabulary_size=500)],
                      shares=[0.6, 0.4], hourly_weights=np.ones((2, 24)))


@pytest.mark.parametrize("traffic", ["feed", "search", "mixed", "custom"])
def test_env_runs_and_passes_the_checkers(traffic):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    spec = custom_mix() if traffic == "custom" else traffic
    env = gym.make(LITE, traffic=spec, record=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check(env.unwrapped, skip_render_check=True)
        sb3_check(env.unwrapped, warn=True)
    assert [str(w.message) for w in caught] == []
    obs, info = env.reset(seed=1)
    budget = info["budget"]
    while True:
        obs, reward, terminated, truncated, info = env.step(np.full(1, 0.3, np.float32))
        assert env.observation_space.contains(obs) and np.isfinite(reward)
        if terminated or truncated:
            break
    assert 0 < info["total_cost"] <= budget + 1e-9
    rec = env.unwrapped.recording
    src = np.concatenate([r["source"] for r in rec])
    slots = np.concatenate([r["n_slots"] for r in rec])
    if traffic == "custom":  # each source's rows are sold with its native slots
        assert np.all(slots[src == SOURCE_FEED] == 2) and np.all(slots[src == SOURCE_SEARCH] == 4)
    else:  # slots=None: the env's settings
        assert np.all(slots == env.unwrapped.n_slots)


class UniformTraffic(TrafficSource):
    """A minimal user-defined source: flat pValue, everyone eligible, 1 slot."""

    source_id = SOURCE_SEARCH
    name = "uniform"

    def _bind(self, rng):
        self.value = rng.uniform(50, 150, len(self.campaigns))

    def expected_volume(self):
        return np.full(self.n_ticks, self.daily_volume / self.n_ticks)

    def sample(self, tick, rng):
        self._check_bound(tick)
        n, k = int(rng.poisson(self.expected_volume()[tick])), len(self.campaigns)
        return ImpressionBatch(np.full((n, k), 4e-4, np.float32), np.full(n, 1, np.int8),
                               click_rate=np.full(n, 0.03, np.float32), sigma_ratio=0.1,
                               value_col=self.value, slots={1: self.slots})


def test_a_mix_with_a_user_defined_source_runs_in_the_env():
    mix = TrafficMix([FeedTraffic(), UniformTraffic(slots=SlotSettings(1, (1.0,)))],
                     shares=[0.7, 0.3])
    env = gym.make(LITE, traffic=mix, record=True)
    env.reset(seed=0)
    assert env.unwrapped.traffic.tables is None  # sampled source by source, then merged
    batch = env.unwrapped.batch
    batch.validate()
    assert set(np.unique(batch.source)) == {SOURCE_FEED, SOURCE_SEARCH}
    assert np.all(batch.eligible[batch.source == SOURCE_SEARCH])
    while not env.step(np.zeros(1, np.float32))[2]:
        pass
    rec = env.unwrapped.recording
    src = np.concatenate([r["source"] for r in rec])
    slots = np.concatenate([r["n_slots"] for r in rec])
    assert np.all(slots[src == SOURCE_SEARCH] == 1)
    assert (src == SOURCE_SEARCH).mean() == pytest.approx(0.3, abs=0.05)


# --------------------------------------------------------------------------- #
# The report
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("traffic", ["mixed", "feed"])
def test_traffic_report_writes_its_files(tmp_path, traffic):
    import pandas as pd

    from experiments.traffic_report import run_traffic_report

    summary = run_traffic_report(tmp_path, seed=2, n_advertisers=12,
                                 opportunities_per_day=20_000, traffic=traffic, progress=False)
    for name in ("diurnal_volume.png", "pvalue_distribution.png",
                 "eligible_per_opportunity.png", "query_rank_frequency.png",
                 "session_fatigue.png", "summary.csv"):
        path = tmp_path / name
        assert path.stat().st_size > 0, name
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind
    table = pd.read_csv(tmp_path / "summary.csv")
    want = ["feed", "search", "all"] if traffic == "mixed" else ["feed", "all"]
    assert table["source"].tolist() == want == summary["source"].tolist()
    row = table.set_index("source").loc["all"]
    assert row["opportunities"] == pytest.approx(20_000, rel=0.15)
    assert 5 < row["peak_to_trough"] < 30 and 0.04 < row["share_00_06"] < 0.15
    assert row["true_over_predicted_established"] == pytest.approx(1.0, abs=0.05)
    if traffic == "mixed":
        assert -1.3 < table.set_index("source").loc["search", "zipf_slope"] < -0.6
