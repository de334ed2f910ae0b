"""The multi-agent market (PettingZoo ParallelEnv): one agent is the single env; K agents keep
every invariant of the single env for every agent."""

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("pettingzoo")
from pettingzoo.test import parallel_api_test, parallel_seed_test  # noqa: E402

import bidenv  # noqa: E402, F401
from bidenv.campaign import Campaign  # noqa: E402
from bidenv.day import (
    HistoryRow,  # noqa: E402
    MarketDay,  # noqa: E402
)
from bidenv.multi_agent import AutoBiddingParallelEnv, parallel_env  # noqa: E402
from bidenv.scoring import campaign_score  # noqa: E402

LITE = "bidenv/AutoBiddingLite-v0"
SMALL = dict(opportunities_per_day=8_000, n_competitors=11)


def _same(got, want):
    """Exact equality, NaN equal to NaN (a CPA before any sale)."""
    assert got.keys() == want.keys()
    for key, value in want.items():
        g = got[key]
        if isinstance(value, float) and np.isnan(value):
            assert np.isnan(g), key
        else:
            assert g == value, key


def test_one_agent_resets_to_the_single_env_observation_on_the_full_day():
    ma = parallel_env(n_agents=1)
    single = gym.make("bidenv/AutoBidding-v0")
    obs, infos = ma.reset(seed=5)
    o1, i1 = single.reset(seed=5)
    assert ma.agents == ["advertiser_0"]
    np.testing.assert_array_equal(obs["advertiser_0"], o1)
    _same(infos["advertiser_0"], i1)


@pytest.mark.parametrize("reward_mode,policy", [
    ("score", lambda t: -0.7 + 0.1 * np.sin(t)),  # lasts the whole day
    ("expected_score", lambda t: 0.8),  # budget out before the day ends
    ("conversions", lambda t: np.sin(0.9 * t)),
])
def test_one_agent_plays_the_single_env_day(reward_mode, policy):
    ma = parallel_env(n_agents=1, reward_mode=reward_mode, **SMALL)
    single = gym.make(LITE, reward_mode=reward_mode, **SMALL)
    for seed in (11, 12):
        obs, infos = ma.reset(seed=seed)
        o1, i1 = single.reset(seed=seed)
        np.testing.assert_array_equal(obs["advertiser_0"], o1)
        _same(infos["advertiser_0"], i1)
        t, done = 0, False
        while not done:
            a = np.array([policy(t)], np.float32)
            obs, rew, term, trunc, infos = ma.step({"advertiser_0": a})
            o1, r1, done, _, i1 = single.step(a)
            np.testing.assert_array_equal(obs["advertiser_0"], o1)
            assert rew["advertiser_0"] == r1
            assert term["advertiser_0"] == done and not trunc["advertiser_0"]
            _same(infos["advertiser_0"], i1)
            # and the same view of the tick's opportunities (what agents' update gets)
            mine = ma.last_tick_opportunities("advertiser_0")
            theirs = single.unwrapped.last_tick_opportunities()
            assert mine.keys() == theirs.keys() and len(mine["pvalue"]) > 0
            for key in mine:
                np.testing.assert_array_equal(mine[key], theirs[key])
            t += 1
        assert ma.agents == []
    if reward_mode == "score":
        assert t == 48  # a whole day was compared
    if reward_mode == "expected_score":
        assert t < 48  # and a day whose budget ran out


def test_one_agent_campaign_options_are_the_single_env_options():
    camp = {"budget": 60.0, "constraint": "roi", "target_roi": 2.0, "category": 2}
    for ma_kwargs, reset_options in [(dict(campaign=camp), {"budget": 40.0}),
                                     (dict(campaigns=[camp]), None),
                                     ({}, {"target_cpa": 80.0, "category": 1})]:
        single_kwargs = {"campaign": camp} if ma_kwargs else {}
        ma = parallel_env(n_agents=1, **ma_kwargs, **SMALL)
        single = gym.make(LITE, **single_kwargs, **SMALL)
        obs, infos = ma.reset(seed=4, options=reset_options)
        o1, i1 = single.reset(seed=4, options=reset_options)
        np.testing.assert_array_equal(obs["advertiser_0"], o1)
        _same(infos["advertiser_0"], i1)
        assert ma.agent_campaigns[0] == single.unwrapped.agent_campaign


@pytest.mark.filterwarnings("ignore:ignoring unknown reset options")  # the test passes one
def test_parallel_api():
    parallel_api_test(parallel_env(n_agents=3, **SMALL), num_cycles=30)
    parallel_api_test(parallel_env(n_agents=12, **SMALL), num_cycles=30)  # no competitor left


def test_pettingzoo_seed_test():
    parallel_seed_test(lambda: parallel_env(n_agents=3, **SMALL), num_cycles=30)


