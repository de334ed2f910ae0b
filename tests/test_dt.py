"""Decision transformer: return-to-go, context windows, train/inference identity, checkpoints."""

import math

import numpy as np
import pytest
import torch
from generative_helpers import TINY, check_fit_save_load_resume, play_day, tiny_data

from agents.base import FEATURE_INDEX
from agents.common import fit
from agents.dt import DTAgent, DTConfig, context_window, normalised_returns_to_go, score_from_obs
from bidenv.offline import Trajectories
from bidenv.scoring import score_unit

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return tiny_data()


@pytest.fixture(scope="module")
def trained(data):
    return fit(DTAgent(**TINY), data, steps=5, seed=0, progress=False)


def _hand_trajectories():
    """Two days: scores after each tick 1, 3, 6 (CPA 50, budget 100) and 4, 4 (ROI 2, 10)."""
    E, T, F = 2, 3, 20
    scores = np.array([[1.0, 3.0, 6.0], [4.0, 4.0, 4.0]])
    mask = np.array([[1, 1, 1], [1, 1, 0]], bool)
    camps = [{"budget": 100.0, "constraint": "cpa", "target_cpa": 50.0, "target_roi": None},
             {"budget": 10.0, "constraint": "roi", "target_cpa": None, "target_roi": 2.0}]
    z = np.zeros((E, T), np.float32)
    return Trajectories(obs=np.zeros((E, T, F), np.float32), actions=z, rewards=z,
                        scores=scores, expected_scores=scores * 0.5, dones=mask & False,
                        mask=mask, lengths=np.array([3, 2]), episodes=np.arange(2),
                        campaigns=camps)


def test_return_to_go_telescopes_to_final_score():
    traj = _hand_trajectories()
    rtg = normalised_returns_to_go(traj, expected=False)
    # Units: 100 / 50 = 2 conversions; 10 x 2 = 20 value.
    np.testing.assert_allclose(rtg[0], [6 / 2, 5 / 2, 3 / 2])
    np.testing.assert_allclose(rtg[1], [4 / 20, 0.0, 0.0])
    # R_0 is the final score; the differences are the increments S_t - S_{t-1}.
    np.testing.assert_allclose(-np.diff(np.r_[rtg[0], 0.0]) * 2, [1, 2, 3])
    np.testing.assert_allclose(normalised_returns_to_go(traj)[0], [1.5, 1.25, 0.75])


def test_context_window_by_hand():
    T, K = 48, 20
    arrays = {"rtg": torch.arange(T, dtype=torch.float32)[None].repeat(3, 1) + 100,
              "states": torch.arange(T, dtype=torch.float32)[None, :, None].repeat(3, 1, 2),
              "actions": -torch.arange(T, dtype=torch.float32)[None].repeat(3, 1)}
    ctx = context_window(arrays, torch.tensor([0, 5, 30]), K)
    assert ctx["last"].tolist() == [0, 5, 19]
    assert ctx["valid"].sum(1).tolist() == [1, 6, 20]
    assert ctx["timesteps"][1].tolist() == list(range(6)) + [0] * 14
    assert ctx["timesteps"][2].tolist() == list(range(11, 31))
    assert ctx["rtg"][2, 0] == 111 and ctx["rtg"][1, 6] == 0  # pads are zero
    assert ctx["states"][2, 19, 1] == 30 and ctx["actions"][1, 5] == -5


def test_score_from_obs_by_hand():
    obs = np.zeros(20)
    obs[FEATURE_INDEX["budget_left"]] = 0.6
    obs[FEATURE_INDEX["constraint_ratio"]] = 1.25  # CPA 25% over target
    cpa = {"constraint": "cpa", "budget": 100.0, "target_cpa": 50.0}
    assert score_from_obs(obs, cpa) == pytest.approx(0.4 / 1.25 * 1.25 ** -2)
    obs[FEATURE_INDEX["constraint_ratio"]] = 0.8  # under target: no penalty
    assert score_from_obs(obs, {**cpa, "constraint": "roi"}) == pytest.approx(0.5)
    assert score_from_obs(obs, {**cpa, "constraint": "budget"}) is None
    obs[FEATURE_INDEX["constraint_ratio"]] = 0.0
    assert score_from_obs(obs, cpa) == 0.0


