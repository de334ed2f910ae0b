"""The classic offline agents bc, iql and cql: fit / act / save / load / resume on tiny data."""

import math

import numpy as np
import pytest
import torch

import agents
from agents.bc import BCAgent
from agents.common import fit
from agents.cql import CQLAgent, cql_penalty
from agents.iql import IQLAgent
from bidenv.offline import Trajectories
from bidenv.scoring import score_unit
from experiments.collect import collect

torch.set_num_threads(1)
TINY = {"hidden": (16, 16), "batch_size": 32}
AGENTS = {"bc": BCAgent, "iql": IQLAgent, "cql": CQLAgent}


@pytest.fixture(scope="module")
def frame():
    return collect(episodes=4, seed=0, progress=False)


def _weights(agent):
    return {k: v for k, v in agent.state_tensors(with_optimizers=False).items()}


def _assert_same_weights(a, b):
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        for name, t in wa[k].items():
            assert torch.equal(t, wb[k][name]), f"{k}.{name} differs"


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_fit_act_save_load(name, frame, tmp_path):
    agent = fit(AGENTS[name](**TINY), frame, steps=20, seed=0, out=tmp_path / "run",
                progress=False)
    assert agent.step == 20
    agent.reset({"budget": 400.0, "constraint": "cpa", "target_cpa": 60.0})
    loaded = agents.from_spec(f"{name}:{tmp_path / 'run'}")
    loaded.reset({"budget": 400.0, "constraint": "cpa", "target_cpa": 60.0})
    rng = np.random.default_rng(0)
    for obs in frame.filter(like="obs_").to_numpy(np.float32)[::7]:
        obs = obs + rng.normal(0, 3, obs.shape).astype(np.float32)
        a = agent.act(obs)
        assert a.shape == (1,) and a.dtype == np.float32 and -1 <= a[0] <= 1
        assert np.array_equal(a, loaded.act(obs))
    assert (tmp_path / "run" / "tb").is_dir()
    assert (tmp_path / "run" / "train.json").is_file()
    state = torch.load(tmp_path / "run" / "weights.pt", weights_only=True)
    assert any(k.startswith("net.") for k in state)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_resume_equals_uninterrupted_run(name, frame, tmp_path):
    full = fit(AGENTS[name](**TINY), frame, steps=12, seed=3, out=tmp_path / "full",
               checkpoint_every=6, progress=False, log=False)
    # "interrupted" after 6 steps, then resumed to 12 from the checkpoint
    fit(AGENTS[name](**TINY), frame, steps=6, seed=3, out=tmp_path / "cut",
        checkpoint_every=6, progress=False, log=False)
    resumed = fit(AGENTS[name](**TINY), frame, steps=12, seed=3, out=tmp_path / "cut",
                  checkpoint_every=6, progress=False, log=False, resume=True)
    _assert_same_weights(full, resumed)
    other = fit(AGENTS[name](**TINY), frame, steps=12, seed=4, progress=False, log=False)
    with pytest.raises(AssertionError):
        _assert_same_weights(full, other)


def test_loading_another_agents_checkpoint_fails(frame, tmp_path):
    fit(BCAgent(**TINY), frame, steps=2, seed=0, out=tmp_path / "bc", progress=False,
        log=False)
    for cls in (IQLAgent, CQLAgent):
        with pytest.raises(ValueError, match="holds agent 'bc'"):
            cls.load(tmp_path / "bc")


def test_bc_reproduces_a_constant_logged_action(frame):
    const = frame.copy()
    const["action"] = 0.3
    agent = fit(BCAgent(hidden=(16,), batch_size=64, lr=3e-3), const, steps=600, seed=0,
                progress=False, log=False)
    obs = frame.filter(like="obs_").to_numpy(np.float32)
    acts = np.array([agent.act(o)[0] for o in obs[::5]])
    assert np.abs(acts - 0.3).max() < 0.02


def test_bc_top_fraction_keeps_the_best_normalised_days(frame):
    traj = Trajectories.from_frame(frame)
    agent = BCAgent(top_fraction=0.5, **TINY)
    agent.prepare(traj)
    # Independently: the two days with the highest expected final score / score unit.
    last = frame.groupby("episode").tail(1)
    norm = [row.expected_score / score_unit(c) for row, c in
            zip(last.itertuples(), traj.campaigns)]
    best = np.argsort(norm)[-2:]
    assert len(agent.data.obs) == int(traj.lengths[best].sum())
    assert np.isclose(agent.data.actions.sum().item(),
                      frame[frame["episode"].isin(traj.episodes[best])]["action"].sum(),
                      rtol=1e-5)


def test_cql_penalty_by_hand():
    # Uniform samples on [-1, 1] (density 1/2) with Q = c everywhere: log int exp(c) = c + log 2.
    q_s = torch.full((1, 4), 2.0)
    gap = cql_penalty(torch.tensor([0.5]), q_s, torch.full((1, 4), math.log(0.5)))
    assert gap.item() == pytest.approx(2.0 + math.log(2) - 0.5)
    # Q high on out-of-distribution samples, low on the data action: positive penalty;
    # Q peaked at the data action: negative.
    dens = torch.full((1, 2), math.log(0.5))
    assert cql_penalty(torch.tensor([0.0]), torch.tensor([[3.0, 4.0]]), dens).item() > 0
    assert cql_penalty(torch.tensor([5.0]), torch.tensor([[0.0, -1.0]]), dens).item() < 0
    expected = math.log((math.exp(3 + math.log(2)) + math.exp(4 + math.log(2))) / 2)
    assert cql_penalty(torch.tensor([0.0]), torch.tensor([[3.0, 4.0]]), dens).item() == \
        pytest.approx(expected)


