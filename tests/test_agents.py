"""The agents package: protocol, registry, episode loop and the heuristic bidders."""

import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from scipy.optimize import linprog

import agents
import agents.base
import bidenv  # noqa: F401  (registers the environments)
from agents.base import FEATURE_INDEX, DayLedger
from agents.lp import solve_allocation_lp
from agents.pid import pacing_error
from bidenv.competitors import ScriptedCompetitors
from bidenv.env import FEATURE_NAMES
from bidenv.traffic import FeedTraffic

LITE = "bidenv/AutoBiddingLite-v0"
CPA = {"budget": 400.0, "constraint": "cpa", "target_cpa": 60.0}
ROI = {"budget": 400.0, "constraint": "roi", "target_roi": 2.0}
BUDGET = {"budget": 400.0, "constraint": "budget"}
#: Every registered agent that works without training (the heuristics): the trainable ones
#: are registered lazily, by "module:attr" reference, and tested in their own files.
HEURISTICS = [name for name in agents.available()
              if agents.base._REGISTRY[name].factory is not None
              and not isinstance(agents.base._REGISTRY[name].factory, str)]


def play(agent, *, seed=0, options=CPA, env=None, use_update=True, **env_kwargs):
    """One Lite day; returns (actions, infos). The shared helper of every agent test."""
    env = env or gym.make(LITE, **env_kwargs)
    obs, info = env.reset(seed=seed, options=options)
    agent.reset(env.unwrapped.agent_campaign.to_dict())
    actions, infos = [], []
    while True:
        action = agent.act(obs)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if use_update and hasattr(agent, "update"):
            agent.update(info, env.unwrapped.last_tick_opportunities())
        if terminated or truncated:
            return actions, infos


def expected_cpa_ratio(info):
    """Expected cost / expected conversions, relative to the target (noise-free)."""
    return info["expected_cost"] / info["expected_conversions"] / info["target"]


# --------------------------------------------------------------------------------------------
# Every heuristic through the protocol
# --------------------------------------------------------------------------------------------
def test_the_contracted_heuristics_are_registered():
    assert {"truthful", "fixed", "random", "pid_budget", "pid_cpa", "online_lp"} <= set(
        HEURISTICS)


@pytest.mark.parametrize("options", [CPA, ROI, BUDGET], ids=["cpa", "roi", "budget"])
@pytest.mark.parametrize("name", HEURISTICS)
def test_heuristic_plays_a_day_in_the_action_space_deterministically(name, options):
    env = gym.make(LITE)
    agent = agents.make(name)
    assert isinstance(agent, agents.Agent)
    assert agent.name.startswith(name)
    actions, infos = play(agent, seed=3, options=options, env=env)
    for action in actions:
        assert action.shape == (1,) and action.dtype == np.float32
        assert env.action_space.contains(action)
    assert infos[-1]["total_cost"] <= options["budget"] + 1e-9
    # Same seed, same day: a fresh agent and the same agent after reset both replay it.
    again, infos_again = play(agents.make(name), seed=3, options=options, env=env)
    assert np.array_equal(np.concatenate(actions), np.concatenate(again))
    assert infos_again == infos
    replay, _ = play(agent, seed=3, options=options, env=env)
    assert np.array_equal(np.concatenate(actions), np.concatenate(replay))


@pytest.mark.parametrize("name", HEURISTICS)
def test_heuristic_works_from_observations_alone(name):
    """As a market competitor (AgentCompetitors) an agent gets reset/act and no update."""
    env = gym.make(LITE)
    actions, _ = play(agents.make(name), seed=1, options=ROI, env=env, use_update=False)
    assert all(env.action_space.contains(a) for a in actions)
    # Also with an incomplete campaign dict, as the conformance suite passes it.
    agent = agents.make(name)
    agent.reset({"budget": 100.0, "constraint": "cpa", "target_cpa": 50.0})
    obs, _ = env.reset(seed=8)
    assert env.action_space.contains(np.asarray(agent.act(obs), np.float32))


def test_act_rejects_a_wrong_observation():
    with pytest.raises(ValueError, match="features"):
        agents.make("truthful").act(np.zeros(3))


