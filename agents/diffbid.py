"""Diffusion planner over the day's future states with an inverse-dynamics bid head (``diffbid``).

Guo, Huo, Zhang, Zhang, Li, Zheng et al., "AIGB: Generative Auto-bidding via Diffusion
Modeling" (KDD 2024; the DiffBid family), after the Decision Diffuser (Ajay et al., "Is
Conditional Generative Modeling all you need for Decision-Making?", ICLR 2023). Two parts:

* a conditional denoising diffusion model (DDPM, Ho et al., "Denoising Diffusion Probabilistic
  Models", NeurIPS 2020) of the next ``horizon`` normalised states ``x0 = (s_{t+1} ..
  s_{t+H})`` (all features, or the subset ``plan_features``), conditioned on the current state
  (the last ``context`` states), the campaign (log budget, log bid scale, ROI flag, see
  :func:`agents.dt.campaign_features`) and the return-to-go token ``R_t``. It predicts the
  noise ``eps`` of ``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps`` (``k`` a diffusion step,
  ``abar`` the cumulative product of ``1 - beta``, :func:`noise_schedule`), or by default
  (``prediction="x0"``) the clean plan ``x0`` itself;
* an inverse-dynamics head ``a_t = tanh(f(s_t, s_{t+1}))`` (an MLP of sizes ``hidden``) trained
  on the logged consecutive states, which turns the planned next state into the action, in
  the action space [-1, 1] of :func:`bidenv.scoring.action_to_alpha`.

Return token. Exactly the decision transformer's (:mod:`agents.dt`): the agent subclasses
:class:`agents.dt.DTAgent` and reuses its ``prepare`` (tokens ``R_t / (u b)`` with the score
unit ``u`` and the campaign baseline ``b``, ``return_baseline`` and ``expected`` as there),
``day_target`` / ``training_targets`` (the inference target: ``target_scale`` x the
``target_quantile`` quantile of the training days' first tokens), ``update`` and the token
bookkeeping of ``context_now`` (target minus the score earned so far). Only the model and
:meth:`DiffBidAgent.choose` differ.

Classifier-free guidance (Ho & Salimans, "Classifier-Free Diffusion Guidance", 2022). In
training the return token is dropped (its embedding multiplied by 0) with probability
``cond_dropout``; at inference the noise estimate is ``(1 + w) eps(x, c, R) - w eps(x, c)``
with ``w = guidance`` (0: the plain conditional model; the Decision Diffuser's ``omega`` is
``1 + w``). The state and campaign condition are never dropped.

Sampling. DDIM (Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021) on
``sampling_steps`` of the ``diffusion_steps`` training steps, evenly spaced and ending at the
noisiest (:func:`sampling_timesteps`, :func:`ddim_sample`); ``eta = 0`` (default) is the
deterministic sampler, with the predicted ``x0`` clipped to ``+-clip_denoised`` standard
deviations. The initial noise (scaled by ``init_noise``, 0 by default) comes from a generator
seeded with ``sample_seed`` at every ``reset``, so the same checkpoint plays the same day the
same way. One ``act()`` is
``sampling_steps`` MLP evaluations (batch 2 with guidance) plus the inverse head; run this
module (``python -m agents.diffbid``) to time it against the DT's ``act()``.

Parameterisation and initial noise (defaults ``prediction="x0"``, ``init_noise=0``). With
only ``diffusion_steps=20`` the cosine schedule's last ``abar`` is 6e-6, so a noise predictor
recovers ``x0 = (x_K - sqrt(1 - abar) eps) / sqrt(abar)`` by dividing its error by 0.0025; the
first DDIM step's ``x0`` was clipped noise at +-``clip_denoised`` and the plan never recovered.
Measured on 2,000 logged ticks of the 600 training days (``/tmp/exp/pb_exp.parquet``, half
pid_budget, half hindsight expert; 2,000 steps, ``target_scale=0.75``): the eps model's planned
``s_{t+1}`` was off by an RMSE of 2.7-3.4 standard deviations on every feature (even
``time_left`` and ``is_roi``, which the condition fixes), worse than ignoring the plan, so the
inverse head, accurate on real pairs (action RMSE 0.077, correlation 0.93), turned it into
actions of mean -0.28, std 0.68 (data: 0.04, 0.21; RMSE 0.75 to the logged action) that jumped
between -0.97 and +0.43 tick to tick. Predicting ``x0`` directly (the Diffuser's
``predict_epsilon=False``; the noise for the DDIM update is derived from it) brought the
planned-state RMSE to 0.04-0.87 (below the std of the real one-tick change on every feature but
the conversion means) and the planned actions to mean 0.03, std 0.18 (RMSE 0.13, correlation
0.81). On the 60 tuning days (Lite env, seeds 3,000,000+, six default scenarios x 10;
pid_budget 79.7%, DT 74.0%) the percent of the yardstick went from 19-20% to 62.6% (spend
88.7%); guidance 0 / 1 gave 63.4 / 60.3, ``target_scale`` 1 / 0.5 gave 63.2 / 61.6 (noise
level). Starting DDIM from zeros (``init_noise=0``: with ``eta=0`` one deterministic plan per
condition, the model's "mean" plan rather than a draw of the behaviour mix) gave 65.3% (spend
88.4%; 0.5: 64.1%) and halved the tick-to-tick change of the actions (mean |a_t - a_{t-1}|
0.027 against 0.046 on day 3,000,000). Training 6,000 steps instead of 2,000 did not help
(64.5%, spend 89.4%), so 2,000 steps (about 50 s on one core) is enough.

Ends of days. Future ticks past a day's last tick repeat its last state (the day is over, the
state stays), in training and so in the plans. The inverse head is trained on real
consecutive pairs only, so at a day's last tick it extrapolates.

Inherited DT fields that this model does not use: ``embed_dim``, ``n_layers``, ``n_heads``,
``attention_dropout``. ``context`` is the number of past states in the condition, ``dropout``
the denoiser's residual dropout, ``hidden`` the inverse head's hidden sizes.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agents.common import mlp
from agents.dt import DTAgent, DTConfig, campaign_features
from bidenv.features import FEATURE_NAMES, OPPORTUNITY_FEATURES
from bidenv.offline import Trajectories
from bidenv.validation import check_choice, check_int, check_number

#: Size of the sinusoidal embedding of the diffusion step.
TIME_DIM = 32
#: Bound on the standardised campaign features of the condition (unseen campaigns).
CAMPAIGN_CLIP = 5.0


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class DiffBidConfig(DTConfig):
    """DiffBid settings (plus :class:`agents.dt.DTConfig`'s return-token settings).

    Attributes:
        horizon: Future states planned, ``s_{t+1} .. s_{t+H}``.
        plan_features: Names of the state features planned (``()``: all of them); the inverse
            head reads the whole current state and these features of the next.
        diffusion_steps: Diffusion steps ``K`` of training.
        sampling_steps: DDIM steps at inference (at most ``diffusion_steps``).
        schedule: ``"cosine"`` (Nichol & Dhariwal 2021, betas clipped at 0.999) or
            ``"linear"`` (betas evenly from ``beta_start`` to ``beta_end``, Ho et al. 2020).
        beta_start, beta_end: The linear schedule's first and last beta.
        width: Width of the denoiser (a residual MLP).
        n_blocks: Residual blocks of the denoiser.
        cond_dropout: Probability of dropping the return token in training (guidance).
        guidance: Classifier-free guidance weight ``w`` at inference (0: none).
        eta: DDIM noise (0: deterministic sampling, 1: DDPM-like).
        clip_denoised: Bound on the predicted ``x0`` in sampling, in normalised units (0: none).
        id_weight: Weight of the inverse-dynamics loss (added to the diffusion loss).
        sample_seed: Seed of the sampling noise, reset at the start of every day.
        prediction: What the denoiser outputs: ``"x0"`` (default, the clean plan; the
            Diffuser's ``predict_epsilon=False``) or ``"eps"`` (the noise, Ho et al. 2020;
            checkpoints written before this option load as ``"eps"``). See the module
            docstring for why ``"eps"`` plans badly with few diffusion steps.
        init_noise: Scale of the initial noise ``x_K`` of sampling (1: the model's prior;
            0: start from zeros, which with ``eta = 0`` gives one deterministic, "mean" plan
            per condition; in between: a lower temperature).
    """

    batch_size: int = 256
    context: int = 1
    dropout: float = 0.0
    grad_clip: float = 1.0
    horizon: int = 8
    plan_features: tuple = ()
    diffusion_steps: int = 20
    sampling_steps: int = 5
    schedule: str = "cosine"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    width: int = 256
    n_blocks: int = 2
    cond_dropout: float = 0.25
    guidance: float = 0.2
    eta: float = 0.0
    clip_denoised: float = 5.0
    id_weight: float = 1.0
    sample_seed: int = 0
    prediction: str = "x0"
    init_noise: float = 0.0

    def validate(self) -> None:
        super().validate()
        check_int("horizon", self.horizon, 1)
        check_int("diffusion_steps", self.diffusion_steps, 1, 10_000)
        check_int("sampling_steps", self.sampling_steps, 1, self.diffusion_steps)
        check_choice("schedule", self.schedule, ("cosine", "linear"))
        check_number("beta_start", self.beta_start, 0, 1, low_open=True, high_open=True)
        check_number("beta_end", self.beta_end, self.beta_start, 1, high_open=True)
        check_int("width", self.width, 1)
        check_int("n_blocks", self.n_blocks, 0)
        check_number("cond_dropout", self.cond_dropout, 0, 1, high_open=True)
        check_number("guidance", self.guidance, 0, 100)
        check_number("eta", self.eta, 0, 1)
        check_number("clip_denoised", self.clip_denoised, 0)
        check_number("id_weight", self.id_weight, 0)
        check_int("sample_seed", self.sample_seed, 0)
        check_choice("prediction", self.prediction, ("x0", "eps"))
        check_number("init_noise", self.init_noise, 0, 1)
        if isinstance(self.plan_features, str) or not isinstance(self.plan_features,
                                                                 (tuple, list)):
            raise ValueError(f"plan_features must be a list of state feature names, got "
                             f"{self.plan_features!r}")
        self.plan_features = tuple(self.plan_features)
        names = state_feature_names(self.opportunity_features)
        for name in self.plan_features:
            check_choice("plan_features", name, names)
        if len(set(self.plan_features)) != len(self.plan_features):
            raise ValueError(f"plan_features must not repeat a name, got {self.plan_features!r}")


def state_feature_names(opportunity_features: bool = False) -> tuple:
    """The names of the state's features (the environment's, then the opportunity ones)."""
    return tuple(FEATURE_NAMES) + (tuple(OPPORTUNITY_FEATURES) if opportunity_features else ())


def plan_indices(config: DiffBidConfig, obs_dim: int) -> list:
    """Indices of the planned features in the state vector."""
    if not config.plan_features:
        return list(range(obs_dim))
    names = state_feature_names(config.opportunity_features)
    return [names.index(n) for n in config.plan_features]


# --------------------------------------------------------------------------------------------
# Diffusion: schedule, forward process, DDIM sampling
# --------------------------------------------------------------------------------------------
def noise_schedule(kind: str, steps: int, beta_start: float = 1e-4,
                   beta_end: float = 0.02) -> dict:
    """``betas``, ``alphas = 1 - betas`` and ``alpha_bars`` (cumulative products), float64 (K,).

    >>> s = noise_schedule("linear", 3, 0.1, 0.5)
    >>> [round(float(v), 6) for v in s["alpha_bars"]]
    [0.9, 0.63, 0.315]
    """
    check_int("steps", steps, 1)
    if kind == "linear":
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    elif kind == "cosine":
        s = 0.008
        u = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
        f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(0.0, 0.999)
    else:
        check_choice("schedule", kind, ("cosine", "linear"))
    alphas = 1.0 - betas
    return {"betas": betas, "alphas": alphas, "alpha_bars": torch.cumprod(alphas, 0)}


def q_sample(x0: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The forward process ``x_k = sqrt(abar_k) x0 + sqrt(1 - abar_k) eps`` (``alpha_bar``
    broadcast against ``x0`` from the left: shape (B,) for a batch)."""
    ab = alpha_bar.to(x0.dtype).reshape(-1, *([1] * (x0.dim() - 1)))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """``x0`` from ``x_k`` and a noise estimate: ``(x_k - sqrt(1 - abar) eps) / sqrt(abar)``."""
    return (x_t - math.sqrt(1 - alpha_bar) * eps) / math.sqrt(alpha_bar)


