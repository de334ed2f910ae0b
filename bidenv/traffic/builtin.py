"""Built-in traffic sources: a recommendation feed, search, and their mix.

These are deliberately compact generators calibrated to the public reference numbers in
DESIGN.md (diurnal volume, pValue about 5e-4 scaled by advertiser category x0.3-1.7,
pValueSigma about 0.15 x pValue). They are built for speed: the whole (n x k) pValue matrix of
a tick is ``exp`` of **one** matrix product of per-opportunity factors (n x r) by
per-advertiser factors (r x k) with small r, and all other noise is drawn per opportunity or
per advertiser, never per cell.

Model (per opportunity o, advertiser a)::

    log pvalue[o, a] = z[o] . w[a] + log q[o] + log level[a] (+ log boost[intent[o], a])
    p_conversion[o, a] = pvalue[o, a] * eps[o] * bias[a]

``z``/``w`` are latent user and ad vectors (d = 4), ``q`` a heavy-tailed (lognormal, mean 1)
opportunity quality, ``level`` the advertiser's mean pValue (its category's level times a
per-advertiser jitter), ``eps`` the platform's prediction error (lognormal with sigma
``sigma_ratio`` and mean 1, so predictions are unbiased) and ``bias`` a per-advertiser
calibration bias (1 for established advertisers).

Search differs from the feed by an intent category per query: only advertisers of that
category (and of one related category, drawn per episode) are eligible, matching advertisers
convert ``intent_boost`` times more often, and click rates are higher. The boost enters the
same matrix product through a one-hot intent column, and ineligible advertisers get a large
negative log-boost, so their pValue is exactly 0 and eligibility is a per-intent lookup table
(see :class:`~bidenv.traffic.base.ImpressionBatch` groups).

A :class:`TrafficMix` of built-in sources stacks their factors block-wise and still draws the
whole tick with one product; mixes with other sources fall back to sampling each and
interleaving the batches (:func:`merge_batches`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from bidenv.campaign import N_CATEGORIES
from bidenv.traffic.base import (
    DIURNAL_LOG_FOURIER,
    SOURCE_FEED,
    SOURCE_SEARCH,
    ImpressionBatch,
    SlotSettings,
    TrafficSource,
    diurnal_shares,
)

#: pValue multiplier of each advertiser category (public data: x0.3-1.7 around the mean).
CATEGORY_LEVELS = np.linspace(0.3, 1.7, N_CATEGORIES)
#: Mean predicted conversions per exposure across the market (public reference: about 5e-4).
MEAN_PVALUE = 5e-4
#: Log-boost that makes exp() underflow to exactly 0 in float32 (ineligible advertisers).
_EXCLUDED = -200.0


@dataclass
class AdvertiserProfile:
    """Per-advertiser traffic state of an episode, shared by every source of a mix."""

    level: np.ndarray  # (k,) mean pValue of the advertiser
    ad_factors: np.ndarray  # (k, d) float32 latent ad vector
    bias: np.ndarray  # (k,) true / predicted conversion rate
    conversion_value: np.ndarray  # (k,) sales value per conversion

    @classmethod
    def draw(cls, categories: np.ndarray, rng: np.random.Generator, *, latent_dim: int = 4,
             latent_scale: float = 0.35, value_median: float = 100.0,
             value_sigma: float = 0.5) -> AdvertiserProfile:
        """Draw the profile of advertisers with the given categories."""
        k = len(categories)
        factors = rng.normal(0.0, latent_scale, size=(k, latent_dim)).astype(np.float32)
        # E[exp(z.w)] = exp(|w|^2 / 2) for standard normal z: divide it out so levels are means.
        norm = np.exp(0.5 * np.sum(factors.astype(np.float64) ** 2, axis=1))
        jitter = np.exp(rng.normal(0.0, 0.2, size=k))
        level = MEAN_PVALUE * CATEGORY_LEVELS[categories] * jitter / norm
        value = value_median * np.exp(rng.normal(0.0, value_sigma, size=k))
        return cls(level=level, ad_factors=factors, bias=np.ones(k), conversion_value=value)


@dataclass
class _Rows:
    """Per-opportunity factors of n rows drawn by a latent source."""

    x: np.ndarray  # (n, r) float32 factors, multiplied by the source's (k, r) matrix
    groups: np.ndarray  # (n,) int eligibility group
    click: np.ndarray  # (n,) float32 click rate
    eps: np.ndarray  # (n,) float64 true / predicted conversion rate
    sigma: float


class _LatentTraffic(TrafficSource):
    """Shared machinery of the built-in sources (see module docstring)."""

    quality_sigma = 0.5
    click_rate_range = (0.018, 0.047)

    def __init__(self, daily_volume=None, slots: SlotSettings | None = None, *,
                 sigma_ratio: float = 0.15, shift_hours: float = 0.0,
                 volume_noise: float = 0.05, profile: AdvertiserProfile | None = None):
        super().__init__(daily_volume, slots)
        if not 0 <= sigma_ratio < 1:
            raise ValueError(f"sigma_ratio must be in [0, 1), got {sigma_ratio!r}")
        if not 0 <= volume_noise < 1:
            raise ValueError(f"volume_noise must be in [0, 1), got {volume_noise!r}")
        self.sigma_ratio = float(sigma_ratio)
        self.shift_hours = float(shift_hours)
        self.volume_noise = float(volume_noise)
        self._fixed_profile = profile
        self.profile: AdvertiserProfile | None = None
        self._shares = None

    # -- binding ------------------------------------------------------------------------------
    def _bind(self, rng: np.random.Generator) -> None:
        coeffs = np.asarray(DIURNAL_LOG_FOURIER) + rng.normal(0.0, self.volume_noise, 6)
        scale = float(np.exp(rng.normal(0.0, self.volume_noise)))
        self._shares = diurnal_shares(self.n_ticks, coeffs, self.shift_hours) * scale
        self.profile = self._fixed_profile or AdvertiserProfile.draw(self.campaigns.category, rng)
        k = len(self.campaigns)
        if len(self.profile.level) != k:
            raise ValueError(f"profile has {len(self.profile.level)} advertisers, episode has {k}")
        # Advertiser factors: [w (d), 1 (for log q), log level (for the constant 1)].
        self.adv = np.hstack([self.profile.ad_factors, np.ones((k, 1), np.float32),
                              np.log(self.profile.level)[:, None].astype(np.float32)])
        self.group_table = np.ones((1, k), bool)
        self._bind_extra(rng)

    def _bind_extra(self, rng: np.random.Generator) -> None:
        """Hook for per-episode state of subclasses (may extend ``adv``/``group_table``)."""

    # -- sampling -----------------------------------------------------------------------------
    def expected_volume(self) -> np.ndarray:
        return self.daily_volume * self._shares

    def sample(self, tick: int, rng: np.random.Generator) -> ImpressionBatch:
        self._check_bound(tick)
        return self.sample_rows(int(rng.poisson(self.expected_volume()[tick])), rng)

    def sample_rows(self, n: int, rng: np.random.Generator) -> ImpressionBatch:
        """Draw ``n`` opportunities (arrival order) from this source."""
        rows = self._rows(n, rng)
        return _assemble([rows], [np.arange(n)], [self], n, rng=None)

    def _rows(self, n: int, rng: np.random.Generator) -> _Rows:
        d = self.profile.ad_factors.shape[1]
        x = np.empty((n, self.adv.shape[1]), np.float32)
        x[:, :d] = rng.standard_normal((n, d), dtype=np.float32)
        x[:, d] = rng.normal(-0.5 * self.quality_sigma ** 2, self.quality_sigma, n)
        x[:, d + 1] = 1.0
        groups = self._extra_rows(x, d + 2, n, rng)
        s = self.sigma_ratio
        eps = np.exp(rng.normal(-0.5 * s * s, s, n)) if s > 0 else np.ones(n)
        click = rng.uniform(*self.click_rate_range, n).astype(np.float32)
        return _Rows(x, groups, click, eps, s)

    def _extra_rows(self, x: np.ndarray, col: int, n: int, rng) -> np.ndarray:
        """Hook: fill columns ``col:`` of ``x``; return each row's eligibility group."""
        return np.zeros(n, np.intp)


