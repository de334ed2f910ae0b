"""Tests for :class:`bidenv.env.AutoBiddingEnv` and its registered ids.

Figures are checked against independent recomputations: the scoring formula written out here,
observation features rebuilt from past ``info`` dicts and the recording, and the agent's
auctions replayed from the recorded rival bids.
"""

from __future__ import annotations

import math
import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bidenv  # noqa: F401  (registers the ids)
from bidenv.auction import MECHANISMS
from bidenv.competitors import AgentCompetitors, HeuristicBidder, ScriptedCompetitors
from bidenv.env import AutoBiddingEnv
from bidenv.traffic import FeedTraffic

IDS = ("bidenv/AutoBidding-v0", "bidenv/AutoBiddingLite-v0")
LITE = "bidenv/AutoBiddingLite-v0"
DESIGN_INFO_KEYS = {
    "tick", "cost", "conversions", "value", "opportunities", "wins", "exposures", "clicks",
    "total_cost", "total_conversions", "total_value", "budget", "budget_left", "cpa", "roi",
    "score", "alpha", "expected_conversions", "expected_value", "expected_score",
    "expected_cost",
}
HYP = settings(max_examples=25, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def small_env(**kwargs) -> AutoBiddingEnv:
    """A small, fast day: 10k opportunities, 8 advertisers (unless overridden)."""
    kw = dict(opportunities_per_day=10_000, n_competitors=7)
    kw.update(kwargs)
    return AutoBiddingEnv(**kw)


def lite_env(**kwargs) -> AutoBiddingEnv:
    return gym.make(LITE, **kwargs).unwrapped


def run_day(env, seed, actions, options=None):
    """Reset with ``seed`` and play ``actions`` (a callable of the tick or a sequence).

    Returns (reset_obs, reset_info, steps) with steps a list of (obs, r, term, trunc, info).
    """
    obs0, info0 = env.reset(seed=seed, options=options)
    steps = []
    t = 0
    while True:
        a = actions(t) if callable(actions) else actions[t]
        out = env.step(np.asarray(a, np.float32).reshape(1))
        steps.append(out)
        t += 1
        if out[2] or out[3]:
            return obs0, info0, steps


def assert_info_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), key
        else:
            assert x == y, key


def assert_days_equal(day_a, day_b):
    (o_a, i_a, s_a), (o_b, i_b, s_b) = day_a, day_b
    np.testing.assert_array_equal(o_a, o_b)
    assert_info_equal(i_a, i_b)
    assert len(s_a) == len(s_b)
    for (oa, ra, ta, ua, ia), (ob, rb, tb, ub, ib) in zip(s_a, s_b):
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb and ta == tb and ua == ub
        assert_info_equal(ia, ib)


def random_actions(seed, n=48):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, n).astype(np.float32)


def cpa_formula(conv, cost, target, beta):
    if conv == 0:
        return 0.0
    if cost == 0:
        return conv
    return conv * min(1.0, (target / (cost / conv))) ** beta


def roi_formula(value, cost, target, beta):
    if value == 0:
        return 0.0
    if cost == 0:
        return value
    return value * min(1.0, (value / cost) / target) ** beta


# --------------------------------------------------------------------------- #
# Registration and API checkers
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("env_id", IDS)
def test_registered_and_gymnasium_check_env(env_id):
    from gymnasium.utils.env_checker import check_env

    assert env_id in gym.registry
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("env_id", IDS)
def test_sb3_check_env_without_warnings(env_id):
    from stable_baselines3.common.env_checker import check_env

    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, warn=True)
    assert [str(w.message) for w in caught] == []


def test_lite_spec():
    env = lite_env()
    env.reset(seed=0)
    assert env.k == 48  # the full market's advertisers, budgets scaled to the volume
    assert env.traffic.expected_volume().sum() == pytest.approx(50_000, rel=0.15)
    full = gym.make("bidenv/AutoBidding-v0").unwrapped
    assert full.n_competitors == 47 and full.opportunities_per_day == 500_000
    assert full.n_ticks == 48 and full.n_slots == 3 and full.mechanism == "gsp"


# --------------------------------------------------------------------------- #
# Determinism, seeds and pickling
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_day(env_id):
    acts = random_actions(11)
    a = run_day(gym.make(env_id), 123, acts)
    b = run_day(gym.make(env_id), 123, acts)
    assert_days_equal(a, b)
    assert len(a[2]) > 10


def test_reset_with_same_seed_on_one_env_replays_the_day():
    env = lite_env()
    acts = random_actions(5)
    a = run_day(env, 42, acts)
    b = run_day(env, 42, acts)
    assert_days_equal(a, b)


def test_different_seeds_give_different_days():
    acts = np.zeros(48)
    a = run_day(lite_env(), 1, acts)
    b = run_day(lite_env(), 2, acts)
    assert a[1]["budget"] != b[1]["budget"] or a[1]["target"] != b[1]["target"]
    assert not np.array_equal(a[0], b[0])
    opp_a = [s[4]["opportunities"] for s in a[2]]
    opp_b = [s[4]["opportunities"] for s in b[2]]
    assert opp_a != opp_b


def test_pickle_round_trip_mid_episode():
    env = lite_env()
    acts = random_actions(3)
    env.reset(seed=9, options={"budget": 1e4})
    for t in range(10):
        env.step(acts[t:t + 1])
    clone = pickle.loads(pickle.dumps(env))
    assert clone is not env
    t = 10
    while True:
        out_a = env.step(acts[t:t + 1])
        out_b = clone.step(acts[t:t + 1])
        np.testing.assert_array_equal(out_a[0], out_b[0])
        assert out_a[1:4] == out_b[1:4]
        assert_info_equal(out_a[4], out_b[4])
        t += 1
        if out_a[2]:
            break
    assert t == 48


