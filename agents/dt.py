"""Decision transformer on the score-based return-to-go (``dt``).

Chen et al., "Decision Transformer: Reinforcement Learning via Sequence Modeling" (NeurIPS
2021), as used by the generative auto-bidders (GAVE, Gao et al. 2025; GAS, Li et al. 2024): a
causal transformer reads the day so far as interleaved tokens

    (R_0, s_0, a_0), (R_1, s_1, a_1), ..., (R_t, s_t, ?)

each with the embedding of its absolute tick added, and predicts the action ``a_t`` from the
output at the state token ``s_t`` (tanh, so it lies in the action space [-1, 1]).

Return-to-go. With ``S_t`` the penalised score after tick ``t`` (exact beta, docs/design.md's
scoring contract), the token at tick ``t`` is ``R_t = (S_T - S_{t-1}) / (u b)`` where ``u`` is
the campaign's score unit (:func:`bidenv.scoring.score_unit`: what the budget buys at the
target), so days of any budget and goal share one scale, and ``b`` the campaign baseline
(``return_baseline="campaign"``, default): the mean ``R_0 / u`` of the training days with the
nearest campaigns. Without ``b`` the normalised ``R_0`` still depends on the campaign (loose
CPA targets earn more per score unit; on the benchmark's logged days its correlation with the
CPA target was 0.51), so the token told the model the campaign rather than how well to bid, and
the trained DT ignored it (scaling the target from x0.5 to x3 moved the mean multiplier by
2%). Divided by ``b`` the token is "how much better than days like this one", which only the
behaviour (and the day's luck) explains. ``expected=True`` (default) uses the
noise-free expected score, so the model is not told to chase conversion luck.
At inference the first token is a target ``R_0`` (``target_scale`` x the ``target_quantile``
quantile of the training days' relative ``R_0``; with ``return_baseline="none"`` and
``target_neighbors = k > 0`` only the k training days whose campaigns are nearest to today's
count, see :func:`campaign_features`) and each later token is ``R_0 - S_{t-1} / (u b)``, the
target minus what was already earned. ``S_{t-1}`` comes from :meth:`DTAgent.update` (the
step's ``info["expected_score"]`` or ``info["score"]``, cumulative); without ``update`` it is
estimated from the observation (spent share and ``constraint_ratio``, see
:func:`score_from_obs`).

Train and inference see exactly the same input: :func:`context_window` cuts the window of
``context`` ticks ending at tick ``t`` out of (B, T) arrays, and it is called on the training
tensors in :meth:`DTAgent.train_step` and on the day's own buffers in :meth:`DTAgent.act`.
Windows are right-padded (real ticks first), so with causal attention a real token never sees
a pad and no padding mask is needed; the position of a token is its absolute tick
``0 .. max_ticks - 1`` in both cases. The action of tick ``t`` itself is in the window at
training time (the logged one) and zero at inference, which the causal mask hides from the
state token that predicts it.

Choice of target (default: lower quartile of the 50 nearest campaigns' days, scale 1). The
normalised ``R_0`` of logged days spans 0-6 and depends on the campaign (loose CPA targets
earn more per score unit), so a pooled high quantile asks for a return that days like today's
never reached; the model, which learnt "high R_0 goes with low multipliers" from loose-target
days, then underbids. On held-out tuning days (seeds 2_000_000+, Lite env, 500 logged days)
the pooled 0.9 quantile gave 63% of the oracle on the default scenario, its 0.5x / 0.2x / 0.1x
gave 77% / 84% / 88%, and the nearest-campaign lower quartile 86% (77% over the six default
scenarios, the best DT setting tried). ``target_scale`` and ``target_quantile`` only act at
inference and can be changed on a trained checkpoint.

Defaults sized for 2 CPU cores (a few minutes of training): embedding 64, 3 layers, 4 heads,
context 20 ticks (60 tokens), dropout 0.1. The published bidders use hidden 512, 8 layers,
16 heads.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agents.common import OfflineAgent, OfflineConfig
from bidenv.features import OpportunityStats
from bidenv.offline import Trajectories
from bidenv.scoring import score_unit
from bidenv.validation import check_choice, check_int


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class DTConfig(OfflineConfig):
    """Decision-transformer settings (plus :class:`agents.common.OfflineConfig`'s).

    Attributes:
        context: Ticks per window K (3K tokens), the same in training and at inference.
        embed_dim: Token embedding size.
        n_layers: Transformer blocks.
        n_heads: Attention heads (must divide ``embed_dim``).
        dropout: Dropout of the embeddings, residual branches and MLPs (training only).
        attention_dropout: Dropout of the attention weights (training only). 0 by default:
            with it, PyTorch's CPU attention takes its slow path (measured fwd + bwd of one
            layer at batch 64 x 60 tokens: 35 ms with 0.1 against 15 ms without), and the
            residual dropout already regularises.
        max_ticks: Timestep embedding size: ticks 0 .. max_ticks - 1 (the env's day is 48).
        expected: Return-to-go from the noise-free expected score (else the realised one).
        target_quantile: Quantile of the training days' normalised ``R_0`` used as target
            (see the module docstring for the measurements behind the default).
        target_scale: Multiplier of that quantile (the inference target ``R_0``).
        target_neighbors: 0: one target for every day (quantile over all training days);
            k > 0: the quantile over the k training days with the nearest campaigns. Only with
            ``return_baseline="none"`` (relative returns share one scale already).
        return_baseline: ``"campaign"``: returns-to-go are divided by the day's campaign
            baseline ``b``, the mean normalised ``R_0`` of the ``baseline_neighbors`` training
            days with the nearest campaigns (itself left out), so the token says "how much
            better than days like this one" and no longer encodes the campaign; ``"none"``:
            ``R_t / u`` as before (checkpoints written before this option load as ``"none"``).
            ``"yardstick"``: every token of a day is the same number, the day's final expected
            score over its yardstick (the oracle of the day without the agent, stored by
            ``bidenv collect --yardstick``): outcome-quality conditioning in the spirit of RvS
            (Emmons et al. 2022) and ESPER (Paster et al. 2022), which condition on what the
            behaviour controls rather than on a return that also measures the day's luck. At
            inference the token is the target fraction of the yardstick, constant all day.
        baseline_neighbors: Days averaged for the campaign baseline.
        opportunity_features: Information parity (opt-in): append the 10
            :data:`bidenv.features.OPPORTUNITY_FEATURES` (quantiles of the multiplier needed to
            win over the last tick's and the day's opportunities, what the online LP reads
            through ``update()``) to the state; trained from the dataset's ``opp_*`` columns,
            computed at inference from ``update(info, opportunities)``.
        residual_base: ``""`` (default): the model outputs the action. ``"pid_budget"``:
            residual policy learning (Silver et al., "Residual Policy Learning", 2018; Johannink
            et al., "Residual Reinforcement Learning for Robot Control", ICRA 2019): the
            action is the budget-pacing controller's action plus the model's output. The
            controller's action depends only on the observations, so on logged days it is
            replayed over the logged observations (:func:`base_actions`), the model learns
            the logged action minus it (action tokens are these residuals too), and at
            inference the controller runs beside the model on the same observations. Only
            the plain ``dt`` (GAS, GAVE and diffbid read absolute actions).
        beta: Penalty exponent used only by :func:`score_from_obs` (the env's default 2).
        weight_decay: AdamW weight decay.
        warmup_steps: Linear learning-rate warm-up.
        grad_clip: Gradient norm clip (0: none).
    """

    batch_size: int = 64
    lr: float = 3e-4
    context: int = 20
    embed_dim: int = 64
    n_layers: int = 3
    n_heads: int = 4
    dropout: float = 0.1
    attention_dropout: float = 0.0
    max_ticks: int = 48
    expected: bool = True
    target_quantile: float = 0.25
    target_scale: float = 1.0
    target_neighbors: int = 50
    return_baseline: str = "campaign"
    opportunity_features: bool = False
    baseline_neighbors: int = 50
    residual_base: str = ""
    beta: float = 2.0
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    grad_clip: float = 0.25

    def validate(self) -> None:
        super().validate()
        for name in ("context", "embed_dim", "n_layers", "n_heads", "max_ticks"):
            check_int(name, getattr(self, name), 1)
        if self.embed_dim % self.n_heads:
            raise ValueError(f"n_heads must divide embed_dim ({self.embed_dim}), got "
                             f"{self.n_heads!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0 <= self.attention_dropout < 1:
            raise ValueError(f"attention_dropout must be in [0, 1), got "
                             f"{self.attention_dropout!r}")
        if not 0 <= self.target_quantile <= 1:
            raise ValueError(f"target_quantile must be in [0, 1], got {self.target_quantile!r}")
        if not (math.isfinite(self.target_scale) and self.target_scale > 0):
            raise ValueError(f"target_scale must be a finite number > 0, got "
                             f"{self.target_scale!r}")
        check_choice("return_baseline", self.return_baseline, ("campaign", "none", "yardstick"))
        check_int("baseline_neighbors", self.baseline_neighbors, 1)
        check_choice("residual_base", self.residual_base, RESIDUAL_BASES)
        if self.residual_base and type(self) is not DTConfig:
            raise ValueError(f"residual_base must be '' for {type(self).__name__} (only the "
                             f"plain dt learns residuals), got {self.residual_base!r}")
        if not isinstance(self.target_neighbors, int) or self.target_neighbors < 0:
            raise ValueError(f"target_neighbors must be an integer >= 0, got "
                             f"{self.target_neighbors!r}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be a finite number >= 0, got {self.beta!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got "
                             f"{self.warmup_steps!r}")
        if not self.grad_clip >= 0:
            raise ValueError(f"grad_clip must be >= 0, got {self.grad_clip!r}")


#: Controllers a DT may learn a residual over (their action depends on the observations only).
RESIDUAL_BASES = ("", "pid_budget")


# --------------------------------------------------------------------------------------------
# Data: return-to-go and context windows
# --------------------------------------------------------------------------------------------
def base_actions(train: Trajectories, name: str, max_alpha: float) -> np.ndarray:
    """(E, T) actions the controller ``name`` takes on the logged observations of each day
    (its state is reset per day; 0 on padded ticks)."""
    import agents

    out = np.zeros(train.actions.shape, np.float32)
    for e, (campaign, length) in enumerate(zip(train.campaigns, train.lengths)):
        base = agents.make(name, max_alpha=max_alpha)
        base.reset(campaign)
        for t in range(int(length)):
            out[e, t] = float(np.asarray(base.act(train.obs[e, t])).reshape(-1)[0])
    return out


def normalised_returns_to_go(traj: Trajectories, *, expected: bool = True) -> np.ndarray:
    """``R_t / score_unit(campaign)`` over (E, T); zero on padded ticks."""
    units = np.array([score_unit(c) for c in traj.campaigns], np.float64)
    return traj.returns_to_go(expected=expected) / units[:, None]


def campaign_features(campaign: dict) -> np.ndarray:
    """(log budget, log bid scale, ROI flag x 10) of a campaign, for the nearest-campaign target.

    The bid scale is the target CPA (CPA and budget-only) or 1 / target ROI; the flag keeps
    CPA and ROI days apart.
    """
    roi = campaign.get("constraint") == "roi"
    scale = 1.0 / float(campaign["target_roi"]) if roi else float(campaign.get("target_cpa")
                                                                   or 1.0)
    return np.array([math.log(float(campaign["budget"])), math.log(scale), 10.0 * roi])


def _distance_scale(features: np.ndarray) -> np.ndarray:
    """Per-column scale of campaign distances: the standard deviation, and 1 for the ROI flag
    (which keeps CPA and ROI days 10 apart)."""
    scale = np.maximum(features.std(0), 1e-6)
    scale[2] = 1.0
    return scale


def _nearest(features: np.ndarray, query: np.ndarray, k: int, exclude=None,
             scale=None) -> np.ndarray:
    """Indices of the ``k`` rows of ``features`` nearest to ``query`` (distance standardised by
    ``scale``, :func:`_distance_scale` by default), leaving out row ``exclude``."""
    scale = _distance_scale(features) if scale is None else scale
    d = (((features - query) / scale) ** 2).sum(1)
    if exclude is not None:
        d[exclude] = np.inf
    k = min(k, len(d) - (exclude is not None))
    return np.argsort(d, kind="stable")[:max(k, 1)]


def campaign_baselines(features: np.ndarray, r0: np.ndarray, k: int,
                       queries=None) -> np.ndarray:
    """Campaign baseline ``b``: the mean normalised ``R_0`` of the ``k`` training days with the
    nearest campaigns, floored at 1% of the overall mean so a relative return stays finite.

    Without ``queries``, one per training day, leaving the day itself out (training); else one
    per row of ``queries`` (campaign features of the days to bid on).

    >>> f = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [5.0, 0.0, 0.0], [5.1, 0.0, 0.0]])
    >>> campaign_baselines(f, np.array([1.0, 3.0, 10.0, 30.0]), k=1).tolist()
    [3.0, 1.0, 30.0, 10.0]
    >>> campaign_baselines(f, np.array([1.0, 3.0, 10.0, 30.0]), k=2, queries=f[:1]).tolist()
    [2.0]
    """
    scale = _distance_scale(features)
    rows = ([(features[i], i) for i in range(len(r0))] if queries is None
            else [(q, None) for q in np.atleast_2d(queries)])
    out = np.array([r0[_nearest(features, q, k, exclude=e, scale=scale)].mean()
                    for q, e in rows])
    return np.maximum(out, 0.01 * max(float(np.mean(r0)), 1e-9))


def score_from_obs(obs, campaign: dict, beta: float = 2.0) -> float | None:
    """The normalised score so far ``S / score_unit`` read off an observation, or None.

    The spent share is ``1 - budget_left`` and ``constraint_ratio`` is ``cost / earned`` with
    ``earned`` the outcome's worth at the target (conversions x CPA target, or value / ROI
    target), so ``S / u = spent / ratio x min(1, ratio ** -beta)`` for CPA and ROI campaigns
    alike (0 before any spend). Budget-only campaigns (no ratio) give None. The ratio is capped
    at 10 by the environment, so this is an estimate for days far over their target.
    """
    from agents.base import FEATURE_INDEX

    if campaign.get("constraint") not in ("cpa", "roi"):
        return None
    obs = np.asarray(obs, np.float64).reshape(-1)
    spent = 1.0 - float(obs[FEATURE_INDEX["budget_left"]])
    ratio = float(obs[FEATURE_INDEX["constraint_ratio"]])
    if ratio <= 0 or spent <= 0:
        return 0.0
    return spent / ratio * min(1.0, ratio ** -beta)


def context_window(arrays: dict, t_end, context: int) -> dict:
    """The window of ``context`` ticks ending at ``t_end`` of each row, right-padded.

    Args:
        arrays: ``rtg`` (B, T), ``states`` (B, T, F), ``actions`` (B, T) tensors (row b is a
            day); every key of this dict is windowed the same way.
        t_end: (B,) last tick of each window (inclusive).
        context: Window length K.

    Returns:
        The same keys cut to (B, K, ...) (ticks ``max(0, t_end - K + 1) .. t_end`` first,
        then zeros), plus ``timesteps`` (B, K) long (the absolute tick, 0 on pads), ``valid``
        (B, K) bool and ``last`` (B,) long, the index of ``t_end`` in the window.
    """
    t_end = torch.as_tensor(t_end, dtype=torch.long).reshape(-1)
    T = next(iter(arrays.values())).shape[1]
    start = (t_end - context + 1).clamp(min=0)
    idx = start[:, None] + torch.arange(context)[None, :]
    valid = idx <= t_end[:, None]
    idx = torch.where(valid, idx, torch.zeros_like(idx)).clamp(max=T - 1)
    out = {}
    for k, v in arrays.items():
        g = torch.gather(v, 1, idx.view(*idx.shape, *([1] * (v.dim() - 2))).expand(
            -1, -1, *v.shape[2:]))
        out[k] = g * valid.view(*valid.shape, *([1] * (v.dim() - 2))).to(g.dtype)
    out["timesteps"] = torch.where(valid, idx, torch.zeros_like(idx))
    out["valid"] = valid
    out["last"] = t_end - start
    return out


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------
class CausalBlock(nn.Module):
    """Pre-norm transformer block with causal self-attention."""

    def __init__(self, dim: int, heads: int, dropout: float, attention_dropout: float = 0.0):
        super().__init__()
        self.heads, self.attention_dropout = heads, attention_dropout
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim),
                                 nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        B, L, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, L, 3, self.heads, D // self.heads).permute(
            2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=(self.attention_dropout if self.training
                                                      else 0.0))
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, L, D)))
        return x + self.mlp(self.ln2(x))


class DecisionTransformer(nn.Module):
    """Causal transformer over (return-to-go, state, action) tokens with tick embeddings.

    :meth:`forward` returns a dict of head outputs, each (B, K): ``action`` (tanh, from the
    state token). Subclasses add heads in :meth:`heads` (GAVE).
    """

    def __init__(self, obs_dim: int, config: DTConfig):
        super().__init__()
        d = config.embed_dim
        self.embed_rtg = nn.Linear(1, d)
        self.embed_state = nn.Linear(obs_dim, d)
        self.embed_action = nn.Linear(1, d)
        self.embed_time = nn.Embedding(config.max_ticks, d)
        self.ln_in = nn.LayerNorm(d)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(CausalBlock(d, config.n_heads, config.dropout,
                                                config.attention_dropout)
                                    for _ in range(config.n_layers))
        self.ln_out = nn.LayerNorm(d)
        self.action_head = nn.Linear(d, 1)
        # Unscaled inference target (a quantile of the training R_0), saved with the weights.
        self.register_buffer("target_base", torch.ones(()))
        # Training days' campaign features (E, 3) and normalised R_0 (E,), for the
        # nearest-campaign target; resized to the data by prepare() and by loading.
        self.register_buffer("campaign_features", torch.zeros(0, 3, dtype=torch.float64))
        self.register_buffer("campaign_r0", torch.zeros(0, dtype=torch.float64))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The training days' campaign buffers take the size of the checkpoint's data.
        for k in ("campaign_features", "campaign_r0"):
            key = prefix + k
            if key not in state_dict:  # written before the nearest-campaign target existed
                state_dict[key] = getattr(self, k)[:0].clone()
            setattr(self, k, torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def encode(self, rtg, states, actions, timesteps):
        """Hidden states at the (return, state, action) tokens, each (B, K, d)."""
        B, K = rtg.shape
        time = self.embed_time(timesteps)
        tokens = torch.stack([self.embed_rtg(rtg[..., None]) + time,
                              self.embed_state(states) + time,
                              self.embed_action(actions[..., None]) + time], dim=2)
        x = self.drop(self.ln_in(tokens.reshape(B, 3 * K, -1)))
        for block in self.blocks:
            x = block(x)
        x = self.ln_out(x).reshape(B, K, 3, -1)
        return x[:, :, 0], x[:, :, 1], x[:, :, 2]

    def heads(self, h_r, h_s, h_a) -> dict:
        return {"action": torch.tanh(self.action_head(h_s)).squeeze(-1)}

    def forward(self, rtg, states, actions, timesteps) -> dict:
        return self.heads(*self.encode(rtg, states, actions, timesteps))


# --------------------------------------------------------------------------------------------
# Agent
# --------------------------------------------------------------------------------------------
class DTAgent(OfflineAgent):
    """Decision-transformer bidder (see the module docstring)."""

    name = "dt"
    config_class = DTConfig
    model_class = DecisionTransformer

    def build(self) -> None:
        c = self.config
        self.model = self.model_class(self.obs_dim, c)
        self.nets = {"model": self.model}
        self.optims = {"model": torch.optim.AdamW(self.model.parameters(), lr=c.lr,
                                                  weight_decay=c.weight_decay)}
        self._day = None

    @classmethod
    def read_checkpoint(cls, path) -> tuple[dict, dict]:
        meta, tensors = super().read_checkpoint(path)
        # Written before relative returns existed: plain R_t / u tokens.
        meta["config"].setdefault("return_baseline", "none")
        return meta, tensors

    # -- training ---------------------------------------------------------------------------
    def prepare(self, train: Trajectories) -> None:
        c = self.config
        if train.n_ticks > c.max_ticks:
            raise ValueError(f"max_ticks={c.max_ticks} is shorter than the data's days "
                             f"({train.n_ticks} ticks)")
        rtg = (self._quality_tokens(train) if c.return_baseline == "yardstick"
               else normalised_returns_to_go(train, expected=c.expected))
        features = np.array([campaign_features(cp) for cp in train.campaigns])
        self.model.campaign_features = torch.as_tensor(features, dtype=torch.float64)
        self.model.campaign_r0 = torch.as_tensor(rtg[:, 0], dtype=torch.float64)
        if c.return_baseline == "campaign":
            rtg = rtg / campaign_baselines(features, rtg[:, 0], c.baseline_neighbors)[:, None]
        self.data = {
            "rtg": torch.as_tensor(rtg, dtype=torch.float32),
            "states": torch.as_tensor(self.normalizer(train.obs)),
            "actions": torch.as_tensor(train.actions, dtype=torch.float32),
            # next return-to-go R_{t+1} (0 after the last tick), for the heads that predict it
            "rtg_next": torch.as_tensor(np.concatenate([rtg[:, 1:], np.zeros_like(rtg[:, :1])],
                                                       axis=1) * train.mask, dtype=torch.float32),
        }
        if c.residual_base:  # the model learns the logged action minus the controller's
            base = base_actions(train, c.residual_base, c.max_alpha)
            self.data["actions"] = torch.as_tensor((train.actions - base) * train.mask,
                                                   dtype=torch.float32)
        e, t = np.nonzero(train.mask)
        self.index = torch.as_tensor(np.stack([e, t], 1))
        target = float(np.quantile(rtg[:, 0], c.target_quantile))
        self.model.target_base.fill_(target)

    def day_baseline(self, campaign: dict) -> float:
        """The campaign baseline ``b`` of a day of ``campaign`` (1 with ``return_baseline=
        "none"``): the mean normalised ``R_0`` of the nearest training days."""
        r0 = self.model.campaign_r0.numpy()
        if self.config.return_baseline != "campaign" or len(r0) == 0:
            return 1.0
        return float(campaign_baselines(self.model.campaign_features.numpy(), r0,
                                        self.config.baseline_neighbors,
                                        queries=campaign_features(campaign))[0])

    def _quality_tokens(self, train: Trajectories) -> np.ndarray:
        """(E, T) tokens of ``return_baseline="yardstick"``: the day's final (expected) score
        over its yardstick on every real tick."""
        y = train.yardsticks
        if y is None or not np.all(np.isfinite(y)):
            missing = len(train.lengths) if y is None else int((~np.isfinite(y)).sum())
            raise ValueError(f"return_baseline='yardstick' needs every day's yardstick in the "
                             f"data ({missing} of {len(train.lengths)} days have none): "
                             "collect with bidenv collect --yardstick")
        final = train.final_scores(expected=self.config.expected)
        quality = np.where(y > 0, final / np.where(y > 0, y, 1.0), 0.0)
        return quality[:, None] * train.mask

    def training_targets(self) -> np.ndarray:
        """The first return-to-go token of every training day (the data's support of targets):
        ``R_0 / u`` or, with ``return_baseline="campaign"``, ``R_0 / (u b)`` with the
        leave-one-out baselines of training."""
        r0 = self.model.campaign_r0.numpy()
        if self.config.return_baseline in ("none", "yardstick") or len(r0) == 0:
            return r0.copy()
        feats = self.model.campaign_features.numpy()
        return r0 / campaign_baselines(feats, r0, self.config.baseline_neighbors)

    def day_target(self, campaign: dict) -> float:
        """The unscaled target ``R_0`` of a day of ``campaign`` (in the tokens' units)."""
        k = self.config.target_neighbors
        feats, r0 = self.model.campaign_features.numpy(), self.model.campaign_r0.numpy()
        if self.config.return_baseline != "none" or not k or len(r0) == 0:
            return float(self.model.target_base)
        near = _nearest(feats, campaign_features(campaign), k)
        return float(np.quantile(r0[near], self.config.target_quantile))

    def sample_windows(self, rng: np.random.Generator, batch_size: int | None = None) -> dict:
        """A training batch: windows ending at uniformly drawn real ticks."""
        rows = self.index[torch.as_tensor(rng.integers(0, len(self.index),
                                                       size=batch_size or self.config.batch_size))]
        arrays = {k: v[rows[:, 0]] for k, v in self.data.items()}
        ctx = context_window(arrays, rows[:, 1], self.config.context)
        ctx["episode"] = rows[:, 0]
        return ctx

    def model_inputs(self, ctx: dict) -> tuple:
        return ctx["rtg"], ctx["states"], ctx["actions"], ctx["timesteps"]

    def _set_lr(self) -> None:
        c = self.config
        scale = min(1.0, (self.step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        for g in self.optims["model"].param_groups:
            g["lr"] = c.lr * scale

    def _apply(self, loss: torch.Tensor) -> None:
        self._set_lr()
        opt = self.optims["model"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        opt.step()

    def losses(self, ctx: dict) -> dict:
        """Loss tensors of a batch (``total`` is what is minimised)."""
        out = self.model(*self.model_inputs(ctx))
        m = ctx["valid"].float()
        action = ((out["action"] - ctx["actions"]).pow(2) * m).sum() / m.sum()
        return {"total": action, "action": action}

    def train_step(self, rng: np.random.Generator) -> dict:
        losses = self.losses(self.sample_windows(rng))
        self._apply(losses["total"])
        return {k: float(v.detach()) for k, v in losses.items()}

    # -- acting -----------------------------------------------------------------------------
    @property
    def target_return(self) -> float:
        """The inference target ``R_0`` (normalised score to earn over the day)."""
        if self._day is None:
            return float(self.model.target_base) * self.config.target_scale
        return self._target * self.config.target_scale

    def reset(self, campaign: dict | None = None) -> None:
        super().reset(campaign)
        T, F_ = self.config.max_ticks, self.obs_dim
        # Tokens are scores / (score unit x campaign baseline), as in training.
        self.baseline = self.day_baseline(self.campaign)
        self.unit = score_unit(self.campaign) * self.baseline
        self._target = self.day_target(self.campaign)
        self._day = {"rtg": torch.zeros(1, T), "states": torch.zeros(1, T, F_),
                     "actions": torch.zeros(1, T)}
        self.tick = 0
        self._score = 0.0  # normalised score so far, S_{t-1} / u
        self._opportunities = (OpportunityStats(self.campaign)
                               if self.config.opportunity_features else None)
        self._updated = -1  # tick whose score came from update()
        self._base = None
        if self.config.residual_base:
            import agents

            self._base = agents.make(self.config.residual_base, max_alpha=self.config.max_alpha)
            self._base.reset(self.campaign)

    def update(self, info: dict, opportunities=None) -> None:
        """Record the cumulative score after the tick just played (from the env's info)."""
        if self._opportunities is not None:
            self._opportunities.update(opportunities)
        key = "expected_score" if self.config.expected else "score"
        if key in info:
            self._score = float(info[key]) / self.unit
            self._updated = self.tick

    def context_now(self, obs) -> dict:
        """Write this tick's tokens into the day's buffers; the window ending now."""
        if self._day is None:
            self.reset(None)
        obs = np.asarray(obs, np.float32).reshape(-1)
        if obs.shape != (self.obs_dim,):
            raise ValueError(f"obs must have {self.obs_dim} features, got shape {obs.shape}")
        t = self.tick
        if t >= self.config.max_ticks:
            raise ValueError(f"the day has more ticks than max_ticks={self.config.max_ticks}")
        if t > 0 and self._updated != t:
            est = score_from_obs(obs, self.campaign, self.config.beta)
            if est is not None:
                self._score = est / self.baseline
        if self.config.return_baseline == "yardstick":  # outcome quality: constant all day
            self._day["rtg"][0, t] = self.target_return
        else:
            self._day["rtg"][0, t] = self.target_return - (self._score if t > 0 else 0.0)
        self._day["states"][0, t] = self.norm_obs(obs)
        self._day["actions"][0, t] = 0.0
        return context_window(self._day, torch.tensor([t]), self.config.context)

    def choose(self, obs, ctx: dict) -> float:
        """The action for the window's last tick (the DT's own prediction)."""
        out = self.model(*self.model_inputs(ctx))
        return float(out["action"][0, ctx["last"][0]].detach())

    @torch.no_grad()
    def act(self, obs) -> np.ndarray:
        if self._day is None:
            self.reset(None)
        if self._opportunities is not None and np.size(obs) < self.obs_dim:
            obs = np.concatenate([np.asarray(obs, np.float32).reshape(-1),
                                  self._opportunities.features()])
        base = (float(np.asarray(self._base.act(obs)).reshape(-1)[0])
                if self._base is not None else 0.0)
        ctx = self.context_now(obs)
        self.eval_mode(True)
        a = float(np.clip(base + self.choose(obs, ctx), -1.0, 1.0))
        self._day["actions"][0, self.tick] = a - base  # the token is what the model added
        self.tick += 1
        return np.array([a], np.float32)