def test_cql_pushes_down_out_of_distribution_actions(frame):
    """All logged actions are 0.3: with a strong penalty Q at far-away actions ends below Q
    at the data action, while plain SAC-style training (alpha_cql = 0) gives no such gap."""
    const = frame.copy()
    const["action"] = 0.3

    def gap(alpha_cql):
        agent = fit(CQLAgent(hidden=(32, 32), batch_size=64, lr=1e-3, alpha_cql=alpha_cql,
                             n_samples=4), const, steps=300, seed=0, progress=False, log=False)
        obs = agent.data.obs[::10]
        q = agent.nets["q"](obs, torch.tensor([0.3, -0.9, 0.9]).expand(len(obs), 3))
        q = q.min(dim=0).values
        return (q[:, 0] - q[:, 1:].max(dim=1).values).mean().item()

    conservative, plain = gap(5.0), gap(0.0)
    assert conservative > 1.0
    assert abs(plain) < 0.5


@pytest.mark.parametrize("cls,kwargs,param", [
    (BCAgent, {"top_fraction": 0.0}, "top_fraction"),
    (BCAgent, {"reward_scale": "daily"}, "reward_scale"),
    (BCAgent, {"expected_reward": 1}, "expected_reward"),
    (IQLAgent, {"expectile": 1.0}, "expectile"),
    (IQLAgent, {"beta_awr": 0.0}, "beta_awr"),
    (CQLAgent, {"alpha_cql": -1.0}, "alpha_cql"),
    (CQLAgent, {"n_samples": 0}, "n_samples"),
    (IQLAgent, {"reward_multiplier": 0.0}, "reward_multiplier"),
])
def test_bad_config(cls, kwargs, param):
    with pytest.raises(ValueError, match=param):
        cls(**kwargs)


def _bandit(n_days: int = 64) -> Trajectories:
    """One-tick days in one state: action -0.5 scores 1, action +0.5 scores 0, half each
    (budget-only campaigns of budget 1, so the score unit is 1)."""
    from bidenv.env import FEATURE_NAMES

    a = np.where(np.arange(n_days) % 2 == 0, -0.5, 0.5).astype(np.float32)[:, None]
    s = (a < 0).astype(np.float64)
    camp = {"budget": 1.0, "constraint": "budget", "target_cpa": None, "target_roi": None,
            "category": 0}
    return Trajectories(obs=np.zeros((n_days, 1, len(FEATURE_NAMES)), np.float32), actions=a,
                        rewards=s.astype(np.float32), scores=s, expected_scores=s,
                        dones=np.ones((n_days, 1), bool), mask=np.ones((n_days, 1), bool),
                        lengths=np.ones(n_days, np.int64), episodes=np.arange(n_days),
                        campaigns=[camp] * n_days)


def test_value_based_agents_pick_the_better_logged_action_where_bc_averages():
    """BC regresses to the mean logged action 0; IQL's advantage weights (A = +0.2 and
    -0.8 with expectile 0.8, weights e^2 vs e^-8 at beta 10) select -0.5; CQL's actor climbs
    its Q, which is higher at -0.5 than at +0.5."""
    data = _bandit()
    obs = np.zeros(data.obs.shape[-1], np.float32)
    tiny = {"hidden": (16, 16), "batch_size": 32, "lr": 3e-3}
    bc = fit(BCAgent(**tiny), data, steps=200, seed=0, progress=False, log=False)
    assert bc.act(obs)[0] == pytest.approx(0.0, abs=0.05)
    iql = fit(IQLAgent(**tiny), data, steps=250, seed=0, progress=False, log=False)
    assert iql.act(obs)[0] == pytest.approx(-0.5, abs=0.05)
    cql = fit(CQLAgent(actor_lr=3e-3, **tiny), data, steps=250, seed=0, progress=False,
              log=False)
    assert cql.act(obs)[0] < -0.3


def test_tanh_gaussian_log_density_matches_torch_distributions():
    from torch.distributions import Normal, TransformedDistribution
    from torch.distributions.transforms import TanhTransform

    from agents.cql import TanhGaussianActor

    torch.manual_seed(0)
    actor = TanhGaussianActor(3, (8,))
    obs = torch.randn(4, 3)
    a, logp = actor.sample(obs, 6)
    assert a.shape == logp.shape == (4, 6) and a.abs().max() < 1
    mu, log_std = actor(obs)
    dist = TransformedDistribution(Normal(mu, log_std.exp()), [TanhTransform()])
    assert torch.allclose(logp, dist.log_prob(a), atol=1e-4)


def test_fit_calls_the_evaluate_callback_every_eval_every_steps(frame, tmp_path):
    """Evaluation while training is a callback passed in (agents never import experiments):
    called every ``eval_every`` steps in evaluation mode, its scalars logged as ``eval/*``."""
    calls = []

    def evaluate(agent):
        calls.append(agent.step)
        return {"expected_score": float(agent.step)}

    fit(BCAgent(**TINY), frame, steps=6, seed=0, out=tmp_path / "bc", progress=False,
        eval_every=2, evaluate=evaluate)
    assert calls == [2, 4, 6]
    assert any((tmp_path / "bc" / "tb").iterdir())
    with pytest.raises(ValueError, match="evaluate"):
        fit(BCAgent(**TINY), frame, steps=2, seed=0, progress=False, eval_every=1)
    with pytest.raises(ValueError, match="eval_every"):
        fit(BCAgent(**TINY), frame, steps=2, seed=0, progress=False, eval_every=-1,
            evaluate=evaluate)