def test_truthful_and_fixed_bid_the_multiplier_they_promise():
    env = gym.make(LITE)
    _, infos = play(agents.make("truthful"), env=env)
    assert {info["alpha"] for info in infos} == {1.0}
    _, infos = play(agents.make("fixed", alpha=2.5), env=env)
    assert all(info["alpha"] == pytest.approx(2.5, rel=1e-5) for info in infos)
    assert agents.make("fixed", alpha=2.5).name == "fixed_2.5"


@pytest.mark.parametrize("alpha", [0, -1.0, math.nan, math.inf, 20.0, 0.05, "2", True])
def test_fixed_alpha_is_validated(alpha):
    with pytest.raises(ValueError, match="alpha"):
        agents.make("fixed", alpha=alpha)


@pytest.mark.parametrize("kwargs", [{"kp": -1.0}, {"ki": math.nan}, {"alpha0": 0.0},
                                    {"max_alpha": 1.0}])
def test_controller_parameters_are_validated(kwargs):
    for name in ("pid_budget", "pid_cpa"):
        with pytest.raises(ValueError):
            agents.make(name, **kwargs)
    with pytest.raises(ValueError, match="min_opportunities"):
        agents.make("online_lp", min_opportunities=0)
    with pytest.raises(ValueError, match="prior_conversions"):
        agents.make("pid_cpa", prior_conversions=-2.0)


def test_random_is_reproducible_per_seed_and_reseeded_on_reset():
    env = gym.make(LITE)
    obs, _ = env.reset(seed=0)
    agent = agents.make("random", seed=7)
    agent.reset(CPA)
    first = [agent.act(obs)[0] for _ in range(10)]
    agent.reset(CPA)
    assert [agent.act(obs)[0] for _ in range(10)] == first
    other = agents.make("random", seed=8)
    other.reset(CPA)
    assert [other.act(obs)[0] for _ in range(10)] != first
    assert len(set(first)) == 10 and all(-1.0 <= a <= 1.0 for a in first)
    narrow = agents.make("random", seed=7, low=-0.1, high=0.1)
    narrow.reset(CPA)
    assert all(abs(narrow.act(obs)[0]) <= 0.1 for _ in range(20))
    for bad in ({"seed": -1}, {"seed": 1.5}, {"low": 0.5, "high": 0.2}, {"high": 2.0}):
        with pytest.raises(ValueError):
            agents.make("random", **bad)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------
@pytest.fixture
def registry(monkeypatch):
    """A private copy of the registry, so tests can register names freely."""
    monkeypatch.setattr(agents.base, "_REGISTRY", dict(agents.base._REGISTRY))
    return agents.base._REGISTRY


def test_available_lists_heuristics_and_lazy_rl_agents_sorted():
    names = agents.available()
    assert names == sorted(names)
    assert {"ppo", "sac", "td3"} <= set(names)
    assert set(agents.describe()) == set(names)
    assert all(agents.describe().values())


def test_importing_agents_does_not_import_torch():
    code = ("import sys, agents; agents.make('online_lp'); agents.available(); "
            "assert 'torch' not in sys.modules and 'stable_baselines3' not in sys.modules")
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_unknown_names_and_bad_specs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"unknown agent 'nope'; available: .*pid_cpa"):
        agents.make("nope")
    with pytest.raises(ValueError, match=r"unknown agent 'nope'; available"):
        agents.from_spec("nope:some/dir")
    with pytest.raises(ValueError, match="no checkpoints.*'truthful'.*ppo"):
        agents.from_spec("truthful:some/dir")
    with pytest.raises(ValueError, match="checkpoint"):
        agents.make("ppo")
    with pytest.raises(ValueError, match="no checkpoint path"):
        agents.from_spec("ppo:")
    for spec in ("", "  ", None):
        with pytest.raises(ValueError, match="name:path"):
            agents.from_spec(spec)


def test_from_spec_builds_by_name_with_kwargs():
    agent = agents.from_spec("fixed", alpha=2.0)
    assert agent.alpha == 2.0
    assert isinstance(agents.from_spec(" pid_cpa "), agents.PidCpaAgent)