class FeedTraffic(_LatentTraffic):
    """Recommendation-feed opportunities: high volume, every advertiser may bid.

    Args:
        daily_volume: Expected opportunities per day (None: the env's ``opportunities_per_day``).
        slots: Slot settings of the feed (None: the env's ``n_slots`` / ``slot_exposure``).
        sigma_ratio: pValueSigma / pValue, also the spread of the true rate around the prediction.
        shift_hours: Shift of the diurnal curve (hours later).
        volume_noise: Per-episode perturbation of the diurnal curve and daily volume.
    """

    source_id = SOURCE_FEED
    name = "feed"


class SearchTraffic(_LatentTraffic):
    """Search opportunities: each query has an intent category that gates eligibility.

    Only advertisers of the query's category, or of one related category (drawn per
    episode), may enter; matching advertisers convert ``intent_boost`` times more often.

    Args:
        intent_boost: Conversion-rate multiplier for advertisers matching the intent.
        related_share: Relative pValue of advertisers in the related category.
        Other arguments as :class:`FeedTraffic`.
    """

    source_id = SOURCE_SEARCH
    name = "search"
    click_rate_range = (0.03, 0.08)

    def __init__(self, daily_volume=None, slots=None, *, intent_boost: float = 2.5,
                 related_share: float = 0.5, shift_hours: float = 1.5, **kwargs):
        super().__init__(daily_volume, slots, shift_hours=shift_hours, **kwargs)
        if not intent_boost >= 1:
            raise ValueError(f"intent_boost must be >= 1, got {intent_boost!r}")
        if not 0 < related_share <= 1:
            raise ValueError(f"related_share must be in (0, 1], got {related_share!r}")
        self.intent_boost = float(intent_boost)
        self.related_share = float(related_share)

    def _bind_extra(self, rng):
        cats = self.campaigns.category
        related = (np.arange(N_CATEGORIES) + rng.integers(1, N_CATEGORIES, N_CATEGORIES)
                   ) % N_CATEGORIES
        match = cats[None, :] == np.arange(N_CATEGORIES)[:, None]
        near = cats[None, :] == related[:, None]
        self.group_table = match | near  # (intent, advertiser)
        boost = np.where(match, self.intent_boost, np.where(near, self.related_share, 1.0))
        log_boost = np.where(self.group_table, np.log(boost), _EXCLUDED)
        self.adv = np.hstack([self.adv, log_boost.T.astype(np.float32)])
        # Queries favour categories in proportion to how many advertisers serve them.
        weight = np.bincount(cats, minlength=N_CATEGORIES) + 0.5
        self._intent_p = weight / weight.sum()

    def _extra_rows(self, x, col, n, rng):
        intent = rng.choice(N_CATEGORIES, size=n, p=self._intent_p)
        x[:, col:] = 0.0
        x[np.arange(n), col + intent] = 1.0
        return intent