def test_inference_equals_training_forward(trained):
    """act() over a played day == one batched forward on the training-time windows."""
    agent = trained
    day = play_day(agent)
    L = len(day["actions"])
    assert L > agent.config.context  # the window slides
    unit = agent.unit
    scores = np.array([i["expected_score"] for i in day["infos"]]) / unit
    target = agent.target_return
    # Return-to-go tokens computed independently: target minus what was earned before.
    rtg = target - np.r_[0.0, scores[:-1]]
    arrays = {"rtg": torch.as_tensor(rtg, dtype=torch.float32)[None],
              "states": torch.as_tensor(agent.normalizer(day["obs"]))[None],
              "actions": torch.as_tensor(day["actions"])[None]}
    rows = {k: v.expand(L, *v.shape[1:]) for k, v in arrays.items()}
    ctx = context_window(rows, torch.arange(L), agent.config.context)
    with torch.no_grad():
        pred = agent.model(*agent.model_inputs(ctx))["action"]
    pred = pred[torch.arange(L), ctx["last"]].numpy()
    np.testing.assert_allclose(pred, day["actions"], atol=1e-5)
    # ... and the day's own buffers hold exactly those tokens and absolute ticks.
    np.testing.assert_allclose(agent._day["rtg"][0, :L].numpy(), rtg, atol=1e-6)
    assert float(pred.std()) > 0  # the actions depend on the context


def test_same_context_and_timesteps_in_act(trained, monkeypatch):
    agent = trained
    K = agent.config.context
    seen = []
    orig = DTAgent.choose

    def spy(self, obs, ctx):
        seen.append((ctx["timesteps"][0].tolist(), int(ctx["last"][0]), ctx["valid"][0].sum()))
        return orig(self, obs, ctx)

    monkeypatch.setattr(DTAgent, "choose", spy)
    play_day(agent)
    for t, (ts, last, n) in enumerate(seen):
        lo = max(0, t - K + 1)
        assert ts[:n] == list(range(lo, t + 1)) and last == t - lo and n == min(t + 1, K)
    # Training windows use the same construction: same K, ticks within [0, max_ticks).
    batch = agent.sample_windows(np.random.default_rng(0), 64) if hasattr(agent, "data") \
        else None
    if batch is not None:
        assert batch["rtg"].shape[1] == K
        assert int(batch["timesteps"].max()) < agent.config.max_ticks


def test_works_without_update_and_rejects_long_days(trained):
    agent = trained
    day = play_day(agent, with_update=False)
    # Without update() the tokens are target - the score read off the observation.
    t = 10
    est = score_from_obs(day["obs"][t], day["campaign"], 2.0) / agent.baseline
    assert agent._day["rtg"][0, t].item() == pytest.approx(agent.target_return - est, abs=1e-6)
    agent.reset({"budget": 100.0, "constraint": "cpa", "target_cpa": 50.0})
    for _ in range(agent.config.max_ticks):
        agent.act(day["obs"][0])
    with pytest.raises(ValueError, match="max_ticks"):
        agent.act(day["obs"][0])


def test_target_is_training_quantile(data):
    rtg = normalised_returns_to_go(data)
    # 3 days < 50 neighbours: the target is the lower quartile of all of them.
    plain = fit(DTAgent(**TINY, return_baseline="none"), data, steps=1, progress=False)
    assert plain.target_return == pytest.approx(float(np.quantile(rtg[:, 0], 0.25)),
                                                rel=1e-6)
    pooled = fit(DTAgent(**TINY, target_neighbors=0, target_quantile=0.9, target_scale=0.5,
                         return_baseline="none"), data, steps=1, progress=False)
    pooled.reset({"budget": 1.0, "constraint": "cpa", "target_cpa": 1.0})
    assert pooled.target_return == pytest.approx(0.5 * float(np.quantile(rtg[:, 0], 0.9)),
                                                 rel=1e-6)


def test_config_validation():
    with pytest.raises(ValueError, match="n_heads"):
        DTConfig(embed_dim=10, n_heads=3).validate()
    with pytest.raises(ValueError, match="context"):
        DTAgent(context=0)
    with pytest.raises(ValueError, match="target_quantile"):
        DTAgent(target_quantile=1.5)
    assert math.isclose(DTConfig().target_scale, 1.0)


def test_fit_save_load_resume(data, tmp_path):
    check_fit_save_load_resume(DTAgent, data, tmp_path, **TINY)


def _campaign_features_by_hand(camps):
    """(log budget, log bid scale, 10 x ROI flag) per campaign and the distance scales (the
    standard deviations, 1 for the flag)."""
    feats = np.array([[math.log(c["budget"]),
                       math.log(1 / c["target_roi"] if c["constraint"] == "roi"
                                else c["target_cpa"]),
                       10.0 * (c["constraint"] == "roi")] for c in camps])
    std = feats.std(0)
    std[2] = 1.0
    return feats, std


