"""The IQL critic (agents.critics.QVCritic) and the transition data of the offline agents."""

import math

import numpy as np
import pytest
import torch

from agents.common import expectile_loss
from agents.critics import QVCritic, TwinQ, episode_scales, transition_tensors
from bidenv.offline import Normalizer, Trajectories
from bidenv.scoring import score_unit
from experiments.collect import collect

torch.set_num_threads(1)


def test_expectile_loss_by_hand():
    diff = torch.tensor([1.0, -2.0])
    # tau weights positive errors, 1 - tau negative ones: (0.7 * 1 + 0.3 * 4) / 2
    assert expectile_loss(diff, 0.7).item() == pytest.approx(0.95)
    assert expectile_loss(diff, 0.5).item() == pytest.approx((0.5 + 2.0) / 2)


def _train(critic, obs, actions, rewards, next_obs, dones, steps):
    for _ in range(steps):
        critic.update(obs, actions, rewards, next_obs, dones)


def test_one_step_bandit_q_and_expectile_value():
    """One state, two logged actions with rewards 1 and 0, episode ends: Q -> reward and
    V -> the tau-expectile of {0, 1} with equal weights, which is tau itself
    (tau (1 - v) = (1 - tau) v)."""
    torch.manual_seed(0)
    critic = QVCritic(2, hidden=(32, 32), gamma=0.9, tau_expectile=0.7, polyak=0.05, lr=3e-3)
    obs = torch.zeros(32, 2)
    actions = torch.tensor([-0.5, 0.5]).repeat(16)[:, None]
    rewards = (actions[:, 0] < 0).float()
    _train(critic, obs, actions, rewards, obs, torch.ones(32), 800)
    q = critic.q(torch.zeros(1, 2), torch.tensor([[-0.5, 0.5]]))[0]
    assert q[0].item() == pytest.approx(1.0, abs=0.05)
    assert q[1].item() == pytest.approx(0.0, abs=0.05)
    assert critic.value(torch.zeros(1, 2)).item() == pytest.approx(0.7, abs=0.05)


def test_two_step_chain_values_by_hand():
    """s0 --a--> s1 --a--> end. At s1 rewards {0, 1}: V(s1) = 0.7 (tau = 0.7).
    At s0 rewards {0, 0.5} then s1: Q(s0, .) = {0.9 * 0.7, 0.5 + 0.9 * 0.7} = {0.63, 1.13}
    and V(s0) = 0.63 + 0.7 * (1.13 - 0.63) = 0.98 (two equally likely points x < y have
    expectile x + tau (y - x))."""
    torch.manual_seed(1)
    critic = QVCritic(2, hidden=(32, 32), gamma=0.9, tau_expectile=0.7, polyak=0.05, lr=3e-3)
    s0, s1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    a = torch.tensor([-0.5, 0.5])
    obs = torch.stack([s0, s0, s1, s1]).repeat(8, 1)
    next_obs = torch.stack([s1, s1, s1, s1]).repeat(8, 1)
    actions = a.repeat(2).repeat(8)[:, None]
    rewards = torch.tensor([0.0, 0.5, 0.0, 1.0]).repeat(8)
    dones = torch.tensor([0.0, 0.0, 1.0, 1.0]).repeat(8)
    _train(critic, obs, actions, rewards, next_obs, dones, 1500)
    v = critic.value(torch.stack([s0, s1]))
    assert v[1].item() == pytest.approx(0.7, abs=0.05)
    assert v[0].item() == pytest.approx(0.98, abs=0.06)
    q0 = critic.q(s0[None], a[None])[0]
    assert q0.tolist() == pytest.approx([0.63, 1.13], abs=0.06)


