"""Tests for :mod:`bidenv.competitors`: the heuristic controllers and the agent wrappers."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

import bidenv  # noqa: F401  (registers the ids)
from bidenv.competitors import (
    AgentCompetitors,
    HeuristicBidder,
    HeuristicCompetitors,
    ScriptedCompetitors,
)
from bidenv.env import FEATURE_NAMES, AutoBiddingEnv

PACE = FEATURE_NAMES.index("pace_error")
RATIO = FEATURE_NAMES.index("constraint_ratio")
CONVERSIONS = FEATURE_NAMES.index("hist_conversion_mean")
CAMPAIGNS = [dict(budget=100.0, constraint="cpa", target_cpa=50.0, target_roi=None,
                  category=i % 8) for i in range(6)]


def obs_with(m, pace=0.0, ratio=0.0, conversions=1.0):
    obs = np.zeros((m, len(FEATURE_NAMES)), np.float32)
    obs[:, PACE] = pace
    obs[:, RATIO] = ratio
    obs[:, CONVERSIONS] = conversions  # past conversions: the realised CPA is defined
    return obs


def market(mix, seed=0, noise=0.0, **kw):
    policy = HeuristicCompetitors(mix=mix, noise=noise, **kw)
    policy.reset(CAMPAIGNS, list(FEATURE_NAMES), np.random.default_rng(seed))
    return policy


# --------------------------------------------------------------------------- #
# HeuristicCompetitors
# --------------------------------------------------------------------------- #


def test_pacing_kind_reacts_to_pace_error():
    m = len(CAMPAIGNS)
    neutral = market((0, 1, 0)).act(obs_with(m, pace=0.0))
    ahead = market((0, 1, 0)).act(obs_with(m, pace=0.2))
    behind = market((0, 1, 0)).act(obs_with(m, pace=-0.2))
    assert np.all(ahead < neutral) and np.all(behind > neutral)
    # Neutral pace: the advertiser's own starting multiplier (log-normal around base_alpha).
    alpha = 10.0 ** neutral
    assert np.all((alpha > 0.9 * math.exp(-1.0)) & (alpha < 0.9 * math.exp(1.0)))
    # A persistent overspend keeps lowering the multiplier (integral term).
    p = market((0, 1, 0))
    seq = np.array([p.act(obs_with(m, pace=0.1)) for _ in range(5)])
    assert np.all(np.diff(seq, axis=0) < 0)


def test_constraint_kind_tracks_the_ratio():
    m = len(CAMPAIGNS)
    p = market((0, 0, 1))
    start = p.act(obs_with(m, ratio=0.0))  # nothing spent yet: no change
    again = p.act(obs_with(m, ratio=0.0))
    np.testing.assert_array_equal(start, again)
    over = [p.act(obs_with(m, ratio=2.0)) for _ in range(4)]  # CPA twice the target
    assert np.all(over[0] < start)
    assert np.all(np.diff(over, axis=0) < 0)
    under = [p.act(obs_with(m, ratio=0.5)) for _ in range(4)]  # well under target
    assert np.all(under[0] > over[-1])
    assert np.all(np.diff(under, axis=0) > 0)
    on_target = p.act(obs_with(m, ratio=1.0))
    np.testing.assert_allclose(on_target, under[-1], atol=1e-12)


def test_fixed_kind_ignores_observations():
    m = len(CAMPAIGNS)
    p = market((1, 0, 0))
    a = p.act(obs_with(m, pace=0.5, ratio=5.0))
    b = p.act(obs_with(m, pace=-0.5, ratio=0.2))
    np.testing.assert_array_equal(a, b)


def test_actions_stay_in_range():
    m = len(CAMPAIGNS)
    for mix in [(0, 1, 0), (0, 0, 1), (0.3, 0.4, 0.3)]:
        p = market(mix, noise=0.5, alpha_spread=2.0)
        for obs in (obs_with(m, pace=1.0, ratio=10.0), obs_with(m, pace=-1.0, ratio=0.01)):
            for _ in range(100):
                a = p.act(obs)
                assert a.shape == (m,) and np.all(np.abs(a) <= 1.0)
        assert np.any(np.abs(a) == 1.0)  # pushed to the bounds, and clipped there


def test_deterministic_per_seed():
    m = len(CAMPAIGNS)
    g = np.random.default_rng(0)
    obs = [obs_with(m, pace=g.uniform(-0.3, 0.3), ratio=g.uniform(0, 3)) for _ in range(10)]
    runs = []
    for seed in (5, 5, 6):
        p = market((0.3, 0.4, 0.3), seed=seed, noise=0.05)
        runs.append(np.array([p.act(o) for o in obs]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [(dict(mix=(0.5, 0.5)), "mix"), (dict(mix=(1, -1, 1)), "mix"), (dict(mix=(0, 0, 0)), "mix"),
     (dict(base_alpha=0.0), "base_alpha"), (dict(alpha_spread=-1.0), "alpha_spread"),
     (dict(noise=-0.1), "noise")],
)
def test_heuristic_competitors_validation(kwargs, word):
    with pytest.raises(ValueError, match=word):
        HeuristicCompetitors(**kwargs)


# --------------------------------------------------------------------------- #
# HeuristicBidder, AgentCompetitors, ScriptedCompetitors
# --------------------------------------------------------------------------- #


def test_fixed_bidder_returns_alpha_to_action():
    env = AutoBiddingEnv()
    for alpha in (0.3, 1.0, 2.0, 10.0, 50.0):
        bidder = HeuristicBidder("fixed", alpha)
        a = bidder.act(obs_with(1, pace=0.4, ratio=3.0)[0])
        assert a.shape == (1,) and a.dtype == np.float32
        np.testing.assert_allclose(a, env.alpha_to_action(alpha), rtol=1e-6, atol=1e-7)
    assert HeuristicBidder("fixed", 2.0).name == "fixed_2"


def test_pacing_bidder_and_reset():
    b = HeuristicBidder("pacing")
    assert b.act(obs_with(1, pace=0.2)[0]) < 0.0 < HeuristicBidder("pacing").act(
        obs_with(1, pace=-0.2)[0])
    first = HeuristicBidder("pacing").act(obs_with(1, pace=0.1)[0])
    for _ in range(5):
        b.act(obs_with(1, pace=0.3)[0])
    b.reset({"budget": 1.0})
    np.testing.assert_array_equal(b.act(obs_with(1, pace=0.1)[0]), first)


def test_heuristic_bidder_validation():
    with pytest.raises(ValueError, match="kind"):
        HeuristicBidder("greedy")
    with pytest.raises(ValueError, match="alpha"):
        HeuristicBidder("fixed", 0.0)


class _Counter:
    """An agent with state, to check that each competitor gets its own copy."""

    def __init__(self):
        self.calls = 0
        self.campaign = None

    def reset(self, campaign):
        self.campaign = campaign
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        return np.array([0.1 * self.calls], np.float32)


def test_agent_competitors_copy_the_agent():
    proto = _Counter()
    policy = AgentCompetitors(proto)
    policy.reset(CAMPAIGNS[:3], list(FEATURE_NAMES), np.random.default_rng(0))
    np.testing.assert_allclose(policy.act(obs_with(3)), [0.1, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(policy.act(obs_with(3)), [0.2, 0.2, 0.2], rtol=1e-6)
    assert proto.calls == 0  # the prototype is untouched
    assert [a.campaign["category"] for a in policy.agents] == [0, 1, 2]
    factory = AgentCompetitors(lambda: _Counter())
    factory.reset(CAMPAIGNS[:2], list(FEATURE_NAMES), np.random.default_rng(0))
    assert len({id(a) for a in factory.agents}) == 2
    np.testing.assert_allclose(factory.act(obs_with(2)), [0.1, 0.1], rtol=1e-6)


def test_agent_competitors_accept_an_agent_class_as_factory():
    factory = AgentCompetitors(_Counter)
    factory.reset(CAMPAIGNS[:2], list(FEATURE_NAMES), np.random.default_rng(0))
    assert all(isinstance(a, _Counter) for a in factory.agents)
    np.testing.assert_allclose(factory.act(obs_with(2)), [0.1, 0.1], rtol=1e-6)


def test_scripted_competitors():
    p = ScriptedCompetitors(-0.25)
    p.reset(CAMPAIGNS, list(FEATURE_NAMES), np.random.default_rng(0))
    np.testing.assert_array_equal(p.act(obs_with(6)), np.full(6, -0.25))
    q = ScriptedCompetitors(np.linspace(-1, 1, 6))
    q.reset(CAMPAIGNS, list(FEATURE_NAMES), np.random.default_rng(0))
    np.testing.assert_array_equal(q.act(obs_with(6)), np.linspace(-1, 1, 6))


# --------------------------------------------------------------------------- #
# In the environment
# --------------------------------------------------------------------------- #


def play(agent, seed, campaign):
    env = gym.make("bidenv/AutoBiddingLite-v0", campaign=campaign).unwrapped
    obs, info = env.reset(seed=seed)
    agent.reset(info)
    ticks = 0
    while True:
        obs, _, term, _, info = env.step(agent.act(obs))
        ticks += 1
        if term:
            return ticks, info["total_cost"] / info["budget"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pacing_spends_a_plentiful_budget(seed):
    # Low CPA target, generous budget: the truthful bidder leaves most of it unspent, the
    # pacing bidder raises its bids until the budget is (almost) used.
    camp = dict(budget=300.0, target_cpa=25.0, category=3)
    _, paced = play(HeuristicBidder("pacing"), seed, camp)
    _, truthful = play(HeuristicBidder("fixed", 1.0), seed, camp)
    assert paced > 0.95
    assert truthful < 0.6
    assert paced > truthful + 0.3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pacing_stretches_a_tight_budget_over_the_day(seed):
    # High target, tight budget: the truthful bidder runs out early in the day, the pacing
    # bidder lowers its bids and stays in the market (almost) to the end.
    camp = dict(budget=100.0, target_cpa=200.0, category=3)
    paced_ticks, _ = play(HeuristicBidder("pacing"), seed, camp)
    truthful_ticks, truthful = play(HeuristicBidder("fixed", 1.0), seed, camp)
    assert truthful_ticks < 24 and truthful > 0.99
    assert paced_ticks >= 40