# --------------------------------------------------------------------------- #
# Actions
# --------------------------------------------------------------------------- #


def test_action_bijection():
    env = lite_env()
    assert env.action_to_alpha(0.0) == 1.0
    assert env.action_to_alpha(1.0) == pytest.approx(10.0, rel=1e-12)
    assert env.action_to_alpha(-1.0) == pytest.approx(0.1, rel=1e-12)
    assert env.action_to_alpha(0.5) == pytest.approx(math.sqrt(10.0), rel=1e-12)
    a = np.linspace(-1.0, 1.0, 201)
    alpha = env.action_to_alpha(a)
    assert np.all(np.diff(alpha) > 0)
    np.testing.assert_allclose(env.alpha_to_action(alpha), a, atol=1e-6)
    np.testing.assert_allclose(env.action_to_alpha(env.alpha_to_action(alpha)), alpha,
                               rtol=1e-5)
    # Clipping: out-of-range finite actions and alphas.
    assert env.action_to_alpha(5.0) == env.action_to_alpha(1.0)
    assert env.action_to_alpha(-7.0) == env.action_to_alpha(-1.0)
    assert env.alpha_to_action(1000.0) == 1.0
    assert env.alpha_to_action(1e-5) == -1.0
    assert env.alpha_to_action(1.0) == 0.0
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match="alpha"):
            env.alpha_to_action(bad)
    # The scale is the max_alpha argument.
    env4 = AutoBiddingEnv(max_alpha=4.0)
    assert env4.action_to_alpha(1.0) == pytest.approx(4.0)
    assert env4.action_to_alpha(-0.5) == pytest.approx(0.5)


def test_out_of_range_actions_are_clipped_in_step():
    hi = run_day(lite_env(), 4, np.full(48, 5.0))
    one = run_day(lite_env(), 4, np.full(48, 1.0))
    assert_days_equal(hi, one)
    lo = run_day(lite_env(), 4, np.full(48, -7.0))
    minus_one = run_day(lite_env(), 4, np.full(48, -1.0))
    assert_days_equal(lo, minus_one)


def test_info_alpha_follows_the_action():
    env = lite_env()
    env.reset(seed=0)
    for a in (0.0, 0.3, -0.6, 1.0):
        info = env.step(np.array([a], np.float32))[4]
        assert info["alpha"] == pytest.approx(float(env.action_to_alpha(np.float32(a))))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_actions_raise(bad):
    env = lite_env()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([bad], np.float32))
    # The failed call did not advance the day.
    assert env.step(np.zeros(1, np.float32))[4]["tick"] == 1


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError):
        lite_env().step(np.zeros(1, np.float32))


# --------------------------------------------------------------------------- #
# Constructor and reset validation
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (dict(campaign=dict(budget=0.0, target_cpa=50.0)), ("budget",)),
        (dict(campaign=dict(budget=-5.0, target_cpa=50.0)), ("budget",)),
        (dict(campaign=dict(budget=100.0, target_cpa=0.0)), ("target_cpa",)),
        (dict(campaign=dict(budget=100.0, target_cpa=-3.0)), ("target_cpa",)),
        (dict(campaign=dict(budget=100.0, constraint="roi", target_roi=0.0)), ("target_roi",)),
        (dict(campaign=dict(budget=100.0, constraint="roi", target_roi=-1.0)),
         ("target_roi",)),
        (dict(campaign=dict(budget=100.0, constraint="cpc", target_cpa=5.0)), ("constraint",)),
        (dict(campaign=dict(budget=100.0, target_cpa=5.0, bid=2.0)), ("campaign", "bid")),
        (dict(mechanism="second_price"), ("mechanism",)),
        (dict(n_slots=0, slot_exposure=()), ("n_slots",)),
        (dict(n_slots=0), ("n_slots",)),
        (dict(slot_exposure=(1.0, 1.2, 0.5)), ("slot_exposure",)),
        (dict(slot_exposure=(1.0, 0.8, -0.1)), ("slot_exposure",)),
        (dict(slot_exposure=(0.5, 0.8, 0.6)), ("slot_exposure",)),
        (dict(slot_exposure=(1.0, 0.8)), ("slot_exposure",)),
        (dict(n_slots=2, slot_exposure=(1.0, 0.8, 0.6)), ("slot_exposure",)),
        (dict(reserve_price=-0.01), ("reserve_price",)),
        (dict(reserve_price=math.nan), ("reserve_price",)),
        (dict(n_ticks=0), ("n_ticks",)),
        (dict(n_ticks=2.5), ("n_ticks",)),
        (dict(n_competitors=-1), ("n_competitors",)),
        (dict(opportunities_per_day=0), ("opportunities_per_day",)),
        (dict(opportunities_per_day=-10.0), ("opportunities_per_day",)),
        (dict(opportunities_per_day=math.inf), ("opportunities_per_day",)),
        (dict(beta=-1.0), ("beta",)),
        (dict(reward_mode="profit"), ("reward_mode",)),
        (dict(traffic="video"), ("traffic",)),
    ],
)
def test_bad_constructor_arguments_name_the_parameter(kwargs, words):
    with pytest.raises(ValueError) as exc:
        AutoBiddingEnv(**kwargs)
    for w in words:
        assert w in str(exc.value)


def test_bad_kwargs_through_gym_make():
    with pytest.raises(ValueError, match="mechanism"):
        gym.make(LITE, mechanism="english")