def test_batched_candidate_scoring_equals_loop():
    torch.manual_seed(2)
    critic = QVCritic(5, hidden=(16, 16))
    obs = torch.randn(7, 5)
    cand = torch.rand(7, 4) * 2 - 1
    batched = critic.q(obs, cand)
    assert batched.shape == (7, 4)
    for b in range(7):
        for j in range(4):
            one = critic.q(obs[b:b + 1], cand[b:b + 1, j:j + 1])
            heads = [critic.q_net.net(torch.cat([obs[b], cand[b, j:j + 1]])[None])[e, 0, 0]
                     for e in range(2)]
            assert one.item() == pytest.approx(batched[b, j].item(), abs=1e-6)
            assert min(h.item() for h in heads) == pytest.approx(batched[b, j].item(),
                                                                 abs=1e-6)
    assert critic.q(obs, cand[:, 0]).shape == (7, 1)  # (B,) actions: one per state


def test_polyak_target_update_by_hand():
    torch.manual_seed(3)
    critic = QVCritic(3, hidden=(8,), polyak=0.25, lr=1e-2)
    before = [p.clone() for p in critic.q_target.parameters()]
    assert all(torch.equal(t, p) for t, p in zip(before, critic.q_net.parameters()))
    critic.update(torch.randn(4, 3), torch.rand(4, 1), torch.ones(4), torch.randn(4, 3),
                  torch.zeros(4))
    for old, new, tgt in zip(before, critic.q_net.parameters(), critic.q_target.parameters()):
        assert torch.allclose(tgt, 0.75 * old + 0.25 * new, atol=1e-7)
        assert not torch.equal(old, new)


def test_state_dict_round_trip_and_optimizers():
    torch.manual_seed(4)
    a = QVCritic(3, hidden=(8,))
    a.update(torch.randn(4, 3), torch.rand(4, 1), torch.ones(4), torch.randn(4, 3),
             torch.zeros(4))
    b = QVCritic(3, hidden=(8,))
    b.load_state_dict(a.state_dict())
    obs, cand = torch.randn(2, 3), torch.rand(2, 3)
    assert torch.equal(a.q(obs, cand), b.q(obs, cand))
    assert torch.equal(a.q(obs, cand, target=True), b.q(obs, cand, target=True))
    assert torch.equal(a.value(obs), b.value(obs))
    assert set(a.optimizers()) == {"q", "v"}
    assert {k.split(".")[0] for k in a.state_dict()} == {"q_net", "q_target", "v_net"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="tau_expectile"):
        QVCritic(3, tau_expectile=1.0)
    with pytest.raises(ValueError, match="gamma"):
        QVCritic(3, gamma=1.5)
    with pytest.raises(ValueError, match="obs_dim"):
        QVCritic(0)
    with pytest.raises(ValueError, match="actions must be"):
        TwinQ(3, (8,))(torch.zeros(2, 3), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="obs must be"):
        TwinQ(3, (8,))(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reward_scale"):
        episode_scales([{"budget": 1.0}], "per-day")


def test_transition_rewards_are_score_increments_over_score_unit():
    traj = Trajectories.from_frame(collect(episodes=3, seed=5, progress=False))
    norm = Normalizer.fit(traj.obs[traj.mask])
    data = transition_tensors(traj, norm, reward_scale="campaign", expected=True,
                              multiplier=2.0)
    assert len(data.rewards) == int(traj.lengths.sum())
    per_episode = np.bincount(data.episode.numpy(), weights=data.rewards.numpy())
    units = np.array([score_unit(c) for c in traj.campaigns])
    # The increments telescope to the final expected score.
    assert per_episode == pytest.approx(2.0 * traj.final_scores(expected=True) / units,
                                        rel=1e-4, abs=1e-6)
    assert data.dones.sum().item() == 3
    raw = transition_tensors(traj, norm, reward_scale=0.5, expected=False)
    per_episode = np.bincount(raw.episode.numpy(), weights=raw.rewards.numpy())
    assert per_episode == pytest.approx(0.5 * traj.final_scores(), rel=1e-4, abs=1e-6)
    assert not math.isnan(data.obs.abs().max().item())