def test_nearest_campaign_target(data):
    agent = fit(DTAgent(**TINY, target_neighbors=2, target_quantile=0.5,
                        return_baseline="none"), data, steps=1, progress=False)
    rtg0 = normalised_returns_to_go(data)[:, 0]
    camps = data.campaigns
    # By hand: distances on (log budget, log target CPA) standardised, ROI flag apart.
    feats, std = _campaign_features_by_hand(camps)
    for c in camps:
        d = (((feats - feats[camps.index(c)]) / std) ** 2).sum(1)
        near = np.argsort(d, kind="stable")[:2]
        agent.reset(c)
        assert agent.target_return == pytest.approx(float(np.median(rtg0[near])))
    assert len({round(agent.day_target(c), 9) for c in camps}) > 1


def test_loads_weights_without_campaign_buffers(trained):
    """A state dict without the campaign buffers loads; the target falls back to the pool."""
    state = {k: v for k, v in trained.model.state_dict().items()
             if not k.startswith("campaign_")}
    agent = DTAgent(trained.config)
    agent.model.load_state_dict(state)
    assert agent.model.campaign_r0.shape == (0,)
    agent.reset({"budget": 100.0, "constraint": "cpa", "target_cpa": 50.0})
    assert agent.target_return == pytest.approx(float(trained.model.target_base))


def test_relative_returns_divide_by_the_campaign_baseline(data):
    """With return_baseline="campaign" the tokens are R_t / (u b): b is the mean R_0 / u of the
    k nearest other days at training (leave one out) and of the k nearest days at inference."""
    agent = fit(DTAgent(**TINY, baseline_neighbors=1, target_quantile=0.5), data, steps=1,
                progress=False)
    rtg = normalised_returns_to_go(data)
    camps = data.campaigns
    feats, std = _campaign_features_by_hand(camps)
    base = []
    for i in range(len(camps)):  # the nearest *other* day, by hand
        d = (((feats - feats[i]) / std) ** 2).sum(1)
        d[i] = np.inf
        base.append(rtg[int(np.argmin(d)), 0])
    rel = rtg / np.maximum(np.array(base), 0.01 * rtg[:, 0].mean())[:, None]
    np.testing.assert_allclose(agent.data["rtg"].numpy(), rel, rtol=1e-5, atol=1e-6)
    assert agent.target_return == pytest.approx(float(np.quantile(rel[:, 0], 0.5)), rel=1e-6)
    # At inference a training campaign's nearest day is itself: b is its own R_0 / u.
    for i, c in enumerate(camps):
        agent.reset(c)
        assert agent.baseline == pytest.approx(max(rtg[i, 0], 0.01 * rtg[:, 0].mean()))
        assert agent.unit == pytest.approx(score_unit(c) * agent.baseline)


def _steerable_days(n_days: int = 64, T: int = 6, seed: int = 0) -> Trajectories:
    """Days whose return is set by the action alone: every day plays a constant action a_e and
    earns 1 + a_e per tick; the states carry no information about a_e."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-0.8, 0.8, n_days)
    scores = np.cumsum(np.repeat((1.0 + a)[:, None], T, axis=1), axis=1)
    obs = rng.normal(0.0, 1.0, (n_days, T, len(FEATURE_INDEX))).astype(np.float32)
    mask = np.ones((n_days, T), bool)
    camp = {"budget": 100.0, "constraint": "cpa", "target_cpa": 50.0, "target_roi": None,
            "category": 0}
    return Trajectories(obs=obs, actions=np.repeat(a[:, None], T, 1).astype(np.float32),
                        rewards=np.zeros((n_days, T), np.float32), scores=scores,
                        expected_scores=scores, dones=np.eye(T, dtype=bool)[[-1] * n_days],
                        mask=mask, lengths=np.full(n_days, T), episodes=np.arange(n_days),
                        campaigns=[dict(camp) for _ in range(n_days)])


@pytest.mark.parametrize("baseline", ["campaign", "none"])
def test_target_return_steers_the_action(baseline):
    """Trained on days where a higher return came from a higher action, a higher target gives a
    higher first action, monotonically across the data's range."""
    data = _steerable_days()
    agent = fit(DTAgent(**{**TINY, "max_ticks": 6, "batch_size": 32, "dropout": 0.0},
                        return_baseline=baseline, target_quantile=0.5), data, steps=400,
                seed=0, progress=False)
    r0 = agent.training_targets()
    first = []
    for target in np.quantile(r0, [0.1, 0.3, 0.5, 0.7, 0.9]):
        agent.config.target_scale = float(target / agent.model.target_base)
        agent.reset(data.campaigns[0])
        first.append(float(agent.act(np.zeros(len(FEATURE_INDEX), np.float32))[0]))
    assert np.all(np.diff(first) > 0), first
    assert first[-1] - first[0] > 0.5, first  # the data's actions span 0.1..0.9 quantiles: ~1.3


