"""Conservative Q-Learning (CQL) for the one-dimensional bid action.

Kumar, Zhou, Tucker and Levine, "Conservative Q-Learning for Offline Reinforcement
Learning", NeurIPS 2020, continuous-action CQL(H) on a soft actor-critic (Haarnoja et al.
2018). Twin Q heads (:class:`agents.critics.TwinQ`) are trained by the TD error plus the
conservative penalty, for each head i::

    L_Q = E[(Q_i(s, a) - y)^2] + alpha_cql * E_s[ log int exp Q_i(s, a') da' - Q_i(s, a) ],
    y = r + gamma (1 - d) min_j Q'_j(s', a'),  a' ~ pi(.|s'),

so Q is pushed down on actions the data does not support and up on the logged ones. The
log-integral is estimated by importance sampling (the paper's appendix F) from ``n_samples``
uniform actions on [-1, 1] (density 1/2) and ``n_samples`` policy actions at s and at s'::

    log int exp Q da ~= logsumexp_k(Q(s, a_k) - log mu(a_k)) - log K

(:func:`cql_penalty`). The actor is a tanh-Gaussian maximising
``E[min_i Q_i(s, a) - alpha_ent log pi(a|s)]`` with the entropy temperature tuned toward a
target entropy of -1; the deterministic action is ``tanh(mean)``.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agents.common import mlp, soft_update
from agents.critics import TransitionAgent, TransitionConfig, TwinQ
from bidenv.validation import check_int

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def cql_penalty(q_data: torch.Tensor, q_samples: torch.Tensor,
                log_density: torch.Tensor) -> torch.Tensor:
    """Per-state CQL(H) gap ``log int exp Q(s, a) da - Q(s, a_data)``.

    Args:
        q_data: (..., B) Q of the logged actions.
        q_samples: (..., B, K) Q of K sampled actions per state.
        log_density: (B, K) log density of each sample under its proposal.

    Returns:
        (..., B): ``logsumexp_k(q_samples - log_density) - log K - q_data``.
    """
    k = q_samples.shape[-1]
    return torch.logsumexp(q_samples - log_density, dim=-1) - math.log(k) - q_data


class TanhGaussianActor(nn.Module):
    """``a = tanh(u)``, ``u ~ N(mu(s), sigma(s))``; ``forward`` gives (mu, log sigma)."""

    def __init__(self, obs_dim: int, hidden):
        super().__init__()
        self.net = mlp(obs_dim, 2, hidden)

    def forward(self, obs):
        mu, log_std = self.net(obs).chunk(2, dim=-1)
        return mu, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs, n: int = 1):
        """n reparameterised actions per state, (B, n), and their log densities, (B, n)."""
        mu, log_std = self(obs)
        u = mu + log_std.exp() * torch.randn(mu.shape[0], n)
        log_prob = (-0.5 * ((u - mu) / log_std.exp()).pow(2) - log_std
                    - 0.5 * math.log(2 * math.pi))
        # log(1 - tanh(u)^2), numerically stable form
        log_prob = log_prob - 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        return torch.tanh(u), log_prob

    def mean_action(self, obs):
        return torch.tanh(self(obs)[0])


@dataclasses.dataclass
class CQLConfig(TransitionConfig):
    """CQL settings (plus those of :class:`agents.critics.TransitionConfig`).

    Defaults are sized for ~500 logged days on 2 CPU cores: hidden (128, 128) (each step
    evaluates the twin Q on 1 + 3 n_samples actions per state), 1500 steps.

    Attributes:
        hidden: Hidden layer sizes of Q and actor.
        gamma: Discount per tick.
        alpha_cql: Weight of the conservative penalty, >= 0 (0 gives plain SAC). The
            penalty's gradient does not scale with Q while the TD error's does; with
            campaign-scaled rewards (TD errors ~0.1) 0.1 plays the role of the paper's 5 on
            locomotion returns in the hundreds.
        n_samples: Sampled actions per proposal (uniform, pi(s), pi(s')) in the penalty.
        actor_lr: Adam step size of the actor and of the entropy temperature (the paper's
            1e-4 / 3e-5 suit a million steps; 3e-4 measured better in 1500).
        polyak: Target Q update rate.
        target_entropy: Entropy target of the temperature tuning.
        init_temperature: Initial entropy temperature ``alpha_ent``. SAC starts at 1 for
            returns in the hundreds; with campaign-scaled rewards (a day's return about 1)
            that much entropy drowns the Q differences between bids, hence 0.01.
    """

    hidden: tuple = (128, 128)
    gamma: float = 0.99
    alpha_cql: float = 0.1
    n_samples: int = 5
    actor_lr: float = 3e-4
    polyak: float = 0.005
    target_entropy: float = -1.0
    init_temperature: float = 0.01

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma!r}")
        if not self.alpha_cql >= 0:
            raise ValueError(f"alpha_cql must be >= 0, got {self.alpha_cql!r}")
        check_int("n_samples", self.n_samples, 1)
        if not 0 < self.actor_lr < 1:
            raise ValueError(f"actor_lr must be in (0, 1), got {self.actor_lr!r}")
        if not 0 < self.polyak <= 1:
            raise ValueError(f"polyak must be in (0, 1], got {self.polyak!r}")
        if not (math.isfinite(self.init_temperature) and self.init_temperature > 0):
            raise ValueError(f"init_temperature must be a finite number > 0, got "
                             f"{self.init_temperature!r}")


class CQLAgent(TransitionAgent):
    """CQL(H) with a SAC actor and twin Q (``bidenv train cql``)."""

    name = "cql"
    config_class = CQLConfig
    #: Gradient steps that fit ~500 logged days (1-2 minutes on 2 cores with the defaults).
    default_steps = 1500

    def build(self) -> None:
        c = self.config
        q = TwinQ(self.obs_dim, c.hidden)
        q_target = copy.deepcopy(q).requires_grad_(False)
        actor = TanhGaussianActor(self.obs_dim, c.hidden)
        log_alpha = nn.ParameterDict({"log_alpha": nn.Parameter(
            torch.tensor(math.log(c.init_temperature)))})
        self.nets = {"q": q, "q_target": q_target, "actor": actor, "entropy": log_alpha}
        self.optims = {"q": torch.optim.Adam(q.parameters(), lr=c.lr),
                       "actor": torch.optim.Adam(actor.parameters(), lr=c.actor_lr),
                       "entropy": torch.optim.Adam(log_alpha.parameters(), lr=c.actor_lr)}

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.nets["actor"].mean_action(obs)

    def train_step(self, rng: np.random.Generator) -> dict:
        c = self.config
        b = self.data.sample(rng, c.batch_size)
        q, q_target, actor = self.nets["q"], self.nets["q_target"], self.nets["actor"]
        log_alpha = self.nets["entropy"]["log_alpha"]
        obs, next_obs, actions = b.obs, b.next_obs, b.actions
        B, K = obs.shape[0], c.n_samples

        # Actor and temperature.
        a_pi, logp_pi = actor.sample(obs)
        q_pi = q(obs, a_pi).min(dim=0).values
        alpha_ent = log_alpha.exp().detach()
        actor_loss = (alpha_ent * logp_pi - q_pi).mean()
        self.optims["actor"].zero_grad(set_to_none=True)
        actor_loss.backward()
        self.optims["actor"].step()
        alpha_loss = -(log_alpha * (logp_pi.detach() + c.target_entropy)).mean()
        self.optims["entropy"].zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.optims["entropy"].step()

        # Critic: TD error plus the conservative penalty.
        with torch.no_grad():
            a_next, _ = actor.sample(next_obs)
            q_next = q_target(next_obs, a_next).min(dim=0).values[:, 0]
            y = b.rewards + c.gamma * (1.0 - b.dones) * q_next
            a_rand = torch.rand(B, K) * 2.0 - 1.0
            a_cur, logp_cur = actor.sample(obs, K)
            a_nxt, logp_nxt = actor.sample(next_obs, K)
            samples = torch.cat([a_rand, a_cur, a_nxt], dim=1)
            log_density = torch.cat([torch.full((B, K), math.log(0.5)), logp_cur, logp_nxt],
                                    dim=1)
        q_all = q(obs, torch.cat([actions, samples], dim=1))  # (2, B, 1 + 3K), one pass
        q_data = q_all[:, :, 0]
        td = (q_data - y).pow(2).mean(dim=1).sum()
        gap = cql_penalty(q_data, q_all[:, :, 1:], log_density).mean(dim=1).sum()
        q_loss = td + c.alpha_cql * gap
        self.optims["q"].zero_grad(set_to_none=True)
        q_loss.backward()
        self.optims["q"].step()
        soft_update(q_target, q, c.polyak)
        return {"q_loss": q_loss.item(), "td_loss": td.item(), "cql_gap": gap.item(),
                "actor_loss": actor_loss.item(), "alpha_ent": alpha_ent.item(),
                "q_mean": q_data.mean().item()}
