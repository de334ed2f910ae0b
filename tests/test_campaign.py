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
