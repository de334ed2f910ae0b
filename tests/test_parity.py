"""Information parity: the opportunity features (what the online LP reads) as opt-in states."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from generative_helpers import TINY

import agents
import bidenv  # noqa: F401  (registers the envs)
from agents.common import fit
from agents.dt import DTAgent
from bidenv.features import OPPORTUNITY_FEATURES, OpportunityStats, prior_bid_scale
from bidenv.offline import OPPORTUNITY_COLUMNS, Trajectories, validate_frame
from experiments.collect import collect

ENV = "bidenv/AutoBiddingLite-v0"
CPA = {"budget": 400.0, "constraint": "cpa", "target_cpa": 60.0, "category": 2}


def test_stats_match_quantiles_by_hand():
    """Last-tick quantiles are np.quantile of log10(lwc / (pvalue x s)); the day's come from
    a histogram of every past tick (within its 0.025 bin width)."""
    env = gym.make(ENV)
    seen = []
    agents.run_episode(env, agents.make("pid_budget"), seed=3, options=CPA,
                       on_step=lambda step: seen.append(env.unwrapped.last_tick_opportunities()))
    stats = OpportunityStats(CPA)
    assert np.all(stats.features() == 0)
    s = prior_bid_scale(CPA)
    assert s == 60.0 and math.isclose(prior_bid_scale({"constraint": "roi", "target_roi": 2.0}),
                                      50.0)
    q = (0.1, 0.25, 0.5, 0.75, 0.9)
    for opp in seen[:12]:
        stats.update(opp)
        ok = (opp["pvalue"] > 0) & (opp["least_winning_cost"] > 0)
        need = np.log10(opp["least_winning_cost"][ok].astype(np.float64)
                        / (opp["pvalue"][ok].astype(np.float64) * s))
        np.testing.assert_allclose(stats.features()[:5], np.quantile(need, q), rtol=1e-5,
                                   atol=1e-6)
    pooled = np.concatenate([
        np.log10(o["least_winning_cost"][(o["pvalue"] > 0) & (o["least_winning_cost"] > 0)]
                 / (o["pvalue"][(o["pvalue"] > 0) & (o["least_winning_cost"] > 0)] * s))
        for o in seen[:12]])
    np.testing.assert_allclose(stats.features()[5:], np.quantile(pooled, q), atol=0.0251)


def test_collect_logs_what_was_known_before_each_tick():
    frame = collect(episodes=2, seed=0, progress=False)
    opp = frame[OPPORTUNITY_COLUMNS].to_numpy()
    first = frame["tick"].to_numpy() == 0
    assert np.all(opp[first] == 0) and np.all(opp[~first].any(axis=1))
    # After one tick the day's quantiles are the last tick's (up to the histogram's bins).
    second = frame["tick"].to_numpy() == 1
    np.testing.assert_allclose(opp[second][:, 5:], opp[second][:, :5], atol=0.0251)
    traj = Trajectories.from_frame(validate_frame(frame))
    assert traj.opportunity_obs.shape == traj.obs.shape[:2] + (len(OPPORTUNITY_FEATURES),)
    wide = traj.with_opportunity_obs()
    assert wide.obs.shape[-1] == traj.obs.shape[-1] + len(OPPORTUNITY_FEATURES)
    with pytest.raises(ValueError, match="all or none"):
        validate_frame(frame.drop(columns=OPPORTUNITY_COLUMNS[3]))
    with pytest.raises(ValueError, match="needs the opportunity columns"):
        plain = validate_frame(frame.drop(columns=OPPORTUNITY_COLUMNS))
        Trajectories.from_frame(plain).with_opportunity_obs()


def test_dt_with_opportunity_features_trains_and_plays():
    frame = collect(episodes=4, seed=1, progress=False)
    agent = fit(DTAgent(**TINY, opportunity_features=True), frame, steps=3, progress=False)
    assert agent.obs_dim == 20 + len(OPPORTUNITY_FEATURES)
    env = gym.make(ENV)
    info = agents.run_episode(env, agent, seed=5, options=CPA)
    assert info["tick"] > 0 and np.any(agent._opportunities.features() != 0)
    # The states it read end with the opportunity features it computed from update().
    last = agent._day["states"][0, info["tick"] - 1].numpy()[-len(OPPORTUNITY_FEATURES):]
    assert np.any(last != 0)
