"""Competing advertisers: policies that bid for many advertisers at once.

A *batch policy* controls a set of advertisers (rows) through the same observation features
and action space as the agent (see :class:`bidenv.env.AutoBiddingEnv`): it receives a matrix
of observations, one row per advertiser it controls, and returns one action per row in
``[-1, 1]``, which the environment maps to a bid multiplier with the same bijection as the
agent's action. Protocol::

    policy.reset(campaigns: list[dict], feature_names: list[str], rng: np.random.Generator)
    policy.act(obs: np.ndarray of shape (m, n_features)) -> np.ndarray of shape (m,)

:class:`HeuristicCompetitors` is the default market: every competitor draws a heuristic from a
mix (fixed multiplier, budget-pacing PI controller, CPA/ROI-tracking controller), with its own
gains and per-tick noise. :class:`AgentCompetitors` drops any single-advertiser agent (an
object with ``reset(campaign)`` and ``act(obs)``, e.g. a trained policy) into the market, and
:class:`HeuristicBidder` is one heuristic of the mix packaged as such an agent.
"""

from __future__ import annotations

import copy
from typing import Protocol

import numpy as np

from bidenv.features import FEATURE_NAMES
from bidenv.scoring import MAX_ALPHA

FIXED, PACING, CONSTRAINT = 0, 1, 2
KIND_NAMES = ("fixed", "pacing", "constraint")


class BatchPolicy(Protocol):
    """What the environment needs from the policy of its competitors."""

    def reset(self, campaigns: list[dict], feature_names: list[str],
              rng: np.random.Generator) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


class HeuristicCompetitors:
    """A market of heuristic bidders, vectorised over advertisers.

    Each advertiser draws one of three controllers (probabilities ``mix``) and works in
    log-multiplier space, clipped to ``[-1, 1]`` actions (alpha in [1/max_alpha, max_alpha]):

    * ``fixed``: a constant multiplier ``alpha0`` (log-normal around ``base_alpha``);
    * ``pacing``: PI control of spend toward the expected traffic share elapsed
      (``pace_error`` feature: spent share minus traffic share), so budgets last the day;
    * ``constraint``: integral control of the realised CPA / target (or target / ROI), the
      ``constraint_ratio`` feature, toward 1, which raises the bid while the campaign is
      under target and lowers it when over. Before its first conversion
      (``hist_conversion_mean`` is 0) a campaign's realised CPA is undefined, not the
      feature's cap, so the controller holds its multiplier: how long a campaign waits for
      its first conversion depends on the day's absolute volume (at a tenth of the volume,
      ten times longer as a share of the day), and reading that wait as a CPA ten times the
      target made smaller days a different, lower-priced market.

    Every advertiser adds Gaussian noise of scale ``noise`` to its log-multiplier each tick.

    Args:
        mix: Probabilities of (fixed, pacing, constraint).
        base_alpha: Median multiplier of the market; below 1 shades bids under the truthful
            value, as real pacers under budget pressure do.
        alpha_spread: Log-normal spread of the advertisers' starting multipliers.
        noise: Per-tick noise on the log-multiplier.
        max_alpha: The environment's action scale (alpha = max_alpha ** action).
    """

    def __init__(self, mix=(0.3, 0.4, 0.3), base_alpha: float = 0.9, alpha_spread: float = 0.2,
                 noise: float = 0.05, max_alpha: float = MAX_ALPHA):
        mix = np.asarray(mix, dtype=np.float64)
        if mix.shape != (3,) or np.any(mix < 0) or mix.sum() <= 0:
            raise ValueError(f"mix must be 3 probabilities (fixed, pacing, constraint), got {mix}")
        if not base_alpha > 0:
            raise ValueError(f"base_alpha must be > 0, got {base_alpha}")
        if alpha_spread < 0 or noise < 0:
            raise ValueError("alpha_spread and noise must be >= 0")
        self.mix = mix / mix.sum()
        self.base_alpha = float(base_alpha)
        self.alpha_spread = float(alpha_spread)
        self.noise = float(noise)
        self.log_max = float(np.log(max_alpha))

    def reset(self, campaigns, feature_names, rng):
        m = len(campaigns)
        self._configure(feature_names, rng, kind=rng.choice(3, size=m, p=self.mix),
                        log_alpha0=np.log(self.base_alpha) + rng.normal(0.0, self.alpha_spread, m),
                        kp=rng.uniform(1.5, 4.0, m), ki=rng.uniform(0.1, 0.4, m),
                        kc=rng.uniform(0.1, 0.3, m))

    def _configure(self, feature_names, rng, *, kind, log_alpha0, kp, ki, kc):
        self.rng = rng
        self.kind = np.asarray(kind)
        self.log_alpha0 = np.asarray(log_alpha0, dtype=np.float64)
        self.kp, self.ki, self.kc = kp, ki, kc
        self.integral = np.zeros(len(self.kind))
        self.log_alpha = self.log_alpha0.copy()
        self._pace = list(feature_names).index("pace_error")
        self._ratio = list(feature_names).index("constraint_ratio")
        self._conversions = list(feature_names).index("hist_conversion_mean")

    def act(self, obs: np.ndarray) -> np.ndarray:
        pace = obs[:, self._pace].astype(np.float64)
        ratio = obs[:, self._ratio].astype(np.float64)
        # Pacing: spend ahead of traffic (pace > 0) lowers the multiplier.
        self.integral += pace
        pacing = self.log_alpha0 - self.kp * pace - self.ki * self.integral
        # Constraint tracking: CPA over target (ratio > 1) lowers the multiplier; no step
        # before the first conversion (no realised CPA yet, whatever the day's volume).
        converted = obs[:, self._conversions] > 0
        step = np.where((ratio > 0) & converted,
                        -self.kc * np.log(np.clip(ratio, 0.1, 10.0)), 0.0)
        tracked = np.clip(self.log_alpha + step, -self.log_max, self.log_max)
        self.log_alpha = np.where(self.kind == CONSTRAINT, tracked, self.log_alpha)
        log_alpha = np.select([self.kind == FIXED, self.kind == PACING],
                              [self.log_alpha0, pacing], self.log_alpha)
        if self.noise > 0:
            log_alpha = log_alpha + self.rng.normal(0.0, self.noise, len(log_alpha))
        return np.clip(log_alpha / self.log_max, -1.0, 1.0)


