"""Built-in traffic sources: a recommendation feed, search, and their mix.

These are deliberately compact generators calibrated to the public reference numbers in
DESIGN.md (diurnal volume, pValue about 5e-4 scaled by advertiser category x0.3-1.7,
pValueSigma about 0.15 x pValue). They are built for speed: the (n x k) pValue matrix is
``exp`` of a low-rank user-advertiser match (a (n x d) @ (d x k) matmul with d = 4) plus
per-opportunity and per-advertiser levels, and all other noise is drawn per opportunity or
per advertiser, never per cell.

Model (per opportunity o, advertiser a)::

    log pvalue[o, a] = log q[o] + z[o] . w[a] + log level[a] (+ log boost[intent[o], a])
    p_conversion[o, a] = pvalue[o, a] * eps[o] * bias[a]

``q`` is a heavy-tailed (lognormal) opportunity quality, ``z``/``w`` latent user and ad
factors, ``level`` the advertiser's category level, ``eps`` the platform's prediction error
(lognormal with sigma ``sigma_ratio``, mean 1, so predictions are unbiased) and ``bias`` a
per-advertiser calibration bias (1 for established advertisers).

Search differs from the feed by an intent category per query: only advertisers of that
category (and one related category) are eligible, matching advertisers' conversion rates are
``intent_boost`` times higher, and click rates are higher.
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
        k = len(categories)
        factors = rng.normal(0.0, latent_scale, size=(k, latent_dim)).astype(np.float32)
        # E[exp(z.w)] = exp(|w|^2 / 2) for standard normal z: divide it out so levels are means.
        norm = np.exp(0.5 * np.sum(factors.astype(np.float64) ** 2, axis=1))
        jitter = np.exp(rng.normal(0.0, 0.2, size=k))
        level = MEAN_PVALUE * CATEGORY_LEVELS[categories] * jitter / norm
        value = value_median * np.exp(rng.normal(0.0, value_sigma, size=k))
        return cls(level=level, ad_factors=factors, bias=np.ones(k), conversion_value=value)


class _LatentTraffic(TrafficSource):
    """Shared machinery of the built-in sources (see module docstring)."""

    quality_sigma = 0.7
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

    def _bind(self, rng: np.random.Generator, profile: AdvertiserProfile | None = None) -> None:
        coeffs = np.asarray(DIURNAL_LOG_FOURIER) + rng.normal(0.0, self.volume_noise, 6)
        scale = float(np.exp(rng.normal(0.0, self.volume_noise)))
        self._shares = diurnal_shares(self.n_ticks, coeffs, self.shift_hours) * scale
        self.profile = profile or self._fixed_profile or AdvertiserProfile.draw(
            self.campaigns.category, rng)
        k = len(self.campaigns)
        if len(self.profile.level) != k:
            raise ValueError(f"profile has {len(self.profile.level)} advertisers, episode has {k}")
        self._log_level = np.log(self.profile.level).astype(np.float32)
        # Mean of the lognormal opportunity quality is 1.
        self._q_mu = -0.5 * self.quality_sigma ** 2

    def expected_volume(self) -> np.ndarray:
        return self.daily_volume * self._shares

    def sample(self, tick: int, rng: np.random.Generator) -> ImpressionBatch:
        self._check_bound(tick)
        n = int(rng.poisson(self.expected_volume()[tick]))
        return self.sample_rows(n, rng)

    def sample_rows(self, n: int, rng: np.random.Generator) -> ImpressionBatch:
        """Draw ``n`` opportunities (arrival order) from this source."""
        d = self.profile.ad_factors.shape[1]
        z = rng.standard_normal((n, d), dtype=np.float32)
        log_q = rng.normal(self._q_mu, self.quality_sigma, n).astype(np.float32)
        logits = z @ self.profile.ad_factors.T
        logits += log_q[:, None]
        logits += self._log_level[None, :]
        eligible = self._modify(logits, n, rng)
        pvalue = np.exp(logits, out=logits)
        s = self.sigma_ratio
        eps = np.exp(rng.normal(-0.5 * s * s, s, n)) if s > 0 else np.ones(n)
        lo, hi = self.click_rate_range
        click = rng.uniform(lo, hi, n).astype(np.float32)
        return ImpressionBatch(
            pvalue, np.full(n, self.source_id, dtype=np.int8), click_rate=click,
            sigma_ratio=s, eligible=eligible, p_row_factor=eps, p_col_factor=self.profile.bias,
            value_col=self.profile.conversion_value, slots={self.source_id: self.slots})

    def _modify(self, logits: np.ndarray, n: int, rng: np.random.Generator):
        """Hook: adjust log-pValues in place and return the eligibility mask (or None)."""
        return None


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

    def _bind(self, rng, profile=None):
        super()._bind(rng, profile)
        cats = self.campaigns.category
        related = (np.arange(N_CATEGORIES) + rng.integers(1, N_CATEGORIES, N_CATEGORIES)
                   ) % N_CATEGORIES
        match = cats[None, :] == np.arange(N_CATEGORIES)[:, None]
        near = cats[None, :] == related[:, None]
        self._eligible_by_intent = match | near
        boost = np.where(match, self.intent_boost, np.where(near, self.related_share, 1.0))
        self._log_boost_by_intent = np.log(boost).astype(np.float32)
        # Queries favour categories in proportion to how many advertisers serve them.
        weight = np.bincount(cats, minlength=N_CATEGORIES) + 0.5
        self._intent_p = weight / weight.sum()

    def _modify(self, logits, n, rng):
        intent = rng.choice(N_CATEGORIES, size=n, p=self._intent_p)
        logits += self._log_boost_by_intent[intent]
        return self._eligible_by_intent[intent]


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
        batches = [s.sample(tick, rng) for s in self.sources]
        return merge_batches(batches, rng)


def merge_batches(batches: list[ImpressionBatch], rng: np.random.Generator) -> ImpressionBatch:
    """Interleave batches of one tick in a random arrival order."""
    if len(batches) == 1:
        return batches[0]
    sizes = [b.n for b in batches]
    n, k = sum(sizes), batches[0].k
    perm = rng.permutation(n)
    pos = np.split(perm, np.cumsum(sizes)[:-1])
    pvalue = np.empty((n, k), np.float32)
    source = np.empty(n, np.int8)
    click = np.empty(n, np.float32)
    eps = np.empty(n, np.float64)
    sigma = np.empty(n, np.float32)
    any_mask = any(b.eligible_mask is not None for b in batches)
    eligible = np.ones((n, k), bool) if any_mask else None
    slots = {}
    for b, p in zip(batches, pos):
        pvalue[p] = b.pvalue
        source[p] = b.source
        click[p] = b.click_rate
        eps[p] = b._p_row
        sigma[p] = b._sigma_ratio
        if b.eligible_mask is not None:
            eligible[p] = b.eligible_mask
        slots.update(b.slots)
    first = batches[0]
    return ImpressionBatch(pvalue, source, click_rate=click, sigma_ratio=sigma,
                           eligible=eligible, p_row_factor=eps, p_col_factor=first._p_col,
                           value_col=first._value_col, slots=slots)


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
