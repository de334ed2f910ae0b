"""Tests for :mod:`bidenv.campaign`: validation, coercion, replacement and random draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bidenv.campaign import (
    DEFAULT_BUDGET_BID_SCALE,
    N_CATEGORIES,
    Campaign,
    CampaignArrays,
    budget_scale,
    draw_campaign,
    draw_competitor_campaigns,
)

# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(budget=0.0, target_cpa=50.0), "budget"),
        (dict(budget=-10.0, target_cpa=50.0), "budget"),
        (dict(budget=math.nan, target_cpa=50.0), "budget"),
        (dict(budget=math.inf, target_cpa=50.0), "budget"),
        (dict(budget="lots", target_cpa=50.0), "budget"),
        (dict(budget=100.0, target_cpa=0.0), "target_cpa"),
        (dict(budget=100.0, target_cpa=-3.0), "target_cpa"),
        (dict(budget=100.0), "target_cpa"),  # a CPA campaign needs its target
        (dict(budget=100.0, constraint="roi"), "target_roi"),
        (dict(budget=100.0, constraint="roi", target_roi=0.0), "target_roi"),
        (dict(budget=100.0, constraint="roi", target_roi=-1.0), "target_roi"),
        (dict(budget=100.0, constraint="cpc", target_cpa=1.0), "constraint"),
        (dict(budget=100.0, target_cpa=50.0, category=N_CATEGORIES), "category"),
        (dict(budget=100.0, target_cpa=50.0, category=-1), "category"),
        (dict(budget=100.0, target_cpa=50.0, category=1.5), "category"),
        (dict(budget=100.0, target_cpa=50.0, category="3"), "category"),
    ],
)
def test_invalid_campaigns_raise_naming_the_field(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Campaign(**kwargs)


def test_valid_campaign_fields_are_normalised():
    c = Campaign(budget=100, target_cpa=40, category=3)
    assert c.budget == 100.0 and isinstance(c.budget, float)
    assert c.target_cpa == 40.0 and isinstance(c.target_cpa, float)
    assert c.constraint == "cpa" and c.target == 40.0 and c.target_roi is None
    r = Campaign(budget=50.0, constraint="roi", target_roi=2.5)
    assert r.target == 2.5
    with pytest.raises(AttributeError):
        c.budget = 5.0  # frozen


def test_budget_only_campaign_has_default_bid_scale():
    c = Campaign(budget=300.0, constraint="budget")
    assert c.target_cpa == DEFAULT_BUDGET_BID_SCALE == 50.0
    assert c.target == 50.0
    assert Campaign(budget=300.0, constraint="budget", target_cpa=80.0).target_cpa == 80.0


# --------------------------------------------------------------------------- #
# coerce / replace / to_dict
# --------------------------------------------------------------------------- #


def test_coerce_from_dict_and_passthrough():
    c = Campaign.coerce({"budget": 250.0, "constraint": "roi", "target_roi": 3.0,
                         "category": 5})
    assert c == Campaign(budget=250.0, constraint="roi", target_roi=3.0, category=5)
    assert Campaign.coerce(c) is c
    assert Campaign(**c.to_dict()) == c


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"budget": 100.0, "target_cpa": 5.0, "bid": 3.0}, ("campaign", "bid")),
        ({"target_cpa": 5.0}, ("budget",)),
        ([100.0, "cpa", 5.0], ("campaign",)),
        ({"budget": -1.0, "target_cpa": 5.0}, ("budget",)),
    ],
)
def test_coerce_rejects_bad_specs(spec, words):
    with pytest.raises(ValueError) as exc:
        Campaign.coerce(spec)
    for w in words:
        assert w in str(exc.value)


def test_replace_returns_validated_copy():
    c = Campaign(budget=100.0, target_cpa=40.0, category=2)
    d = c.replace(budget=200.0)
    assert d == Campaign(budget=200.0, target_cpa=40.0, category=2)
    assert c.budget == 100.0  # the original is unchanged
    # None values are ignored (kept from the original).
    assert c.replace(budget=None) == c
    # Switching constraint keeps the targets.
    r = c.replace(constraint="roi", target_roi=2.0)
    assert r.constraint == "roi" and r.target_roi == 2.0 and r.target_cpa == 40.0
    assert r.replace(constraint="cpa") == Campaign(budget=100.0, target_cpa=40.0,
                                                   target_roi=2.0, category=2)
    with pytest.raises(ValueError, match="target_roi"):
        c.replace(constraint="roi")
    with pytest.raises(ValueError, match="budget"):
        c.replace(budget=0.0)
    with pytest.raises(ValueError, match="colour"):
        c.replace(colour="red")


def test_campaign_arrays():
    cs = [Campaign(budget=10.0, target_cpa=40.0, category=1),
          Campaign(budget=20.0, constraint="roi", target_roi=2.0, category=7),
          Campaign(budget=30.0, constraint="budget")]
    a = CampaignArrays.from_campaigns(cs)
    assert len(a) == 3
    np.testing.assert_array_equal(a.budget, [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(a.is_roi, [False, True, False])
    np.testing.assert_array_equal(a.is_budget, [False, False, True])
    np.testing.assert_array_equal(a.target_cpa, [40.0, np.nan, 50.0])
    np.testing.assert_array_equal(a.target_roi, [np.nan, 2.0, np.nan])
    np.testing.assert_array_equal(a.category, [1, 7, 0])


# --------------------------------------------------------------------------- #
# Random draws
# --------------------------------------------------------------------------- #


def test_budget_scale():
    assert budget_scale(500_000) == 1.0
    assert budget_scale(50_000) == pytest.approx(0.1)


def test_draw_competitor_campaigns_ranges():
    scale = 0.1
    cs = draw_competitor_campaigns(np.random.default_rng(7), 600, scale=scale)
    assert len(cs) == 600 and all(isinstance(c, Campaign) for c in cs)
    budgets = np.array([c.budget for c in cs]) / scale
    assert budgets.min() >= 2000.0 and budgets.max() <= 8000.0
    # Log-uniform: the mean log-budget is the log of the geometric mean 4000, and both ends of
    # the range are reached.
    assert np.mean(np.log(budgets)) == pytest.approx(np.log(4000.0), abs=0.05)
    assert budgets.min() < 2200.0 and budgets.max() > 7300.0
    cpa = [c for c in cs if c.constraint == "cpa"]
    roi = [c for c in cs if c.constraint == "roi"]
    assert len(cpa) + len(roi) == 600
    # About 20% ROI campaigns (binomial sd of the share at n=600 is 0.016).
    assert 0.14 < len(roi) / 600 < 0.26
    t = np.array([c.target_cpa for c in cpa])
    assert t.min() >= 25.0 and t.max() <= 130.0
    assert t.min() < 30.0 and t.max() > 125.0
    r = np.array([c.target_roi for c in roi])
    assert r.min() >= 1.0 and r.max() <= 4.0
    cats = np.array([c.category for c in cs])
    assert set(cats.tolist()) == set(range(N_CATEGORIES))


def test_draw_is_deterministic_per_seed():
    a = draw_competitor_campaigns(np.random.default_rng(3), 20, scale=0.5)
    b = draw_competitor_campaigns(np.random.default_rng(3), 20, scale=0.5)
    c = draw_competitor_campaigns(np.random.default_rng(4), 20, scale=0.5)
    assert a == b
    assert a != c
    assert draw_competitor_campaigns(np.random.default_rng(3), 0) == []


def test_draw_campaign_roi_share():
    g = np.random.default_rng(0)
    assert all(draw_campaign(g).constraint == "cpa" for _ in range(50))
    assert all(draw_campaign(g, roi_share=1.0).constraint == "roi" for _ in range(50))


# --------------------------------------------------------------------------- #
# Market reference and the agent's campaigns
# --------------------------------------------------------------------------- #


def _tightness(c):
    """Tightness of a campaign relative to its category's market reference."""
    from bidenv.campaign import MARKET_CPA, MARKET_ROI

    if c.constraint == "roi":
        return c.target_roi / MARKET_ROI[c.category]
    return MARKET_CPA[c.category] / c.target_cpa