def test_unknown_reset_options_raise():
    env = lite_env()
    with pytest.raises(ValueError) as exc:
        env.reset(seed=0, options={"budget": 100.0, "colour": "red"})
    assert "options" in str(exc.value) and "colour" in str(exc.value)
    with pytest.raises(ValueError, match="budget"):
        env.reset(seed=0, options={"budget": -1.0})


def test_options_override_the_campaign_for_one_episode():
    env = lite_env(campaign=dict(budget=300.0, target_cpa=40.0))
    _, info = env.reset(seed=0, options={"budget": 100.0, "target_cpa": 20.0})
    assert info["budget"] == 100.0 and info["target"] == 20.0 and info["constraint"] == "cpa"
    info = env.step(np.zeros(1, np.float32))[4]
    assert info["budget"] == 100.0 and info["target"] == 20.0
    _, info = env.reset(seed=0)
    assert info["budget"] == 300.0 and info["target"] == 40.0
    _, info = env.reset(seed=0, options={"constraint": "roi", "target_roi": 2.5})
    assert info["constraint"] == "roi" and info["target"] == 2.5 and info["budget"] == 300.0
    assert env.reset(seed=0)[1]["constraint"] == "cpa"
    # With a drawn campaign, the override replaces only the fields given.
    free = lite_env()
    drawn = free.reset(seed=5)[1]
    over = free.reset(seed=5, options={"budget": 77.0})[1]
    assert over["budget"] == 77.0 and over["target"] == drawn["target"]


# --------------------------------------------------------------------------- #
# Info, rewards and scores
# --------------------------------------------------------------------------- #


def test_info_keys_on_reset_and_every_step():
    env = lite_env()
    _, info = env.reset(seed=0)
    assert DESIGN_INFO_KEYS <= info.keys()
    assert info["tick"] == 0 and info["total_cost"] == 0.0 and info["score"] == 0.0
    assert info["budget_left"] == info["budget"]
    t = 0
    for a in random_actions(1):
        _, _, term, _, info = env.step(np.array([a]))
        t += 1
        assert DESIGN_INFO_KEYS <= info.keys()
        assert info["tick"] == t
        assert info["budget_left"] == pytest.approx(info["budget"] - info["total_cost"])
        if info["total_conversions"] > 0:
            assert info["cpa"] == pytest.approx(info["total_cost"] / info["total_conversions"])
        if info["total_cost"] > 0:
            assert info["roi"] == pytest.approx(info["total_value"] / info["total_cost"])
        if term:
            break


@pytest.mark.parametrize(
    "campaign",
    [None, dict(budget=200.0, target_cpa=30.0, category=5),
     dict(budget=300.0, constraint="roi", target_roi=1.5, category=5),
     dict(budget=150.0, constraint="budget", category=5)],
)
def test_rewards_sum_to_final_score(campaign):
    finals = []
    for seed in range(3):
        _, _, steps = run_day(lite_env(campaign=campaign), seed, random_actions(seed) + 0.3)
        total = sum(s[1] for s in steps)
        final = steps[-1][4]["score"]
        finals.append(final)
        assert total == pytest.approx(final, rel=1e-9)
        # Cumulative totals are consistent with the per-tick figures.
        assert sum(s[4]["cost"] for s in steps) == pytest.approx(steps[-1][4]["total_cost"])
        assert sum(s[4]["conversions"] for s in steps) == steps[-1][4]["total_conversions"]
        assert sum(s[4]["value"] for s in steps) == pytest.approx(steps[-1][4]["total_value"])
    assert max(finals) > 0  # the check is not vacuous: some day scored


def test_reward_mode_conversions():
    _, _, steps = run_day(lite_env(reward_mode="conversions",
                                   campaign=dict(budget=1500.0, target_cpa=60.0, category=7)),
                          0, np.full(48, 0.4))
    assert sum(s[1] for s in steps) > 0
    for _, r, _, _, info in steps:
        assert r == info["conversions"]
    _, _, steps = run_day(
        lite_env(reward_mode="conversions",
                 campaign=dict(budget=1500.0, constraint="roi", target_roi=1.5, category=7)),
        0, np.full(48, 0.4))
    assert sum(s[1] for s in steps) > 0
    for _, r, _, _, info in steps:
        assert r == pytest.approx(info["value"], rel=1e-12)
        if info["conversions"] == 0:
            assert r == 0.0


def test_reward_mode_expected_score_telescopes_to_the_expected_score():
    camp = dict(budget=300.0, constraint="cpa", target_cpa=40.0)
    _, _, steps = run_day(lite_env(reward_mode="expected_score", campaign=camp), 3,
                          np.full(48, 0.5))
    _, _, plain = run_day(lite_env(campaign=camp), 3, np.full(48, 0.5))
    final = steps[-1][4]
    assert final["expected_score"] > 0
    assert sum(s[1] for s in steps) == pytest.approx(final["expected_score"], rel=1e-9)
    # Same day, same outcomes: only the reward differs from reward_mode="score".
    assert plain[-1][4]["expected_score"] == final["expected_score"]
    assert sum(s[1] for s in plain) == pytest.approx(plain[-1][4]["score"], rel=1e-9)
    # Each reward is the increment of the expected score (by hand from consecutive infos).
    prev = 0.0
    for _, r, _, _, info in steps:
        assert r == pytest.approx(info["expected_score"] - prev, abs=1e-12)
        prev = info["expected_score"]


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_score_is_the_formula_of_the_totals(beta):
    # Aggressive bidding (alpha 10**0.7 ~ 5) so the CPA / ROI constraint is violated and the
    # penalty matters.
    acts = np.full(48, 0.7)
    _, _, steps = run_day(lite_env(beta=beta, campaign=dict(budget=400.0, target_cpa=40.0)),
                          1, acts)
    info = steps[-1][4]
    assert info["cpa"] > 40.0  # the penalty is active
    want = cpa_formula(info["total_conversions"], info["total_cost"], 40.0, beta)
    assert info["score"] == pytest.approx(want, rel=1e-12)
    want = cpa_formula(info["expected_conversions"], info["expected_cost"], 40.0, beta)
    assert info["expected_score"] == pytest.approx(want, rel=1e-12)

    _, _, steps = run_day(
        lite_env(beta=beta, campaign=dict(budget=400.0, constraint="roi", target_roi=2.0)),
        1, acts)
    info = steps[-1][4]
    assert info["roi"] < 2.0
    want = roi_formula(info["total_value"], info["total_cost"], 2.0, beta)
    assert info["score"] == pytest.approx(want, rel=1e-12)
    want = roi_formula(info["expected_value"], info["expected_cost"], 2.0, beta)
    assert info["expected_score"] == pytest.approx(want, rel=1e-12)


