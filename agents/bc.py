"""Behaviour cloning: regress the logged actions on the states.

A deterministic MLP policy ``pi(s) = tanh(f(s))`` in [-1, 1] is fitted by mean squared error
to the logged actions of (optionally only) the better days: with ``top_fraction < 1`` only
the episodes whose final score divided by :func:`bidenv.scoring.score_unit` (so CPA and ROI
days compare) is in the top ``top_fraction`` are cloned ("filtered" or "percentile" BC, the
baseline of Chen et al., "Decision Transformer", NeurIPS 2021).

>>> from agents.bc import BCAgent
>>> agent = BCAgent(hidden=(8,))
>>> agent.reset({"budget": 400.0, "constraint": "cpa", "target_cpa": 60.0})
>>> agent.act([0.0] * agent.obs_dim).shape
(1,)
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from agents.common import mlp
from agents.critics import TransitionAgent, TransitionConfig, episode_scales
from bidenv.offline import Trajectories


@dataclasses.dataclass
class BCConfig(TransitionConfig):
    """Behaviour cloning settings (plus those of :class:`agents.critics.TransitionConfig`).

    Attributes:
        top_fraction: Share of episodes cloned, the best by campaign-normalised final score
            (expected or realised per ``expected_reward``), in (0, 1]; 1 clones all.
    """

    top_fraction: float = 1.0

    def validate(self) -> None:
        super().validate()
        if isinstance(self.top_fraction, bool) or not isinstance(self.top_fraction,
                                                                 (int, float)) \
                or not 0 < self.top_fraction <= 1:
            raise ValueError(f"top_fraction must be in (0, 1], got {self.top_fraction!r}")


class BCAgent(TransitionAgent):
    """Behaviour cloning with a tanh MLP policy (``bidenv train bc``)."""

    name = "bc"
    config_class = BCConfig
    #: Gradient steps that fit ~500 logged days (about 20 s on one core).
    default_steps = 2000

    def build(self) -> None:
        c = self.config
        self.nets = {"actor": mlp(self.obs_dim, 1, c.hidden)}
        self.optims = {"actor": torch.optim.Adam(self.nets["actor"].parameters(), lr=c.lr)}

    def prepare(self, train: Trajectories) -> None:
        c = self.config
        if c.top_fraction < 1.0:
            normalised = (train.final_scores(expected=c.expected_reward)
                          * episode_scales(train.campaigns, c.reward_scale))
            n_keep = max(1, int(round(c.top_fraction * len(normalised))))
            keep = np.sort(np.argsort(-normalised, kind="stable")[:n_keep])
            train = train.subset(keep)
        super().prepare(train)

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.nets["actor"](obs))

    def train_step(self, rng: np.random.Generator) -> dict:
        batch = self.data.sample(rng, self.config.batch_size)
        loss = (self.policy(batch.obs) - batch.actions).pow(2).mean()
        opt = self.optims["actor"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"actor_loss": loss.item()}