class TrafficMix(TrafficSource):
    """Several sources served together, interleaved in arrival order within each tick.

    Each source keeps its own diurnal curve (so the search share varies with the hour of
    day); they share one advertiser profile per episode (levels, conversion values).

    Args:
        sources: Sources to combine (distinct ``source_id`` each).
        shares: Share of the day's volume for each source (normalised to 1).
        daily_volume: Expected opportunities per day (None: the env's).
    """

    name = "mixed"

    def __init__(self, sources, shares, daily_volume=None):
        super().__init__(daily_volume)
        sources = list(sources)
        shares = np.asarray(shares, dtype=np.float64)
        if not sources or len(shares) != len(sources):
            raise ValueError("sources and shares must be non-empty and of equal length")
        if np.any(shares < 0) or shares.sum() <= 0:
            raise ValueError(f"shares must be >= 0 with a positive sum, got {shares.tolist()}")
        if len({s.source_id for s in sources}) != len(sources):
            raise ValueError("sources of a TrafficMix must have distinct source_id values")
        self.sources = sources
        self.shares = shares / shares.sum()

    def _bind(self, rng):
        profile = AdvertiserProfile.draw(self.campaigns.category, rng)
        bound = []
        for src, share in zip(self.sources, self.shares):
            src = copy.copy(src)
            if isinstance(src, _LatentTraffic):
                src._fixed_profile = profile
            bound.append(src.bind(self.campaigns, n_ticks=self.n_ticks,
                                  opportunities_per_day=self.daily_volume * share, rng=rng))
        self.sources = bound
        self.profile = profile

    def expected_volume(self) -> np.ndarray:
        return np.sum([s.expected_volume() for s in self.sources], axis=0)

    def sample(self, tick, rng):
        self._check_bound(tick)
        if all(isinstance(s, _LatentTraffic) for s in self.sources):
            sizes = [int(rng.poisson(s.expected_volume()[tick])) for s in self.sources]
            rows = [s._rows(m, rng) for s, m in zip(self.sources, sizes)]
            n = sum(sizes)
            positions = np.split(rng.permutation(n), np.cumsum(sizes)[:-1])
            return _assemble(rows, positions, self.sources, n, rng)
        return merge_batches([s.sample(tick, rng) for s in self.sources], rng)