def test_beta_changes_only_the_score_by_the_exact_factor():
    acts = np.full(48, 0.7)
    camp = dict(budget=1500.0, target_cpa=40.0, category=7)
    _, _, s2 = run_day(lite_env(beta=2.0, campaign=camp), 2, acts)
    _, _, s1 = run_day(lite_env(beta=1.0, campaign=camp), 2, acts)
    i2, i1 = s2[-1][4], s1[-1][4]
    assert i2["total_cost"] == i1["total_cost"]
    assert i2["total_conversions"] == i1["total_conversions"]
    ratio = 40.0 / i1["cpa"]
    assert ratio < 1.0
    assert i2["score"] / i1["score"] == pytest.approx(ratio, rel=1e-12)


def test_budget_only_score_is_conversions():
    _, _, steps = run_day(lite_env(campaign=dict(budget=1500.0, constraint="budget",
                                                 category=7)), 0, np.full(48, 0.8))
    info = steps[-1][4]
    assert info["score"] == info["total_conversions"] > 0
    assert info["expected_score"] == pytest.approx(info["expected_conversions"], rel=1e-12)


# --------------------------------------------------------------------------- #
# Budgets, funnel and termination
# --------------------------------------------------------------------------- #


@HYP
@given(budget=st.floats(0.02, 30.0), seed=st.integers(0, 1000),
       actions=st.lists(st.floats(-1.0, 1.0), min_size=8, max_size=8))
def test_total_cost_never_exceeds_budget(budget, seed, actions):
    env = AutoBiddingEnv(n_ticks=8, opportunities_per_day=8_000, n_competitors=5,
                         campaign=dict(budget=budget, target_cpa=80.0))
    env.reset(seed=seed)
    for a in actions:
        _, _, term, _, info = env.step(np.array([a], np.float32))
        assert info["total_cost"] <= budget
        assert info["budget_left"] >= 0.0
        # Every advertiser, competitors included.
        assert np.all(env.spent <= env.c.budget)
        if term:
            break


def test_small_budgets_are_spent_up_to_the_limit_without_overspending():
    used = []
    for seed in range(5):
        env = small_env(campaign=dict(budget=2.0, target_cpa=100.0))
        _, _, steps = run_day(env, seed, np.ones(48))
        info = steps[-1][4]
        assert info["total_cost"] <= 2.0
        assert len(steps) < 48  # the budget ran out before the end of the day
        used.append(info["total_cost"] / 2.0)
    assert min(used) > 0.9


def test_funnel_per_tick():
    for campaign in (None, dict(budget=500.0, target_cpa=120.0)):
        _, _, steps = run_day(lite_env(campaign=campaign), 3, np.full(48, 0.5))
        clicks = 0
        for *_, info in steps:
            assert 0 <= info["conversions"] <= info["clicks"] <= info["exposures"]
            assert info["exposures"] <= info["wins"] <= info["opportunities"]
            assert info["cost"] >= 0 and info["value"] >= 0
            clicks += info["clicks"]
        assert clicks > 0


def test_terminates_when_the_budget_cannot_buy_anything():
    for seed in range(3):
        env = small_env(campaign=dict(budget=0.5, target_cpa=120.0), reserve_price=0.02)
        _, _, steps = run_day(env, seed, np.ones(48))
        assert len(steps) < 48
        for *_, term, _, info in steps[:-1]:
            assert not term and info["budget_left"] >= 0.02
        with pytest.raises(RuntimeError):
            env.step(np.zeros(1, np.float32))


def test_terminates_at_n_ticks_and_never_truncates():
    env = small_env(n_ticks=5)
    # A budget that lasts the day (the drawn campaign may spend its budget in 5 long ticks).
    _, _, steps = run_day(env, 0, np.zeros(5), options={"budget": 1e9})
    assert len(steps) == 5 and steps[-1][4]["tick"] == 5
    assert [s[2] for s in steps] == [False] * 4 + [True]
    assert not any(s[3] for s in steps)
    with pytest.raises(RuntimeError):
        env.step(np.zeros(1, np.float32))


# --------------------------------------------------------------------------- #
# Observations
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "kwargs",
    [dict(), dict(campaign=dict(budget=1.0, target_cpa=100.0)),
     dict(campaign=dict(budget=300.0, constraint="roi", target_roi=3.0)),
     dict(traffic="search"), dict(traffic="feed", n_competitors=0)],
)
def test_observations_in_space(kwargs):
    env = lite_env(**kwargs)
    names = env.feature_names
    assert len(names) >= 16 and len(set(names)) == len(names)
    assert env.observation_space.shape == (len(names),)
    obs, _, steps = run_day(env, 0, random_actions(0) * 1.5)
    for o in [obs] + [s[0] for s in steps]:
        assert o.dtype == np.float32 and o.shape == (len(names),)
        assert env.observation_space.contains(o)