def test_market_reference_table_is_per_category_and_consistent():
    from bidenv.campaign import MARKET_CONVERSION_VALUE, MARKET_CPA, MARKET_ROI
    from bidenv.traffic.latent import CATEGORY_LEVELS

    cpa, roi = np.array(MARKET_CPA), np.array(MARKET_ROI)
    assert cpa.shape == roi.shape == (N_CATEGORIES,)
    assert np.all(np.isfinite(cpa) & (cpa > 0)) and np.all(np.isfinite(roi) & (roi > 0))
    # ROI reference = the market's typical conversion value / CPA reference (to rounding).
    np.testing.assert_allclose(roi * cpa, MARKET_CONVERSION_VALUE, rtol=2e-3)
    # A conversion costs more where predicted conversion rates are lower: the category of
    # lowest pValue level (x0.3) is several times dearer than that of the highest (x1.7).
    assert np.argmax(cpa) == np.argmin(CATEGORY_LEVELS)
    assert np.argmin(cpa) == np.argmax(CATEGORY_LEVELS)
    assert cpa[0] / cpa[-1] > 3.0
    assert np.corrcoef(np.log(cpa), np.log(CATEGORY_LEVELS))[0, 1] < -0.9


def test_market_target_scales_with_the_category_reference():
    from bidenv.campaign import MARKET_CPA, MARKET_ROI, market_target

    for c in range(N_CATEGORIES):
        assert market_target(c) == MARKET_CPA[c]
        assert market_target(c, "cpa", 1.4) == pytest.approx(MARKET_CPA[c] / 1.4)
        assert market_target(c, "roi", 1.4) == pytest.approx(MARKET_ROI[c] * 1.4)
        assert market_target(c, "budget", 0.5) == pytest.approx(2 * MARKET_CPA[c])
    for bad in (dict(category=N_CATEGORIES), dict(category=0, tightness=0.0),
                dict(category=0, constraint="cpc")):
        with pytest.raises(ValueError):
            market_target(**bad)


