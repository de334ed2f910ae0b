"""Decision transformer with critic-guided search at inference (``gas``).

Li et al., "GAS: Generative Auto-bidding with Post-training Search" (2024). A decision
transformer (:mod:`agents.dt`) proposes the tick's action ``a_0``; ``n_candidates - 1`` more
candidates scale its bid multiplier by ``u ~ U(scale_low, scale_high)`` (default 0.9-1.1;
``a_i = clip(a_0 + log(u_i) / log(max_alpha), -1, 1)``, the same "scale alpha" reading as
GAVE's exploration). ``n_critics`` critics score every candidate, a combination rule picks one,
and it is played and written back into the DT's history (its action token). With
``n_candidates = 1`` the agent is exactly its DT. With ``dt_path`` set, the DT is an already
trained ``dt`` checkpoint and only the critics are trained (post-training search).

Published behaviour (default: ``critic="transformer"``, ``combine="vote"``)
-----------------------------------------------------------------------------
**Critics that read the history.** The paper's critics are small causal transformers over the
bidding history, trained for different advertiser preferences, whose best actions are combined
by a vote. Here the ``n_critics`` critics are one :class:`EnsembleCausalCritic` (M independent
transformers with stacked weights, so all candidates x critics go through one forward pass).
Each reads the window of ``context`` ticks the DT reads, cut by the same
:func:`agents.dt.context_window` / :meth:`agents.dt.DTAgent.sample_windows` machinery (the
critic's arrays are extra keys of the DT's ``self.data`` and ``self._day``), as interleaved
tokens ``(E_t, s_t, a_t)`` with tick embeddings, and outputs ``Q_m(history, a_t)`` at the
action token ``a_t``: in training at every real tick of the window (the logged action), at
inference at the last tick with the candidate action in the action slot.

One deviation from the DT's tokens: the return token. The DT's ``R_t`` is the day's future
score ``(S_T - S_{t-1}) / (u b)`` (training) or the target minus what was earned (inference),
which *is* the critic's Monte-Carlo target, so a critic reading it learns ``Q = R_t`` and
ignores the action (and at inference every candidate ties). The critic's return token is
instead the score earned so far ``E_t = S_{t-1} / (u b) = R_0 - R_t`` (0 at tick 0, from
``update()``'s score or the observation's estimate at inference, exactly as the DT tracks it),
which carries the history's information without the future.

**Preference indications.** Critic ``m`` is trained for the preference weighting
``lambda_m`` (``critic_lambdas``; default evenly spaced in [0, 1]: (0, 0.5, 1) for 3 critics)
between the score and the constraint: its per-tick reward is::

    r_t^m = (S_t - S_{t-1}) / (u b)  -  lambda_m * (C_{t+1} - C_t) / b

with ``u`` the campaign's score unit (:func:`bidenv.scoring.score_unit`, the unit of the DT's
tokens and of :func:`agents.critics.episode_scales`), ``b`` the DT's campaign baseline (1
unless ``return_baseline="campaign"``) and ``C_t`` the constraint overshoot before tick ``t``:
the money spent beyond what the outcome is worth at the target, as a share of the budget,
``C = spent * max(0, 1 - 1 / ratio)`` from the observation's ``budget_left`` and
``constraint_ratio`` (CPA / target or target / ROI). ``C`` is in the same unit as ``S / u``
(what the budget buys at the target), so ``lambda = 1`` trades one unit of score for one unit
of overspend. Budget-only days have no overshoot. The target is the undiscounted Monte-Carlo
return ``Q_m(h_t, a_t) = sum_{k >= t} r_k^m`` (the DT's return-to-go is undiscounted too; the
penalised score the environment reports is what it sums), regressed with a squared loss.
This reproduces the *idea* of the paper's preference-specific critics, not its exact scheme:
the paper's preference/"policy indication" inputs and its constraint definition could not be
checked against the paper's text from here, and its real-world data has per-tick cost and
conversions, which :class:`bidenv.offline.Trajectories` does not carry. Known approximations:
the overshoot comes from the (realised, capped at 10) ``constraint_ratio`` observation, and
the last tick's own overshoot increment is unknown (no observation follows it) and taken as 0.

**Voting with a margin fallback** (:func:`vote`). Each critic votes for its best candidate
(ties: the lower index, so the proposal first); the candidate with most votes wins (ties: the
proposal, then the lower index). The proposal ``a_0`` is still kept unless a strict majority of
critics score the winner more than ``margin`` above the proposal (``margin_mode="absolute"``:
in the critics' units, a full day at the target is about 1; ``"relative"``: ``margin`` times
``|Q_m(a_0)|``), so near-ties never move the action. The paper's vote has no such fallback as
far as we know; it is this project's addition, and the default ``margin = 1e-3`` (a thousandth
of a day at the target) was chosen by reasoning about the critics' scale, not tuned.

Legacy behaviour (``critic="mlp"``, ``combine="sum_minmax"``; checkpoints written before these
options load with them, see :meth:`GASAgent.read_checkpoint`): ``n_critics`` independently
trained IQL critics (:class:`agents.critics.QVCritic`: twin Q and an expectile value head,
``gamma``, ``polyak``, on the normalised current state only, rewards the tick's score increment
over the campaign's score unit) differing only by seed and batches; each critic's scores are
min-max normalised over the candidates (all equal: 0) and summed, the best sum is played (no
fallback; ``margin`` is not used). Their Q networks are stacked with
``torch.func.stack_module_state`` and evaluated under ``vmap``. ``critic_hidden``, ``gamma``,
``tau_expectile`` and ``polyak`` only concern these critics; ``critic_lambdas``,
``critic_embed_dim``, ``critic_layers``, ``critic_heads`` only the transformer ones.

Training (one :func:`agents.common.fit`): every step is one DT step on a batch of windows
(skipped with ``dt_path``) and ``critic_updates`` critic updates (transformer: each member on
its own ``critic_batch_size`` windows; mlp: each critic on its own batch of transitions).
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F

from agents.common import EnsembleLinear
from agents.critics import QVCritic, transition_tensors
from agents.dt import (
    DTAgent,
    DTConfig,
    campaign_baselines,
    campaign_features,
    context_window,
    normalised_returns_to_go,
)
from bidenv.offline import Normalizer, Trajectories
from bidenv.validation import check_choice, check_int, check_number

#: DT settings that must agree between a GAS agent and the ``dt_path`` checkpoint it uses.
DT_SHARED = ("context", "embed_dim", "n_layers", "n_heads", "max_ticks", "expected",
             "max_alpha", "return_baseline", "baseline_neighbors", "opportunity_features")
#: Values given to fields missing from a checkpoint's config (written before they existed):
#: the behaviour of that time (state-only IQL critics, min-max sum, no fallback).
LEGACY_DEFAULTS = {"critic": "mlp", "combine": "sum_minmax", "margin": 0.0,
                   "margin_mode": "absolute", "critic_lambdas": [], "critic_batch_size": 256,
                   "critic_updates": 4}
#: ``critic_batch_size`` / ``critic_updates`` when given as 0 (auto), per critic kind.
AUTO_CRITIC_BATCH = {"mlp": 256, "transformer": 64}
AUTO_CRITIC_UPDATES = {"mlp": 4, "transformer": 1}


@dataclasses.dataclass
class GASConfig(DTConfig):
    """GAS settings (plus :class:`agents.dt.DTConfig`'s).

    Attributes:
        n_candidates: Candidates per tick (the DT's proposal and scaled copies); 1 is the DT.
        n_critics: Critics M.
        scale_low, scale_high: Range of the multiplier scale of the extra candidates.
        critic: ``"transformer"`` (history critics with preference weights, default) or
            ``"mlp"`` (legacy state-only IQL critics).
        combine: ``"vote"`` (majority vote with the margin fallback, default) or
            ``"sum_minmax"`` (legacy: sum of per-critic min-max normalised scores).
        margin: How much a majority of critics must score the vote's winner above the proposal
            for it to replace the proposal (``"vote"`` only), >= 0.
        margin_mode: ``"absolute"`` (critics' units) or ``"relative"`` (times ``|Q(a_0)|``).
        critic_lambdas: Preference weight of each transformer critic (constraint overshoot
            against score, see the module docstring), one per critic, each >= 0; empty: evenly
            spaced in [0, 1].
        critic_embed_dim, critic_layers, critic_heads: Transformer critic sizes.
        critic_hidden: Hidden sizes of each mlp critic head.
        critic_lr: Adam step size of the critics.
        critic_batch_size: Windows (transformer) or transitions (mlp) per critic update;
            0: 64 windows / 256 transitions.
        critic_updates: Updates of the critics per training step; 0: 1 (transformer) / 4
            (mlp: with the DT's 2,000 steps, 8,000 critic updates; on held-out tuning days
            8,000 updates gave 82.8% of the oracle over the six default scenarios against
            80.8% for 2,000).
        gamma: mlp critics' discount (the transformer critics' returns are undiscounted).
        tau_expectile: Expectile of the mlp critics' value step.
        polyak: mlp critics' target update rate.
        search_seed: Seed of the candidates' scales (reset every day).
        dt_path: Optional checkpoint directory of a trained ``dt`` (same network sizes):
            its weights and state normaliser are taken as they are and training only fits
            the critics (GAS is a *post-training* search). Empty: train the DT too.
    """

    n_candidates: int = 5
    n_critics: int = 3
    scale_low: float = 0.9
    scale_high: float = 1.1
    critic: str = "transformer"
    combine: str = "vote"
    margin: float = 1e-3
    margin_mode: str = "absolute"
    critic_lambdas: tuple = ()
    critic_embed_dim: int = 32
    critic_layers: int = 2
    critic_heads: int = 2
    critic_hidden: tuple = (256, 256)
    critic_lr: float = 3e-4
    critic_batch_size: int = 0
    critic_updates: int = 0
    gamma: float = 0.99
    tau_expectile: float = 0.7
    polyak: float = 0.01
    search_seed: int = 0
    dt_path: str = ""

    def validate(self) -> None:
        super().validate()
        for name in ("n_candidates", "n_critics", "critic_embed_dim", "critic_layers",
                     "critic_heads"):
            check_int(name, getattr(self, name), 1)
        for name in ("critic_batch_size", "critic_updates"):
            check_int(name, getattr(self, name), 0)
        if not (0 < self.scale_low <= self.scale_high and math.isfinite(self.scale_high)):
            raise ValueError(f"scale_low, scale_high must satisfy 0 < low <= high, got "
                             f"{self.scale_low!r}, {self.scale_high!r}")
        check_choice("critic", self.critic, ("transformer", "mlp"))
        check_choice("combine", self.combine, ("vote", "sum_minmax"))
        check_choice("margin_mode", self.margin_mode, ("absolute", "relative"))
        check_number("margin", self.margin, 0)
        if self.critic_embed_dim % self.critic_heads:
            raise ValueError(f"critic_heads must divide critic_embed_dim "
                             f"({self.critic_embed_dim}), got {self.critic_heads!r}")
        if isinstance(self.critic_lambdas, (str, bytes)) or not hasattr(
                self.critic_lambdas, "__iter__"):
            raise ValueError(f"critic_lambdas must be a list of numbers >= 0, got "
                             f"{self.critic_lambdas!r}")
        self.critic_lambdas = tuple(self.critic_lambdas)
        for v in self.critic_lambdas:
            check_number("critic_lambdas", v, 0)
        if self.critic_lambdas and len(self.critic_lambdas) != self.n_critics:
            raise ValueError(f"critic_lambdas must hold one weight per critic (n_critics="
                             f"{self.n_critics}), got {list(self.critic_lambdas)!r}")
        self.critic_hidden = tuple(self.critic_hidden)
        if not self.critic_hidden or any(not isinstance(h, int) or h < 1
                                         for h in self.critic_hidden):
            raise ValueError(f"critic_hidden must be positive integers, got "
                             f"{self.critic_hidden!r}")
        check_number("gamma", self.gamma, 0, 1)
        check_number("tau_expectile", self.tau_expectile, 0, 1, low_open=True, high_open=True)
        check_number("polyak", self.polyak, 0, 1, low_open=True)
        check_number("critic_lr", self.critic_lr, 0, 1, low_open=True, high_open=True)
        if not isinstance(self.dt_path, str):
            raise ValueError(f"dt_path must be a path string ('' for none), got "
                             f"{self.dt_path!r}")
        if not isinstance(self.search_seed, int):
            raise ValueError(f"search_seed must be an integer, got {self.search_seed!r}")

    @property
    def lambdas(self) -> tuple:
        """The preference weight of each critic (``critic_lambdas`` or evenly spaced 0..1)."""
        if self.critic_lambdas:
            return tuple(float(v) for v in self.critic_lambdas)
        M = self.n_critics
        return tuple(m / (M - 1) for m in range(M)) if M > 1 else (0.0,)

    @property
    def batch_per_critic(self) -> int:
        return self.critic_batch_size or AUTO_CRITIC_BATCH[self.critic]

    @property
    def updates_per_step(self) -> int:
        return self.critic_updates or AUTO_CRITIC_UPDATES[self.critic]


# --------------------------------------------------------------------------------------------
# Combination rules: (M critics, B states, N candidates) scores -> the chosen candidate
# --------------------------------------------------------------------------------------------
def sum_minmax(scores: torch.Tensor) -> torch.Tensor:
    """Min-max normalise (M, B, N) scores per critic over candidates, sum: (B, N)."""
    lo = scores.min(dim=-1, keepdim=True).values
    span = scores.max(dim=-1, keepdim=True).values - lo
    norm = torch.where(span > 0, (scores - lo) / torch.where(span > 0, span, 1.0),
                       torch.zeros_like(scores))
    return norm.sum(dim=0)


def vote(scores: torch.Tensor, margin: float = 0.0, relative: bool = False) -> torch.Tensor:
    """The voted candidate of each state, (B,) long, from (M, B, N) critic scores.

    Each critic votes for its argmax (ties: the lower index, so the proposal 0 first); the
    candidate with most votes wins (ties: the lower index, so the proposal first). The winner
    ``w`` replaces the proposal only if more than half of the critics score it more than
    ``margin`` above the proposal: ``Q_m(w) - Q_m(0) > margin`` (or ``> margin * |Q_m(0)|``
    with ``relative``); otherwise 0 is returned.
    """
    M, B, N = scores.shape
    best = torch.argmax(scores, dim=-1)  # (M, B); torch returns the first maximum
    votes = F.one_hot(best, N).sum(dim=0)  # (B, N)
    winner = torch.argmax(votes, dim=-1)  # (B,), first maximum: ties go to the lower index
    gain = scores.gather(2, winner.view(1, B, 1).expand(M, B, 1))[..., 0] - scores[..., 0]
    need = margin * scores[..., 0].abs() if relative else torch.full_like(gain, margin)
    agree = (gain > need).sum(dim=0)  # (B,)
    return torch.where(2 * agree > M, winner, torch.zeros_like(winner))


# --------------------------------------------------------------------------------------------
# History critics: M causal transformers with stacked weights
# --------------------------------------------------------------------------------------------
def _ens(layer: EnsembleLinear, x: torch.Tensor) -> torch.Tensor:
    """Apply an :class:`EnsembleLinear` to (M, ..., in): (M, ..., out)."""
    y = layer(x.reshape(x.shape[0], -1, x.shape[-1]))
    return y.reshape(*x.shape[:-1], y.shape[-1])


class EnsembleLayerNorm(nn.Module):
    """M independent layer norms over the last dimension of (M, ..., d)."""

    def __init__(self, members: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, dim))
        self.bias = nn.Parameter(torch.zeros(members, dim))

    def forward(self, x):
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        return (F.layer_norm(x, x.shape[-1:]) * self.weight.view(shape)
                + self.bias.view(shape))


class EnsembleBlock(nn.Module):
    """Pre-norm causal transformer block of M members, on (M, B, L, d)."""

    def __init__(self, members: int, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = EnsembleLayerNorm(members, dim), EnsembleLayerNorm(members, dim)
        self.qkv = EnsembleLinear(dim, 3 * dim, members)
        self.proj = EnsembleLinear(dim, dim, members)
        self.fc1 = EnsembleLinear(dim, 4 * dim, members)
        self.fc2 = EnsembleLinear(4 * dim, dim, members)

    def forward(self, x):
        M, B, L, D = x.shape
        q, k, v = _ens(self.qkv, self.ln1(x)).view(M * B, L, 3, self.heads,
                                                   D // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + _ens(self.proj, y.transpose(1, 2).reshape(M, B, L, D))
        return x + _ens(self.fc2, F.gelu(_ens(self.fc1, self.ln2(x))))


class EnsembleCausalCritic(nn.Module):
    """M independent causal-transformer critics ``Q_m(history, a)`` evaluated together.

    ``forward(earned, states, actions, timesteps)`` takes (M, B, K) earned-score tokens,
    (M, B, K, F) normalised states, (M, B, K) actions and (M, B, K) long ticks (member m reads
    row m; :meth:`shared` broadcasts one set of windows to every member) and returns (M, B, K):
    ``Q_m`` read at the action token of each tick (causal: it sees the window up to and
    including that tick's action). Every weight has a leading member dimension, so members
    never share parameters or gradients.
    """

    def __init__(self, obs_dim: int, members: int, embed_dim: int = 32, n_layers: int = 2,
                 n_heads: int = 2, max_ticks: int = 48):
        super().__init__()
        M, d = members, embed_dim
        self.members = M
        self.embed_earned = EnsembleLinear(1, d, M)
        self.embed_state = EnsembleLinear(obs_dim, d, M)
        self.embed_action = EnsembleLinear(1, d, M)
        self.embed_time = nn.Parameter(torch.randn(M, max_ticks, d))
        self.ln_in = EnsembleLayerNorm(M, d)
        self.blocks = nn.ModuleList(EnsembleBlock(M, d, n_heads) for _ in range(n_layers))
        self.ln_out = EnsembleLayerNorm(M, d)
        self.q_head = EnsembleLinear(d, 1, M)

    def forward(self, earned, states, actions, timesteps):
        M, B, K = earned.shape
        time = self.embed_time[torch.arange(M).view(M, 1, 1), timesteps]  # (M, B, K, d)
        tokens = torch.stack([_ens(self.embed_earned, earned[..., None]) + time,
                              _ens(self.embed_state, states) + time,
                              _ens(self.embed_action, actions[..., None]) + time], dim=3)
        x = self.ln_in(tokens.reshape(M, B, 3 * K, -1))
        for block in self.blocks:
            x = block(x)
        x = self.ln_out(x).reshape(M, B, K, 3, -1)[:, :, :, 2]
        return _ens(self.q_head, x).squeeze(-1)

    def shared(self, earned, states, actions, timesteps):
        """:meth:`forward` with the same (B, K, ...) windows for every member."""
        M = self.members
        return self(*(x.unsqueeze(0).expand(M, *x.shape)
                      for x in (earned, states, actions, timesteps)))


def constraint_overshoot(obs: np.ndarray) -> np.ndarray:
    """Overshoot ``C = spent * max(0, 1 - 1 / ratio)`` before each tick from raw observations
    (..., F): the spend beyond what the outcome is worth at the target, as a share of the
    budget (0 with nothing spent or no constraint). Same unit as ``S / score_unit``."""
    from agents.base import FEATURE_INDEX

    spent = 1.0 - obs[..., FEATURE_INDEX["budget_left"]].astype(np.float64)
    ratio = obs[..., FEATURE_INDEX["constraint_ratio"]].astype(np.float64)
    over = np.where(ratio > 1.0, 1.0 - 1.0 / np.where(ratio > 1.0, ratio, 1.0), 0.0)
    return np.clip(spent, 0.0, 1.0) * over


def critic_arrays(train: Trajectories, baselines: np.ndarray, *,
                  expected: bool = True) -> dict:
    """The transformer critics' (E, T) arrays: ``earned`` (score before the tick, the return
    token), ``score_togo`` and ``over_togo`` (the Monte-Carlo returns of the score and of the
    constraint overshoot from the tick on), all over ``u b`` (``over_togo``: over ``b``; it is
    in score units already). A critic with weight lambda regresses on
    ``score_togo - lambda * over_togo``. Zero on padded ticks."""
    rtg = normalised_returns_to_go(train, expected=expected) / baselines[:, None]
    c = constraint_overshoot(train.obs)  # (E, T), before each tick
    last = c[np.arange(len(c)), train.lengths - 1][:, None]  # last tick's own increment: 0
    mask = train.mask
    return {"earned": (rtg[:, :1] - rtg) * mask, "score_togo": rtg * mask,
            "over_togo": (last - c) / baselines[:, None] * mask}


# --------------------------------------------------------------------------------------------
# Agent
# --------------------------------------------------------------------------------------------
class GASAgent(DTAgent):
    """DT + critic-guided search over candidate actions (see the module docstring)."""

    name = "gas"
    config_class = GASConfig

    def build(self) -> None:
        super().build()
        c = self.config
        self.critics = []
        if c.critic == "transformer":
            seed = int(torch.randint(0, 2**31 - 1, ()))
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.critic_net = EnsembleCausalCritic(
                    self.obs_dim, c.n_critics, c.critic_embed_dim, c.critic_layers,
                    c.critic_heads, c.max_ticks)
            self.nets["critics"] = self.critic_net
            self.optims["critics"] = torch.optim.Adam(self.critic_net.parameters(),
                                                      lr=c.critic_lr)
            self.register_lambdas()
            return
        seeds = torch.randint(0, 2**31 - 1, (c.n_critics,)).tolist()
        for i, s in enumerate(seeds):
            with torch.random.fork_rng():
                torch.manual_seed(s)
                critic = QVCritic(self.obs_dim, hidden=c.critic_hidden, gamma=c.gamma,
                                  tau_expectile=c.tau_expectile, polyak=c.polyak,
                                  lr=c.critic_lr)
            self.critics.append(critic)
            self.nets[f"critic{i}"] = critic
            for k, opt in critic.optimizers().items():
                self.optims[f"critic{i}.{k}"] = opt
        self._q_base = copy.deepcopy(self.critics[0].q_net).to("meta")

    def register_lambdas(self) -> None:
        self.lambdas = torch.tensor(self.config.lambdas, dtype=torch.float32)

    @classmethod
    def read_checkpoint(cls, path) -> tuple[dict, dict]:
        meta, tensors = super().read_checkpoint(path)
        # Written before the history critics and the vote: the behaviour of that time.
        for k, v in LEGACY_DEFAULTS.items():
            meta["config"].setdefault(k, v)
        return meta, tensors

    def prepare(self, train: Trajectories) -> None:
        c = self.config
        if c.dt_path:
            meta, tensors = DTAgent.read_checkpoint(c.dt_path)
            for k in DT_SHARED:
                if meta["config"].get(k) != getattr(c, k):
                    raise ValueError(f"dt_path: the DT has {k}={meta['config'].get(k)!r}, "
                                     f"this agent {getattr(c, k)!r}")
            self.model.load_state_dict(tensors["net.model"])
            self.normalizer = Normalizer.from_dict(meta["normalizer"])
            target = float(self.model.target_base)
        super().prepare(train)
        if c.dt_path:
            self.model.target_base.fill_(target)  # the DT's own target, not recomputed
        if c.critic == "mlp":
            self.transitions = transition_tensors(train, self.normalizer, expected=c.expected)
            return
        # The critics' arrays ride along in the DT's data, windowed by the same machinery.
        if c.return_baseline == "campaign":
            r0 = normalised_returns_to_go(train, expected=c.expected)[:, 0]
            feats = np.array([campaign_features(cp) for cp in train.campaigns])
            b = campaign_baselines(feats, r0, c.baseline_neighbors)
        else:
            b = np.ones(len(train.lengths))
        for k, v in critic_arrays(train, b, expected=c.expected).items():
            self.data[k] = torch.as_tensor(v, dtype=torch.float32)

    def critic_targets(self, ctx: dict) -> torch.Tensor:
        """(M, B, K) Monte-Carlo targets of each critic for (B, K) windows."""
        lam = self.lambdas.view(-1, 1, 1)
        return ctx["score_togo"].unsqueeze(0) - lam * ctx["over_togo"].unsqueeze(0)

    def critic_loss(self, ctx: dict) -> torch.Tensor:
        """Sum over members of the mean squared error at the real ticks; ``ctx`` holds
        (M, B, K, ...) windows (member m trains on row m)."""
        q = self.critic_net(ctx["earned"], ctx["states"], ctx["actions"], ctx["timesteps"])
        lam = self.lambdas.view(-1, 1, 1)
        target = ctx["score_togo"] - lam * ctx["over_togo"]
        m = ctx["valid"].float()
        return (((q - target) ** 2 * m).sum(dim=(1, 2)) / m.sum(dim=(1, 2))).sum()

    def train_step(self, rng: np.random.Generator) -> dict:
        c = self.config
        logs = {} if c.dt_path else super().train_step(rng)
        if c.critic == "transformer":
            M, B = c.n_critics, c.batch_per_critic
            keys = ("earned", "states", "actions", "timesteps", "valid", "score_togo",
                    "over_togo")
            for _ in range(c.updates_per_step):
                w = self.sample_windows(rng, M * B)
                loss = self.critic_loss({k: w[k].reshape(M, B, *w[k].shape[1:])
                                         for k in keys})
                opt = self.optims["critics"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                logs["critic_loss"] = float(loss.detach()) / M
            return logs
        for _ in range(c.updates_per_step):
            for i, critic in enumerate(self.critics):
                b = self.transitions.sample(rng, c.batch_per_critic)
                out = critic.update(b.obs, b.actions, b.rewards, b.next_obs,
                                    b.dones)
                if i == 0:
                    logs.update({f"critic_{k}": v for k, v in out.items()})
        return logs

    # -- search -----------------------------------------------------------------------------
    def score_candidates(self, inputs, actions: torch.Tensor) -> torch.Tensor:
        """Every critic's score of N candidates per state, in one batched pass: (M, B, N).

        Args:
            inputs: ``critic="mlp"``: (B, F) normalised states; ``"transformer"``: a dict of
                (B, K) windows (``earned``, ``states``, ``actions``, ``timesteps``, ``last``:
                :func:`agents.dt.context_window`'s output), whose last tick gets each
                candidate as its action.
            actions: (B, N) candidate actions.
        """
        if self.config.critic == "transformer":
            return self.score_history(inputs, actions)
        obs = inputs
        B, N = actions.shape
        params, buffers = stack_module_state([c.q_net for c in self.critics])
        base = self._q_base

        def q_of(p, b):
            return functional_call(base, (p, b), (obs, actions))

        q = vmap(q_of)(params, buffers)  # (M, 2, B, N): the twin heads of each critic
        return q.min(dim=1).values.reshape(len(self.critics), B, N)

    def score_history(self, ctx: dict, actions: torch.Tensor) -> torch.Tensor:
        """(M, B, N) transformer-critic scores: the B windows, each repeated N times with its
        last tick's action set to each candidate, go through every member at once."""
        B, N = actions.shape
        rows = torch.arange(B).repeat_interleave(N)
        acts = ctx["actions"][rows].clone()
        last = ctx["last"][rows]
        acts[torch.arange(B * N), last] = actions.reshape(-1).to(acts.dtype)
        q = self.critic_net.shared(ctx["earned"][rows], ctx["states"][rows], acts,
                                   ctx["timesteps"][rows])  # (M, B N, K)
        return q[:, torch.arange(B * N), last].reshape(-1, B, N)

    def candidates(self, a0: float) -> torch.Tensor:
        """(1, N) candidate actions: the proposal, then scaled copies."""
        c = self.config
        u = self._search_rng.uniform(c.scale_low, c.scale_high, size=c.n_candidates - 1)
        a = np.clip(a0 + np.log(u) / math.log(c.max_alpha), -1.0, 1.0)
        return torch.as_tensor(np.r_[a0, a], dtype=torch.float32)[None, :]

    @staticmethod
    def combine(scores: torch.Tensor) -> torch.Tensor:
        """Legacy rule: min-max normalise (M, B, N) scores per critic, sum: (B, N)."""
        return sum_minmax(scores)

    def pick(self, scores: torch.Tensor) -> torch.Tensor:
        """The chosen candidate index of each state, (B,), under ``config.combine``."""
        c = self.config
        if c.combine == "vote":
            return vote(scores, c.margin, relative=c.margin_mode == "relative")
        return torch.argmax(sum_minmax(scores), dim=-1)

    def reset(self, campaign: dict | None = None) -> None:
        super().reset(campaign)
        self._day["earned"] = torch.zeros(1, self.config.max_ticks)
        self._search_rng = np.random.default_rng(self.config.search_seed)

    def context_now(self, obs) -> dict:
        ctx = super().context_now(obs)
        t = self.tick
        # The critics' return token: the score earned before this tick (see the docstring).
        self._day["earned"][0, t] = self._score if t > 0 else 0.0
        ctx["earned"] = context_window({"earned": self._day["earned"]}, torch.tensor([t]),
                                       self.config.context)["earned"]
        return ctx

    def choose(self, obs, ctx: dict) -> float:
        a0 = super().choose(obs, ctx)
        if self.config.n_candidates == 1:
            return a0
        cands = self.candidates(a0)
        inputs = ctx if self.config.critic == "transformer" else self.norm_obs(obs)[None, :]
        return float(cands[0, int(self.pick(self.score_candidates(inputs, cands))[0])])