def test_features_recomputed_from_past_infos_and_recording():
    env = lite_env(record=True, campaign=dict(budget=400.0, target_cpa=50.0))
    acts = random_actions(7) * 0.8
    obs0, info0, steps = run_day(env, 7, acts)
    f = {name: i for i, name in enumerate(env.feature_names)}
    rec = env.recording
    assert len(rec) == len(steps) == 48
    expected = env.traffic.prior_volume()  # the prior curve, never the perturbed one
    per_tick = expected.sum() / 48
    elapsed = np.concatenate([[0.0], np.cumsum(expected)]) / expected.sum()
    infos = [s[4] for s in steps]

    def pv_mean(r):  # agent's mean pValue over the opportunities it may enter
        return r["pvalue"][r["eligible"]].mean() if r["eligible"].any() else 0.0

    def close(got, want, name):
        assert got == pytest.approx(want, rel=2e-5, abs=1e-6), name

    close(obs0[f["time_left"]], 1.0, "time_left")
    close(obs0[f["budget_left"]], 1.0, "budget_left")
    close(obs0[f["cur_opportunities"]], infos[0]["opportunities"] / per_tick, "cur_opp")
    close(obs0[f["cur_pvalue_mean"]], pv_mean(rec[0]) * 1000, "cur_pvalue")
    for t in range(47):  # obs after the step of tick t, i.e. before bidding in tick t+1
        o, info = steps[t][0], infos[t]
        past = infos[: t + 1]
        last3 = past[-3:]
        close(o[f["time_left"]], (47 - t) / 48, "time_left")
        close(o[f["budget_left"]], 1.0 - info["total_cost"] / 400.0, "budget_left")
        conv = [i["conversions"] for i in past]
        close(o[f["hist_conversion_mean"]], np.mean(conv), "hist_conv")
        close(o[f["last3_conversion_mean"]], np.mean(conv[-3:]), "last3_conv")
        rate = [i["wins"] / max(i["opportunities"], 1) for i in past]
        close(o[f["hist_win_rate"]], np.mean(rate), "hist_win_rate")
        close(o[f["last3_win_rate"]], np.mean(rate[-3:]), "last3_win_rate")
        opp = [i["opportunities"] for i in past]
        close(o[f["hist_opportunities"]], np.mean(opp) / per_tick, "hist_opp")
        close(o[f["last3_opportunities"]], np.mean([i["opportunities"] for i in last3])
              / per_tick, "last3_opp")
        pv = [pv_mean(r) for r in rec[: t + 1]]
        close(o[f["hist_pvalue_mean"]], np.mean(pv) * 1000, "hist_pvalue")
        close(o[f["last3_pvalue_mean"]], np.mean(pv[-3:]) * 1000, "last3_pvalue")
        bid = [r["alpha"] * r["bid_scale"] * p for r, p in zip(rec[: t + 1], pv)]
        close(o[f["hist_bid_mean"]], np.mean(bid) / 0.1, "hist_bid")
        close(o[f["last3_bid_mean"]], np.mean(bid[-3:]) / 0.1, "last3_bid")
        # This tick's opportunities: what the next step reports.
        close(o[f["cur_opportunities"]], infos[t + 1]["opportunities"] / per_tick, "cur_opp")
        close(o[f["cur_pvalue_mean"]], pv_mean(rec[t + 1]) * 1000, "cur_pvalue")
        close(o[f["traffic_elapsed"]], elapsed[t + 1], "traffic_elapsed")
        pace = np.clip(info["total_cost"] / 400.0 - elapsed[t + 1], -1, 1)
        close(o[f["pace_error"]], pace, "pace_error")
        if info["total_cost"] == 0:
            ratio = 0.0
        elif info["total_conversions"] == 0:
            ratio = 10.0
        else:
            ratio = min(10.0, info["cpa"] / 50.0)
        close(o[f["constraint_ratio"]], ratio, "constraint_ratio")
        assert o[f["is_roi"]] == 0.0
    assert steps[-1][0][f["time_left"]] == 0.0


def test_roi_constraint_ratio_feature():
    env = lite_env(campaign=dict(budget=1500.0, constraint="roi", target_roi=2.0, category=7))
    f = env.feature_names.index("constraint_ratio")
    _, _, steps = run_day(env, 0, np.full(48, 0.5))
    checked = 0
    for o, *_, info in steps:
        if info["total_value"] > 0:
            want = min(10.0, 2.0 * info["total_cost"] / info["total_value"])
            assert o[f] == pytest.approx(want, rel=1e-5)
            checked += 1
    assert checked > 10


def test_no_look_ahead():
    # The observation returned by reset does not change whatever action follows, and matches
    # a fresh env's; the observation before tick t does not depend on the action at tick t.
    env = lite_env()
    obs0, _ = env.reset(seed=21)
    keep = obs0.copy()
    env.step(np.ones(1, np.float32))
    np.testing.assert_array_equal(obs0, keep)
    other = lite_env()
    np.testing.assert_array_equal(other.reset(seed=21)[0], keep)

    for t in (0, 5, 20):
        a, b = lite_env(), lite_env()
        oa, _ = a.reset(seed=21)
        ob, _ = b.reset(seed=21)
        for _ in range(t):
            oa = a.step(np.zeros(1, np.float32))[0]
            ob = b.step(np.zeros(1, np.float32))[0]
        np.testing.assert_array_equal(oa, ob)  # obs_t: before the different action
        na = a.step(np.full(1, -1.0, np.float32))[0]
        nb = b.step(np.full(1, 1.0, np.float32))[0]
        np.testing.assert_array_equal(oa, ob)  # returned arrays are not aliased
        assert not np.array_equal(na, nb)  # obs_{t+1} sees the outcome of the action