def test_register_lazy_references_loaders_and_overwrites(registry):
    agents.register("lazy_truthful", "agents.constant:TruthfulAgent",
                    loader="agents.constant:FixedAlphaAgent", description="test")
    assert "lazy_truthful" in agents.available()
    assert isinstance(agents.make("lazy_truthful"), agents.TruthfulAgent)
    # The loader gets the path (here abused as alpha) and the keyword arguments.
    agents.register("ckpt", None, loader=lambda path, **kw: ("loaded", path, kw))
    assert agents.from_spec("ckpt:runs/x/model.zip", device="cpu") == (
        "loaded", "runs/x/model.zip", {"device": "cpu"})
    with pytest.raises(ValueError, match="already registered"):
        agents.register("ckpt", agents.TruthfulAgent)
    agents.register("ckpt", agents.TruthfulAgent, overwrite=True)
    assert isinstance(agents.make("ckpt"), agents.TruthfulAgent)
    for name in ("a:b", "a,b", "", 3):
        with pytest.raises(ValueError, match="agent name"):
            agents.register(name, agents.TruthfulAgent)
    with pytest.raises(ValueError, match="module:attr"):
        agents.register("bad_ref", "no_colon_here")
    with pytest.raises(ValueError, match="factory, a loader"):
        agents.register("nothing", None)
    agents.register("missing_module", "agents.does_not_exist:Thing")
    with pytest.raises(ModuleNotFoundError):
        agents.make("missing_module")


def test_make_names_agents_without_a_name(registry):
    class Nameless:
        def reset(self, campaign):
            pass

        def act(self, obs):
            return np.zeros(1, np.float32)

    Nameless.name = None
    agents.register("nameless", Nameless)
    assert agents.make("nameless").name == "nameless"


# --------------------------------------------------------------------------------------------
# run_episode
# --------------------------------------------------------------------------------------------
class Recorder(agents.TruthfulAgent):
    name = "recorder"

    def reset(self, campaign=None):
        super().reset(campaign)
        self.campaigns = getattr(self, "campaigns", []) + [campaign]
        self.updates = []

    def update(self, info, opportunities):
        self.updates.append((info, opportunities))


def test_run_episode_returns_the_final_info_and_calls_update():
    env = gym.make(LITE)
    agent = Recorder()
    info = agents.run_episode(env, agent, seed=2, options=CPA)
    assert info["tick"] == env.unwrapped.n_ticks == len(agent.updates)
    assert agent.updates[-1][0] is info
    assert agent.campaigns[-1] == env.unwrapped.agent_campaign.to_dict()
    assert agent.campaigns[-1]["budget"] == CPA["budget"]
    pvalue = agent.updates[-1][1]["pvalue"]
    assert len(pvalue) == len(agent.updates[-1][1]["least_winning_cost"]) > 0
    assert sum(len(u[1]["pvalue"]) for u in agent.updates) == sum(
        u[0]["opportunities"] for u in agent.updates)
    # Same as playing by hand, and agents without update are fine.
    _, infos = play(agents.make("truthful"), seed=2, options=CPA, env=env)
    assert infos[-1] == info
    assert agents.run_episode(env, agents.make("truthful"), seed=2, options=CPA) == info


# --------------------------------------------------------------------------------------------
# pid_budget
# --------------------------------------------------------------------------------------------
def stationary_env():
    """Competitors at fixed multipliers, a noise-free diurnal curve: a stationary market."""
    return gym.make(LITE, competitors=ScriptedCompetitors(0.0),
                    traffic=FeedTraffic(volume_noise=0.0))


# Budgets at 0.375x and 0.75x of Lite's typical 400. Far below the scenarios' range (0.5-1.5x),
# at 100, a tick's supply in this noiseless scripted market comes in lumps larger than the
# budget's per-tick pace (66 of 100 in one tick on seed 0), which no PI controller paces.
@pytest.mark.parametrize("budget", [150.0, 300.0])
def test_pid_budget_paces_along_the_traffic_curve_and_ends_on_budget(budget):
    env = stationary_env()
    options = {"budget": budget, "constraint": "cpa", "target_cpa": 60.0}
    for seed in range(3):
        _, infos = play(agents.make("pid_budget"), seed=seed, options=options, env=env)
        spent = np.array([i["total_cost"] for i in infos]) / budget
        elapsed = env.unwrapped._elapsed[1:len(infos) + 1]
        # Paced to the end: the budget may be used up in the day's last tick or two.
        assert len(infos) >= 47, "ran out of budget well before the end of the day"
        assert 0.95 <= spent[-1] <= 1.0
        # Little is spent at night: the first 12 ticks (00-06h) carry ~10% of the traffic.
        assert elapsed[11] < 0.15 and spent[11] < 0.2
        assert np.mean(np.abs(spent - elapsed)) < 0.06
        assert abs(spent[23] - elapsed[23]) < 0.15