def test_agent_campaigns_cover_the_scenario_presets():
    from bidenv.campaign import (
        AGENT_BUDGET_RANGE,
        AGENT_TIGHTNESS_RANGE,
        MARKET_CPA,
        MARKET_REFERENCE_BUDGET,
        draw_agent_campaign,
    )
    from experiments.evaluate import PRESETS

    assert AGENT_BUDGET_RANGE == (0.5 * MARKET_REFERENCE_BUDGET, 1.5 * MARKET_REFERENCE_BUDGET)
    assert AGENT_TIGHTNESS_RANGE == (0.7, 1.4)
    rng = np.random.default_rng(0)
    cs = [draw_agent_campaign(rng) for _ in range(2000)]
    budgets = np.array([c.budget for c in cs])
    tight = np.array([_tightness(c) for c in cs])
    cats = np.array([c.category for c in cs])
    roi = np.array([c.constraint == "roi" for c in cs])
    assert {c.constraint for c in cs} == {"cpa", "roi"}
    # About 20% ROI campaigns (binomial sd of the share at n=2000 is 0.009).
    assert 0.17 < roi.mean() < 0.23
    # Categories uniform (expected 250 each, sd about 15).
    assert np.bincount(cats, minlength=N_CATEGORIES).min() > 190
    # Budgets log-uniform over base x [0.5, 1.5]; tightness log-uniform over [0.7, 1.4];
    # both ends reached, for CPA and ROI campaigns alike.
    lo, hi = AGENT_BUDGET_RANGE
    assert lo <= budgets.min() < 1.03 * lo and hi / 1.03 < budgets.max() <= hi
    assert np.mean(np.log(budgets)) == pytest.approx(np.mean(np.log(AGENT_BUDGET_RANGE)),
                                                     abs=0.03)
    for kind in (roi, ~roi):
        t = tight[kind]
        assert 0.7 - 1e-9 <= t.min() < 0.72 and 1.37 < t.max() <= 1.4 + 1e-9
    # Targets follow the category's market reference: the median CPA target of each category
    # is its reference (the tightness is drawn independently of the category).
    for c in range(N_CATEGORIES):
        t = np.array([x.target_cpa for x in cs if x.category == c and x.constraint == "cpa"])
        assert np.median(t) == pytest.approx(MARKET_CPA[c], rel=0.08)
    # Every scenario preset of the evaluation lies in the range drawn.
    for preset in PRESETS.values():
        for s in preset:
            camp = Campaign.coerce(s.campaign)
            assert lo - 1e-9 <= camp.budget <= hi + 1e-9, s
            assert 0.7 - 1e-9 <= _tightness(camp) <= 1.5 + 1e-9, s
    default = {s.name: Campaign.coerce(s.campaign) for s in PRESETS["default"]}
    assert _tightness(default["default"]) == pytest.approx(1.0)
    assert _tightness(default["tight_cpa"]) == pytest.approx(1.4)
    assert _tightness(default["loose_cpa"]) == pytest.approx(0.7)
    assert _tightness(default["roi"]) == pytest.approx(1.0)
    assert default["default"].budget == MARKET_REFERENCE_BUDGET


