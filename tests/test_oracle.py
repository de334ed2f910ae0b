"""Tests for :mod:`bidenv.oracle`, the hindsight oracle and the best fixed multiplier.

The oracle is checked against independent computations: ``scipy.optimize.linprog`` (HiGHS) on
the LP relaxation, brute force over integral slot choices and over multipliers, with every
slot's price taken from :func:`bidenv.auction.run_auction` rather than from the oracle's own
formulas, and against the env's own expected figures on real days.
"""

from __future__ import annotations

import itertools
import time
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

import bidenv  # noqa: F401  (registers the ids)
from bidenv import oracle
from bidenv.auction import run_auction
from bidenv.campaign import Campaign
from bidenv.competitors import HeuristicCompetitors
from bidenv.scoring import campaign_score
from bidenv.traffic import FeedTraffic

LITE = "bidenv/AutoBiddingLite-v0"
EXPOSURE = np.array([1.0, 0.8, 0.48])


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def synthetic_recording(rng, n, *, K=3, ticks=1, bid_scale=10.0, eligible_share=0.85):
    """A recording in the env's format: K-slot rows, some rivals missing, some rows closed."""
    recording = []
    for t in range(ticks):
        slots = rng.integers(1, K + 1, n)
        rival = -np.sort(-rng.uniform(0.3, 4.0, (n, K)), axis=1)
        entering = rng.integers(0, K + 1, n)
        rival[np.arange(K)[None, :] >= entering[:, None]] = -np.inf
        expo = np.where(np.arange(K)[None, :] < slots[:, None], EXPOSURE[None, :K], 0.0)
        pvalue = rng.uniform(0.05, 0.4, n).astype(np.float32)
        recording.append({
            "tick": t,
            "pvalue": pvalue,
            "p_conversion": pvalue * rng.uniform(0.6, 1.4, n),
            "conversion_value": rng.uniform(1.0, 3.0, n),
            "eligible": rng.random(n) < eligible_share,
            "rival_bids": rival,
            "n_slots": slots,
            "exposure": expo,
            "source": np.zeros(n, np.int8),
            "alpha": 1.0,
            "bid_scale": bid_scale,
        })
    return recording


def fake_env(recording, campaign, *, mechanism="gsp", reserve=0.2, beta=2.0, max_alpha=10.0):
    """The attributes of an env that :func:`oracle.hindsight` reads."""
    return SimpleNamespace(recording=recording, agent_campaign=Campaign.coerce(campaign),
                           mechanism=mechanism, reserve_price=reserve, beta=beta,
                           max_alpha=max_alpha, n_ticks=len(recording))


def rows_of(recording, constraint):
    """(pvalue, p_conv, value per conversion, truthful bid, rivals, slots, exposure) per row."""
    for rec in recording:
        for i in range(len(rec["pvalue"])):
            if not rec["eligible"][i]:
                continue
            bid = float(rec["pvalue"][i]) * rec["bid_scale"]
            if constraint == "roi":
                bid *= rec["conversion_value"][i]
            yield (float(rec["p_conversion"][i]), float(rec["conversion_value"][i]), bid,
                   rec["rival_bids"][i], int(rec["n_slots"][i]), rec["exposure"][i])


def agent_auction(bid, rivals, n_slots, exposure, mechanism, reserve):
    """Slot and expected cost of the agent bidding ``bid`` against ``rivals`` (run_auction)."""
    rivals = rivals[np.isfinite(rivals)]
    bids = np.concatenate([[bid], rivals])[None, :]
    res = run_auction(bids, n_slots=n_slots, rng=np.random.default_rng(0), reserve=reserve,
                      mechanism=mechanism, exposure=exposure[:n_slots])
    won = np.flatnonzero(res.winners[0] == 0)
    if len(won) == 0:
        return None, 0.0
    j = int(won[0])
    return j, float(exposure[j] * res.prices[0, j])


