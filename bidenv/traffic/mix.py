"""Several traffic sources served together, and building a source from a name."""

from __future__ import annotations

import copy

import numpy as np

from bidenv.traffic.base import ImpressionBatch, TrafficSource
from bidenv.traffic.feed import FeedTraffic
from bidenv.traffic.latent import (
    RETRIEVAL_MODES,
    AdvertiserPopulation,
    AdvertiserProfile,
    LatentTraffic,
    Tables,
    assemble,
    declared_profiles,
)
from bidenv.traffic.search import SearchTraffic
from bidenv.validation import check_choice

#: Share of the day's opportunities that come from search in the default ``"mixed"`` traffic.
DEFAULT_SEARCH_SHARE = 0.25


class TrafficMix(TrafficSource):
    """Several sources served together, interleaved in arrival order within each tick.

    Each source keeps its own diurnal curve (feed and search peak at different hours, so the
    search share varies with the hour of day); ``hourly_weights`` reshapes them further. The
    sources share one advertiser profile per episode (embeddings, levels, cold-start and
    marketing advertisers, conversion values). A mix of built-in sources draws a tick with
    one matrix product for all of them; other sources are sampled one by one and
    interleaved (:func:`merge_batches`).

    Args:
        sources: Sources to combine (distinct ``source_id`` each).
        shares: Share of the day's volume for each source (normalised to 1).
        daily_volume: Expected opportunities per day (None: the env's).
        hourly_weights: Optional (n_sources, H) non-negative weights over H equal parts of
            the day (e.g. 24 hours) that move volume between sources across the day: the
            per-tick volumes are rescaled by iterative proportional fitting so that the
            mix's total per tick (the sum of its sources' curves) and each source's daily
            share stay as they were, while source i's share of a tick grows with its
            weight for that part of the day. Built-in sources only.
        population: How the shared advertisers are drawn (None: the first built-in
            source's ``population``).
    """

    name = "mixed"

    def __init__(self, sources, shares, daily_volume=None, *, hourly_weights=None,
                 population: AdvertiserPopulation | None = None):
        super().__init__(daily_volume)
        sources = list(sources)
        shares = np.asarray(shares, dtype=np.float64)
        if not sources or shares.ndim != 1 or len(shares) != len(sources):
            raise ValueError("sources and shares must be non-empty and of equal length, got "
                             f"{len(sources)} sources and shares {shares.tolist()}")
        if not all(isinstance(s, TrafficSource) for s in sources):
            raise ValueError("sources of a TrafficMix must be TrafficSource instances")
        if not np.all(np.isfinite(shares)) or np.any(shares < 0) or shares.sum() <= 0:
            raise ValueError(f"shares must be >= 0 with a positive sum, got {shares.tolist()}")
        if len({s.source_id for s in sources}) != len(sources):
            raise ValueError("sources of a TrafficMix must have distinct source_id values")
        if hourly_weights is not None:
            hourly_weights = np.asarray(hourly_weights, dtype=np.float64)
            if (hourly_weights.ndim != 2 or hourly_weights.shape[0] != len(sources)
                    or hourly_weights.shape[1] < 1 or not np.all(np.isfinite(hourly_weights))
                    or np.any(hourly_weights < 0)
                    or np.any(hourly_weights.sum(axis=1) <= 0)):
                raise ValueError("hourly_weights must be an (n_sources, H) array of finite "
                                 "weights >= 0 with a positive sum per source")
            if not all(isinstance(s, LatentTraffic) for s in sources):
                raise ValueError("hourly_weights needs built-in (FeedTraffic/SearchTraffic) "
                                 "sources")
        if population is not None and not isinstance(population, AdvertiserPopulation):
            raise ValueError(f"population must be an AdvertiserPopulation, got {population!r}")
        self.sources = sources
        self.shares = shares / shares.sum()
        self.hourly_weights = hourly_weights
        latent = [s for s in sources if isinstance(s, LatentTraffic)]
        self.population = population or (latent[0].population if latent
                                          else AdvertiserPopulation())
        self.profile = None
        self.tables = None

    def _bind(self, rng):
        profile = AdvertiserProfile.draw(self.campaigns.category, rng, self.population,
                                         **declared_profiles(self.campaigns))
        bound = []
        for src, share in zip(self.sources, self.shares):
            src = copy.copy(src)
            if isinstance(src, LatentTraffic):
                src._fixed_profile = profile
            bound.append(src.bind(self.campaigns, n_ticks=self.n_ticks,
                                  opportunities_per_day=self.daily_volume * share, rng=rng))
        if self.hourly_weights is not None:
            volume = _reweight(np.array([s.expected_volume() for s in bound]),
                               self.hourly_weights)
            for src, row in zip(bound, volume):
                src._shares = row / src.daily_volume
        self.sources = bound
        self.profile = profile
        if all(isinstance(s, LatentTraffic) for s in bound):
            self.tables = Tables.stack(bound)

    @property
    def cascade_reach(self) -> np.ndarray | None:
        """(k,) each advertiser's share of the day's opportunities where the cascade makes
        it eligible (the sources' :attr:`~LatentTraffic.cascade_reach` weighted by their
        volume); None unless every source has one."""
        reach = [getattr(s, "cascade_reach", None) for s in self.sources]
        if any(r is None for r in reach):
            return None
        volume = np.array([s.expected_volume().sum() for s in self.sources])
        return (volume / volume.sum()) @ np.array(reach)

    def expected_volume(self) -> np.ndarray:
        return np.sum([s.expected_volume() for s in self.sources], axis=0)

    def prior_volume(self) -> np.ndarray:
        # Hour-dependent reweighting keeps each tick's total, so the sum of the sources'
        # priors is the mix's prior.
        return np.sum([s.prior_volume() for s in self.sources], axis=0)

    def sample(self, tick, rng):
        self._check_bound(tick)
        if self.tables is not None:
            sizes = [int(rng.poisson(s.expected_volume()[tick])) for s in self.sources]
            rows = [s._rows(m, rng) for s, m in zip(self.sources, sizes)]
            order = rng.permutation(sum(sizes))
            return assemble(rows, order, self.sources, self.tables, self.profile)
        return merge_batches([s.sample(tick, rng) for s in self.sources], rng)


