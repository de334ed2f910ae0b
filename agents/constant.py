"""Constant-multiplier bidders: truthful, fixed and random.

Every bidder here plays one bid multiplier ``alpha`` per tick (the environment bids
``alpha x s x pvalue`` on each opportunity, ``s`` the campaign's bid scale: the target CPA, or
conversion value / target ROI) without looking at how the day goes, and works for CPA, ROI and
budget-only campaigns. They are the simplest references of the NeurIPS 2024 auto-bidding
competition and its AuctionNet benchmark
(Su et al., "AuctionNet: A Novel Benchmark for Decision-Making in Large-Scale Games",
NeurIPS 2024 Datasets and Benchmarks; baselines in ``alimama-tech/AuctionNet``),
where the "abid"/fixed multiplier is the non-learning floor.

============  ==================================================================
``truthful``  ``alpha = 1``: bid the predicted value at the target.
``fixed``     a constant ``alpha``.
``random``    uniform actions, reproducible per seed.
============  ==================================================================

The controllers are in :mod:`agents.pid`, the online linear program in :mod:`agents.online_lp`.
"""

from __future__ import annotations

import numpy as np

from agents.base import BaseAgent
from bidenv.scoring import MAX_ALPHA, action_to_alpha
from bidenv.validation import check_int, check_number


class TruthfulAgent(BaseAgent):
    """Bids the predicted value at the target (``a = 0``, ``alpha = 1``) all day.

    The bid ``s x pvalue`` is what an opportunity is worth at the target CPA (or ROI): the
    truthful bid of a value-maximiser without a budget, and the multiplier-1 reference of the
    AuctionNet baselines. It neither paces the budget nor corrects the realised CPA.
    """

    name = "truthful"

    def _alpha(self, obs: np.ndarray) -> float:
        return 1.0


class FixedAlphaAgent(BaseAgent):
    """A constant bid multiplier all day (AuctionNet's fixed-multiplier "abid" baseline).

    Args:
        alpha: The multiplier, ``1/max_alpha <= alpha <= max_alpha`` (default 1.0, truthful).
        max_alpha: The environment's action scale.
    """

    name = "fixed"

    def __init__(self, alpha: float = 1.0, *, max_alpha: float = MAX_ALPHA):
        self.alpha = check_number("alpha", alpha, 1.0 / max_alpha, max_alpha,
                                  why="from 1/max_alpha to max_alpha")
        super().__init__(max_alpha=max_alpha)
        self.name = "fixed" if self.alpha == 1.0 else f"fixed_{self.alpha:g}"

    def _alpha(self, obs: np.ndarray) -> float:
        return self.alpha


class RandomAgent(BaseAgent):
    """Uniformly random actions: the floor every bidder should beat.

    The generator is re-seeded with ``seed`` on every :meth:`reset`, so each day gets the same
    action sequence and an evaluation is reproducible whatever order (or process) episodes run
    in.

    Args:
        seed: Seed of the action sequence (default 0).
        low, high: Range of the uniform action, within [-1, 1] (default the whole space).
        max_alpha: The environment's action scale.
    """

    name = "random"

    def __init__(self, seed: int = 0, *, low: float = -1.0, high: float = 1.0,
                 max_alpha: float = MAX_ALPHA):
        seed = check_int("seed", seed, 0)
        if not -1.0 <= low <= high <= 1.0:
            raise ValueError(f"need -1 <= low <= high <= 1, got low={low!r}, high={high!r}")
        self.seed, self.low, self.high = int(seed), float(low), float(high)
        super().__init__(max_alpha=max_alpha)

    def reset(self, campaign: dict | None = None) -> None:
        super().reset(campaign)
        self.rng = np.random.default_rng(self.seed)

    def _alpha(self, obs: np.ndarray) -> float:
        return action_to_alpha(float(self.rng.uniform(self.low, self.high)), self.max_alpha)
