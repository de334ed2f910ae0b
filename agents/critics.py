"""Critics (value functions) shared by the offline agents and the critic-guided search.

:class:`QVCritic` is the critic of Implicit Q-Learning (Kostrikov, Nair and Levine,
"Offline Reinforcement Learning with Implicit Q-Learning", ICLR 2022): twin Q heads on
(state, action), a state-value head V trained by expectile regression against the smaller
*target* Q, and a target copy of the Q heads updated by Polyak averaging. It never evaluates
Q at actions outside the dataset, which is what makes it usable offline; IQL
(:mod:`agents.iql`) and the critic-guided search (:mod:`agents.gas`) both use it, and
:meth:`QVCritic.q` scores N candidate actions per state in one batched forward pass.
:class:`TwinQ` (two Q networks in one ensemble) is also the critic of CQL (:mod:`agents.cql`).

The module also holds what the transition-based agents (bc, iql, cql, and the critics of gas)
share: :func:`transition_tensors` (a :class:`TransitionBatch` of normalised ``(s, a, r, s', done)``
tensors with rewards divided by each day's :func:`bidenv.scoring.score_unit`), and the base
:class:`TransitionConfig` / :class:`TransitionAgent` (deterministic policy, ``act``).

>>> import torch
>>> critic = QVCritic(obs_dim=3, hidden=(8,))
>>> critic.q(torch.zeros(2, 3), torch.zeros(2, 5)).shape  # 5 candidate actions per state
torch.Size([2, 5])
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch
from torch import nn

from agents.common import (
    EnsembleMLP,
    OfflineAgent,
    OfflineConfig,
    expectile_loss,
    mlp,
    soft_update,
)
from bidenv.offline import Normalizer, Trajectories
from bidenv.scoring import score_unit
from bidenv.validation import check_int, check_number


# --------------------------------------------------------------------------------------------
# Training data of the critics
# --------------------------------------------------------------------------------------------
def check_reward_scale(reward_scale) -> None:
    """``reward_scale`` is ``"campaign"`` or a finite number > 0 (see :func:`episode_scales`)."""
    if reward_scale == "campaign":
        return
    if isinstance(reward_scale, bool) or not isinstance(reward_scale, (int, float)) \
            or not (math.isfinite(reward_scale) and reward_scale > 0):
        raise ValueError(f"reward_scale must be 'campaign' or a finite number > 0, got "
                         f"{reward_scale!r}")


def episode_scales(campaigns: list, reward_scale="campaign") -> np.ndarray:
    """Per-episode reward multipliers, shape (E,).

    ``"campaign"``: ``1 / score_unit(campaign)`` (:func:`bidenv.scoring.score_unit`), so a day
    that spends its budget at the target earns about 1 whatever its budget and goal (CPA and
    ROI days on one scale); a number: that constant for every episode.
    """
    check_reward_scale(reward_scale)
    if reward_scale == "campaign":
        return np.array([1.0 / score_unit(c) for c in campaigns], np.float64)
    return np.full(len(campaigns), float(reward_scale), np.float64)


@dataclasses.dataclass(frozen=True)
class TransitionBatch:
    """``(s, a, r, s', done)`` transitions as float32 tensors, one row per real tick.

    Attributes:
        obs: (n, F) normalised states.
        actions: (n, 1) actions taken.
        rewards: (n,) score increments times the episode's scale.
        next_obs: (n, F) normalised next states.
        dones: (n,) 1.0 on the last tick of a day.
        episode: (n,) the row's episode index into the trajectories it came from.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    dones: torch.Tensor
    episode: torch.Tensor

    def __len__(self) -> int:
        return len(self.rewards)

    def sample(self, rng: np.random.Generator, batch_size: int) -> TransitionBatch:
        """``batch_size`` rows drawn uniformly with replacement (``rng`` decides which)."""
        idx = torch.as_tensor(rng.integers(0, len(self), size=batch_size))
        return TransitionBatch(*(getattr(self, f.name)[idx]
                                 for f in dataclasses.fields(self)))


def transition_tensors(train: Trajectories, normalizer: Normalizer, *,
                       reward_scale="campaign", expected: bool = True,
                       multiplier: float = 1.0) -> TransitionBatch:
    """The ``(s, a, r, s', done)`` transitions of ``train`` as a :class:`TransitionBatch`.

    States are normalised by ``normalizer``; rewards are the score increments (expected or
    realised) times the episode's scale (:func:`episode_scales`) times ``multiplier``.
    """
    tr = train.transitions(reward_scale=1.0, expected=expected)
    # Transitions are the real ticks in (episode, tick) order: episode i has lengths[i] rows.
    per_row = np.repeat(np.arange(len(train.lengths)), train.lengths)
    scale = episode_scales(train.campaigns, reward_scale) * float(multiplier)
    rewards = tr["rewards"].astype(np.float64) * scale[per_row]
    return TransitionBatch(obs=torch.as_tensor(normalizer(tr["obs"])),
                           actions=torch.as_tensor(tr["actions"], dtype=torch.float32),
                           rewards=torch.as_tensor(rewards, dtype=torch.float32),
                           next_obs=torch.as_tensor(normalizer(tr["next_obs"])),
                           dones=torch.as_tensor(tr["dones"], dtype=torch.float32),
                           episode=torch.as_tensor(per_row))


@dataclasses.dataclass
class TransitionConfig(OfflineConfig):
    """Settings of the agents trained on ``(s, a, r, s', done)`` transitions (bc, iql, cql).

    Attributes:
        expected_reward: Train on the noise-free expected score increments (True) or on the
            realised ones (False).
        reward_scale: ``"campaign"`` divides each day's rewards by its
            :func:`bidenv.scoring.score_unit` (CPA and ROI days on one scale, about 1 for a
            day that spends its budget at the target); a number multiplies them by it.
        reward_multiplier: A further constant factor on the rewards (sets the scale of Q and
            of the advantages, which matters for temperatures and penalties).
    """

    expected_reward: bool = True
    reward_scale: object = "campaign"
    reward_multiplier: float = 1.0

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.expected_reward, bool):
            raise ValueError(f"expected_reward must be True or False, got "
                             f"{self.expected_reward!r}")
        check_reward_scale(self.reward_scale)
        check_number("reward_multiplier", self.reward_multiplier, 0, low_open=True)