def _reweight(volume: np.ndarray, hourly_weights: np.ndarray, iterations: int = 500
              ) -> np.ndarray:
    """(S, T) per-tick volumes tilted by ``hourly_weights`` with the same margins.

    Iterative proportional fitting (Sinkhorn scaling) of ``volume * weight`` to the row sums
    (each source's day) and column sums (each tick's total) of ``volume``.
    """
    n_ticks = volume.shape[1]
    part = ((np.arange(n_ticks) + 0.5) * hourly_weights.shape[1] / n_ticks).astype(np.intp)
    fitted = volume * hourly_weights[:, part]
    per_source, per_tick = volume.sum(axis=1), volume.sum(axis=0)
    for _ in range(iterations):
        fitted *= (per_tick / np.maximum(fitted.sum(axis=0), 1e-300))[None, :]
        fitted *= (per_source / np.maximum(fitted.sum(axis=1), 1e-300))[:, None]
        if np.allclose(fitted.sum(axis=0), per_tick, rtol=1e-9):
            break
    return fitted


def _same(arrays) -> bool:
    first = arrays[0]
    return all((a is None and first is None) or (
        a is not None and first is not None and np.array_equal(a, first)) for a in arrays)


def merge_batches(batches: list[ImpressionBatch], rng: np.random.Generator) -> ImpressionBatch:
    """Interleave batches of one tick (any sources, same advertisers) in a random order.

    Eligibility groups are kept (tables stacked) when every batch has them; per-advertiser
    factors are kept when the batches share them, else the true rates are materialised.
    """
    if len(batches) == 1:
        return batches[0]
    k = batches[0].k
    if any(b.k != k for b in batches):
        raise ValueError(f"batches must have the same advertisers, got k = "
                         f"{[b.k for b in batches]}")
    sizes = [b.n for b in batches]
    n = sum(sizes)
    pos = np.split(rng.permutation(n), np.cumsum(sizes)[:-1])
    pvalue = np.empty((n, k), np.float32)
    source = np.empty(n, np.int8)
    click = np.empty(n, np.float32)
    sigma = np.empty(n, np.float32)
    slots = {}
    for b, p in zip(batches, pos):
        pvalue[p] = b.pvalue
        source[p] = b.source
        click[p] = b.click_rate
        sigma[p] = b._sigma_ratio
        slots.update(b.slots)
    # Eligibility: stacked group tables, or a dense mask.
    kw = {}
    if all(b.groups is not None for b in batches):
        offsets = np.concatenate([[0], np.cumsum([len(b.group_table) for b in batches])])
        groups = np.empty(n, np.intp)
        for b, p, off in zip(batches, pos, offsets):
            groups[p] = b.groups + off
        kw.update(groups=groups, group_table=np.vstack([b.group_table for b in batches]))
    else:
        masks = [b.eligible_mask for b in batches]
        if any(m is not None for m in masks):
            eligible = np.ones((n, k), bool)
            for m, p in zip(masks, pos):
                if m is not None:
                    eligible[p] = m
            kw["eligible"] = eligible
    # True rates: shared per-advertiser factors with per-row factors, else a dense matrix.
    with_noise = [b._p_noise is not None for b in batches]
    if (_same([b._p_col for b in batches]) and _same([b._sigma_col for b in batches])
            and all(b._p_true is None for b in batches) and len(set(with_noise)) == 1):
        eps = np.ones(n, np.float64)
        noise = np.zeros(n, np.float32)
        for b, p in zip(batches, pos):
            if b._p_row is not None:
                eps[p] = b._p_row
            if b._p_noise is not None:
                noise[p] = b._p_noise
        kw.update(p_row_factor=eps, p_col_factor=batches[0]._p_col,
                  p_row_noise=noise if with_noise[0] else None,
                  sigma_col=batches[0]._sigma_col)
    else:
        p_true = np.empty((n, k), np.float64)
        for b, p in zip(batches, pos):
            p_true[p] = b.p_conversion
        kw["p_true"] = p_true
    if _same([b.value_per_advertiser for b in batches]) and batches[0]._value is None:
        kw["value_col"] = batches[0]._value_col
    else:
        value = np.empty((n, k), np.float64)
        for b, p in zip(batches, pos):
            value[p] = b.conversion_value
        kw["value"] = value
    names = sorted({name for b in batches for name in b.row_info})
    info = {name: np.full(n, -1, np.int32) for name in names}
    for b, p in zip(batches, pos):
        for name, arr in b.row_info.items():
            info[name][p] = arr
    column_info = {}
    for b in batches:
        column_info.update(b.column_info)
    return ImpressionBatch(
        pvalue, source, click_rate=click, sigma_ratio=sigma,
        pvalue_zero_when_ineligible=all(b.pvalue_zero_when_ineligible for b in batches),
        slots=slots, row_info=info, column_info=column_info, **kw)