def test_pacing_error_reads_behind_and_ahead():
    def obs(budget_left, elapsed):
        o = np.zeros(len(FEATURE_NAMES), np.float32)
        o[FEATURE_INDEX["budget_left"]] = budget_left
        o[FEATURE_INDEX["traffic_elapsed"]] = elapsed
        return o

    assert pacing_error(obs(1.0, 0.0)) == 0.0
    assert pacing_error(obs(0.5, 0.5)) == pytest.approx(0.0, abs=1e-6)
    assert pacing_error(obs(1.0, 0.1)) > 1.0  # nothing spent while 10% of traffic went by
    assert pacing_error(obs(0.3, 0.5)) < -0.5  # 70% spent at midday
    assert pacing_error(obs(0.2, 0.97)) == 1.5  # money left at the end of the day


# --------------------------------------------------------------------------------------------
# pid_cpa
# --------------------------------------------------------------------------------------------
def test_pid_cpa_keeps_the_cpa_near_an_attainable_target():
    env = gym.make(LITE)
    for seed in range(3):
        for target in (30.0, 60.0):
            options = {"budget": 400.0, "constraint": "cpa", "target_cpa": target}
            _, infos = play(agents.make("pid_cpa"), seed=seed, options=options, env=env)
            assert expected_cpa_ratio(infos[-1]) <= 1.2
            assert infos[-1]["total_cost"] <= 400.0
    # ROI: expected value / cost stays above target / 1.2.
    for seed in range(3):
        _, infos = play(agents.make("pid_cpa"), seed=seed, options=ROI, env=env)
        assert infos[-1]["expected_value"] / infos[-1]["expected_cost"] >= 2.0 / 1.2


def test_pid_cpa_bids_up_when_far_under_target_and_down_when_over():
    env = gym.make(LITE)
    rich = {"budget": 1e5, "constraint": "cpa", "category": 7}
    _, loose = play(agents.make("pid_cpa"), seed=0, options={**rich, "target_cpa": 600.0},
                    env=env)
    assert expected_cpa_ratio(loose[-1]) < 0.5
    assert loose[-1]["alpha"] > 3.0 and loose[-1]["alpha"] > loose[5]["alpha"] > 1.0
    # Started far too high (alpha 5), it comes down and ends closer to the target than a
    # constant alpha 5.
    for seed in (0, 1):
        options = {**rich, "target_cpa": 60.0}
        _, high = play(agents.make("pid_cpa", alpha0=5.0), seed=seed, options=options, env=env)
        _, fixed = play(agents.make("fixed", alpha=5.0), seed=seed, options=options, env=env)
        assert expected_cpa_ratio(fixed[-1]) > 1.1
        assert high[20]["alpha"] < 2.0
        assert expected_cpa_ratio(high[-1]) < expected_cpa_ratio(fixed[-1]) - 0.1


def test_pid_cpa_smoothing_does_not_crash_the_bid_on_early_zero_conversions():
    agent = agents.make("pid_cpa")
    agent.reset(CPA)
    obs = np.zeros(len(FEATURE_NAMES), np.float32)
    obs[FEATURE_INDEX["budget_left"]] = 1.0
    agent.act(obs)  # tick 0
    obs[FEATURE_INDEX["budget_left"]] = 0.95  # 20 spent, no conversion yet: CPA "infinite"
    obs[FEATURE_INDEX["traffic_elapsed"]] = 0.05
    obs[FEATURE_INDEX["constraint_ratio"]] = 10.0
    assert agent.smoothed_ratio(obs) == pytest.approx((20 + 2 * 60) / (2 * 60), rel=1e-5)
    assert agent.act(obs)[0] > -0.1  # alpha barely moves (it would be 0.1 unsmoothed)
    unsmoothed = agents.make("pid_cpa", prior_conversions=0.0)
    unsmoothed.reset(CPA)
    assert unsmoothed.smoothed_ratio(obs) == 10.0


def test_roi_bid_scale_is_read_from_the_observation():
    env = gym.make(LITE)
    agent = agents.make("pid_cpa")
    _, infos = play(agent, seed=4, options=ROI, env=env)
    info = infos[-1]
    assert info["total_conversions"] > 0
    value_per_conversion = info["total_value"] / info["total_conversions"]
    assert agent.bid_scale.value == pytest.approx(value_per_conversion / 2.0, rel=1e-4)