def test_traffic_of_a_day_does_not_depend_on_the_agent():
    days = []
    for a0 in (-1.0, 0.0, 1.0):
        env = lite_env()
        env.reset(seed=3)
        opp = []
        for t in range(6):
            info = env.step(np.array([a0 if t == 0 else 0.0], np.float32))[4]
            opp.append(info["opportunities"])
        days.append(opp)
    assert days[0] == days[1] == days[2]


# --------------------------------------------------------------------------- #
# Mechanisms, slots and recording
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("n_slots", [1, 2, 3, 4])
def test_mechanisms_and_slot_counts_run(mechanism, n_slots):
    expo = (1.0, 0.8, 0.6, 0.5)[:n_slots]
    env = small_env(mechanism=mechanism, n_slots=n_slots, slot_exposure=expo,
                    campaign=dict(budget=60.0, target_cpa=80.0))
    _, _, steps = run_day(env, 0, np.full(48, 0.3))
    info = steps[-1][4]
    assert info["total_cost"] <= 60.0 and info["total_cost"] > 0
    assert sum(s[4]["wins"] for s in steps) > 0
    if n_slots == 1:
        # Exposure 1: every slot won is shown.
        assert all(s[4]["wins"] == s[4]["exposures"] for s in steps)


@pytest.mark.parametrize("n_slots", [1, 3])
def test_mechanism_prices_ordered_on_the_same_tick(n_slots):
    expo = (1.0, 0.8, 0.6)[:n_slots]
    first = {}
    for mechanism in ("first_price", "gsp", "vcg"):
        env = lite_env(mechanism=mechanism, n_slots=n_slots, slot_exposure=expo,
                       campaign=dict(budget=1e6, target_cpa=100.0, category=6))
        env.reset(seed=8)
        first[mechanism] = env.step(np.full(1, 0.2, np.float32))[4]
    fp, gsp, vcg = first["first_price"], first["gsp"], first["vcg"]
    # Same bids and same cascade draw: same slots won and shown, prices FP >= GSP >= VCG.
    assert fp["wins"] == gsp["wins"] == vcg["wins"] > 0
    assert fp["exposures"] == gsp["exposures"] == vcg["exposures"]
    assert fp["cost"] > gsp["cost"]
    if n_slots == 1:
        assert vcg["cost"] == pytest.approx(gsp["cost"], rel=1e-12)
    else:
        assert gsp["cost"] > vcg["cost"]


def test_recording_shapes_and_rival_bids_exclude_the_agent():
    days = []
    for a0 in (-1.0, 1.0):
        env = lite_env(record=True)
        env.reset(seed=13)
        env.step(np.array([a0], np.float32))
        days.append(env.recording[0])
    a, b = days
    n = len(a["pvalue"])
    assert n > 0
    for key in ("pvalue", "p_conversion", "conversion_value", "eligible", "n_slots", "source"):
        assert len(a[key]) == n, key
    assert a["rival_bids"].shape == a["exposure"].shape == (n, 3)
    assert a["alpha"] == pytest.approx(0.1) and b["alpha"] == pytest.approx(10.0)
    np.testing.assert_array_equal(a["rival_bids"], b["rival_bids"])
    np.testing.assert_array_equal(a["pvalue"], b["pvalue"])


def test_recording_one_entry_per_tick():
    env = lite_env(record=True)
    # A budget that lasts the day (after an early end the rest of the day is recorded too).
    _, _, steps = run_day(env, 0, random_actions(2), options={"budget": 1e9})
    assert [r["tick"] for r in env.recording] == list(range(len(steps)))
    for r, s in zip(env.recording, steps):
        n = len(r["pvalue"])
        assert r["rival_bids"].shape[0] == n and r["exposure"].shape[0] == n
        assert int(r["eligible"].sum()) == s[4]["opportunities"]
    assert lite_env().recording is None


def test_expected_figures_replayed_from_the_recording():
    # Replay the agent's GSP auctions against the recorded rival bids: slot j is won when
    # exactly j rival bids beat the agent's bid, at price max(reserve, j-th rival bid), and
    # counts exposure[j] x p_conversion conversions and exposure[j] x price cost.
    env = lite_env(record=True, campaign=dict(budget=1e7, target_cpa=90.0, category=5))
    _, _, steps = run_day(env, 17, random_actions(17) * 0.6)
    reserve = env.reserve_price
    exp_conv = exp_cost = 0.0
    wins = 0
    for r in env.recording:
        bid = r["pvalue"] * np.float32(r["alpha"] * r["bid_scale"])
        enters = r["eligible"] & (bid >= reserve) & (bid > 0)
        rival = r["rival_bids"]
        j = np.sum(rival > bid.astype(np.float64)[:, None], axis=1)
        won = enters & (j < r["n_slots"])
        rows = np.nonzero(won)[0]
        jw = j[rows]
        nxt = rival[rows, jw]
        price = np.maximum(reserve, np.where(np.isfinite(nxt), nxt, reserve))
        m = r["exposure"][rows, jw]
        exp_conv += float(np.sum(m * r["p_conversion"][rows]))
        exp_cost += float(np.sum(m * price))
        wins += len(rows)
    info = steps[-1][4]
    assert wins == sum(s[4]["wins"] for s in steps) > 100
    assert info["expected_conversions"] == pytest.approx(exp_conv, rel=1e-9)
    assert info["expected_cost"] == pytest.approx(exp_cost, rel=1e-9)


# --------------------------------------------------------------------------- #
# Competitors
# --------------------------------------------------------------------------- #