class AgentCompetitors:
    """Competitors played by copies of single-advertiser agents.

    Args:
        agent: An object with ``reset(campaign: dict)`` and ``act(obs) -> action``; each
            competitor gets its own deep copy. A callable returning a fresh agent also works.
    """

    def __init__(self, agent):
        self.agent = agent

    def reset(self, campaigns, feature_names, rng):
        if hasattr(self.agent, "act") and not isinstance(self.agent, type):
            self.agents = [copy.deepcopy(self.agent) for _ in campaigns]
        else:
            self.agents = [self.agent() for _ in campaigns]
        for agent, campaign in zip(self.agents, campaigns):
            agent.reset(dict(campaign))

    def act(self, obs):
        return np.array([float(np.squeeze(a.act(row))) for a, row in zip(self.agents, obs)])


class ScriptedCompetitors:
    """Competitors that always play the given actions (for controlled markets in tests)."""

    def __init__(self, actions):
        self.actions = np.asarray(actions, dtype=np.float64)

    def reset(self, campaigns, feature_names, rng):
        self.n = len(campaigns)

    def act(self, obs):
        return np.broadcast_to(self.actions, (self.n,)).copy()


class HeuristicBidder:
    """A single-advertiser heuristic bidder (the agent protocol) from the competitors' mix.

    Args:
        kind: ``"fixed"``, ``"pacing"`` or ``"constraint"`` (see :class:`HeuristicCompetitors`).
        alpha: Starting (for ``fixed``: constant) bid multiplier.
        kp, ki: Proportional and integral gains of the pacing controller.
        kc: Gain of the constraint controller.
        max_alpha: The environment's action scale.
        name: Display name.
    """

    def __init__(self, kind: str = "pacing", alpha: float = 1.0, *, kp: float = 2.5,
                 ki: float = 0.25, kc: float = 0.2, max_alpha: float = MAX_ALPHA, name=None):
        if kind not in KIND_NAMES:
            raise ValueError(f"kind must be one of {KIND_NAMES}, got {kind!r}")
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        self.kind, self.alpha = kind, float(alpha)
        self.gains = (kp, ki, kc)
        self.name = name or (kind if kind != "fixed" else f"fixed_{alpha:g}")
        self._market = HeuristicCompetitors(noise=0.0, max_alpha=max_alpha)
        self.reset()

    def reset(self, campaign: dict | None = None) -> None:
        kp, ki, kc = self.gains
        self._market._configure(
            FEATURE_NAMES, None, kind=[KIND_NAMES.index(self.kind)],
            log_alpha0=[np.log(self.alpha)], kp=np.array([kp]), ki=np.array([ki]),
            kc=np.array([kc]))

    def act(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64).reshape(1, -1)
        return self._market.act(obs).astype(np.float32)
