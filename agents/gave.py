"""Generative auto-bidding with value-guided exploration (``gave``, ``gave_stable``).

Gao, Li, Mao, Jiang, Jiang et al., "Generative Auto-Bidding with Value-Guided Explorations"
(SIGIR 2025). The decision transformer of :mod:`agents.dt` with three extra heads:

* on the state token: the exploration coefficient ``beta_hat = 0.5 + sigmoid(f(h_s))`` in
  (0.5, 1.5) and (published variant) a value head ``V(h_s)``;
* on the action token: ``r_hat``, the predicted next return-to-go ``R_{t+1}``.

Training only (acting is the plain DT), per window of logged ticks:

* explored action ``a_tilde``: the logged bid multiplier scaled by ``beta_hat`` (see below);
* a second forward pass with the explored actions in place of the logged ones gives
  ``r_tilde`` (the ``r_hat`` head at the explored action tokens);
* ``w = sigmoid(alpha_r (r_tilde - r_hat))`` (detached) blends the action target::

      L_action = mean((1 - w) (a_pred - a)^2 + w (a_pred - a_tilde)^2)
      L_rtg    = mean((r_hat - R_{t+1})^2)                    (on the logged actions)
      L_exp    = mean(|tau - 1(u < 0)| u^2),  u = R_{t+1} - V  (expectile, tau = 0.99)
      L_value  = mean((r_tilde - V)^2)          (V detached: the path into beta_hat)
      loss = 1 L_action + 200 L_rtg + 100 L_exp + 100 L_value,  alpha_r = 100.

* stable variant (no value head): ``w = sigmoid(r_tilde - r_hat)`` (alpha_r = 1) and
  ``loss = L_action + 200 L_rtg + 100 mean(1 - w)`` (``r_hat`` detached inside that term).

Gradient isolation (the issue's "only gradient path into beta_hat"): ``beta_hat`` reads the
state token's features *detached*, the action loss uses ``a_tilde`` detached, and the second
forward pass runs on *detached copies* of the weights (``torch.func.functional_call``), so
``L_value`` (stable: ``mean(1 - w)``) reaches only the beta head (through ``a_tilde``), and
no other loss reaches it. The published code let that term train the whole network too.

What beta scales. Our action is ``a = log(alpha) / log(max_alpha)`` in [-1, 1] (a = 0 is the
truthful bid). The paper's action is the bid multiplier itself, so ``beta_hat x action`` there
means bidding 0.5-1.5 times the logged multiplier; we keep that meaning and scale ``alpha``:
``a_tilde = clip(a + log(beta_hat) / log(max_alpha), -1, 1)``. Scaling ``a`` instead would
raise alpha to the power beta, which explores nothing around the truthful bid (a = 0), where
good bids are.

Note on the published objective: the data satisfy ``R_{t+1} = R_t - r_t`` exactly, and R_t
is an input, so ``r_hat`` learns ``R_t - E[r_t | ...]``; an explored action with a larger
``r_tilde`` is one the model expects to earn *less* in the tick (and the value term pulls
``r_tilde`` toward an optimistic expectile of ``R_{t+1}``). We implement the formulas as
published and report what they measure.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.func import functional_call

from agents.dt import DecisionTransformer, DTAgent, DTConfig
from bidenv.validation import check_int

#: Bound on the beta head's logit: sigmoid(15) = 1 - 3e-7 is still < 1 in float32.
BETA_LOGIT_CLAMP = 15.0


@dataclasses.dataclass
class GAVEConfig(DTConfig):
    """GAVE settings (published weighting; plus :class:`agents.dt.DTConfig`'s).

    Attributes:
        value_head: Learn V (published variant); False is the stable variant.
        w_action, w_rtg, w_expectile, w_value, w_explore: Loss weights of the action MSE,
            the next-return-to-go MSE, the expectile loss of V, ``(r_tilde - V)^2`` and
            ``mean(1 - w)`` (stable variant).
        alpha_r: Temperature of ``w = sigmoid(alpha_r (r_tilde - r_hat))``.
        tau: Expectile of the value head.
        head_hidden: Hidden size of the beta / value / return heads.
    """

    value_head: bool = True
    w_action: float = 1.0
    w_rtg: float = 200.0
    w_expectile: float = 100.0
    w_value: float = 100.0
    w_explore: float = 0.0
    alpha_r: float = 100.0
    tau: float = 0.99
    head_hidden: int = 32

    def validate(self) -> None:
        super().validate()
        if self.return_baseline == "yardstick":
            raise ValueError("return_baseline='yardstick' is constant over the day, which GAVE's "
                             "return-to-go head cannot predict; use 'campaign' or 'none'")
        for name in ("w_action", "w_rtg", "w_expectile", "w_value", "w_explore", "alpha_r"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not 0 < self.tau < 1:
            raise ValueError(f"tau must be in (0, 1), got {self.tau!r}")
        check_int("head_hidden", self.head_hidden, 1)
        if not self.value_head and (self.w_expectile or self.w_value):
            raise ValueError("w_expectile and w_value must be 0 without a value head")


@dataclasses.dataclass
class GAVEStableConfig(GAVEConfig):
    """The stable variant: no value head, ``alpha_r = 1``, ``100 x mean(1 - w)``."""

    value_head: bool = False
    w_expectile: float = 0.0
    w_value: float = 0.0
    w_explore: float = 100.0
    alpha_r: float = 1.0


def _head(d: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, 1))


class GAVETransformer(DecisionTransformer):
    """The DT plus beta (state token, detached input), V (state token) and r_hat (action)."""

    def __init__(self, obs_dim: int, config: GAVEConfig):
        super().__init__(obs_dim, config)
        d = config.embed_dim
        self.beta_head = _head(d, config.head_hidden)
        self.rtg_head = _head(d, config.head_hidden)
        self.value_head = _head(d, config.head_hidden) if config.value_head else None

    def heads(self, h_r, h_s, h_a) -> dict:
        out = super().heads(h_r, h_s, h_a)
        # Logit clamped to +-15 so that float32 keeps beta strictly inside (0.5, 1.5).
        logit = self.beta_head(h_s.detach()).clamp(-BETA_LOGIT_CLAMP, BETA_LOGIT_CLAMP)
        out["beta"] = 0.5 + torch.sigmoid(logit).squeeze(-1)
        out["rtg_next"] = self.rtg_head(h_a).squeeze(-1)
        if self.value_head is not None:
            out["value"] = self.value_head(h_s).squeeze(-1)
        return out


class GAVEAgent(DTAgent):
    """GAVE with the published loss weighting (see the module docstring)."""

    name = "gave"
    config_class = GAVEConfig
    model_class = GAVETransformer

    def explore(self, actions: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """``a_tilde``: the logged multiplier times ``beta`` (``a + log(beta) / log(max)``)."""
        return (actions.detach() + torch.log(beta) / math.log(self.config.max_alpha)).clamp(
            -1.0, 1.0)

    def losses(self, ctx: dict) -> dict:
        c = self.config
        rtg, states, actions, timesteps = self.model_inputs(ctx)
        out = self.model(rtg, states, actions, timesteps)
        m = ctx["valid"].float()
        mean = lambda x: (x * m).sum() / m.sum()  # noqa: E731
        a_tilde = self.explore(actions, out["beta"])
        frozen = {k: v.detach() for k, v in self.model.named_parameters()}
        frozen.update(dict(self.model.named_buffers()))
        r_tilde = functional_call(self.model, frozen, (rtg, states, a_tilde, timesteps))[
            "rtg_next"]
        r_hat = out["rtg_next"]
        target = ctx["rtg_next"]
        w = torch.sigmoid(c.alpha_r * (r_tilde - r_hat.detach()))
        wd = w.detach()
        losses = {
            "action": mean((1 - wd) * (out["action"] - actions).pow(2)
                           + wd * (out["action"] - a_tilde.detach()).pow(2)),
            "rtg": mean((r_hat - target).pow(2)),
        }
        if c.value_head:
            v = out["value"]
            u = target - v
            losses["expectile"] = mean(torch.where(u < 0, 1.0 - c.tau, c.tau) * u.pow(2))
            losses["value"] = mean((r_tilde - v.detach()).pow(2))
        if c.w_explore:
            losses["explore"] = mean(1.0 - w)
        weights = {"action": c.w_action, "rtg": c.w_rtg, "expectile": c.w_expectile,
                   "value": c.w_value, "explore": c.w_explore}
        losses["total"] = sum(weights[k] * v for k, v in losses.items())
        losses["w_mean"] = mean(wd)
        losses["beta_mean"] = mean(out["beta"].detach())
        return losses


class GAVEStableAgent(GAVEAgent):
    """GAVE's stable variant: no value head, ``alpha_r = 1``, ``100 x mean(1 - w)``."""

    name = "gave_stable"
    config_class = GAVEStableConfig


__all__ = ["GAVEAgent", "GAVEConfig", "GAVEStableAgent", "GAVEStableConfig", "GAVETransformer"]