def slot_options(recording, constraint, mechanism, reserve):
    """Per eligible row, (cost, conversions, value) of buying each slot, priced by run_auction.

    GSP and VCG prices do not depend on the winning bid inside the slot's bid interval, so the
    agent bids the middle of it; first price is charged at the infimum bid (the oracle's
    convention), ``max(reserve, rival_j)``. Slots below the last rival cannot be won alone (any
    bid that beats a missing rival takes the slot just below the last rival), so they are not
    options.
    """
    options = []
    for p, cv, _, rivals, n_slots, expo in rows_of(recording, constraint):
        row = []
        for j in range(n_slots):
            if j > 0 and not np.isfinite(rivals[j - 1]):
                break
            q = max(reserve, rivals[j]) if np.isfinite(rivals[j]) else reserve
            upper = rivals[j - 1] if j > 0 else 2 * q + 1.0
            slot, cost = agent_auction((q + upper) / 2, rivals, n_slots, expo, mechanism,
                                       reserve)
            assert slot == j
            if mechanism == "first_price":
                cost = expo[j] * q
            row.append((cost, expo[j] * p, expo[j] * p * cv))
        options.append(row)
    return options


def lp_value(cost, gain, spend):
    """max sum gain x s.t. sum_j x_ij <= 1, sum cost x <= spend, x >= 0 (HiGHS)."""
    from scipy.optimize import linprog

    n, J = cost.shape
    a_ub = np.zeros((n + 1, n * J))
    for i in range(n):
        a_ub[i, i * J:(i + 1) * J] = 1.0
    a_ub[n] = cost.ravel()
    b_ub = np.append(np.ones(n), spend)
    res = linprog(-gain.ravel(), A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
    assert res.status == 0
    return -res.fun


def random_options(rng, n, J):
    """Random option tables with ties, dominated options and free options."""
    cost = np.round(rng.uniform(0, 3, (n, J)), 1)
    gain = np.round(rng.uniform(0, 2, (n, J)), 1)
    cost[rng.random((n, J)) < 0.1] = 0.0
    gain[rng.random((n, J)) < 0.1] = 0.0
    return cost, gain


def score_of(camp, conversions, value, cost, beta=2.0):
    return float(campaign_score(camp.constraint, conversions, value, cost,
                                target_cpa=camp.target_cpa, target_roi=camp.target_roi,
                                beta=beta))


def run_day(env, seed, policy, options=None):
    env.reset(seed=seed, options=options)
    rng = np.random.default_rng(seed)
    t = 0
    while True:
        _, _, term, trunc, info = env.step(np.array([policy(t, rng)], np.float32))
        t += 1
        if term or trunc:
            return info


# --------------------------------------------------------------------------- #
# (1) The value curve and the penalised optimum against linprog
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("seed", range(6))
def test_value_curve_matches_linprog(seed):
    rng = np.random.default_rng(seed)
    n, J = int(rng.integers(1, 7)), int(rng.integers(1, 4))
    cost, gain = random_options(rng, n, J)
    curve = oracle.value_curve(cost, gain)
    assert curve.spend[0] == 0 and np.all(np.diff(curve.spend) >= 0)
    total = float(np.max(np.where(gain > 0, cost, 0.0), axis=1).sum()) + 1.0
    for spend in np.linspace(0, total, 9):
        v, _ = curve.at(spend)
        assert v == pytest.approx(lp_value(cost, gain, spend), rel=1e-7, abs=1e-7)


def test_value_curve_hand_example():
    # One opportunity, options (cost 1, gain 2), (cost 3, gain 3), (cost 2, gain 1: dominated).
    curve = oracle.value_curve([[1.0, 3.0, 2.0]], [[2.0, 3.0, 1.0]], [[20.0, 30.0, 10.0]])
    assert curve.spend.tolist() == [0.0, 1.0, 3.0]
    assert curve.gain.tolist() == [0.0, 2.0, 3.0]
    assert curve.aux.tolist() == [0.0, 20.0, 30.0]
    assert curve.at(2.0)[0] == pytest.approx(2.5)
    assert curve.at([0.5, 10.0])[0].tolist() == [1.0, 3.0]
    # A free option: its gain is there at zero spend.
    free = oracle.value_curve([[0.0, 2.0], [1.0, 3.0]], [[1.0, 1.5], [2.0, 2.5]])
    assert free.at(0.0)[0] == 1.0 and free.at(1.0)[0] == pytest.approx(3.0)
    best = oracle.maximise_penalised(free, 1e-9, 0.5, beta=2.0)
    assert best["score"] == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_penalised_optimum_matches_a_grid_of_linprog_values(seed):
    rng = np.random.default_rng(100 + seed)
    n, J = 5, 3
    cost, gain = random_options(rng, n, J)
    curve = oracle.value_curve(cost, gain)
    target = float(rng.uniform(0.5, 2.0))
    budget = float(rng.uniform(0.3, 1.2)) * curve.spend[-1]
    best = oracle.maximise_penalised(curve, budget, target, beta=2.0)
    f = lambda v, c: v * min(1.0, target * v / c) ** 2 if c > 0 else v  # noqa: E731
    grid = np.linspace(0, min(budget, curve.spend[-1]), 301)
    grid_scores = [f(lp_value(cost, gain, c), c) for c in grid]
    assert max(grid_scores) <= best["score"] + 1e-7
    assert max(grid_scores) >= best["score"] * (1 - 0.01) - 1e-9
    # The optimum itself is LP-feasible and scores what it claims.
    assert best["spend"] <= budget + 1e-9
    assert best["gain"] <= lp_value(cost, gain, best["spend"]) + 1e-7
    assert best["score"] == pytest.approx(f(best["gain"], best["spend"]), rel=1e-9)


def test_penalised_optimum_hand_example():
    # V(c) = c for c <= 1 (efficiency 1), then 1 + (c - 1) / 4 up to c = 5; target 1/2: the
    # penalty binds from c = 0 on, f = V * (V / (2 c)) ** 2 is largest at c = 1: 1/4.
    curve = oracle.ValueCurve(np.array([0.0, 1.0, 5.0]), np.array([0.0, 1.0, 2.0]),
                              np.zeros(3))
    best = oracle.maximise_penalised(curve, 10.0, 0.5, beta=2.0)
    assert best["score"] == pytest.approx(0.25) and best["spend"] == pytest.approx(1.0)
    # Target 2: feasible while 2 V >= c, i.e. up to c* = 3 (V = 3/2 on V = 3/4 + c/4); beyond,
    # f(5) = 2 * (4/5) ** 2 = 1.28 < 3/2.
    best = oracle.maximise_penalised(curve, 10.0, 2.0, beta=2.0)
    assert best["score"] == pytest.approx(1.5) and best["spend"] == pytest.approx(3.0)
    # Target 1 on V through (1, 1.2), (3, 2.9): c* = 0.35 / 0.15, but the end beats it:
    # f(3) = 2.9 * (2.9 / 3) ** 2 > 7/3.
    steep = oracle.ValueCurve(np.array([0.0, 1.0, 3.0]), np.array([0.0, 1.2, 2.9]),
                              np.zeros(3))
    best = oracle.maximise_penalised(steep, 10.0, 1.0, beta=2.0)
    assert best["score"] == pytest.approx(2.9 * (2.9 / 3) ** 2) and best["spend"] == 3.0
    # Budgets: inside the penalty-free range (f = V(2) = 2.05), or beyond c*, where the cap
    # (not a breakpoint) beats c*: V(2.6) = 2.56.
    best = oracle.maximise_penalised(steep, 2.0, 1.0, beta=2.0)
    assert best["score"] == pytest.approx(2.05) and best["spend"] == 2.0
    best = oracle.maximise_penalised(steep, 2.6, 1.0, beta=2.0)
    assert best["score"] == pytest.approx(2.56 * (2.56 / 2.6) ** 2) and best["spend"] == 2.6
    # No penalty: everything the budget buys.
    best = oracle.maximise_penalised(curve, 3.0, None, beta=2.0)
    assert best["score"] == pytest.approx(1.5)


@pytest.mark.parametrize("mechanism", ["gsp", "vcg", "first_price"])
@pytest.mark.parametrize("constraint", ["cpa", "roi", "budget"])
def test_hindsight_matches_linprog_on_auction_prices(mechanism, constraint):
    rng = np.random.default_rng(7)
    recording = synthetic_recording(rng, 4, ticks=2)
    camp = {"budget": 1.0, "constraint": constraint, "target_cpa": 8.0, "target_roi": 0.15}
    opts = slot_options(recording, constraint, mechanism, 0.2)
    J = max(len(r) for r in opts)
    cost, conv, value = (np.zeros((len(opts), J)) for _ in range(3))
    for i, row in enumerate(opts):
        for j, (c, cv, v) in enumerate(row):
            cost[i, j], conv[i, j], value[i, j] = c, cv, v
    gain = value if constraint == "roi" else conv
    total = cost.max(axis=1).sum()
    for share in (0.2, 0.5, 1.5):
        camp["budget"] = share * total
        c = Campaign.coerce(camp)
        result = oracle.hindsight(fake_env(recording, camp, mechanism=mechanism))
        grid = np.linspace(0, min(camp["budget"], total), 201)
        lp = [lp_value(cost, gain, s) for s in grid]
        scores = [score_of(c, v, v, s) for v, s in zip(lp, grid)]  # v: the objective
        assert max(scores) <= result["oracle_score"] + 1e-7
        assert max(scores) >= result["oracle_score"] * 0.99 - 1e-9
        assert result["oracle_spend"] <= camp["budget"] + 1e-9
        objective = result["oracle_value" if constraint == "roi" else "oracle_conversions"]
        assert objective <= lp_value(cost, gain, result["oracle_spend"]) + 1e-7


# --------------------------------------------------------------------------- #
# (2) Brute force over integral choices and over multipliers
# --------------------------------------------------------------------------- #


def brute_force_integral(opts, camp, budget):
    best = 0.0
    for choice in itertools.product(*[range(len(r) + 1) for r in opts]):
        picked = [r[j - 1] for r, j in zip(opts, choice) if j > 0]
        cost = sum(x[0] for x in picked)
        if cost > budget:
            continue
        best = max(best, score_of(camp, sum(x[1] for x in picked), sum(x[2] for x in picked),
                                  cost))
    return best


@pytest.mark.parametrize("mechanism", ["gsp", "vcg", "first_price"])
@pytest.mark.parametrize("seed", range(3))
def test_oracle_bounds_every_integral_choice(mechanism, seed):
    rng = np.random.default_rng(200 + seed)
    recording = synthetic_recording(rng, 5, eligible_share=1.0)
    for constraint in ("cpa", "roi", "budget"):
        camp = Campaign.coerce({"budget": 1.0, "constraint": constraint, "target_cpa": 8.0,
                                "target_roi": 0.15})
        opts = slot_options(recording, constraint, mechanism, 0.2)
        total = sum(max(o[0] for o in r) for r in opts)
        for share in (0.3, 2.0):
            camp = camp.replace(budget=share * total)
            result = oracle.hindsight(fake_env(recording, camp, mechanism=mechanism))
            brute = brute_force_integral(opts, camp, camp.budget)
            assert brute <= result["oracle_score"] * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize("mechanism", ["gsp", "vcg", "first_price"])
def test_oracle_equals_brute_force_when_the_lp_is_integral(mechanism):
    rng = np.random.default_rng(3)
    for _ in range(5):
        # One opportunity, a budget-only campaign with ample budget: buy the best slot.
        recording = synthetic_recording(rng, 1, eligible_share=1.0)
        camp = Campaign.coerce({"budget": 100.0, "constraint": "budget"})
        opts = slot_options(recording, "budget", mechanism, 0.2)
        result = oracle.hindsight(fake_env(recording, camp, mechanism=mechanism))
        assert result["oracle_score"] == pytest.approx(brute_force_integral(opts, camp, 100.0),
                                                       rel=1e-12)
        # One opportunity with one slot and ample budget, penalised: buy it or not.
        recording[0]["n_slots"][:] = 1
        recording[0]["exposure"][:, 1:] = 0.0
        for target in (0.5, 8.0, 50.0):
            camp = Campaign.coerce({"budget": 100.0, "constraint": "cpa", "target_cpa": target})
            opts = slot_options(recording, "cpa", mechanism, 0.2)
            result = oracle.hindsight(fake_env(recording, camp, mechanism=mechanism))
            assert result["oracle_score"] == pytest.approx(
                brute_force_integral(opts, camp, 100.0), rel=1e-12)


def brute_force_fixed_alpha(recording, camp, mechanism, reserve, max_alpha):
    """Best score over multipliers by replaying every row's auction with run_auction."""
    rows = list(rows_of(recording, camp.constraint))
    alphas = {1.0 / max_alpha}
    for _, _, bid, rivals, n_slots, _ in rows:
        for j in range(n_slots):
            q = max(reserve, rivals[j]) if np.isfinite(rivals[j]) else reserve
            a = q / bid * (1 + 1e-10)  # just above the threshold: wins slot j
            if 1.0 / max_alpha <= a <= max_alpha:
                alphas.add(a)
    best = (-1.0, None)
    for a in sorted(alphas):
        conv = value = cost = 0.0
        for p, cv, bid, rivals, n_slots, expo in rows:
            slot, c = agent_auction(a * bid, rivals, n_slots, expo, mechanism, reserve)
            if slot is None:
                continue
            if cost + c > camp.budget:
                break  # this purchase and every later one are dropped
            conv, value, cost = conv + expo[slot] * p, value + expo[slot] * p * cv, cost + c
        s = score_of(camp, conv, value, cost)
        if s > best[0]:
            best = (s, a)
    return best


@pytest.mark.parametrize("mechanism", ["gsp", "vcg", "first_price"])
@pytest.mark.parametrize("constraint", ["cpa", "roi", "budget"])
def test_best_fixed_alpha_matches_brute_force(mechanism, constraint):
    rng = np.random.default_rng(11)
    recording = synthetic_recording(rng, 6, ticks=3)
    camp = Campaign.coerce({"budget": 1.0, "constraint": constraint, "target_cpa": 8.0,
                            "target_roi": 0.15})
    for budget in (0.5, 2.0, 1000.0):
        camp = camp.replace(budget=budget)
        result = oracle.hindsight(fake_env(recording, camp, mechanism=mechanism))
        score, _ = brute_force_fixed_alpha(recording, camp, mechanism, 0.2, 10.0)
        assert result["best_fixed_alpha_score"] == pytest.approx(score, rel=1e-6, abs=1e-12)
        assert result["best_fixed_alpha_score"] <= result["oracle_score"] * (1 + 1e-9) + 1e-12
        assert 0.1 <= result["best_fixed_alpha"] <= 10.0


def test_fixed_alpha_outcomes_replay_the_auctions():
    rng = np.random.default_rng(5)
    recording = synthetic_recording(rng, 8, ticks=3)
    for mechanism in ("gsp", "vcg", "first_price"):
        day = oracle.day_from_recording(recording, constraint="cpa", mechanism=mechanism,
                                        reserve_price=0.2)
        alphas = np.array([0.3, 1.0, 2.5, 7.0, 0.05])
        for budget in (0.7, 1e6):
            out = oracle.fixed_alpha_outcomes(day, alphas, budget)
            for k, a in enumerate(alphas):
                conv = cost = 0.0
                for p, _, bid, rivals, n_slots, expo in rows_of(recording, "cpa"):
                    slot, c = agent_auction(a * bid, rivals, n_slots, expo, mechanism, 0.2)
                    if slot is None:
                        continue
                    if cost + c > budget:
                        break
                    conv, cost = conv + expo[slot] * p, cost + c
                assert out["conversions"][k] == pytest.approx(conv, rel=1e-9, abs=1e-12)
                assert out["cost"][k] == pytest.approx(cost, rel=1e-9, abs=1e-12)


# --------------------------------------------------------------------------- #
# (3) Real days: the oracle bounds every policy's expected score
# --------------------------------------------------------------------------- #

POLICIES = {
    "truthful": lambda t, rng: 0.0,
    "high": lambda t, rng: 0.3,
    "low": lambda t, rng: -0.3,
    "random": lambda t, rng: float(rng.uniform(-1, 1)),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_oracle_bounds_policies_on_lite_days(seed, policy):
    env = gym.make(LITE, record=True)
    info = run_day(env, seed, POLICIES[policy])
    result = oracle.hindsight(env)
    assert info["expected_score"] <= result["oracle_score"] * 1.02 + 1e-9
    assert result["best_fixed_alpha_score"] <= result["oracle_score"] * (1 + 1e-9) + 1e-12
    assert result["oracle_spend"] <= result["budget"] * (1 + 1e-12)
    assert result["best_fixed_alpha_spend"] <= result["budget"] * (1 + 1e-12)
    assert result["ticks"] == env.unwrapped.n_ticks and result["complete"]  # the whole day


@pytest.mark.parametrize("mechanism", ["gsp", "vcg", "first_price"])
@pytest.mark.parametrize("constraint", ["cpa", "roi", "budget"])
def test_fixed_alpha_reproduces_the_env_expected_figures(mechanism, constraint):
    """Replaying the recorded day at the policy's own multiplier gives the env's figures."""
    env = gym.make(LITE, record=True, mechanism=mechanism)
    options = {"budget": 1e7, "constraint": constraint, "target_cpa": 60.0,
               "target_roi": 1.0}
    info = run_day(env, 4, lambda t, rng: 0.25, options=options)
    base = env.unwrapped
    assert base.tick == base.n_ticks  # the whole day was played
    alpha = base.recording[0]["alpha"]
    day = oracle.day_from_recording(base.recording, constraint=constraint,
                                    mechanism=mechanism, reserve_price=base.reserve_price)
    out = oracle.fixed_alpha_outcomes(day, [alpha], 1e7)
    assert out["conversions"][0] == pytest.approx(info["expected_conversions"], rel=1e-6)
    assert out["value"][0] == pytest.approx(info["expected_value"], rel=1e-6)
    assert out["cost"][0] == pytest.approx(info["expected_cost"], rel=1e-6)
    result = oracle.hindsight(env)
    assert info["expected_score"] <= result["oracle_score"] * 1.02 + 1e-9
    assert result["best_fixed_alpha_score"] <= result["oracle_score"] * (1 + 1e-9)
    assert result["mechanism"] == mechanism and result["complete"]


def test_truthful_score_matches_a_truthful_day():
    env = gym.make(LITE, record=True)
    info = run_day(env, 6, POLICIES["truthful"], options={"budget": 1e7})
    result = oracle.hindsight(env)
    assert result["truthful_score"] == pytest.approx(info["expected_score"], rel=1e-6)
    assert result["best_fixed_alpha_score"] >= result["truthful_score"] * (1 - 1e-9)


# --------------------------------------------------------------------------- #
# (4) Where the oracle and the best fixed multiplier must coincide
# --------------------------------------------------------------------------- #


def one_slot_env(**kwargs):
    # A huge action range so that some multiplier wins every opportunity; the competitors keep
    # the usual one.
    return gym.make(LITE, record=True, n_slots=1, slot_exposure=(1.0,), max_alpha=1e6,
                    competitors=HeuristicCompetitors(max_alpha=10.0),
                    traffic=FeedTraffic(sigma_ratio=0.0), **kwargs)


def test_oracle_equals_best_fixed_alpha_without_binding_budget():
    # One slot, no penalty, budget never binding: both buy every opportunity.
    env = one_slot_env()
    run_day(env, 0, POLICIES["truthful"], options={"budget": 1e7, "constraint": "budget"})
    result = oracle.hindsight(env)
    assert result["oracle_score"] > 0
    assert result["best_fixed_alpha_score"] == pytest.approx(result["oracle_score"], rel=1e-9)


def test_oracle_equals_best_fixed_alpha_up_to_one_opportunity_with_binding_budget():
    # One slot, no penalty, a binding budget and exact predictions (p_conversion proportional
    # to pvalue): the greedy by conversions per cost is a threshold on alpha, so the best
    # fixed multiplier buys the oracle's set but its fractional last opportunity.
    env = one_slot_env()
    run_day(env, 1, POLICIES["truthful"], options={"budget": 1e7, "constraint": "budget"})
    base = env.unwrapped
    day = oracle.day_from_recording(base.recording, constraint="budget", mechanism="gsp",
                                    reserve_price=base.reserve_price)
    ratio = day.conversions / day.bid
    assert np.allclose(ratio, ratio[0], rtol=1e-6)  # the order premise of the test
    total = float(day.cost[:, 0].sum())
    largest = float((day.exposure[:, 0] * day.conversions).max())
    for share in (0.1, 0.3, 0.6):
        base.agent_campaign = base.agent_campaign.replace(budget=share * total)
        result = oracle.hindsight(env)
        assert result["best_fixed_alpha_score"] <= result["oracle_score"] * (1 + 1e-9)
        assert result["oracle_score"] - result["best_fixed_alpha_score"] <= largest * (1 + 1e-6)


# --------------------------------------------------------------------------- #
# (5) Other mechanisms and constraints on real days
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("mechanism", ["vcg", "first_price"])
@pytest.mark.parametrize("constraint", ["cpa", "roi"])
def test_other_mechanisms_and_roi(mechanism, constraint):
    env = gym.make(LITE, record=True, mechanism=mechanism)
    for seed, policy in ((0, "random"), (1, "truthful")):
        env.reset(seed=seed)
        camp = env.unwrapped.agent_campaign
        options = {"constraint": constraint, "target_roi": 1.0} if constraint == "roi" else {
            "constraint": "cpa", "target_cpa": camp.target_cpa or 60.0}
        info = run_day(env, seed, POLICIES[policy], options=options)
        result = oracle.hindsight(env)
        assert result["constraint"] == constraint
        assert info["expected_score"] <= result["oracle_score"] * 1.02 + 1e-9
        assert 0.0 <= result["best_fixed_alpha_score"] <= result["oracle_score"] * (1 + 1e-9)


def test_first_price_costs_more_than_gsp_at_equal_multiplier():
    rng = np.random.default_rng(9)
    recording = synthetic_recording(rng, 40, ticks=2)
    out = {m: oracle.fixed_alpha_outcomes(
        oracle.day_from_recording(recording, constraint="cpa", mechanism=m, reserve_price=0.2),
        [0.5, 2.0, 5.0], 1e6) for m in ("gsp", "vcg", "first_price")}
    assert np.array_equal(out["gsp"]["conversions"], out["first_price"]["conversions"])
    assert np.all(out["vcg"]["cost"] <= out["gsp"]["cost"] + 1e-12)
    assert np.all(out["gsp"]["cost"] <= out["first_price"]["cost"] + 1e-12)


# --------------------------------------------------------------------------- #
# (6) Errors, results and speed
# --------------------------------------------------------------------------- #


def test_clear_errors():
    env = gym.make(LITE)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="record=True"):
        oracle.hindsight(env)
    env = gym.make(LITE, record=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="no tick"):
        oracle.hindsight(env)
    with pytest.raises(ValueError, match="AutoBiddingEnv"):
        oracle.hindsight(object())
    with pytest.raises(ValueError, match="alphas"):
        day = oracle.day_from_recording(synthetic_recording(np.random.default_rng(0), 3),
                                        constraint="cpa")
        oracle.fixed_alpha_outcomes(day, [0.0], 1.0)
    with pytest.raises(ValueError, match="mechanism"):
        oracle.day_from_recording([{}], constraint="cpa", mechanism="dutch")


def test_result_keys_and_partial_day():
    env = gym.make(LITE, record=True)
    env.reset(seed=2)
    for _ in range(5):
        env.step(np.zeros(1, np.float32))
    result = oracle.hindsight(env)  # mid-episode: the ticks played so far
    assert {"oracle_score", "best_fixed_alpha", "best_fixed_alpha_score", "oracle_spend",
            "oracle_conversions", "oracle_value", "best_fixed_alpha_spend", "truthful_score",
            "budget", "opportunities", "ticks", "complete"} <= set(result)
    assert result["ticks"] == 5 and not result["complete"]
    assert all(isinstance(v, (bool, int, float, str)) for v in result.values())


def test_speed_on_a_full_day():
    env = gym.make("bidenv/AutoBidding-v0", record=True)
    run_day(env, 0, POLICIES["truthful"])
    start = time.perf_counter()
    result = oracle.hindsight(env)
    elapsed = time.perf_counter() - start
    print(f"\nhindsight on a full day ({result['opportunities']} opportunities the agent could "
          f"enter, {result['ticks']} ticks): {elapsed:.3f} s")
    assert result["best_fixed_alpha_score"] <= result["oracle_score"] * (1 + 1e-9)


def test_early_end_still_records_the_whole_day():
    """An agent that spends its budget in tick 1: the oracle still sees all 48 ticks, and
    recording changes nothing the agent observes."""
    options = {"budget": 40.0, "constraint": "cpa", "target_cpa": 60.0}
    played = {}
    for record in (False, True):
        env = gym.make(LITE, record=record)
        obs, _ = env.reset(seed=3, options=options)
        steps = []
        while True:
            obs, reward, terminated, _, info = env.step(np.ones(1, np.float32))
            steps.append((obs.tobytes(), reward, info,
                          {k: v.tobytes() for k, v in
                           env.unwrapped.last_tick_opportunities().items()}))
            if terminated:
                break
        played[record] = steps
    assert played[True] == played[False]
    assert len(played[True]) < 48  # the day did end early
    result = oracle.hindsight(env)
    assert result["complete"] and result["ticks"] == 48
    assert len(env.unwrapped.recording) == 48
    assert env.unwrapped.tick == len(played[True])
    assert result["oracle_score"] >= info["expected_score"]
    # The agent is out after its end: it appears in the later ticks' values, never as a rival.
    later = env.unwrapped.recording[-1]
    assert later["tick"] == 47 and later["pvalue"].size > 0


def test_reference_yardstick_is_the_day_without_the_agent():
    """The common yardstick equals the oracle of a day on which the agent never bid (an
    independent construction: a budget below the reserve keeps it out from the first tick and
    the env records the rest of the day without it), whatever policy is evaluated."""
    camp = Campaign(budget=400.0, constraint="cpa", target_cpa=55.0, category=2)
    env = gym.make(LITE, record=True)
    ref = oracle.reference_hindsight(env, seed=21, options=camp.to_dict())
    assert ref["complete"] and ref["oracle_score"] > 0

    out = gym.make(LITE, record=True)
    out.reset(seed=21, options={**camp.to_dict(), "budget": 0.001})  # below the reserve
    _, _, terminated, _, info = out.step(np.zeros(1, np.float32))
    assert terminated and info["wins"] == 0
    out.unwrapped.agent_campaign = camp  # judge the same recording for the real campaign
    assert oracle.hindsight(out)["oracle_score"] == pytest.approx(ref["oracle_score"],
                                                                  rel=1e-12)
    # An agent that takes part gets its own (different) bound; the yardstick does not move.
    own = gym.make(LITE, record=True)
    own.reset(seed=21, options=camp.to_dict())
    done = False
    while not done:
        *_, term, trunc, _ = own.step(np.array([0.3], np.float32))
        done = term or trunc
    assert oracle.hindsight(own)["oracle_score"] != pytest.approx(ref["oracle_score"],
                                                                  rel=1e-6)
    again = oracle.reference_hindsight(env, seed=21, options=camp.to_dict())
    assert again["oracle_score"] == ref["oracle_score"]


def test_reference_day_needs_a_recording_fresh_episode():
    env = gym.make(LITE)
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="record=True"):
        env.unwrapped.record_day_without_agent()
    env = gym.make(LITE, record=True)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    with pytest.raises(RuntimeError, match="freshly reset"):
        env.unwrapped.record_day_without_agent()
