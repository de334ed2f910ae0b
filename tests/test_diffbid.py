"""DiffBid: noise schedule and DDIM closed forms, guidance, inverse dynamics, return tokens,
config checks, checkpoints and exact resume."""

import math

import numpy as np
import pytest
import torch
from generative_helpers import check_fit_save_load_resume, play_day, state_equal, tiny_data

import agents
from agents.base import FEATURE_INDEX
from agents.common import fit
from agents.diffbid import (
    DiffBidAgent,
    DiffBidConfig,
    ddim_sample,
    noise_schedule,
    predict_x0,
    q_sample,
    sampling_timesteps,
)
from agents.dt import DTAgent
from bidenv.offline import Trajectories

torch.set_num_threads(1)

#: Tiny networks: the whole file stays well under a minute on one core.
TINY = {"width": 32, "n_blocks": 1, "hidden": (32,), "batch_size": 16, "horizon": 4,
        "diffusion_steps": 10, "sampling_steps": 3, "warmup_steps": 2}


@pytest.fixture(scope="module")
def data():
    return tiny_data()


@pytest.fixture(scope="module")
def trained(data):
    return fit(DiffBidAgent(**TINY), data, steps=5, seed=0, progress=False)


# -- diffusion closed forms ------------------------------------------------------------------
def test_linear_schedule_by_hand():
    s = noise_schedule("linear", 3, 0.1, 0.5)
    np.testing.assert_allclose(s["betas"].numpy(), [0.1, 0.3, 0.5])
    # alpha_bar_k = prod_{j <= k} (1 - beta_j): 0.9, 0.9 x 0.7, 0.9 x 0.7 x 0.5
    np.testing.assert_allclose(s["alpha_bars"].numpy(), [0.9, 0.63, 0.315], rtol=1e-12)


def test_cosine_schedule_by_hand():
    K, off = 4, 0.008
    f = [math.cos((k / K + off) / (1 + off) * math.pi / 2) ** 2 for k in range(K + 1)]
    s = noise_schedule("cosine", K)
    # Unclipped steps: alpha_bar_k = f(k + 1) / f(0); the last beta is clipped at 0.999.
    np.testing.assert_allclose(s["alpha_bars"][:3].numpy(), [f[1] / f[0], f[2] / f[0],
                                                             f[3] / f[0]], rtol=1e-12)
    assert float(s["betas"][-1]) == pytest.approx(0.999)
    assert float(s["alpha_bars"][-1]) == pytest.approx(f[3] / f[0] * 0.001, rel=1e-9)


def test_sampling_timesteps_by_hand():
    assert sampling_timesteps(20, 5) == [0, 5, 10, 14, 19]
    assert sampling_timesteps(3, 3) == [0, 1, 2]
    assert sampling_timesteps(20, 1) == [19]
    with pytest.raises(ValueError, match="sampling_steps"):
        sampling_timesteps(5, 6)


def _oracle(x0, alpha_bars):
    """The true noise of ``x`` at step k (what a perfect denoiser of x0 returns)."""
    return lambda x, k: (x - math.sqrt(float(alpha_bars[k])) * x0) / math.sqrt(
        1 - float(alpha_bars[k]))


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddim_with_the_true_noise_reconstructs_x0(kind):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    ab = noise_schedule(kind, 6, 0.1, 0.5)["alpha_bars"]
    k = torch.tensor([5, 2, 0])
    x_k = q_sample(x0, ab[k], eps)
    np.testing.assert_allclose(x_k[1].numpy(), math.sqrt(ab[2]) * x0[1] + math.sqrt(1 - ab[2])
                               * eps[1], rtol=1e-12)
    # The closed form of x0 from x_k and its noise.
    for i in range(3):
        np.testing.assert_allclose(predict_x0(x_k[i], eps[i], float(ab[k[i]])).numpy(),
                                   x0[i].numpy(), atol=1e-10)
    # Deterministic DDIM (eta = 0) over all steps, and over a skip sequence, from the noisiest.
    x_top = q_sample(x0, ab[-1].expand(3), eps)
    for steps in ([0, 1, 2, 3, 4, 5], [0, 3, 5]):
        out = ddim_sample(_oracle(x0, ab), x_top, ab, steps, eta=0.0)
        np.testing.assert_allclose(out.numpy(), x0.numpy(), atol=1e-9)
    # A wrong noise estimate does not reconstruct it (the check above can fail).
    wrong = ddim_sample(lambda x, k: torch.zeros_like(x), x_top, ab, [0, 3, 5])
    assert not torch.allclose(wrong, x0, atol=1e-3)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddim_with_the_true_x0_reconstructs_it(kind):
    """The x0 parameterisation: a denoiser that returns the clean sample gives it back, from
    the noisiest step too (where the noise parameterisation divides by sqrt(abar) ~ 0)."""
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    ab = noise_schedule(kind, 6, 0.1, 0.5)["alpha_bars"]
    x_top = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    for steps in ([0, 1, 2, 3, 4, 5], [0, 3, 5], [5]):
        out = ddim_sample(lambda x, k: x0, x_top, ab, steps, prediction="x0")
        np.testing.assert_allclose(out.numpy(), x0.numpy(), atol=1e-9)
    # Read as a noise estimate, the same function does not (the check above can fail).
    wrong = ddim_sample(lambda x, k: x0, x_top, ab, [0, 3, 5], prediction="eps")
    assert not torch.allclose(wrong, x0, atol=1e-3)
    with pytest.raises(ValueError, match="prediction"):
        ddim_sample(lambda x, k: x0, x_top, ab, [5], prediction="v")