def test_yardstick_tokens_are_the_days_outcome_quality():
    """return_baseline="yardstick": every real tick's token is the day's final expected score
    over its yardstick; at inference the token is the target, constant all day."""
    traj = _hand_trajectories()
    traj.yardsticks = np.array([6.0, 8.0])  # final expected scores 3 and 2
    traj.obs = np.random.default_rng(0).normal(size=traj.obs.shape).astype(np.float32)
    agent = fit(DTAgent(**{**TINY, "max_ticks": 3}, return_baseline="yardstick",
                        target_quantile=1.0), traj, steps=1, progress=False)
    np.testing.assert_allclose(agent.data["rtg"].numpy(), [[0.5, 0.5, 0.5], [0.25, 0.25, 0.0]])
    np.testing.assert_allclose(agent.training_targets(), [0.5, 0.25])
    assert agent.target_return == pytest.approx(0.5)  # quantile 1 of the qualities
    agent.reset(traj.campaigns[0])
    for t in range(3):
        agent.act(traj.obs[0, t])
        agent.update({"expected_score": 10.0 * (t + 1)})  # earned score does not move it
    np.testing.assert_allclose(agent._day["rtg"][0, :3].numpy(), [0.5, 0.5, 0.5])
    traj.yardsticks = np.array([6.0, np.nan])
    with pytest.raises(ValueError, match="1 of 2 days have none.*--yardstick"):
        fit(DTAgent(**TINY, return_baseline="yardstick"), traj, steps=1, progress=False)


def test_gave_refuses_constant_tokens():
    from agents.gave import GAVEAgent

    with pytest.raises(ValueError, match="return-to-go head"):
        GAVEAgent(return_baseline="yardstick")


def test_residual_base_replays_the_controller_and_adds_it_at_inference(tmp_path):
    """residual_base='pid_budget': on noise-free pid_budget days the replayed controller gives
    the logged actions exactly (residual 0), and a model whose output is 0 bids exactly as
    pid_budget on a played day."""
    import agents
    from agents.dt import base_actions
    from experiments.collect import collect

    days = Trajectories.from_frame(collect(episodes=2, seed=3, behaviors={"pid_budget": 1.0},
                                           noise=0.0, progress=False))
    base = base_actions(days, "pid_budget", 10.0)
    np.testing.assert_allclose(base[days.mask], days.actions[days.mask], atol=1e-6)
    # On noisy days the residual is the noise (not 0): the comparison above can fail.
    noisy = Trajectories.from_frame(collect(episodes=1, seed=3, behaviors={"pid_budget": 1.0},
                                            noise=0.3, progress=False))
    assert np.abs(base_actions(noisy, "pid_budget", 10.0) - noisy.actions)[noisy.mask].max() > 0.01

    agent = fit(DTAgent(**TINY, residual_base="pid_budget"), noisy, steps=2, seed=0,
                progress=False)
    resid = agent.data["actions"].numpy()
    np.testing.assert_allclose(resid, (noisy.actions - base_actions(noisy, "pid_budget", 10.0))
                               * noisy.mask, atol=1e-6)
    with torch.no_grad():  # a model that adds nothing
        agent.model.action_head.weight.zero_()
        agent.model.action_head.bias.zero_()
    pid_day = play_day(agents.make("pid_budget"), seed=11, with_update=False)["actions"]
    np.testing.assert_allclose(play_day(agent, seed=11)["actions"], pid_day, atol=1e-6)
    with torch.no_grad():  # a model that adds a constant 0.1 (tanh(0.1003...) = 0.1)
        agent.model.action_head.bias.fill_(math.atanh(0.1))
    shifted = play_day(agent, seed=11)
    assert np.abs(shifted["actions"] - pid_day).max() > 0.05
    agent.save(tmp_path / "r")
    assert DTAgent.load(tmp_path / "r").config.residual_base == "pid_budget"


def test_residual_base_is_validated():
    with pytest.raises(ValueError, match="residual_base"):
        DTConfig(residual_base="online_lp").validate()
    from agents.gas import GASConfig

    with pytest.raises(ValueError, match="residual_base must be ''"):
        GASConfig(residual_base="pid_budget").validate()
