"""GAVE: exploration coefficient, gradient isolation, loss weights, checkpoints."""

import math

import numpy as np
import pytest
import torch
from generative_helpers import TINY, check_fit_save_load_resume, tiny_data

from agents.common import fit
from agents.gave import GAVEAgent, GAVEConfig, GAVEStableAgent, GAVEStableConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return tiny_data()


def _prepared(cls, data, **kw):
    agent = fit(cls(**TINY, **kw), data, steps=2, seed=0, progress=False)
    agent.eval_mode(False)
    return agent


def test_published_and_stable_weights_pinned():
    c = GAVEConfig()
    assert (c.w_action, c.w_rtg, c.w_expectile, c.w_value, c.w_explore) == (1, 200, 100, 100, 0)
    assert (c.alpha_r, c.tau, c.value_head) == (100, 0.99, True)
    s = GAVEStableConfig()
    assert (s.w_action, s.w_rtg, s.w_expectile, s.w_value, s.w_explore) == (1, 200, 0, 0, 100)
    assert (s.alpha_r, s.value_head) == (1, False)
    assert GAVEAgent.config_class is GAVEConfig
    assert GAVEStableAgent.config_class is GAVEStableConfig
    with pytest.raises(ValueError, match="tau"):
        GAVEAgent(tau=1.0)
    with pytest.raises(ValueError, match="value head"):
        GAVEAgent(value_head=False)


def test_beta_strictly_inside_for_extreme_inputs(data):
    agent = _prepared(GAVEAgent, data)
    with torch.no_grad():
        for p in agent.model.beta_head.parameters():
            p.mul_(1e3)
    agent.eval_mode(True)
    ctx = agent.sample_windows(np.random.default_rng(0), 16)
    betas = []
    for scale in (1e6, -1e6, 0.0):
        for sign in (1.0, -1.0):
            states = torch.full_like(ctx["states"], scale) * sign
            with torch.no_grad():
                out = agent.model(ctx["rtg"], states, ctx["actions"], ctx["timesteps"])
            betas.append(out["beta"])
    beta = torch.cat([b.flatten() for b in betas])
    assert bool(((beta > 0.5) & (beta < 1.5)).all())
    assert float(beta.max()) > 1.49 and float(beta.min()) < 0.51  # really saturated


def test_explore_scales_the_multiplier():
    agent = GAVEAgent(**TINY)
    a = torch.tensor([0.2, 0.0, 0.95])
    out = agent.explore(a, torch.tensor([1.5, 0.5, 1.5]))
    # alpha = 10 ** a times beta, back to action space (clipped to 1).
    np.testing.assert_allclose(out.numpy(), [0.2 + math.log10(1.5), math.log10(0.5), 1.0],
                               rtol=1e-6)


@pytest.mark.parametrize("cls,beta_loss", [(GAVEAgent, "value"), (GAVEStableAgent, "explore")])
def test_gradient_into_beta_only_from_its_loss(data, cls, beta_loss):
    agent = _prepared(cls, data)
    model = agent.model
    ctx = agent.sample_windows(np.random.default_rng(1), 16)
    torch.manual_seed(0)
    losses = agent.losses(ctx)
    names = [k for k in ("action", "rtg", "expectile", "value", "explore") if k in losses]
    beta_params = {id(p) for p in model.beta_head.parameters()}
    for name in names:
        model.zero_grad(set_to_none=True)
        losses[name].backward(retain_graph=True)
        beta_grad = sum(float(p.grad.abs().sum()) for p in model.beta_head.parameters()
                        if p.grad is not None)
        other_grad = sum(float(p.grad.abs().sum()) for p in model.parameters()
                         if p.grad is not None and id(p) not in beta_params)
        if name == beta_loss:
            assert beta_grad > 0, name
            assert other_grad == 0, name  # the beta term trains nothing else
        else:
            assert beta_grad == 0, name
            assert other_grad > 0, name


def test_total_is_the_weighted_sum(data):
    for cls in (GAVEAgent, GAVEStableAgent):
        agent = _prepared(cls, data)
        ctx = agent.sample_windows(np.random.default_rng(2), 16)
        torch.manual_seed(0)
        with torch.no_grad():
            losses = agent.losses(ctx)
        c = agent.config
        expected = (losses["action"] + 200 * losses["rtg"]
                    + (100 * losses["expectile"] + 100 * losses["value"] if c.value_head
                       else 100 * losses["explore"]))
        assert float(losses["total"]) == pytest.approx(float(expected), rel=1e-6)
        assert 0 < float(losses["w_mean"]) < 1


def test_fit_save_load_resume(data, tmp_path):
    check_fit_save_load_resume(GAVEAgent, data, tmp_path / "gave", **TINY)
    check_fit_save_load_resume(GAVEStableAgent, data, tmp_path / "stable", **TINY)