# --------------------------------------------------------------------------------------------
# online_lp
# --------------------------------------------------------------------------------------------
def _linprog(value, cost, budget, bid_scale, slack):
    rows, bounds = [], []
    if budget < math.inf:
        rows.append(cost)
        bounds.append(budget)
    if bid_scale is not None:
        rows.append(cost - bid_scale * value)
        bounds.append(slack)
    return linprog(-value, A_ub=np.array(rows) if rows else None,
                   b_ub=np.array(bounds) if rows else None, bounds=[(0.0, 1.0)] * len(value),
                   method="highs")


def test_allocation_lp_matches_linprog():
    rng = np.random.default_rng(0)
    checked = infeasible = 0
    for trial in range(300):
        n = int(rng.integers(1, 40))
        value = rng.exponential(1.0, n)
        cost = rng.exponential(1.0, n) + 0.01
        budget = float(rng.uniform(0.0, 1.2 * cost.sum())) if trial % 4 else math.inf
        bid_scale = float(rng.uniform(0.3, 3.0)) if trial % 5 else None
        slack = float(rng.normal(0.0, 1.0))
        sol = solve_allocation_lp(value, cost, budget=budget, bid_scale=bid_scale, slack=slack)
        ref = _linprog(value, cost, budget, bid_scale, slack)
        if ref.status == 2:
            assert not sol.feasible
            infeasible += 1
            continue
        assert ref.status == 0 and sol.feasible
        assert sol.value == pytest.approx(-ref.fun, rel=1e-9, abs=1e-9)
        assert np.all((sol.x >= 0) & (sol.x <= 1))
        assert np.count_nonzero((sol.x > 0) & (sol.x < 1)) <= 1
        assert sol.x @ cost <= budget + 1e-9
        if bid_scale is not None:
            assert sol.x @ (cost - bid_scale * value) <= slack + 1e-9
        # A prefix in value/cost order: everything bought beats everything left.
        eff = value / cost
        if np.any(sol.x > 0) and np.any(sol.x < 1):
            assert eff[sol.x > 0].min() >= eff[sol.x < 1].max() - 1e-12
        checked += 1
    assert checked > 250 and infeasible >= 3


def test_allocation_lp_by_hand():
    value = np.array([3.0, 1.0, 2.0, 0.5])
    cost = np.array([1.0, 1.0, 1.0, 1.0])
    # Budget 2.5: the two best and half of the third.
    sol = solve_allocation_lp(value, cost, budget=2.5)
    assert np.allclose(sol.x, [1.0, 0.5, 1.0, 0.0]) and sol.binding == "budget"
    assert sol.threshold == 1.0 and sol.value == 5.5
    # CPA target 0.8 per unit of value, no slack (cost <= 0.8 value): along the value/cost
    # order g = sum(c - 0.8 v) is -1.4, -2.0, -1.8, -1.2, never above 0: buy everything.
    sol = solve_allocation_lp(value, cost, bid_scale=0.8, slack=0.0)
    assert sol.binding is None and np.allclose(sol.x, 1.0)
    # Target 0.5: g = -0.5, -0.5, 0.0, 0.75, so three items (cost 3 = 0.5 x value 6).
    sol = solve_allocation_lp(value, cost, bid_scale=0.5, slack=0.0)
    assert np.allclose(sol.x, [1.0, 1.0, 1.0, 0.0]) and sol.binding == "cpa"
    # Already 0.5 over the CPA budget, and no opportunity is cheaper than target 0.2.
    sol = solve_allocation_lp(value, cost, bid_scale=0.2, slack=-0.5)
    assert not sol.feasible and sol.value == 0.0
    assert solve_allocation_lp(value, cost, budget=0.0).threshold == math.inf
    with pytest.raises(ValueError, match="costs > 0"):
        solve_allocation_lp([1.0], [0.0])