def make_traffic(spec, retrieval: str = "cascade") -> TrafficSource:
    """A traffic source from a name (``"mixed"``, ``"feed"``, ``"search"``) or an instance.

    ``"mixed"`` (the environment's default) is feed-heavy: a :class:`TrafficMix` of a
    :class:`FeedTraffic` and a :class:`SearchTraffic` with search taking
    :data:`DEFAULT_SEARCH_SHARE` of the day. ``retrieval`` (``"cascade"``, the default, or
    ``"generative"``) is passed to the built-in sources of a name; an instance keeps its own
    and needs ``retrieval="cascade"`` here.
    """
    check_choice("retrieval", retrieval, RETRIEVAL_MODES)
    if isinstance(spec, TrafficSource):
        if retrieval != "cascade":
            raise ValueError("retrieval= applies to traffic given by name; set retrieval on "
                             "the FeedTraffic/SearchTraffic instances instead")
        return spec
    if spec == "feed":
        return FeedTraffic(retrieval=retrieval)
    if spec == "search":
        return SearchTraffic(retrieval=retrieval)
    if spec == "mixed":
        return TrafficMix([FeedTraffic(retrieval=retrieval), SearchTraffic(retrieval=retrieval)],
                          shares=[1 - DEFAULT_SEARCH_SHARE, DEFAULT_SEARCH_SHARE])
    raise ValueError(f"traffic must be 'mixed', 'feed', 'search' or a TrafficSource, got {spec!r}")