def _assemble(rows: list[_Rows], positions: list[np.ndarray], sources, n: int,
              rng) -> ImpressionBatch:
    """One batch from the rows of latent sources placed at ``positions`` (one matmul)."""
    widths = [src.adv.shape[1] for src in sources]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    x = np.zeros((n, offsets[-1]), np.float32) if len(sources) > 1 else None
    groups = np.empty(n, np.intp)
    click = np.empty(n, np.float32)
    eps = np.empty(n, np.float64)
    sigma = np.empty(n, np.float32)
    source = np.empty(n, np.int8)
    group_offsets = np.concatenate([[0], np.cumsum([len(s.group_table) for s in sources])])
    for i, (r, pos, src) in enumerate(zip(rows, positions, sources)):
        if x is not None:
            x[pos, offsets[i]:offsets[i + 1]] = r.x
        groups[pos] = r.groups + group_offsets[i]
        click[pos] = r.click
        eps[pos] = r.eps
        sigma[pos] = r.sigma
        source[pos] = src.source_id
    if x is None:  # a single source draws its rows in arrival order already
        x = rows[0].x
    adv = np.hstack([s.adv for s in sources]) if len(sources) > 1 else sources[0].adv
    pvalue = x @ adv.T
    np.exp(pvalue, out=pvalue)
    table = np.vstack([s.group_table for s in sources])
    profile = sources[0].profile
    return ImpressionBatch(
        pvalue, source, click_rate=click,
        sigma_ratio=sigma if len(sources) > 1 else rows[0].sigma,
        groups=groups, group_table=table, pvalue_zero_when_ineligible=True,
        p_row_factor=eps, p_col_factor=profile.bias, value_col=profile.conversion_value,
        slots={s.source_id: s.slots for s in sources})


def merge_batches(batches: list[ImpressionBatch], rng: np.random.Generator) -> ImpressionBatch:
    """Interleave batches of one tick in a random arrival order (any sources)."""
    if len(batches) == 1:
        return batches[0]
    sizes = [b.n for b in batches]
    n, k = sum(sizes), batches[0].k
    perm = rng.permutation(n)
    pos = np.split(perm, np.cumsum(sizes)[:-1])
    pvalue = np.empty((n, k), np.float32)
    source = np.empty(n, np.int8)
    click = np.empty(n, np.float32)
    eps = np.ones(n, np.float64)
    sigma = np.empty(n, np.float32)
    masks = [b.eligible_mask for b in batches]
    eligible = np.ones((n, k), bool) if any(m is not None for m in masks) else None
    slots = {}
    for b, p, mask in zip(batches, pos, masks):
        pvalue[p] = b.pvalue
        source[p] = b.source
        click[p] = b.click_rate
        if b._p_row is not None:
            eps[p] = b._p_row
        sigma[p] = b._sigma_ratio
        if mask is not None:
            eligible[p] = mask
        slots.update(b.slots)
    first = batches[0]
    return ImpressionBatch(
        pvalue, source, click_rate=click, sigma_ratio=sigma, eligible=eligible,
        pvalue_zero_when_ineligible=all(b.pvalue_zero_when_ineligible for b in batches),
        p_row_factor=eps, p_col_factor=first._p_col, value_col=first._value_col, slots=slots)


def make_traffic(spec) -> TrafficSource:
    """A traffic source from a name (``"mixed"``, ``"feed"``, ``"search"``) or an instance."""
    if isinstance(spec, TrafficSource):
        return spec
    if spec == "feed":
        return FeedTraffic()
    if spec == "search":
        return SearchTraffic()
    if spec == "mixed":
        return TrafficMix([FeedTraffic(), SearchTraffic()], shares=[0.75, 0.25])
    raise ValueError(f"traffic must be 'mixed', 'feed', 'search' or a TrafficSource, got {spec!r}")