def test_day_ledger_finds_the_wins_and_predicted_conversions():
    ledger = DayLedger(keep_opportunities=True)
    opportunities = {"pvalue": np.array([1e-3, 4e-3, 2e-3, 1e-3], np.float32),
                     "least_winning_cost": np.array([0.1, 0.1, 0.1, 0.4], np.float32)}
    ledger.update({"wins": 2, "exposures": 1, "cost": 0.15, "total_conversions": 0.0},
                  opportunities)
    assert ledger.won_pvalue == pytest.approx(6e-3)
    assert ledger.predicted_conversions == pytest.approx(3e-3)  # half the wins were shown
    assert ledger.won_lwc == pytest.approx(0.2)
    assert ledger.n_seen == 4 and len(ledger.pvalue) == 1
    assert ledger.calibration(10.0) == pytest.approx(10.0 / 10.003)


def test_online_lp_bids_the_prior_without_data_then_solves():
    env = gym.make(LITE)
    agent = agents.make("online_lp")
    actions, infos = play(agent, seed=0, options=CPA, env=env)
    assert infos[0]["alpha"] == 1.0
    assert agent.last_solution is not None and len(agent.last_solution.x) > 1000
    assert len({round(i["alpha"], 6) for i in infos}) > 10
    # Without update it keeps the prior.
    _, infos = play(agents.make("online_lp"), seed=0, options=CPA, env=env, use_update=False)
    assert {i["alpha"] for i in infos} == {1.0}


def test_online_lp_spends_the_budget_and_beats_truthful_where_truthful_overspends():
    """First-price auctions, a high-value category, a small budget and a loose target (about
    twice the category's market CPA): bidding the value spends the budget by the early
    afternoon at CPA = target; the LP paces it over the day."""
    env = gym.make(LITE, mechanism="first_price")
    options = {"budget": 200.0, "constraint": "cpa", "target_cpa": 120.0, "category": 7}
    for seed in range(3):
        _, truthful = play(agents.make("truthful"), seed=seed, options=options, env=env)
        _, lp = play(agents.make("online_lp"), seed=seed, options=options, env=env)
        assert len(truthful) <= 32 and truthful[-1]["budget_left"] < 1.0  # ran out early
        assert lp[-1]["total_cost"] >= 0.9 * 200.0 and len(lp) >= 44
        assert expected_cpa_ratio(lp[-1]) < 0.85 * expected_cpa_ratio(truthful[-1])
        assert lp[-1]["expected_score"] > 1.3 * truthful[-1]["expected_score"]


def test_online_lp_respects_an_attainable_cpa():
    from bidenv.campaign import market_target

    env = gym.make(LITE)
    # Targets at the category's market level and 1.4x tighter (inside the market).
    cpa = {"budget": 400.0, "constraint": "cpa", "target_cpa": market_target(3, "cpa", 1.0),
           "category": 3}
    roi = {"budget": 400.0, "constraint": "roi", "target_roi": market_target(3, "roi", 1.0),
           "category": 3}
    for seed in range(3):
        for options in (cpa, {**cpa, "target_cpa": market_target(3, "cpa", 1.4)}):
            _, infos = play(agents.make("online_lp"), seed=seed, options=options, env=env)
            assert expected_cpa_ratio(infos[-1]) <= 1.2
        _, infos = play(agents.make("online_lp"), seed=seed, options=roi, env=env)
        assert (infos[-1]["expected_value"] / infos[-1]["expected_cost"]
                >= roi["target_roi"] / 1.2)


def test_families_partition_the_registry():
    """Every agent has one family; the lists the command line and leaderboards use come from it."""
    from experiments import benchmark, cli, quickstart

    by_family = {f: agents.available(f) for f in agents.FAMILIES}
    assert sorted(sum(by_family.values(), [])) == agents.available()
    assert by_family["heuristic"] == ["online_lp", "pid_budget", "pid_cpa", "truthful"]
    assert by_family["baseline"] == ["fixed", "random"]
    assert by_family["online_rl"] == ["ppo", "sac", "td3"]
    assert {"bc", "iql", "cql", "dt", "gave", "gave_stable", "gas", "diffbid"} == set(
        by_family["offline"])
    assert benchmark.OFFLINE_AGENTS == by_family["offline"] == list(cli.OFFLINE_AGENTS)
    assert list(quickstart.HEURISTICS) == benchmark.HEURISTICS == by_family["heuristic"]
    with pytest.raises(ValueError, match="family must be one of"):
        agents.available("heuristics")
    with pytest.raises(ValueError, match="family must be one of"):
        agents.register("x_agent", agents.TruthfulAgent, family="mine")
    assert "x_agent" not in agents.available()
