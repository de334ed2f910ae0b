"""Tests for :mod:`bidenv.scoring`: the scoring contract of docs/design.md, pinned by hand.

Every expected number below is worked out in the comment beside it, from the formulas

    CPA: score = conversions * min(1, (C / CPA) ** beta),   CPA = cost / conversions
    ROI: score = value * min(1, (ROI / R) ** beta),          ROI = value / cost
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bidenv.scoring import CONSTRAINTS, campaign_score, constraint_ratio, cpa_score, roi_score

HYP = settings(max_examples=60, deadline=None, derandomize=True, database=None)


# --------------------------------------------------------------------------- #
# CPA
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("conversions", "cost", "target", "beta", "expected"),
    [
        (10.0, 500.0, 40.0, 2.0, 6.4),  # CPA 50 > 40: 10 * (40/50)**2 = 10 * 0.64
        (10.0, 500.0, 40.0, 1.0, 8.0),  # 10 * 0.8
        (10.0, 500.0, 40.0, 3.0, 5.12),  # 10 * 0.512
        (10.0, 500.0, 40.0, 0.0, 10.0),  # beta 0: no penalty at all
        (10.0, 300.0, 40.0, 2.0, 10.0),  # CPA 30 <= 40: no penalty
        (10.0, 400.0, 40.0, 2.0, 10.0),  # CPA exactly on target
        (4.0, 400.0, 25.0, 2.0, 0.25),  # CPA 100: 4 * (25/100)**2 = 4/16
        (3.0, 180.0, 20.0, 0.5, 3.0 * (1.0 / 3.0) ** 0.5),  # CPA 60: 3 * (20/60)**0.5
    ],
)
def test_cpa_score_hand_computed(conversions, cost, target, beta, expected):
    got = cpa_score(conversions, cost, target, beta)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-12)


def test_cpa_score_default_beta_is_two():
    assert cpa_score(10.0, 500.0, 40.0) == pytest.approx(6.4, rel=1e-12)


def test_cpa_zero_conversions_scores_zero():
    assert cpa_score(0.0, 123.0, 40.0) == 0.0
    assert cpa_score(0.0, 0.0, 40.0) == 0.0


def test_cpa_zero_cost_has_no_penalty():
    assert cpa_score(5.0, 0.0, 40.0) == 5.0
    assert cpa_score(5.0, 0.0, 40.0, beta=7.0) == 5.0


def test_cpa_beta_exponent_is_exact():
    # The penalty factor is (C / CPA) ** beta, so the ratio of the beta=2 and beta=1 scores
    # is exactly C / CPA (a public implementation silently used exponent 1 everywhere).
    conv, cost, target = 7.0, 910.0, 65.0  # CPA 130, C / CPA = 0.5
    s2 = cpa_score(conv, cost, target, beta=2.0)
    s1 = cpa_score(conv, cost, target, beta=1.0)
    assert s1 == pytest.approx(3.5, rel=1e-12)
    assert s2 == pytest.approx(1.75, rel=1e-12)
    assert s2 / s1 == pytest.approx(0.5, rel=1e-12)


# --------------------------------------------------------------------------- #
# ROI
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("value", "cost", "target", "beta", "expected"),
    [
        (300.0, 200.0, 2.0, 2.0, 168.75),  # ROI 1.5 < 2: 300 * 0.75**2
        (300.0, 200.0, 2.0, 1.0, 225.0),  # 300 * 0.75
        (500.0, 200.0, 2.0, 2.0, 500.0),  # ROI 2.5 >= 2: no penalty
        (400.0, 200.0, 2.0, 2.0, 400.0),  # exactly on target
        (100.0, 100.0, 4.0, 2.0, 6.25),  # ROI 1: 100 * (1/4)**2
        (100.0, 100.0, 4.0, 3.0, 100.0 / 64.0),  # 100 * (1/4)**3
    ],
)
def test_roi_score_hand_computed(value, cost, target, beta, expected):
    got = roi_score(value, cost, target, beta)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-12)


def test_roi_zero_value_and_zero_cost():
    assert roi_score(0.0, 50.0, 2.0) == 0.0
    assert roi_score(80.0, 0.0, 2.0) == 80.0


# --------------------------------------------------------------------------- #
# campaign_score
# --------------------------------------------------------------------------- #


def test_campaign_score_dispatches():
    assert campaign_score("cpa", 10.0, 999.0, 500.0, target_cpa=40.0) == pytest.approx(6.4)
    assert campaign_score("cpa", 10.0, 999.0, 500.0, target_cpa=40.0, beta=1.0) == (
        pytest.approx(8.0))
    assert campaign_score("roi", 999.0, 300.0, 200.0, target_roi=2.0) == pytest.approx(168.75)
    # Budget-only: the conversions (or the value), whatever the cost.
    assert campaign_score("budget", 7.0, 123.0, 10_000.0) == 7.0
    assert campaign_score("budget", 7.0, 123.0, 10_000.0, budget_objective="value") == 123.0


def test_campaign_score_unknown_constraint():
    with pytest.raises(ValueError, match="constraint"):
        campaign_score("cpc", 1.0, 1.0, 1.0, target_cpa=1.0)
    assert set(CONSTRAINTS) == {"cpa", "roi", "budget"}


def test_vectorised_inputs_match_scalar_calls():
    conv = np.array([0.0, 5.0, 10.0, 10.0, 3.0])
    cost = np.array([10.0, 0.0, 500.0, 300.0, 180.0])
    got = cpa_score(conv, cost, 40.0)
    assert isinstance(got, np.ndarray) and got.shape == (5,)
    np.testing.assert_allclose(got, [0.0, 5.0, 6.4, 10.0, 3.0 * (40 / 60) ** 2], rtol=1e-12)
    # Per-element targets broadcast too.
    targets = np.array([40.0, 40.0, 25.0, 50.0, 60.0])
    np.testing.assert_allclose(
        cpa_score(conv, cost, targets),
        [cpa_score(c, k, t) for c, k, t in zip(conv, cost, targets)], rtol=1e-12)
    value = np.array([300.0, 500.0, 0.0, 80.0])
    rcost = np.array([200.0, 200.0, 5.0, 0.0])
    np.testing.assert_allclose(roi_score(value, rcost, 2.0), [168.75, 500.0, 0.0, 80.0])
    b = campaign_score("budget", conv, None, cost)
    np.testing.assert_array_equal(b, conv)
    b[0] = 99.0  # a copy, not a view of the input
    assert conv[0] == 0.0


# --------------------------------------------------------------------------- #
# constraint_ratio
# --------------------------------------------------------------------------- #


def test_constraint_ratio_cpa_values_and_caps():
    # CPA 50 against a target of 40.
    assert constraint_ratio("cpa", 10.0, 0.0, 500.0, target_cpa=40.0) == pytest.approx(1.25)
    assert constraint_ratio("cpa", 10.0, 0.0, 200.0, target_cpa=40.0) == pytest.approx(0.5)
    # Nothing spent: 0. Money spent for nothing: the cap. Far over target: capped.
    assert constraint_ratio("cpa", 0.0, 0.0, 0.0, target_cpa=40.0) == 0.0
    assert constraint_ratio("cpa", 0.0, 0.0, 10.0, target_cpa=40.0) == 10.0
    assert constraint_ratio("cpa", 0.0, 0.0, 10.0, target_cpa=40.0, cap=3.0) == 3.0
    assert constraint_ratio("cpa", 1.0, 0.0, 4000.0, target_cpa=40.0) == 10.0
    assert constraint_ratio("budget", 3.0, 0.0, 500.0) == 0.0
    got = constraint_ratio("cpa", np.array([10.0, 0.0, 10.0]), 0.0,
                           np.array([500.0, 0.0, 0.0]), target_cpa=40.0)
    np.testing.assert_allclose(got, [1.25, 0.0, 0.0])


def test_constraint_ratio_roi_caps():
    assert constraint_ratio("roi", 0.0, 0.0, 0.0, target_roi=2.0) == 0.0
    assert constraint_ratio("roi", 0.0, 0.0, 10.0, target_roi=2.0) == 10.0
    # ROI exactly on target is a ratio of 1 whatever the formula's orientation.
    assert constraint_ratio("roi", 0.0, 1.0, 1.0, target_roi=1.0) == pytest.approx(1.0)


def test_constraint_ratio_roi_is_target_over_roi():
    # ROI = 300 / 200 = 1.5 against a target of 2: violated, ratio 2 / 1.5 = 4/3.
    assert constraint_ratio("roi", 0.0, 300.0, 200.0, target_roi=2.0) == pytest.approx(4 / 3)
    # ROI 3 against a target of 2: satisfied, ratio 2/3.
    assert constraint_ratio("roi", 0.0, 600.0, 200.0, target_roi=2.0) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- #
# Telescoping
# --------------------------------------------------------------------------- #


@HYP
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    beta=st.sampled_from([0.5, 1.0, 2.0, 3.0]),
    kind=st.sampled_from(["cpa", "roi"]),
)
def test_increments_telescope_to_final_score(seed, n, beta, kind):
    g = np.random.default_rng(seed)
    # Cumulative totals: non-decreasing, with ticks of no spend and of spend for nothing.
    conv = np.cumsum(g.poisson(0.7, n) * (g.random(n) < 0.7))
    value = np.cumsum(g.gamma(1.0, 40.0, n) * (g.random(n) < 0.5))
    cost = np.cumsum(g.gamma(1.0, 20.0, n) * (g.random(n) < 0.8))
    kw = dict(target_cpa=30.0) if kind == "cpa" else dict(target_roi=2.0)
    scores = [campaign_score(kind, c, v, k, beta=beta, **kw) for c, v, k in zip(conv, value, cost)]
    # The score before anything happened is 0, so the increments sum to the final score.
    start = campaign_score(kind, 0.0, 0.0, 0.0, beta=beta, **kw)
    assert start == 0.0
    increments = np.diff(np.concatenate([[start], scores]))
    assert float(np.sum(increments)) == pytest.approx(scores[-1], rel=1e-9, abs=1e-12)
    # And the vectorised call on the whole path agrees with the per-tick scalar calls.
    np.testing.assert_allclose(campaign_score(kind, conv, value, cost, beta=beta, **kw), scores,
                               rtol=1e-12)


def test_ratio_by_hand():
    from bidenv.scoring import ratio

    assert ratio(30.0, 2.0) == 15.0 and isinstance(ratio(30.0, 2.0), float)
    assert math.isnan(ratio(0.0, 0.0)) and ratio(5.0, 0.0) == math.inf
    np.testing.assert_array_equal(ratio(np.array([6.0, 0.0, 1.0]), np.array([3.0, 0.0, 0.0])),
                                  [2.0, np.nan, np.inf])