class TransitionAgent(OfflineAgent):
    """An offline agent trained on transitions with a deterministic policy in [-1, 1].

    ``prepare`` stores the training transitions as ``self.data``
    (a :class:`TransitionBatch`); subclasses implement ``build``, ``train_step`` and
    :meth:`policy` (normalised states (B, F) -> actions (B, 1) in [-1, 1]).
    """

    config_class = TransitionConfig

    def prepare(self, train: Trajectories) -> None:
        c = self.config
        self.data = transition_tensors(train, self.normalizer, reward_scale=c.reward_scale,
                                       expected=c.expected_reward,
                                       multiplier=c.reward_multiplier)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def act(self, obs) -> np.ndarray:
        """The deterministic action for one observation: (1,) float32 in [-1, 1]."""
        x = self.norm_obs(np.asarray(obs, np.float32).reshape(1, self.obs_dim))
        a = self.policy(x).reshape(-1)[:1]
        return np.clip(a.numpy().astype(np.float32), -1.0, 1.0)


class TwinQ(nn.Module):
    """Two independent Q networks on (state, action), evaluated in one batched pass.

    ``forward(obs, actions)``: states (B, F) and N actions per state, given as (B,) or
    (B, N) (``action_dim == 1``) or (B, N, action_dim), give Q values of shape (2, B, N).
    The B x N (state, action) pairs go through one :class:`agents.common.EnsembleMLP` call.
    """

    def __init__(self, obs_dim: int, hidden=(256, 256), action_dim: int = 1):
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.net = EnsembleMLP(obs_dim + action_dim, 1, ensemble=2, hidden=tuple(hidden))

    def _actions(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if actions.dim() == 1:
            actions = actions[:, None]
        if actions.dim() == 2 and self.action_dim == 1:
            actions = actions[..., None]
        if actions.dim() != 3 or actions.shape[0] != obs.shape[0] \
                or actions.shape[-1] != self.action_dim:
            raise ValueError(f"actions must be (B, N) or (B, N, {self.action_dim}) with B = "
                             f"{obs.shape[0]}, got {tuple(actions.shape)}")
        return actions

    def forward(self, obs, actions) -> torch.Tensor:
        obs = torch.as_tensor(obs, dtype=torch.float32)
        if obs.dim() != 2 or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must be (B, {self.obs_dim}), got {tuple(obs.shape)}")
        actions = self._actions(obs, torch.as_tensor(actions, dtype=torch.float32))
        B, N, _ = actions.shape
        x = torch.cat([obs[:, None, :].expand(B, N, obs.shape[-1]), actions], dim=-1)
        return self.net(x.reshape(B * N, -1)).reshape(2, B, N)


class QVCritic(nn.Module):
    """IQL critic: twin Q(s, a), value V(s), target Q, and their optimisers.

    With a batch of transitions ``(s, a, r, s', d)``, one :meth:`update` does, in order
    (Kostrikov et al. 2022, Algorithm 1):

    * value step, expectile regression toward the smaller target Q::

          L_V = E[ |tau - 1(u < 0)| u^2 ],   u = min(Q'_1(s, a), Q'_2(s, a)) - V(s)

      (``tau = tau_expectile``; tau = 0.5 is the mean, tau -> 1 the in-sample maximum);
    * Q step, a TD regression on the *value* of the next state (no max over actions)::

          L_Q = sum_i E[ (r + gamma (1 - d) V(s') - Q_i(s, a))^2 ];

    * target step, Polyak averaging ``Q' <- (1 - polyak) Q' + polyak Q``.

    The twin Q heads are a :class:`TwinQ` (one ``EnsembleMLP`` with ``ensemble=2``); the
    optimisers are held as ``q_optim`` and ``v_optim`` (``optimizers()`` returns them by name)
    so an :class:`agents.common.OfflineAgent` can register them in ``self.optims`` next to the
    module in ``self.nets``; :meth:`state_dict` holds the weights of Q, target Q and V.

    Args:
        obs_dim: State features F (normalised states are expected).
        hidden: Hidden layer sizes of each head.
        gamma: Discount in [0, 1].
        tau_expectile: Expectile of the value step, in (0, 1).
        polyak: Target update rate, in (0, 1].
        lr: Adam step size of both optimisers.
        action_dim: Action size (1 for the bidding environment).
    """

    def __init__(self, obs_dim: int, hidden=(256, 256), gamma: float = 0.99,
                 tau_expectile: float = 0.7, polyak: float = 0.01, lr: float = 3e-4,
                 action_dim: int = 1):
        super().__init__()
        obs_dim = check_int("obs_dim", obs_dim, 1)
        action_dim = check_int("action_dim", action_dim, 1)
        check_number("gamma", gamma, 0, 1)
        check_number("tau_expectile", tau_expectile, 0, 1, low_open=True, high_open=True)
        check_number("polyak", polyak, 0, 1, low_open=True)
        check_number("lr", lr, 0, 1, low_open=True, high_open=True)
        hidden = tuple(hidden)
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.gamma, self.tau_expectile, self.polyak = float(gamma), float(tau_expectile), \
            float(polyak)
        self.q_net = TwinQ(obs_dim, hidden, action_dim)
        self.q_target = copy.deepcopy(self.q_net)
        self.q_target.requires_grad_(False)
        self.v_net = mlp(obs_dim, 1, hidden)
        self.q_optim = torch.optim.Adam(self.q_net.parameters(), lr=lr)
        self.v_optim = torch.optim.Adam(self.v_net.parameters(), lr=lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers by name (``"q"``, ``"v"``), for an agent's ``self.optims``."""
        return {"q": self.q_optim, "v": self.v_optim}

    # -- evaluation ---------------------------------------------------------------------------
    def q_heads(self, obs: torch.Tensor, actions: torch.Tensor, *,
                target: bool = False) -> torch.Tensor:
        """Both Q heads, shape (2, B, N), for states (B, F) and N actions per state."""
        return (self.q_target if target else self.q_net)(obs, actions)

    def q(self, obs: torch.Tensor, actions: torch.Tensor, *, target: bool = False
          ) -> torch.Tensor:
        """``min(Q_1, Q_2)`` of N candidate actions per state: obs (B, F), actions (B, N)
        (or (B,)) -> (B, N) scores, all candidates in one batched forward pass."""
        return self.q_heads(obs, actions, target=target).min(dim=0).values

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s), shape (B,)."""
        return self.v_net(torch.as_tensor(obs, dtype=torch.float32)).squeeze(-1)

    @torch.no_grad()
    def advantage(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``min target Q(s, a) - V(s)`` for the logged actions (B, 1) or (B,): shape (B,)."""
        obs = torch.as_tensor(obs, dtype=torch.float32)
        actions = torch.as_tensor(actions, dtype=torch.float32).reshape(len(obs), 1,
                                                                        self.action_dim)
        return self.q(obs, actions, target=True)[:, 0] - self.value(obs)

    # -- training -----------------------------------------------------------------------------
    def update(self, obs, actions, rewards, next_obs, dones) -> dict[str, float]:
        """One value step, one Q step and one target step on a batch; returns the losses.

        Args:
            obs, next_obs: (B, F) float tensors. actions: (B, action_dim) or (B,).
            rewards, dones: (B,) float tensors (``dones`` 1 at the last tick of a day).
        """
        obs = torch.as_tensor(obs, dtype=torch.float32)
        next_obs = torch.as_tensor(next_obs, dtype=torch.float32)
        B = obs.shape[0]
        actions = torch.as_tensor(actions, dtype=torch.float32).reshape(B, 1, self.action_dim)
        rewards = torch.as_tensor(rewards, dtype=torch.float32).reshape(B)
        dones = torch.as_tensor(dones, dtype=torch.float32).reshape(B)
        with torch.no_grad():
            q_t = self.q(obs, actions, target=True)[:, 0]
        v = self.value(obs)
        v_loss = expectile_loss(q_t - v, self.tau_expectile)
        self.v_optim.zero_grad(set_to_none=True)
        v_loss.backward()
        self.v_optim.step()

        with torch.no_grad():
            target = rewards + self.gamma * (1.0 - dones) * self.value(next_obs)
        qs = self.q_heads(obs, actions)[:, :, 0]
        q_loss = (qs - target).pow(2).mean(dim=1).sum()
        self.q_optim.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_optim.step()
        soft_update(self.q_target, self.q_net, self.polyak)
        return {"v_loss": v_loss.item(), "q_loss": q_loss.item(),
                "q_mean": float(qs.detach().mean()), "v_mean": float(v.detach().mean())}