def sampling_timesteps(diffusion_steps: int, sampling_steps: int) -> list:
    """The DDIM sub-sequence: ``sampling_steps`` diffusion steps evenly spaced from the noisiest
    (``diffusion_steps - 1``) down to 0, ascending; all steps when both are equal.

    >>> sampling_timesteps(20, 5), sampling_timesteps(4, 4), sampling_timesteps(20, 1)
    ([0, 5, 10, 14, 19], [0, 1, 2, 3], [19])
    """
    check_int("sampling_steps", sampling_steps, 1, diffusion_steps)
    steps = np.round(np.linspace(diffusion_steps - 1, 0, sampling_steps)).astype(int)
    return sorted({int(k) for k in steps})


def ddim_sample(eps_fn, x: torch.Tensor, alpha_bars, timesteps, *, eta: float = 0.0,
                clip: float = 0.0, generator: torch.Generator | None = None,
                prediction: str = "eps") -> torch.Tensor:
    """Run DDIM from ``x`` (noise at the last of ``timesteps``) down to ``x0``.

    Args:
        eps_fn: ``(x, k) -> eps`` the noise estimate at diffusion step ``k`` (an int), or,
            with ``prediction="x0"``, ``(x, k) -> x0`` the estimate of the clean sample.
        x: The starting sample ``x_K``.
        alpha_bars: (K,) cumulative products of the schedule.
        timesteps: Ascending diffusion steps to visit (:func:`sampling_timesteps`).
        eta: 0: deterministic; otherwise the noise of each step is ``eta`` times DDPM's.
        clip: Bound on the predicted ``x0`` (0: none); the noise estimate is recomputed from
            the clipped ``x0`` so the step stays consistent.
        generator: Source of the noise added when ``eta > 0``.
        prediction: ``"eps"`` or ``"x0"``: what ``eps_fn`` returns. With ``"x0"`` the noise
            is recovered as ``(x_k - sqrt(abar) x0) / sqrt(1 - abar)``, so the estimate of
            ``x0`` is never divided by ``sqrt(abar)`` (tiny at the noisiest step).
    """
    check_choice("prediction", prediction, ("x0", "eps"))
    ts = list(timesteps)
    for i in range(len(ts) - 1, -1, -1):
        k = ts[i]
        ab = float(alpha_bars[k])
        ab_prev = float(alpha_bars[ts[i - 1]]) if i > 0 else 1.0
        if prediction == "x0":
            x0 = eps_fn(x, k)
            eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        else:
            eps = eps_fn(x, k)
            x0 = predict_x0(x, eps, ab)
        if clip:
            x0 = x0.clamp(-clip, clip)
            eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) if eta else 0.0
        x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma ** 2, 0.0)) * eps
        if sigma:
            x = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x


