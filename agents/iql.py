"""Implicit Q-Learning (IQL): an in-sample critic and advantage-weighted policy extraction.

Kostrikov, Nair and Levine, "Offline Reinforcement Learning with Implicit Q-Learning",
ICLR 2022. The critic (:class:`agents.critics.QVCritic`) learns twin Q heads and an
expectile value V without ever querying actions outside the data; the policy is then
extracted by advantage-weighted regression (Peng et al. 2019) on the logged actions::

    L_pi = E[ min(exp(beta (Q'(s, a) - V(s))), w_max) * ||pi(s) - a||^2 ],

with ``Q'`` the smaller target Q, ``beta`` the inverse temperature (``beta_awr``) and
``w_max = 100``. The squared error is the log-likelihood of a Gaussian policy of fixed
variance whose mean ``pi(s) = tanh(f(s))`` is also the deterministic action at test time.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from agents.common import mlp
from agents.critics import QVCritic, TransitionAgent, TransitionConfig


@dataclasses.dataclass
class IQLConfig(TransitionConfig):
    """IQL settings (plus those of :class:`agents.critics.TransitionConfig`).

    Defaults are sized for ~500 logged days on 2 CPU cores (3000 steps of 256 transitions,
    hidden (256, 256), about 1.5 minutes).

    Attributes:
        gamma: Discount per tick (48 ticks a day: 0.99 keeps the day's end in view).
        expectile: Expectile tau of the value regression, in (0, 1) (the paper: 0.7 on
            locomotion, 0.9 on antmaze).
        beta_awr: Inverse temperature of the advantage weights, > 0. With campaign-scaled
            rewards (a day's return about 1) the advantages of logged bids have a spread of
            about 0.03, so the paper's 3 weights all samples almost equally; 10 does not.
        max_weight: Clip of the advantage weights.
        polyak: Target Q update rate. 0.05 rather than the paper's 0.005 because training
            runs thousands of steps, not a million: the value of the day's end has to
            propagate back over 48 ticks within that budget.
    """

    gamma: float = 0.99
    expectile: float = 0.8
    beta_awr: float = 10.0
    max_weight: float = 100.0
    polyak: float = 0.05

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma!r}")
        if not 0 < self.expectile < 1:
            raise ValueError(f"expectile must be in (0, 1), got {self.expectile!r}")
        if not self.beta_awr > 0:
            raise ValueError(f"beta_awr must be > 0, got {self.beta_awr!r}")
        if not self.max_weight >= 1:
            raise ValueError(f"max_weight must be >= 1, got {self.max_weight!r}")
        if not 0 < self.polyak <= 1:
            raise ValueError(f"polyak must be in (0, 1], got {self.polyak!r}")


class IQLAgent(TransitionAgent):
    """IQL with a deterministic tanh policy (``bidenv train iql``)."""

    name = "iql"
    config_class = IQLConfig
    #: Gradient steps that fit ~500 logged days (about 1.5 minutes on 2 cores).
    default_steps = 3000

    def build(self) -> None:
        c = self.config
        critic = QVCritic(self.obs_dim, c.hidden, gamma=c.gamma, tau_expectile=c.expectile,
                          polyak=c.polyak, lr=c.lr)
        actor = mlp(self.obs_dim, 1, c.hidden)
        self.nets = {"critic": critic, "actor": actor}
        self.optims = {**{f"critic_{k}": o for k, o in critic.optimizers().items()},
                       "actor": torch.optim.Adam(actor.parameters(), lr=c.lr)}

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.nets["actor"](obs))

    def train_step(self, rng: np.random.Generator) -> dict:
        c = self.config
        b = self.data.sample(rng, c.batch_size)
        critic = self.nets["critic"]
        losses = critic.update(b.obs, b.actions, b.rewards, b.next_obs, b.dones)
        adv = critic.advantage(b.obs, b.actions)
        weights = torch.exp(c.beta_awr * adv).clamp(max=c.max_weight)
        err = (self.policy(b.obs) - b.actions).pow(2).sum(-1)
        actor_loss = (weights * err).mean()
        opt = self.optims["actor"]
        opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        opt.step()
        losses.update(actor_loss=actor_loss.item(), adv_mean=adv.mean().item(),
                      adv_std=adv.std().item(), weight_mean=weights.mean().item())
        return losses