def test_agent_campaign_draw_scales_and_keeps_the_competitors_draw():
    from bidenv.campaign import AGENT_BUDGET_RANGE, draw_agent_campaign

    a = draw_agent_campaign(np.random.default_rng(5), scale=0.1)
    b = draw_agent_campaign(np.random.default_rng(5))
    assert a.budget == pytest.approx(0.1 * b.budget)
    assert a.replace(budget=b.budget) == b
    assert draw_agent_campaign(np.random.default_rng(1), roi_share=1.0).constraint == "roi"
    assert draw_agent_campaign(np.random.default_rng(1), roi_share=0.0).constraint == "cpa"
    c = draw_agent_campaign(np.random.default_rng(2), budget_range=(100.0, 100.0),
                            tightness_range=(1.0, 1.0))
    assert c.budget == pytest.approx(100.0) and _tightness(c) == pytest.approx(1.0)
    # Same number and kinds of draws as draw_campaign: what is drawn after it (the
    # competitors) is the same whichever distribution drew the agent's campaign.
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(20):
        draw_agent_campaign(g1)
        draw_campaign(g2, roi_share=0.2)
    assert g1.random() == g2.random()
    for bad in (dict(budget_range=(0.0, 1.0)), dict(tightness_range=(2.0, 1.0))):
        with pytest.raises(ValueError):
            draw_agent_campaign(np.random.default_rng(0), **bad)
    assert AGENT_BUDGET_RANGE[0] > 0


def test_env_and_offline_collection_draw_the_agent_campaign():
    from bidenv.campaign import AGENT_BUDGET_RANGE, draw_agent_campaign
    from bidenv.env import AutoBiddingEnv
    from experiments.collect import CollectConfig, behavior_plan

    env = AutoBiddingEnv(opportunities_per_day=50_000, n_competitors=4)
    scale = budget_scale(50_000)
    for seed in range(5):
        env.reset(seed=seed)
        want = draw_agent_campaign(np.random.default_rng(seed), scale=scale)
        assert env.agent_campaign == want
    config = CollectConfig(episodes=300)
    plans = [behavior_plan(config, ep)["campaign"] for ep in range(300)]
    cs = [Campaign.coerce(p) for p in plans]
    assert all(None not in p.values() for p in plans)
    assert all(AGENT_BUDGET_RANGE[0] <= c.budget <= AGENT_BUDGET_RANGE[1] for c in cs)
    assert all(0.7 - 1e-9 <= _tightness(c) <= 1.4 + 1e-9 for c in cs)
    assert 0.1 < np.mean([c.constraint == "roi" for c in cs]) < 0.3
    meta = config.metadata()
    assert meta["tightness_range"] == [0.7, 1.4] and meta["roi_share"] == 0.2
    assert len(meta["market_cpa"]) == len(meta["market_roi"]) == N_CATEGORIES


@pytest.mark.parametrize("seed", [3, 4])
def test_default_scenario_is_inside_the_market(seed):
    """On the calibrated full day the default scenario's campaign is neither hopeless nor
    trivially loose: budget pacing spends most of the budget and truthful bidding converts."""
    import gymnasium as gym

    import agents
    import bidenv  # noqa: F401
    from experiments.evaluate import PRESETS, play_episode

    env = gym.make("bidenv/AutoBidding-v0")
    options = PRESETS["default"][0].options(500_000)
    info, _ = play_episode(env, agents.make("pid_budget"), seed=seed, options=options)
    assert info["total_cost"] > 0.5 * info["budget"]
    assert info["expected_cost"] < 1.6 * info["expected_conversions"] * options["target_cpa"]
    info, _ = play_episode(env, agents.make("truthful"), seed=seed, options=options)
    assert info["score"] > 0 and info["expected_score"] > 2.0
    assert math.isfinite(info["cpa"])


def test_market_targets_uniform_bid_outcome_is_exact():
    """The measuring code's constant-multiplier outcome matches the oracle's evaluation of
    fixed multipliers, and its multiplier is the least that spends the budget."""
    from bidenv.env import AutoBiddingEnv
    from bidenv.oracle import day_from_recording, fixed_alpha_outcomes
    from experiments.market_targets import _ABSENT, record_market_day, uniform_bid_outcome

    env = AutoBiddingEnv(opportunities_per_day=20_000, n_competitors=7, record=True,
                         campaign=_ABSENT)
    recording, values = record_market_day(env, 0, 2)
    assert len(recording) == env.n_ticks and values.shape == (8,) and np.all(values > 0)
    assert env.agent_campaign.category == 2 and env.spent[0] == 0.0
    day = day_from_recording(recording, constraint="cpa", reserve_price=env.reserve_price)
    budget = 100.0
    o = uniform_bid_outcome(day, budget)
    want = fixed_alpha_outcomes(day, [o["alpha"], o["alpha"] * (1 - 1e-9)], 1e18)
    assert o["spend"] == pytest.approx(want["cost"][0], rel=1e-9)
    assert o["conversions"] == pytest.approx(want["conversions"][0], rel=1e-9)
    assert o["value"] == pytest.approx(want["value"][0], rel=1e-9)
    assert want["cost"][0] >= budget > want["cost"][1]