def _rollout(env, seed, action_seed):
    rng = np.random.default_rng(action_seed)
    out = [env.reset(seed=seed)]
    while env.agents:
        out.append(env.step({a: rng.uniform(-1, 1, 1).astype(np.float32) for a in env.agents}))
    return out


def _equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _equal(a[key], b[key])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _equal(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert np.array_equal(a, b)


def test_same_seed_same_day():
    one, two = parallel_env(n_agents=3, **SMALL), parallel_env(n_agents=3, **SMALL)
    first = _rollout(one, 21, 0)
    _equal(first, _rollout(two, 21, 0))
    _equal(first, _rollout(one, 21, 0))  # and again on a reused env
    other = _rollout(one, 22, 0)
    assert not np.array_equal(first[0][0]["advertiser_1"], other[0][0]["advertiser_1"])


def test_agents_replace_competitors_and_share_the_single_env_draws():
    K = 4
    ma = parallel_env(n_agents=K, **SMALL)
    single = gym.make(LITE, **SMALL).unwrapped
    ma.reset(seed=8)
    single.reset(seed=8)
    day = ma.day
    assert isinstance(day, MarketDay) and day.n_agents == K
    assert day.k == SMALL["n_competitors"] + 1  # the market keeps its size
    assert ma.agent_campaigns == day.campaigns[:K]
    assert day.campaigns[0] == single.campaigns[0]  # agent 0 drawn as the single env's agent
    # the competitors left are the single env's first ones, and the streams are the same
    assert day.campaigns[K:] == single.campaigns[1:len(single.campaigns) - (K - 1)]
    assert day.rng_outcome.random() == single.day.rng_outcome.random()
    for camp in ma.agent_campaigns[1:]:  # agents' campaigns lie inside their market
        assert camp.budget < 6_000 * 8_000 / 500_000
    with pytest.raises(ValueError, match="n_agents"):
        parallel_env(n_agents=13, **SMALL)


def test_campaigns_can_be_set():
    fixed = Campaign(budget=50.0, constraint="cpa", target_cpa=90.0, category=5)
    roi = {"budget": 30.0, "constraint": "roi", "target_roi": 3.0}  # a whole campaign
    ma = parallel_env(n_agents=3, campaigns=[None, fixed, roi], **SMALL)
    ma.reset(seed=2)
    drawn = parallel_env(n_agents=3, **SMALL)
    drawn.reset(seed=2)
    assert ma.agent_campaigns[0] == drawn.agent_campaigns[0]
    assert ma.agent_campaigns[1] == fixed
    assert ma.agent_campaigns[2] == Campaign(**roi)
    ma.reset(seed=2, options={"campaigns": [{"budget": 20.0}, None, fixed]})
    assert ma.agent_campaigns[0] == drawn.agent_campaigns[0].replace(budget=20.0)
    assert ma.agent_campaigns[1:] == [fixed, fixed]
    assert ma.day.campaigns[3:] == drawn.day.campaigns[3:]  # nothing else changes
    infos = ma.reset(seed=2, options={"campaigns": [None, None, fixed]})[1]
    assert infos["advertiser_2"]["budget"] == 50.0 and infos["advertiser_2"]["target"] == 90.0
    with pytest.raises(ValueError, match="n_agents=3"):
        ma.reset(seed=2, options={"campaigns": [fixed]})
    with pytest.raises(ValueError, match="n_agents=3"):
        parallel_env(n_agents=3, campaigns=[fixed], **SMALL)
    with pytest.warns(UserWarning, match="unknown reset options"):
        ma.reset(seed=2, options={"budgett": 1.0})


def test_invariants_hold_for_every_agent():
    K = 4
    ma = parallel_env(n_agents=K, **SMALL)
    obs, infos = ma.reset(seed=31)
    names = list(ma.possible_agents)
    per_tick = {a: [] for a in names}
    returns = dict.fromkeys(names, 0.0)
    last = dict(infos)
    left_at = {}
    t = 0
    while ma.agents:
        # advertiser_1 bids 10x its value and runs out of budget early; the others pace.
        actions = {a: np.array([1.0 if a == "advertiser_1" else -0.2], np.float32)
                   for a in ma.agents}
        live = list(ma.agents)
        obs, rew, term, trunc, infos = ma.step(actions)
        t += 1
        assert set(obs) == set(rew) == set(term) == set(trunc) == set(infos) == set(live)
        for a in live:
            per_tick[a].append(infos[a])
            returns[a] += rew[a]
            last[a] = infos[a]
            if term[a]:
                left_at[a] = t
        assert all(a in live for a in ma.agents)
        assert [a for a in live if not term[a]] == ma.agents
    assert left_at["advertiser_1"] < 48  # left early; the day went on for the others
    assert max(left_at.values()) == 48
    for i, a in enumerate(names):
        info, camp = last[a], ma.agent_campaigns[i]
        assert ma.day.spent[i] <= camp.budget
        assert info["total_cost"] == ma.day.spent[i] and info["budget"] == camp.budget
        assert info["tick"] == left_at[a]
        for total, key in [("total_cost", "cost"), ("total_conversions", "conversions"),
                           ("total_value", "value")]:
            assert info[total] == pytest.approx(sum(x[key] for x in per_tick[a]), abs=1e-9)
        score = campaign_score(camp.constraint, info["total_conversions"], info["total_value"],
                               info["total_cost"], target_cpa=camp.target_cpa,
                               target_roi=camp.target_roi, beta=2.0)
        assert info["score"] == pytest.approx(score, rel=1e-12)
        assert returns[a] == pytest.approx(info["score"], rel=1e-9, abs=1e-12)
    # an agent that left bids 0: its totals stay as they were
    assert ma.day.spent[1] == last["advertiser_1"]["total_cost"]
    assert ma.day.hist[HistoryRow.BID, left_at["advertiser_1"]:, 1].max() == 0.0  # bids 0


def test_the_episode_ends_when_every_agent_is_out():
    ma = parallel_env(n_agents=2, **SMALL)
    ma.reset(seed=3)
    while ma.agents:
        ma.step({a: np.ones(1, np.float32) for a in ma.agents})
    assert ma.day.tick < 48 and ma.day.batch is None
    assert ma.day.agents_out().all()
    with pytest.raises(RuntimeError, match="reset"):
        ma.step({})


def test_bad_actions_are_refused():
    ma = parallel_env(n_agents=2, **SMALL)
    with pytest.raises(RuntimeError, match="reset"):
        ma.step({"advertiser_0": np.zeros(1)})
    ma.reset(seed=0)
    with pytest.raises(ValueError, match="missing"):
        ma.step({"advertiser_0": np.zeros(1)})
    with pytest.raises(ValueError, match="unknown"):
        ma.step({"advertiser_0": np.zeros(1), "advertiser_1": np.zeros(1), "x": np.zeros(1)})
    with pytest.raises(ValueError, match="finite"):
        ma.step({"advertiser_0": np.array([np.nan]), "advertiser_1": np.zeros(1)})
    with pytest.raises(ValueError, match="record"):
        parallel_env(n_agents=2, record=True)
    # out-of-range actions are clipped, as in the single env
    _, _, _, _, infos = ma.step({"advertiser_0": np.array([5.0]), "advertiser_1": np.zeros(1)})
    assert infos["advertiser_0"]["alpha"] == pytest.approx(10.0)


def test_render_ansi_and_spaces():
    ma = parallel_env(n_agents=2, render_mode="ansi", **SMALL)
    assert isinstance(ma, AutoBiddingParallelEnv)
    single = gym.make(LITE)
    for a in ma.possible_agents:
        assert ma.observation_space(a) == single.observation_space
        assert ma.action_space(a) == single.action_space
    ma.reset(seed=0)
    ma.step({a: np.zeros(1, np.float32) for a in ma.agents})
    lines = ma.render().splitlines()
    assert len(lines) == 2 and lines[1].split()[0] == "1"


def test_every_agent_sees_its_own_opportunities_as_the_single_env_rule():
    # Agent i's view: pValue of the opportunities it could enter and the least cost of
    # winning a slot there, the clearing price of the last slot where it won one. Checked
    # against the tick's recorded auctions, row by row.
    ma = parallel_env(n_agents=3, **SMALL)
    ma.reset(seed=4)
    seen = {}

    def hook(batch, bids, res, n_slots, exposure, eligible, alpha):
        seen["batch"], seen["res"], seen["n_slots"] = batch, res, n_slots

    day = ma.day
    simulate = day.simulate_tick
    day.simulate_tick = lambda alpha, on_auctions=None: simulate(alpha, hook)
    ma.step({a: np.full(1, 0.3, np.float32) for a in ma.agents})
    batch, res = seen["batch"], seen["res"]
    slots = np.broadcast_to(np.asarray(seen["n_slots"]), (batch.n,))
    for i, name in enumerate(ma.possible_agents):
        view = ma.last_tick_opportunities(name)
        expect_p, expect_lwc = [], []
        for r in range(batch.n):
            if not batch.eligible[r, i]:
                continue
            expect_p.append(batch.pvalue[r, i])
            row_winners = list(res.winners[r])
            if i in row_winners:
                expect_lwc.append(res.least_winning_cost[r])
            else:
                b = res.top_bids[r, slots[r] - 1]
                expect_lwc.append(max(b if np.isfinite(b) else 0.0, day.reserve_price))
        np.testing.assert_array_equal(view["pvalue"], np.float32(expect_p))
        np.testing.assert_allclose(view["least_winning_cost"], np.float32(expect_lwc), rtol=1e-6)
    single = ma.day.opportunities_of(0)
    np.testing.assert_array_equal(single[1], ma.day.tick_opportunities[1])