def test_competitor_policy_can_be_replaced():
    alpha = 0.5
    probe = AutoBiddingEnv()
    action = float(probe.alpha_to_action(alpha))
    acts = random_actions(4)
    default = run_day(lite_env(), 6, acts)
    scripted = run_day(lite_env(competitors=ScriptedCompetitors(action)), 6, acts)
    agents = run_day(lite_env(competitors=AgentCompetitors(HeuristicBidder("fixed", alpha))),
                     6, acts)
    # A market of fixed bidders at alpha 0.5 is the same day whichever way it is built ...
    assert_days_equal(scripted, agents)
    # ... and differs from the default heuristic market.
    costs_default = [s[4]["cost"] for s in default[2]]
    costs_scripted = [s[4]["cost"] for s in scripted[2]]
    assert costs_default != costs_scripted
    # Weaker rivals: the agent wins more.
    weak = run_day(lite_env(competitors=ScriptedCompetitors(-1.0)), 6, acts)
    assert (sum(s[4]["wins"] for s in weak[2])
            > sum(s[4]["wins"] for s in default[2]))


class _WrongSizePolicy:
    def reset(self, campaigns, feature_names, rng):
        pass

    def act(self, obs):
        return np.zeros(len(obs) - 1)


def test_competitor_policy_must_return_one_finite_action_each():
    env = lite_env(competitors=_WrongSizePolicy())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="competitor"):
        env.step(np.zeros(1, np.float32))
    env = lite_env(competitors=ScriptedCompetitors(math.nan))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="competitor"):
        env.step(np.zeros(1, np.float32))


# --------------------------------------------------------------------------- #
# Economics
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_truthful_bid_maximises_expected_surplus_in_second_price(seed):
    # One slot always shown, GSP (= second price), the agent has no budget pressure and the
    # rivals play fixed multipliers with budgets far above what they can spend in the day
    # (budgets scale with opportunities_per_day, volume is set by the traffic source), so the
    # rival bids do not depend on the agent. One tick: the whole day is the batch drawn at
    # reset, identical for every multiplier. Value of a conversion: the target.
    target = 100.0
    surplus = {}
    opportunities = set()
    for alpha in np.round(np.arange(0.5, 1.51, 0.1), 2):
        env = AutoBiddingEnv(
            n_ticks=1, n_competitors=15, opportunities_per_day=5e7, n_slots=1,
            slot_exposure=(1.0,), mechanism="gsp", traffic=FeedTraffic(daily_volume=20_000),
            campaign=dict(budget=1e9, constraint="budget", target_cpa=target, category=6),
            competitors=ScriptedCompetitors(np.linspace(-0.3, 0.1, 15)))
        env.reset(seed=seed)
        info = env.step(env.alpha_to_action(alpha).reshape(1))[4]
        assert np.all(env.spent[1:] < 0.05 * env.c.budget[1:])  # no rival budget pressure
        opportunities.add(info["opportunities"])
        surplus[float(alpha)] = target * info["expected_conversions"] - info["expected_cost"]
    assert len(opportunities) == 1
    best = max(surplus.values())
    assert best > 0
    assert surplus[1.0] >= best - 0.01 * abs(best)
    # Shading or overbidding by half loses clearly.
    assert surplus[0.5] < 0.95 * surplus[1.0] and surplus[1.5] < 0.95 * surplus[1.0]


# --------------------------------------------------------------------------- #
# Outcomes
# --------------------------------------------------------------------------- #


def test_unshown_slots_cost_nothing_and_convert_nothing():
    # A slot that is never shown is still won, but it is neither paid nor clicked nor
    # converted, and its expected figures are 0.
    env = small_env(n_slots=1, slot_exposure=(0.0,), campaign=dict(budget=50.0, target_cpa=100.0))
    _, _, steps = run_day(env, 0, np.ones(48))
    assert len(steps) == 48
    info = steps[-1][4]
    assert sum(s[4]["wins"] for s in steps) > 500
    assert sum(s[4]["exposures"] + s[4]["clicks"] for s in steps) == 0
    assert info["total_cost"] == info["total_conversions"] == info["total_value"] == 0.0
    assert info["expected_conversions"] == info["expected_cost"] == 0.0
    assert info["score"] == 0.0 and np.all(env.spent == 0.0)


def test_realised_outcomes_agree_with_expectations():
    # Conversions are drawn with the probabilities the expected figures sum up, and only
    # shown slots are paid: realised totals lie within a few standard deviations.
    conv, exp_conv, cost, exp_cost = 0.0, 0.0, 0.0, 0.0
    for seed in range(3):
        env = lite_env(campaign=dict(budget=1e6, constraint="budget", target_cpa=100.0,
                                     category=7))
        _, _, steps = run_day(env, seed, np.ones(48))
        info = steps[-1][4]
        conv += info["total_conversions"]
        exp_conv += info["expected_conversions"]
        cost += info["total_cost"]
        exp_cost += info["expected_cost"]
    assert exp_conv > 50
    assert abs(conv - exp_conv) < 4 * math.sqrt(exp_conv)
    assert cost == pytest.approx(exp_cost, rel=0.05)