def timestep_embedding(k: torch.Tensor, dim: int = TIME_DIM) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of integer diffusion steps (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = k.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------
class ResidualBlock(nn.Module):
    """``h + FF(LN(h) + e)``: a pre-norm MLP block that reads the condition embedding ``e``."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim),
                                nn.Dropout(dropout))

    def forward(self, h, e):
        return h + self.ff(self.ln(h) + e)


class DiffBidModel(nn.Module):
    """The noise predictor ``eps(x_k, k, condition, R)`` and the inverse-dynamics head, plus the
    DT's return-token buffers (target and training days' campaigns)."""

    def __init__(self, obs_dim: int, config: DiffBidConfig):
        super().__init__()
        c = config
        self.plan_index = plan_indices(c, obs_dim)
        self.horizon, self.n_plan = c.horizon, len(self.plan_index)
        self.prediction = c.prediction
        d, n_x = c.width, c.horizon * len(self.plan_index)
        self.x_in = nn.Linear(n_x, d)
        self.t_embed = nn.Sequential(nn.Linear(TIME_DIM, d), nn.SiLU(), nn.Linear(d, d))
        self.c_embed = nn.Sequential(nn.Linear(c.context * obs_dim + 3, d), nn.SiLU(),
                                     nn.Linear(d, d))
        self.r_embed = nn.Sequential(nn.Linear(1, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(ResidualBlock(d, c.dropout) for _ in range(c.n_blocks))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, n_x))
        self.inverse = mlp(obs_dim + len(self.plan_index), 1, c.hidden)
        # The DT's return-token buffers (see agents.dt.DecisionTransformer).
        self.register_buffer("target_base", torch.ones(()))
        self.register_buffer("campaign_features", torch.zeros(0, 3, dtype=torch.float64))
        self.register_buffer("campaign_r0", torch.zeros(0, dtype=torch.float64))
        # Standardisation of the campaign features in the condition (from the training days).
        self.register_buffer("campaign_mean", torch.zeros(3))
        self.register_buffer("campaign_std", torch.ones(3))
        self.alpha_bars = noise_schedule(c.schedule, c.diffusion_steps, c.beta_start,
                                         c.beta_end)["alpha_bars"]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The training days' campaign buffers take the size of the checkpoint's data.
        for k in ("campaign_features", "campaign_r0"):
            key = prefix + k
            if key in state_dict:
                setattr(self, k, torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def campaign_condition(self, features) -> torch.Tensor:
        """Standardised campaign features (..., 3) of :func:`agents.dt.campaign_features`."""
        f = torch.as_tensor(features, dtype=torch.float32)
        return ((f - self.campaign_mean) / self.campaign_std).clamp(-CAMPAIGN_CLIP,
                                                                    CAMPAIGN_CLIP)

    def denoise(self, x, k, cond, rtg, keep) -> torch.Tensor:
        """Noise estimate (B, H, P) of ``x`` (B, H, P) at steps ``k`` (B,) (or, with
        ``prediction="x0"``, the estimate of the clean plan) given the condition
        (B, context x F + 3), the return token (B,) and ``keep`` (B,): 1 to use the return,
        0 to drop it (the unconditional model of guidance)."""
        B = x.shape[0]
        e = (self.t_embed(timestep_embedding(k)) + self.c_embed(cond)
             + self.r_embed(rtg.reshape(B, 1)) * keep.reshape(B, 1))
        h = self.x_in(x.reshape(B, -1)) + e
        for block in self.blocks:
            h = block(h, e)
        return self.out(h).reshape(B, self.horizon, self.n_plan)

    def inverse_dynamics(self, state, next_plan) -> torch.Tensor:
        """Action (B,) in [-1, 1] leading from ``state`` (B, F) to the planned features of the
        next state (B, P)."""
        return torch.tanh(self.inverse(torch.cat([state, next_plan], dim=-1))).squeeze(-1)

    def plan(self, cond, rtg, *, guidance: float, eta: float = 0.0, clip: float = 0.0,
             timesteps=None, generator: torch.Generator | None = None,
             init_noise: float = 1.0) -> torch.Tensor:
        """Sampled future states (B, H, P) with DDIM and classifier-free guidance ``w``, from
        the initial noise ``x_K`` scaled by ``init_noise``."""
        B = cond.shape[0]
        ts = timesteps if timesteps is not None else list(range(len(self.alpha_bars)))
        x = init_noise * torch.randn((B, self.horizon, self.n_plan), generator=generator)
        ones = torch.ones(B)
        if guidance:
            cond2, rtg2 = torch.cat([cond, cond]), torch.cat([rtg, rtg])
            keep2 = torch.cat([ones, torch.zeros(B)])

            def eps_fn(x, k):
                eps = self.denoise(torch.cat([x, x]), torch.full((2 * B,), k), cond2, rtg2,
                                   keep2)
                e_c, e_u = eps[:B], eps[B:]
                return (1 + guidance) * e_c - guidance * e_u
        else:
            def eps_fn(x, k):
                return self.denoise(x, torch.full((B,), k), cond, rtg, ones)
        return ddim_sample(eps_fn, x, self.alpha_bars, ts, eta=eta, clip=clip,
                           generator=generator, prediction=self.prediction)


# --------------------------------------------------------------------------------------------
# Agent
# --------------------------------------------------------------------------------------------
def history_index(t: torch.Tensor, context: int) -> torch.Tensor:
    """(B, context) ticks ``t - context + 1 .. t``, ticks before the day's start repeating
    tick 0 (the same padding in training and at inference)."""
    return (t.reshape(-1, 1) - context + 1 + torch.arange(context)[None, :]).clamp(min=0)


class DiffBidAgent(DTAgent):
    """Diffusion planner with an inverse-dynamics bid head (see the module docstring)."""

    name = "diffbid"
    config_class = DiffBidConfig
    model_class = DiffBidModel

    @classmethod
    def read_checkpoint(cls, path) -> tuple[dict, dict]:
        meta, tensors = super().read_checkpoint(path)
        # Written before the x0 parameterisation existed: a noise predictor.
        meta["config"].setdefault("prediction", "eps")
        meta["config"].setdefault("init_noise", 1.0)  # ... sampled from unit noise
        return meta, tensors

    # -- training ---------------------------------------------------------------------------
    def prepare(self, train: Trajectories) -> None:
        super().prepare(train)  # the DT's return tokens, campaign buffers, target, states
        feats = self.model.campaign_features.to(torch.float32)
        self.model.campaign_mean.copy_(feats.mean(0))
        self.model.campaign_std.copy_(feats.std(0, unbiased=False).clamp(min=0.1))
        self.data["campaign"] = self.model.campaign_condition(feats)
        self.lengths = torch.as_tensor(train.lengths, dtype=torch.long)

    def sample_batch(self, rng: np.random.Generator, batch_size: int | None = None) -> dict:
        """A training batch at uniformly drawn real ticks ``(e, t)``: the condition, the return
        token, the future states (padded with the day's last state), the logged action and
        whether tick ``t + 1`` exists (the inverse head's pairs)."""
        rows = self.index[torch.as_tensor(rng.integers(0, len(self.index),
                                                       size=batch_size or self.config.batch_size))]
        return self.batch_at(rows[:, 0], rows[:, 1])

    def batch_at(self, e: torch.Tensor, t: torch.Tensor) -> dict:
        """The training batch of days ``e`` (B,) at ticks ``t`` (B,) (see :meth:`sample_batch`)."""
        c = self.config
        states = self.data["states"]
        last = self.lengths[e] - 1
        hist = states[e[:, None], history_index(t, c.context)]
        fut_t = torch.minimum(t[:, None] + 1 + torch.arange(c.horizon)[None, :], last[:, None])
        future = states[e[:, None], fut_t][..., self.model.plan_index]
        return {"cond": torch.cat([hist.reshape(len(e), -1), self.data["campaign"][e]], 1),
                "rtg": self.data["rtg"][e, t], "future": future, "state": states[e, t],
                "action": self.data["actions"][e, t], "has_next": t < last}

    def losses(self, batch: dict) -> dict:
        """Loss tensors of a batch: the noise MSE of the diffusion model and the MSE of the
        inverse head (``total`` = diffusion + ``id_weight`` x inverse)."""
        c, model = self.config, self.model
        x0 = batch["future"]
        B = x0.shape[0]
        k = torch.randint(0, c.diffusion_steps, (B,))
        noise = torch.randn_like(x0)
        keep = (torch.rand(B) >= c.cond_dropout).to(torch.float32)
        x_k = q_sample(x0, model.alpha_bars[k], noise)
        target = x0 if c.prediction == "x0" else noise
        diffusion = F.mse_loss(model.denoise(x_k, k, batch["cond"], batch["rtg"], keep), target)
        m = batch["has_next"].to(torch.float32)
        pred = model.inverse_dynamics(batch["state"], x0[:, 0])
        inverse = ((pred - batch["action"]).pow(2) * m).sum() / m.sum().clamp(min=1.0)
        return {"total": diffusion + c.id_weight * inverse, "diffusion": diffusion,
                "inverse": inverse}

    def train_step(self, rng: np.random.Generator) -> dict:
        losses = self.losses(self.sample_batch(rng))
        self._apply(losses["total"])
        return {k: float(v.detach()) for k, v in losses.items()}

    # -- acting -----------------------------------------------------------------------------
    def reset(self, campaign: dict | None = None) -> None:
        super().reset(campaign)  # return target, day buffers, score so far (the DT's)
        self._campaign_cond = self.model.campaign_condition(campaign_features(self.campaign))
        self._generator = torch.Generator().manual_seed(self.config.sample_seed)
        self._timesteps = sampling_timesteps(self.config.diffusion_steps,
                                             self.config.sampling_steps)
        self.last_plan = None

    def plan(self, cond, rtg, *, guidance: float | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """Planned future states (B, H, P), normalised, for conditions (B, ...) and return
        tokens (B,); ``guidance`` defaults to the config's."""
        c = self.config
        return self.model.plan(cond, rtg, guidance=c.guidance if guidance is None else guidance,
                               eta=c.eta, clip=c.clip_denoised,
                               timesteps=sampling_timesteps(c.diffusion_steps, c.sampling_steps),
                               generator=generator, init_noise=c.init_noise)

    def choose(self, obs, ctx: dict) -> float:
        """Plan the next states from now and read the action off the planned next state."""
        c, t = self.config, self.tick
        states = self._day["states"][0]
        hist = states[history_index(torch.tensor([t]), c.context)[0]]
        cond = torch.cat([hist.reshape(-1), self._campaign_cond])[None]
        rtg = self._day["rtg"][0, t:t + 1]
        plan = self.model.plan(cond, rtg, guidance=c.guidance, eta=c.eta, clip=c.clip_denoised,
                               timesteps=self._timesteps, generator=self._generator,
                               init_noise=c.init_noise)
        self.last_plan = plan[0]
        return float(self.model.inverse_dynamics(states[t][None], plan[:, 0])[0])


# --------------------------------------------------------------------------------------------
# Cost of act() against the DT's
# --------------------------------------------------------------------------------------------
def time_act(agent, observations, campaign: dict, repeats: int = 3) -> float:
    """Mean seconds of one ``act()`` of ``agent`` over ``observations`` (one day, replayed
    ``repeats`` times after a warm-up day)."""
    def day():
        agent.reset(campaign)
        for obs in observations:
            agent.act(obs)

    day()
    start = time.perf_counter()
    for _ in range(repeats):
        day()
    return (time.perf_counter() - start) / (repeats * len(observations))


def act_cost_ratio(diffbid=None, dt=None, *, env_id: str = "bidenv/AutoBiddingLite-v0",
                   seed: int = 0, repeats: int = 3) -> dict:
    """Seconds per ``act()`` of a DiffBid and a DT agent (default configs unless given) over
    one day of the environment's observations, and their ratio."""
    import gymnasium as gym

    import bidenv  # noqa: F401  (registers the envs)

    diffbid = diffbid if diffbid is not None else DiffBidAgent()
    dt = dt if dt is not None else DTAgent()
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    campaign = env.unwrapped.agent_campaign.to_dict()
    observations = [obs]
    while True:
        obs, _, term, trunc, _ = env.step(np.zeros(1, np.float32))
        if term or trunc:
            break
        observations.append(obs)
    t_diff = time_act(diffbid, observations, campaign, repeats)
    t_dt = time_act(dt, observations, campaign, repeats)
    return {"diffbid_ms": 1e3 * t_diff, "dt_ms": 1e3 * t_dt, "ratio": t_diff / t_dt,
            "ticks": len(observations)}


if __name__ == "__main__":
    torch.set_num_threads(1)
    result = act_cost_ratio()
    print(f"act(): diffbid {result['diffbid_ms']:.3f} ms, dt {result['dt_ms']:.3f} ms per tick "
          f"({result['ticks']} ticks), ratio {result['ratio']:.2f}")


__all__ = ["DiffBidAgent", "DiffBidConfig", "DiffBidModel", "act_cost_ratio", "ddim_sample",
           "noise_schedule", "predict_x0", "q_sample", "sampling_timesteps"]
