"""GAS: one candidate equals the DT, batched critic scoring, search rule, checkpoints."""

import math

import numpy as np
import pytest
import torch
from generative_helpers import TINY, check_fit_save_load_resume, play_day, tiny_data

from agents.common import fit
from agents.dt import DTAgent
from agents.gas import GASAgent

torch.set_num_threads(1)
SMALL = {**TINY, "critic_hidden": (16, 16), "critic_batch_size": 16, "n_critics": 2,
         "critic_updates": 2}


@pytest.fixture(scope="module")
def data():
    return tiny_data()


@pytest.fixture(scope="module")
def trained(data):
    return fit(GASAgent(**SMALL), data, steps=4, seed=0, progress=False)


def test_one_candidate_equals_its_dt(trained):
    gas = GASAgent(trained.config, n_candidates=1)
    gas.load_state({"normalizer": trained.normalizer.to_dict()},
                   trained.state_tensors(with_optimizers=False))
    gas.eval_mode(True)
    dt_fields = {k: v for k, v in vars(trained.config).items() if k in vars(DTAgent().config)}
    dt = DTAgent(dt_fields)
    dt.normalizer = trained.normalizer
    dt.model.load_state_dict(trained.model.state_dict())
    dt.eval_mode(True)
    a_gas, a_dt = play_day(gas)["actions"], play_day(dt)["actions"]
    np.testing.assert_array_equal(a_gas, a_dt)
    # With 5 candidates the search changes some actions (the comparison can fail).
    assert not np.array_equal(play_day(trained)["actions"], a_dt)


def test_batched_scoring_equals_loop(trained):
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(7, trained.obs_dim, generator=g)
    cands = torch.rand(7, 5, generator=g) * 2 - 1
    with torch.no_grad():
        batched = trained.score_candidates(obs, cands)
        loop = torch.stack([torch.stack([c.q(obs[b:b + 1], cands[b:b + 1, n:n + 1])[0, 0]
                                         for b in range(7) for n in range(5)]).reshape(7, 5)
                            for c in trained.critics])
    assert batched.shape == (2, 7, 5)
    torch.testing.assert_close(batched, loop, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(loop[0], loop[1])  # the critics differ


def test_min_max_combination_by_hand():
    scores = torch.tensor([[[1.0, 2.0, 3.0]], [[5.0, 5.0, 5.0]], [[4.0, 0.0, 2.0]]])
    total = GASAgent.combine(scores)
    torch.testing.assert_close(total, torch.tensor([[0.0 + 0 + 1, 0.5 + 0 + 0, 1 + 0 + 0.5]]))


def test_search_plays_the_best_candidate(trained, monkeypatch):
    agent = trained
    agent.reset({"budget": 100.0, "constraint": "cpa", "target_cpa": 50.0})
    obs = np.ones(agent.obs_dim, np.float32)
    ctx = agent.context_now(obs)
    a0 = DTAgent.choose(agent, obs, ctx)
    agent.reset({"budget": 100.0, "constraint": "cpa", "target_cpa": 50.0})
    cands = agent.candidates(a0)
    assert cands.shape == (1, 5) and float(cands[0, 0]) == a0
    ratio = 10.0 ** (cands[0, 1:].double() - a0)  # the multiplier scales of the others
    assert bool(((ratio >= 0.9 - 1e-6) & (ratio <= 1.1 + 1e-6)).all())
    # Critic scores that favour candidate 3: it is played and written into the history.
    fixed = torch.tensor([[[0.0, 1.0, 0.0, 5.0, 2.0]], [[1.0, 0.0, 0.0, 3.0, 0.0]]])
    monkeypatch.setattr(GASAgent, "score_candidates", lambda self, o, a: fixed)
    agent.reset({"budget": 100.0, "constraint": "cpa", "target_cpa": 50.0})
    played = agent.act(obs)
    assert played[0] == pytest.approx(float(cands[0, 3]))
    assert agent._day["actions"][0, 0] == pytest.approx(float(cands[0, 3]))


def test_config_validation():
    with pytest.raises(ValueError, match="n_candidates"):
        GASAgent(n_candidates=0)
    with pytest.raises(ValueError, match="scale_low"):
        GASAgent(scale_low=1.2, scale_high=1.1)
    with pytest.raises(ValueError, match="tau_expectile"):
        GASAgent(tau_expectile=1.5)
    c = GASAgent().config
    assert (c.n_candidates, c.n_critics, c.tau_expectile, c.gamma, c.polyak) == \
        (5, 3, 0.7, 0.99, 0.01)
    assert math.isclose(c.scale_low, 0.9) and math.isclose(c.scale_high, 1.1)


def test_fit_save_load_resume(data, tmp_path):
    check_fit_save_load_resume(GASAgent, data, tmp_path, **SMALL)


def test_search_on_a_trained_dt(data, tmp_path):
    dt = fit(DTAgent(**TINY), data, steps=3, seed=1, out=tmp_path / "dt", progress=False)
    gas = fit(GASAgent(**SMALL, dt_path=str(tmp_path / "dt"), n_candidates=1), data,
              steps=3, seed=2, progress=False)
    # Only the critics were trained: the DT is untouched and plays the same day.
    assert all(torch.equal(v, dt.model.state_dict()[k]) for k, v in gas.model.state_dict().items())
    np.testing.assert_array_equal(play_day(gas)["actions"], play_day(dt)["actions"])
    with pytest.raises(ValueError, match="embed_dim"):
        fit(GASAgent(**{**SMALL, "embed_dim": 32}, dt_path=str(tmp_path / "dt")), data,
            steps=1, progress=False)