@pytest.mark.parametrize("prediction", ["x0", "eps"])
def test_diffusion_loss_target_follows_the_parameterisation(data, prediction):
    """The denoiser is fitted to the clean plan (``"x0"``) or to the noise (``"eps"``): a
    denoiser that returns the clean plan has zero diffusion loss only in the first case."""
    agent = fit(DiffBidAgent(**TINY, prediction=prediction), data, steps=1, progress=False)
    batch = agent.sample_batch(np.random.default_rng(0), 32)
    agent.model.denoise = lambda x, k, cond, rtg, keep: batch["future"]
    loss = float(agent.losses(batch)["diffusion"])
    assert (loss == 0.0) == (prediction == "x0"), loss


def test_init_noise_zero_gives_one_plan_per_condition(data):
    """``init_noise=0`` (and eta 0): the plan and the day's actions no longer depend on the
    sampling seed; with ``init_noise=1`` they do (the comparison can fail)."""
    agent = fit(DiffBidAgent(**TINY, init_noise=0.0), data, steps=3, seed=0, progress=False)
    batch = agent.sample_batch(np.random.default_rng(0), 4)
    with torch.no_grad():
        plans = [agent.plan(batch["cond"], batch["rtg"],
                            generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    torch.testing.assert_close(plans[0], plans[1], rtol=0, atol=0)
    days = []
    for seed in (0, 1):
        agent.config.sample_seed = seed
        days.append(play_day(agent)["actions"])
    np.testing.assert_array_equal(days[0], days[1])
    agent.config.init_noise = 1.0
    with torch.no_grad():
        noisy = [agent.plan(batch["cond"], batch["rtg"],
                            generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    assert not torch.allclose(noisy[0], noisy[1], atol=1e-4)
    agent.config.sample_seed = 1
    assert not np.array_equal(play_day(agent)["actions"], days[0])


def test_checkpoint_without_prediction_loads_as_noise_predictor(data, tmp_path):
    """Checkpoints written before ``prediction`` / ``init_noise`` existed held noise
    predictors sampled from unit noise: they load as such and play as before."""
    import json

    agent = fit(DiffBidAgent(**TINY, prediction="eps", init_noise=1.0), data, steps=2,
                seed=0, out=tmp_path / "old", progress=False)
    day = play_day(agent)
    path = tmp_path / "old" / "config.json"
    meta = json.loads(path.read_text())
    del meta["config"]["prediction"], meta["config"]["init_noise"]
    path.write_text(json.dumps(meta))
    old = DiffBidAgent.load(tmp_path / "old")
    assert old.config.prediction == "eps" and old.model.prediction == "eps"
    assert old.config.init_noise == 1.0
    np.testing.assert_array_equal(play_day(old)["actions"], day["actions"])


# -- config -----------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value", [
    ("horizon", 0), ("diffusion_steps", 0), ("sampling_steps", 21), ("sampling_steps", 0),
    ("schedule", "quadratic"), ("beta_start", 0.0), ("beta_end", 1e-5), ("width", 0),
    ("n_blocks", -1), ("cond_dropout", 1.0), ("guidance", -0.5), ("eta", 1.5),
    ("clip_denoised", -1.0), ("id_weight", float("nan")), ("sample_seed", -1),
    ("plan_features", ("no_such_feature",)), ("plan_features", "budget_left"),
    ("plan_features", ("budget_left", "budget_left")), ("horizon", 2.0),
    ("prediction", "v"), ("init_noise", 1.5), ("init_noise", -0.1),
])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field} must"):
        DiffBidAgent(**{field: value})


def test_defaults_and_registry():
    c = DiffBidConfig()
    assert (c.horizon, c.diffusion_steps, c.sampling_steps, c.width) == (8, 20, 5, 256)
    assert 0 < c.cond_dropout < 1 and c.guidance > 0 and c.eta == 0
    assert c.prediction == "x0" and c.init_noise == 0.0
    agent = agents.make("diffbid")
    assert isinstance(agent, DiffBidAgent)
    assert "diffbid" in agents.available("offline")


# -- the return token is the DT's ------------------------------------------------------------
def test_return_tokens_and_target_are_the_dts(data):
    shared = {"batch_size": 8, "target_quantile": 0.5, "baseline_neighbors": 2}
    dt = fit(DTAgent(**shared, embed_dim=16, n_layers=1, n_heads=2, context=4), data, steps=1,
             progress=False)
    diff = fit(DiffBidAgent(**TINY | shared), data, steps=1, progress=False)
    np.testing.assert_array_equal(diff.data["rtg"].numpy(), dt.data["rtg"].numpy())
    np.testing.assert_array_equal(diff.training_targets(), dt.training_targets())
    for camp in data.campaigns:
        dt.reset(camp)
        diff.reset(camp)
        assert diff.target_return == dt.target_return and diff.unit == dt.unit


def test_act_condition_equals_training_condition(data):
    """Replaying a logged day, the condition and return tokens act() feeds the planner are the
    ones training builds at the same ticks (with a 3-state history)."""
    agent = fit(DiffBidAgent(**TINY, context=3), data, steps=1, progress=False)
    seen = []
    orig = agent.model.plan

    def spy(cond, rtg, **kw):
        seen.append((cond.clone(), rtg.clone()))
        return orig(cond, rtg, **kw)

    agent.model.plan = spy
    L = int(data.lengths[0])
    agent.reset(data.campaigns[0])
    for t in range(L):
        a = agent.act(data.obs[0, t])
        assert a.shape == (1,) and -1 <= float(a[0]) <= 1
    batch = agent.batch_at(torch.zeros(L, dtype=torch.long), torch.arange(L))
    got = torch.cat([c for c, _ in seen])
    torch.testing.assert_close(got, batch["cond"], rtol=0, atol=1e-5)
    assert got[0, :20].equal(got[0, 20:40])  # before the day's start: tick 0 repeated
    # The first token is the inference target (the logged day's own is in training).
    assert float(seen[0][1]) == pytest.approx(agent.target_return)


# -- guidance ----------------------------------------------------------------------------------
@pytest.mark.parametrize("prediction", ["x0", "eps"])
def test_guidance_formula_and_effect(trained, data, prediction):
    agent = (trained if prediction == trained.config.prediction else
             fit(DiffBidAgent(**TINY, prediction=prediction), data, steps=5, seed=0,
                 progress=False))
    agent.config.init_noise = 1.0
    model = agent.model
    agent.reset({"budget": 300.0, "constraint": "cpa", "target_cpa": 50.0})
    batch = agent.sample_batch(np.random.default_rng(0), 2)
    cond, rtg = batch["cond"], torch.tensor([2.0, 0.5])
    K = agent.config.diffusion_steps
    gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    with torch.no_grad():
        plans = {w: model.plan(cond, rtg, guidance=w, timesteps=[K - 1], generator=gen())
                 for w in (0.0, 1.5)}
        # One DDIM step from the top is x0 = predict_x0(x, (1 + w) eps(R) - w eps(none)), or
        # with the x0 parameterisation (1 + w) x0(R) - w x0(none) (the same combination).
        x = torch.randn(2, agent.config.horizon, model.n_plan, generator=gen())
        k = torch.full((2,), K - 1)
        e_c = model.denoise(x, k, cond, rtg, torch.ones(2))
        e_u = model.denoise(x, k, cond, rtg, torch.zeros(2))
        ab = float(model.alpha_bars[K - 1])
        top = ((lambda e: predict_x0(x, e, ab)) if prediction == "eps"
               else (lambda x0: x0))
        # (the top step divides by sqrt(alpha_bar) ~ 0.01: float32 rounding grows 100-fold)
        close = dict(rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(plans[0.0], top(e_c), **close)
        torch.testing.assert_close(plans[1.5], top(2.5 * e_c - 1.5 * e_u), **close)
        assert not torch.allclose(plans[1.5], top(e_c), **close)
        assert not torch.allclose(plans[0.0], plans[1.5], atol=1e-4)
        # Through the agent's sampler (several steps): guidance changes the plan, and so
        # does the return token.
        full = {w: agent.plan(cond, rtg, guidance=w, generator=gen()) for w in (0.0, 1.0)}
        assert not torch.allclose(full[0.0], full[1.0], atol=1e-4)
        other = agent.plan(cond, rtg * 3, guidance=1.0, generator=gen())
        assert not torch.allclose(other, full[1.0], atol=1e-4)
        # Same generator seed, same plan.
        torch.testing.assert_close(agent.plan(cond, rtg, guidance=1.0, generator=gen()),
                                   full[1.0], rtol=0, atol=0)


# -- inverse dynamics ----------------------------------------------------------------------------
def _known_dynamics_days(n_days: int = 48, T: int = 8, seed: int = 0) -> Trajectories:
    """Days whose next ``last3_bid_mean`` is the action just played (the rest is noise)."""
    rng = np.random.default_rng(seed)
    F_ = len(FEATURE_INDEX)
    obs = rng.normal(0.0, 1.0, (n_days, T, F_)).astype(np.float32)
    actions = rng.uniform(-0.9, 0.9, (n_days, T)).astype(np.float32)
    j = FEATURE_INDEX["last3_bid_mean"]
    obs[:, 1:, j] = actions[:, :-1]
    scores = np.cumsum(1.0 + actions, axis=1)
    camp = {"budget": 100.0, "constraint": "cpa", "target_cpa": 50.0, "target_roi": None,
            "category": 0}
    return Trajectories(obs=obs, actions=actions, rewards=np.zeros((n_days, T), np.float32),
                        scores=scores, expected_scores=scores,
                        dones=np.eye(T, dtype=bool)[[-1] * n_days], mask=np.ones((n_days, T),
                                                                                 bool),
                        lengths=np.full(n_days, T), episodes=np.arange(n_days),
                        campaigns=[dict(camp) for _ in range(n_days)])


def test_inverse_dynamics_learns_a_known_mapping():
    train, test = _known_dynamics_days(), _known_dynamics_days(seed=1)
    agent = fit(DiffBidAgent(**{**TINY, "batch_size": 64, "max_ticks": 8, "lr": 3e-3},
                             plan_features=("last3_bid_mean", "budget_left")),
                train, steps=300, seed=0, progress=False)
    assert agent.model.n_plan == 2
    s = torch.as_tensor(agent.normalizer(test.obs))
    state, nxt = s[:, :-1].reshape(-1, s.shape[-1]), s[:, 1:].reshape(-1, s.shape[-1])
    target = torch.as_tensor(test.actions[:, :-1].reshape(-1))
    with torch.no_grad():
        pred = agent.model.inverse_dynamics(state, nxt[:, agent.model.plan_index])
        # Fed the current state instead of the next one, it cannot know the action.
        blind = agent.model.inverse_dynamics(state, state[:, agent.model.plan_index])
    mse, var = float((pred - target).pow(2).mean()), float(target.var())
    assert mse < 0.05 * var, (mse, var)
    assert float((blind - target).pow(2).mean()) > 0.5 * var


# -- life cycle --------------------------------------------------------------------------------
def test_fit_save_load_resume(data, tmp_path):
    full = check_fit_save_load_resume(DiffBidAgent, data, tmp_path, **TINY)
    day = play_day(full)
    assert np.all(np.abs(day["actions"]) <= 1) and day["actions"].std() > 0
    assert full.last_plan.shape == (TINY["horizon"], full.obs_dim)
    # Same seed: same weights and the same actions (the sampling noise is reset every day).
    again = fit(DiffBidAgent(**TINY), data, steps=6, seed=3, progress=False)
    assert state_equal(again, full)
    np.testing.assert_array_equal(play_day(again)["actions"], day["actions"])
    np.testing.assert_array_equal(play_day(full)["actions"], day["actions"])
    # With sampling noise, the sampling seed is reset every day (same seed, same actions) and
    # another seed plays differently (the comparison above can fail).
    full.config.init_noise = 1.0
    noisy = play_day(full)["actions"]
    np.testing.assert_array_equal(play_day(full)["actions"], noisy)
    full.config.sample_seed = 1
    assert not np.array_equal(play_day(full)["actions"], noisy)


def test_train_step_losses(trained):
    agent = trained
    agent.eval_mode(False)
    losses = agent.train_step(np.random.default_rng(0))
    agent.eval_mode(True)
    assert set(losses) == {"total", "diffusion", "inverse"}
    assert losses["total"] == pytest.approx(losses["diffusion"] + losses["inverse"], rel=1e-5)
    assert all(math.isfinite(v) and v > 0 for v in losses.values())


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_return_condition_dropped_at_the_configured_rate(data, p):
    """Classifier-free guidance training: the return token is dropped (keep = 0) in a share
    ``cond_dropout`` of the batch, never the state / campaign condition."""
    agent = fit(DiffBidAgent(**TINY, cond_dropout=p), data, steps=1, progress=False)
    seen = []
    orig = agent.model.denoise

    def spy(x, k, cond, rtg, keep):
        seen.append((keep.clone(), cond.clone()))
        return orig(x, k, cond, rtg, keep)

    agent.model.denoise = spy
    torch.manual_seed(0)
    batch = agent.sample_batch(np.random.default_rng(0), 400)
    agent.losses(batch)
    keep, cond = seen[0]
    assert set(keep.tolist()) <= {0.0, 1.0}
    assert float(1 - keep.mean()) == pytest.approx(p, abs=0.08)
    assert cond.equal(batch["cond"])