def test_last_tick_opportunities_is_the_agents_view():
    env = lite_env(campaign=dict(budget=1e6, target_cpa=60.0))
    env.reset(seed=4)
    assert env.unwrapped.last_tick_opportunities()["pvalue"].size == 0
    batch = env.unwrapped.batch
    _, _, _, _, info = env.step(np.array([0.2], np.float32))
    view = env.unwrapped.last_tick_opportunities()
    mine = batch.eligible[:, 0]
    np.testing.assert_array_equal(view["pvalue"], batch.pvalue[mine, 0])
    assert len(view["least_winning_cost"]) == info["opportunities"] == mine.sum()
    # Where the agent's bid beat the least winning cost it won a slot, and not elsewhere.
    bid = env.unwrapped.action_to_alpha(0.2) * 60.0 * view["pvalue"].astype(np.float64)
    lwc = view["least_winning_cost"].astype(np.float64)
    sure = bid > lwc * (1 + 1e-6)
    unsure = np.abs(bid - lwc) <= 1e-6 * lwc
    assert sure.sum() > 0
    assert sure.sum() <= info["wins"] <= sure.sum() + unsure.sum()


def test_no_look_ahead_into_the_day_volume_perturbation():
    """Two days that differ only in their volume perturbation give identical first observations
    (but for the features of the tick's own realised opportunities), and ``traffic_elapsed``
    follows the prior curve all day."""
    from bidenv.traffic import FeedTraffic

    names = None
    days = []
    for noise in (0.0, 0.5):  # the same number of draws, different perturbations
        env = AutoBiddingEnv(opportunities_per_day=20_000, n_competitors=7,
                             traffic=FeedTraffic(volume_noise=noise),
                             campaign=dict(budget=300.0, target_cpa=50.0))
        names = env.feature_names
        obs, _ = env.reset(seed=11)
        elapsed = [obs[names.index("traffic_elapsed")]]
        for _ in range(47):
            o, *_ = env.step(np.zeros(1, np.float32))
            elapsed.append(o[names.index("traffic_elapsed")])
        days.append((obs, np.array(elapsed), env.traffic))
    (obs_a, el_a, tr_a), (obs_b, el_b, tr_b) = days
    assert not np.allclose(tr_a.expected_volume(), tr_b.expected_volume(), rtol=0.05)
    np.testing.assert_array_equal(tr_a.prior_volume(), tr_b.prior_volume())
    own_tick = {"cur_pvalue_mean", "cur_opportunities"}
    keep = [i for i, n in enumerate(names) if n not in own_tick]
    np.testing.assert_array_equal(obs_a[keep], obs_b[keep])
    np.testing.assert_array_equal(el_a, el_b)
    prior = tr_a.prior_volume()
    np.testing.assert_allclose(el_a, np.cumsum(np.r_[0.0, prior])[:48] / prior.sum(), rtol=1e-6)


def test_registered_ids_set_max_episode_steps_and_days_end_by_themselves():
    import gymnasium as gym

    for env_id in ("bidenv/AutoBidding-v0", "bidenv/AutoBiddingLite-v0"):
        assert gym.spec(env_id).max_episode_steps == 48
    env = gym.make("bidenv/AutoBiddingLite-v0", campaign={"budget": 1e6, "constraint": "cpa",
                                                          "target_cpa": 100.0})
    env.reset(seed=0)
    steps, terminated = 0, False
    while not terminated:
        _, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        steps += 1
    assert steps == 48 and info["tick"] == 48  # the day itself ends at its last tick
    # A shorter custom day ends by itself before the time limit.
    short = gym.make("bidenv/AutoBiddingLite-v0", n_ticks=5)
    short.reset(seed=0)
    outs = [short.step(np.zeros(1, np.float32)) for _ in range(5)]
    assert outs[-1][2] and not outs[-1][3] and not any(o[2] for o in outs[:-1])


def test_render_modes_ansi_and_rgb_array():
    import gymnasium as gym

    env = gym.make("bidenv/AutoBiddingLite-v0", render_mode="ansi")
    assert env.metadata["render_modes"] == ["ansi", "rgb_array"] and env.metadata["render_fps"]
    env.reset(seed=3)
    steps = [env.step(np.zeros(1, np.float32)) for _ in range(3)]
    infos = [out[4] for out in steps]
    lines = env.render().splitlines()
    assert len(lines) == 1 + 3 and lines[0].split() == ["tick", "spent", "traffic", "alpha",
                                                        "ratio"]
    last = lines[-1].split()
    assert int(last[0]) == 3 and float(last[3]) == pytest.approx(infos[-1]["alpha"], abs=0.01)
    spent = infos[-1]["total_cost"] / infos[-1]["budget"]
    assert float(last[1].rstrip("%")) == pytest.approx(100 * spent, abs=0.06)
    from bidenv.features import FEATURE_INDEX

    ratio = float(steps[-1][0][FEATURE_INDEX["constraint_ratio"]])
    assert float(last[4]) == pytest.approx(ratio, abs=0.006)  # the observation's ratio
    env.reset(seed=3)
    assert env.render().splitlines() == lines[:1]  # reset clears the trace

    rgb = gym.make("bidenv/AutoBiddingLite-v0", render_mode="rgb_array")
    rgb.reset(seed=3)
    rgb.step(np.zeros(1, np.float32))
    img = rgb.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.std() > 0  # something was drawn
    plain = gym.make("bidenv/AutoBiddingLite-v0")
    plain.reset(seed=3)
    assert plain.render() is None
    from bidenv.env import AutoBiddingEnv

    with pytest.raises(ValueError, match="render_mode"):
        AutoBiddingEnv(render_mode="video")


def test_record_video_writes_a_video_of_the_pacing_figure(tmp_path):
    pytest.importorskip("moviepy")
    from gymnasium.wrappers import RecordVideo

    env = RecordVideo(gym.make("bidenv/AutoBiddingLite-v0", render_mode="rgb_array",
                               opportunities_per_day=8_000, n_competitors=11),
                      str(tmp_path), episode_trigger=lambda i: True, disable_logger=True)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        done = terminated or truncated
    env.close()
    videos = list(tmp_path.glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
