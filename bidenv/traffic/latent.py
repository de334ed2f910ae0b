"""Shared machinery of the built-in traffic sources: advertisers, latent factors, one matmul.

Every built-in source describes the opportunities of a tick by a few numbers per
opportunity and a few per advertiser, and the whole (n x k) pValue matrix of a tick is::

    pvalue[o, a] = exp(x[o] . A[a]) * M[g[o], a]

``x`` (n x r, small r) are per-opportunity factors (a user's drifting interest vector, the log
of a heavy-tailed quality and of session fatigue), ``A`` (k x r) the matching per-advertiser
factors (ad embeddings), ``g[o]`` the opportunity's *eligibility group* (a user interest
cluster with its exploration variant in the feed, a query in search) and ``M`` (G x k) a
table fixed for the episode that holds each group's eligibility (0 = may not enter, so pValue
is exactly 0 there), relevance and level. Drawing a tick therefore costs one small matrix
product, one ``exp`` and one gathered multiply over the n x k cells; all random numbers are
drawn per opportunity, per session or per advertiser, never per cell (see docs/design.md,
performance notes). Mixes of built-in sources stack their factors block-wise and still draw a
tick with one product (:func:`assemble`).

The platform's prediction error is factored too: the true conversion rate is
``pvalue * bias[a] * exp(s * e[o] - s**2 / 2)`` with one standard normal ``e[o]`` per
opportunity and ``s = sigma_ratio * sigma_scale[a]``; established advertisers have
``bias = sigma_scale = 1`` (unbiased predictions, pValueSigma = sigma_ratio x pValue),
cold-start advertisers a wider ``sigma_scale`` and a biased ``bias``, and "marketing" ads an
inflated prediction with a low true rate.

References:
    Covington, Adams and Sargin (2016), "Deep Neural Networks for YouTube Recommendations"
    (candidate generation by embedding match, then ranking): the feed's retrieval stage.
    Koren, Bell and Volinsky (2009), "Matrix Factorization Techniques for Recommender
    Systems": relevance as a low-rank match of user and item factors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bidenv.campaign import DEFAULT_POPULARITY, N_CATEGORIES
from bidenv.traffic.base import (
    DIURNAL_LOG_FOURIER,
    ImpressionBatch,
    TrafficSource,
    diurnal_shares,
)
from bidenv.validation import check_choice, check_int, check_number

#: pValue multiplier of each advertiser category (public data: x0.3-1.7 around the mean).
CATEGORY_LEVELS = np.linspace(0.3, 1.7, N_CATEGORIES)
#: Mean predicted conversions per exposure across the market (public reference: about 5e-4).
MEAN_PVALUE = 5e-4


#: Retrieval modes of the built-in sources (see docs/design.md, Traffic): ``"cascade"``
#: (recall by the interest cluster's or the query's average relevance, then exploration /
#: thresholds: the default) and ``"generative"`` (candidates decoded per user intent by
#: semantic match; see :class:`~bidenv.traffic.feed.FeedTraffic` and
#: :class:`~bidenv.traffic.search.SearchTraffic`).
RETRIEVAL_MODES = ("cascade", "generative")


def popularity_z(budget, agent_rank: float = DEFAULT_POPULARITY) -> np.ndarray:
    """(k,) standardised log popularity of the episode's advertisers, for a cascade's recall.

    Popularity is the daily budget, the proxy for the engagement history a cascade's recall
    and pre-ranking models learn from (the popularity bias of Abdollahpouri, Burke and
    Mobasher 2019, "Managing Popularity Bias in Recommender Systems with Personalized
    Re-ranking", FLAIRS). Standardised over the competitors (columns 1..); the agent (column
    0) counts as the ``agent_rank`` quantile of their log budgets (its campaign's declared
    ``popularity``, :attr:`bidenv.campaign.Campaign.popularity`; default 0.5, their median),
    so the budget an analyst simulates does not move its own recall. Zeros with fewer than
    two competitors.
    """
    pop = np.log(np.asarray(budget, np.float64))
    z = np.zeros(len(pop))
    if len(pop) > 2:
        rivals = pop[1:]
        pop[0] = np.quantile(rivals, float(agent_rank))
        z = (pop - rivals.mean()) / max(float(rivals.std()), 1e-12)
    return z


def side_stream(rng: np.random.Generator) -> np.random.Generator:
    """A generator independent of ``rng`` that does not move it (a far jump of its state)."""
    return np.random.Generator(rng.bit_generator.jumped())


#: OpenBLAS runs a matrix product on one thread when m * n * k is below 65536 * 4; above it,
#: a product as small as a tick's (10k x 6 by 6 x 48) is split over threads, which costs
#: little on an idle machine but stalls for milliseconds when another process holds a core.
_SINGLE_THREAD_MNK = 1 << 18


def matmul_rows(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` in blocks of rows small enough for BLAS to stay on one thread.

    The products here have a small inner dimension, so one thread is as fast as several on
    an idle machine and much faster on a busy one (see :data:`_SINGLE_THREAD_MNK`).
    """
    n = a.shape[0]
    step = max(64, _SINGLE_THREAD_MNK // max(1, b.shape[0] * b.shape[1]))
    if out is None:
        out = np.empty((n, b.shape[1]), np.result_type(a, b))
    for start in range(0, n, step):
        np.matmul(a[start:start + step], b, out=out[start:start + step])
    return out


@dataclass(frozen=True)
class AdvertiserPopulation:
    """How an episode's advertisers are drawn (shared by every source of a mix).

    Attributes:
        latent_dim: Dimension of ad, user and query embeddings.
        latent_scale: Scale of ad embeddings; the log-relevance of a random user to an ad
            has standard deviation about ``latent_scale * sqrt(latent_dim)``.
        category_cohesion: Share of an ad embedding's variance that comes from its category's
            centroid (ads of one category look alike).
        level_jitter: Log-sd of a competitor's pValue level around its category's level (the
            agent, column 0, has its category's level).
        cold_start_share: Share of the competitors (never the agent, column 0) whose ads are
            new: little history, so a wider prediction error and a biased prediction.
        cold_start_sigma: Multiplier of ``sigma_ratio`` for cold-start advertisers.
        cold_start_bias_mean: Mean of log(true / predicted rate) of a cold-start advertiser.
        cold_start_bias_sd: Spread of that log-bias across cold-start advertisers.
        marketing_share: Share of the competitors running low-quality "marketing" ads.
        marketing_boost: How much higher the platform predicts a marketing ad's rate.
        marketing_true_ratio: True / predicted rate of a marketing ad.
        value_median: Median sales value of one conversion (ROI campaigns).
        value_sigma: Log-sd of conversion values across advertisers (lognormal).
    """

    latent_dim: int = 4
    latent_scale: float = 0.35
    category_cohesion: float = 0.6
    level_jitter: float = 0.2
    cold_start_share: float = 0.1
    cold_start_sigma: float = 3.0
    cold_start_bias_mean: float = -0.1
    cold_start_bias_sd: float = 0.3
    marketing_share: float = 0.05
    marketing_boost: float = 1.5
    marketing_true_ratio: float = 0.35
    value_median: float = 100.0
    value_sigma: float = 0.5

    def __post_init__(self):
        check_int("latent_dim", self.latent_dim, 1)
        check_number("latent_scale", self.latent_scale, 0.0, 2.0)
        check_number("category_cohesion", self.category_cohesion, 0.0, 1.0)
        check_number("level_jitter", self.level_jitter, 0.0, 2.0)
        check_number("cold_start_share", self.cold_start_share, 0.0, 1.0)
        check_number("marketing_share", self.marketing_share, 0.0, 1.0)
        if self.cold_start_share + self.marketing_share > 1:
            raise ValueError("cold_start_share + marketing_share must be <= 1, got "
                             f"{self.cold_start_share} + {self.marketing_share}")
        check_number("cold_start_sigma", self.cold_start_sigma, 1.0, 10.0)
        check_number("cold_start_bias_mean", self.cold_start_bias_mean, -3.0, 3.0)
        check_number("cold_start_bias_sd", self.cold_start_bias_sd, 0.0, 2.0)
        check_number("marketing_boost", self.marketing_boost, 1.0, 10.0)
        check_number("marketing_true_ratio", self.marketing_true_ratio, 0.0, 1.0, low_open=True)
        check_number("value_median", self.value_median, 0.0, low_open=True)
        check_number("value_sigma", self.value_sigma, 0.0, 3.0)


@dataclass
class AdvertiserProfile:
    """Per-advertiser traffic state of an episode, shared by every source of a mix.

    Attributes:
        category: (k,) category of each advertiser.
        level: (k,) reference predicted pValue: the mean over opportunities of average
            relevance (category level x jitter, x ``marketing_boost`` for marketing ads).
        ad_factors: (k, d) float32 ad embeddings.
        bias: (k,) true / predicted conversion rate (1 for established advertisers).
        sigma_scale: (k,) multiplier of the sources' ``sigma_ratio`` (1 when established).
        conversion_value: (k,) sales value per conversion.
        cold_start: (k,) bool, new ads.
        marketing: (k,) bool, low-quality marketing ads.
        category_centroids: (N_CATEGORIES, d) centre of each category's embeddings (unit
            variance per coordinate), which search queries of that intent also lie near.
    """

    category: np.ndarray
    level: np.ndarray
    ad_factors: np.ndarray
    bias: np.ndarray
    sigma_scale: np.ndarray
    conversion_value: np.ndarray
    cold_start: np.ndarray
    marketing: np.ndarray
    category_centroids: np.ndarray
    population: AdvertiserPopulation = field(default_factory=AdvertiserPopulation)

    @classmethod
    def draw(cls, categories: np.ndarray, rng: np.random.Generator,
             population: AdvertiserPopulation | None = None, *,
             cold_start: np.ndarray | None = None,
             marketing: np.ndarray | None = None) -> AdvertiserProfile:
        """Draw the profile of advertisers with the given categories (index 0: the agent).

        ``cold_start`` and ``marketing`` are optional (k,) bool masks of advertisers whose
        campaigns *declare* that profile (the agent's ``Campaign.cold_start`` /
        ``marketing_style``): they get the same treatment as the competitors drawn into it
        (see :meth:`_declare`), and every other draw is the one without them.
        """
        pop = population or AdvertiserPopulation()
        categories = np.asarray(categories, dtype=np.int64)
        k, d = len(categories), pop.latent_dim
        centroids = rng.standard_normal((N_CATEGORIES, d))
        own = rng.standard_normal((k, d))
        c = pop.category_cohesion
        factors = pop.latent_scale * (np.sqrt(c) * centroids[categories] + np.sqrt(1 - c) * own)
        jitter = np.exp(rng.normal(-0.5 * pop.level_jitter ** 2, pop.level_jitter, size=k))
        jitter[:1] = 1.0  # the agent's level is its category's: the knob a user sets
        level = MEAN_PVALUE * CATEGORY_LEVELS[categories] * jitter
        value = pop.value_median * np.exp(rng.normal(0.0, pop.value_sigma, size=k))
        # Cold-start and marketing advertisers among the competitors (the agent, column 0,
        # is an established advertiser so that its truthful bid is the calibrated one, unless
        # its campaign declares a profile: see _declare).
        order = rng.permutation(max(k - 1, 0)) + 1
        n_cold = int(round(pop.cold_start_share * (k - 1)))
        n_mkt = int(round(pop.marketing_share * (k - 1)))
        cold = np.zeros(k, bool)
        cold[order[:n_cold]] = True
        mkt = np.zeros(k, bool)
        mkt[order[n_cold:n_cold + n_mkt]] = True
        bias = np.ones(k)
        bias[cold] = np.exp(rng.normal(pop.cold_start_bias_mean, pop.cold_start_bias_sd,
                                       size=int(cold.sum())))
        bias[mkt] = pop.marketing_true_ratio
        level[mkt] *= pop.marketing_boost
        sigma_scale = np.where(cold, pop.cold_start_sigma, 1.0)
        profile = cls(category=categories, level=level, ad_factors=factors.astype(np.float32),
                      bias=bias, sigma_scale=sigma_scale, conversion_value=value,
                      cold_start=cold, marketing=mkt, category_centroids=centroids,
                      population=pop)
        if (cold_start is not None and np.any(cold_start)) or (
                marketing is not None and np.any(marketing)):
            profile._declare(cold_start, marketing, rng)
        return profile

    def _declare(self, cold_start, marketing, rng: np.random.Generator) -> None:
        """Put the advertisers of the masks into the cold-start / marketing profile.

        The same formulas as for the competitors drawn into them: a cold-start advertiser's
        ``sigma_scale`` is ``cold_start_sigma`` and its ``bias`` ``exp(N(cold_start_bias_mean,
        cold_start_bias_sd))``; a marketing advertiser's ``level`` is multiplied by
        ``marketing_boost`` and its ``bias`` by ``marketing_true_ratio`` (both: the product).
        The cold-start biases are drawn from a stream jumped far ahead of ``rng`` (``rng``
        itself does not move), so the rest of the day is the day without the flags.
        """
        pop = self.population
        k = len(self.level)
        cold = np.zeros(k, bool) if cold_start is None else np.asarray(cold_start, bool)
        mkt = np.zeros(k, bool) if marketing is None else np.asarray(marketing, bool)
        new_cold = cold & ~self.cold_start
        if new_cold.any():
            side = side_stream(rng)
            self.bias[new_cold] = np.exp(side.normal(
                pop.cold_start_bias_mean, pop.cold_start_bias_sd, size=int(new_cold.sum())))
            self.sigma_scale[new_cold] = pop.cold_start_sigma
            self.cold_start = self.cold_start | new_cold
        new_mkt = mkt & ~self.marketing
        if new_mkt.any():
            self.bias[new_mkt] *= pop.marketing_true_ratio
            self.level[new_mkt] *= pop.marketing_boost
            self.marketing = self.marketing | new_mkt

    @property
    def log_norm(self) -> np.ndarray:
        """(k,) log E[exp(z . w_a)] for a standard normal z: divides out average relevance."""
        return 0.5 * np.sum(self.ad_factors.astype(np.float64) ** 2, axis=1)

    def column_info(self) -> dict:
        """Per-advertiser flags carried by every batch."""
        return {"cold_start": self.cold_start, "marketing": self.marketing}


def declared_profiles(campaigns) -> dict:
    """The ``cold_start`` / ``marketing`` masks the campaigns declare (for
    :meth:`AdvertiserProfile.draw`)."""
    return {"cold_start": getattr(campaigns, "cold_start", None),
            "marketing": getattr(campaigns, "marketing_style", None)}


@dataclass
class Rows:
    """Per-opportunity factors of n rows drawn by a latent source.

    Attributes:
        x: (n, r) float32 factors, multiplied by the source's (k, r) ``adv`` matrix.
        groups: (n,) int eligibility group (a row of the source's ``mult`` table).
        click: (n,) float32 click rate.
        noise: (n,) float32 standard normal prediction error.
        info: per-opportunity (n,) int arrays (user, session position, query, ...).
    """

    x: np.ndarray
    groups: np.ndarray
    click: np.ndarray
    noise: np.ndarray
    info: dict


@dataclass
class Tables:
    """Per-episode factors of one or several stacked latent sources."""

    adv: np.ndarray  # (k, R) float32, R = sum of the sources' factor widths
    mult: np.ndarray  # (G, k) float32
    group_table: np.ndarray  # (G, k) bool
    group_table_float: np.ndarray  # (G, k) float64, for cheap eligible sums
    col_offsets: np.ndarray  # (S + 1,) column block of each source in adv
    group_offsets: np.ndarray  # (S + 1,) row block of each source in mult

    @classmethod
    def stack(cls, sources) -> Tables:
        adv = np.hstack([s.adv for s in sources]) if len(sources) > 1 else sources[0].adv
        if len(sources) > 1:
            mult = np.vstack([s.mult for s in sources])
            table = np.vstack([s.group_table for s in sources])
        else:
            mult, table = sources[0].mult, sources[0].group_table
        widths = [s.adv.shape[1] for s in sources]
        sizes = [len(s.group_table) for s in sources]
        return cls(adv=np.ascontiguousarray(adv.T).T, mult=mult, group_table=table,
                   group_table_float=table.astype(np.float64),
                   col_offsets=np.concatenate([[0], np.cumsum(widths)]).astype(np.intp),
                   group_offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp))


class LatentTraffic(TrafficSource):
    """Shared machinery of the built-in sources (see the module docstring).

    Subclasses implement :meth:`_bind_source` (set ``adv``, ``mult`` and ``group_table``
    for the episode) and :meth:`_rows` (draw n opportunities' factors).

    Args:
        daily_volume: Expected opportunities per day (None: the env's ``opportunities_per_day``).
        slots: Slot settings (None: the env's ``n_slots``/``slot_exposure``; ``"native"``:
            the source's :attr:`native_slots`).
        sigma_ratio: pValueSigma / pValue of established advertisers, also the log-spread of
            the true rate around the prediction.
        shift_hours: Shift of the diurnal curve (hours later).
        daytime_tilt: Log-amplitude of a cosine (peak at ``tilt_peak_hour``) multiplying the
            reference diurnal curve: > 0 puts relatively more of the source's volume into
            working hours (search), < 0 into the evening and night (feed). The curve is
            renormalised, so the daily volume does not change.
        tilt_peak_hour: Hour of day where the tilt is largest.
        volume_noise: Per-episode perturbation of the diurnal curve and the daily volume.
        quality_sigma: Log-sd of the per-opportunity quality (value spread across
            opportunities beyond relevance); mean-one lognormal.
        level_scale: Multiplier of every advertiser's pValue level on this source.
        population: How advertisers are drawn when the source is used alone (a mix draws
            one profile for all of its sources).
        profile: A fixed :class:`AdvertiserProfile` to use instead of drawing one.
        retrieval: ``"cascade"`` (default) or ``"generative"``: how the source selects the
            advertisers that may enter an opportunity (see the subclasses). Either way the
            source sets :attr:`cascade_reach`, each advertiser's share of the day's
            opportunities where the cascade makes it eligible (its popularity rank with the
            cascade: the long tail is the bottom of it).
    """

    quality_sigma = 0.35
    click_rate_range = (0.018, 0.047)
    #: Names of the per-opportunity ``row_info`` arrays this source fills.
    info_names: tuple = ()

    def __init__(self, daily_volume=None, slots=None, *, sigma_ratio: float = 0.15,
                 shift_hours: float = 0.0, daytime_tilt: float = 0.0,
                 tilt_peak_hour: float = 14.0, volume_noise: float = 0.05,
                 quality_sigma: float | None = None, level_scale: float = 1.0,
                 population: AdvertiserPopulation | None = None,
                 profile: AdvertiserProfile | None = None, retrieval: str = "cascade"):
        super().__init__(daily_volume, slots)
        self.retrieval = check_choice("retrieval", retrieval, RETRIEVAL_MODES)
        self.sigma_ratio = check_number("sigma_ratio", sigma_ratio, 0.0, 1.0, high_open=True)
        self.shift_hours = check_number("shift_hours", shift_hours, -24.0, 24.0)
        self.daytime_tilt = check_number("daytime_tilt", daytime_tilt, -3.0, 3.0)
        self.tilt_peak_hour = check_number("tilt_peak_hour", tilt_peak_hour, 0.0, 24.0)
        self.volume_noise = check_number("volume_noise", volume_noise, 0.0, 1.0,
                                         high_open=True)
        if quality_sigma is not None:
            self.quality_sigma = check_number("quality_sigma", quality_sigma, 0.0, 3.0)
        self.level_scale = check_number("level_scale", level_scale, 0.0, 1e3, low_open=True)
        if population is not None and not isinstance(population, AdvertiserPopulation):
            raise ValueError(f"population must be an AdvertiserPopulation, got {population!r}")
        self.population = population or AdvertiserPopulation()
        self._fixed_profile = profile
        self.profile: AdvertiserProfile | None = None
        self._shares = None

    # -- binding ------------------------------------------------------------------------------
    def _bind(self, rng: np.random.Generator) -> None:
        coeffs = np.asarray(DIURNAL_LOG_FOURIER) + rng.normal(0.0, self.volume_noise, 6)
        scale = float(np.exp(rng.normal(0.0, self.volume_noise)))
        self._shares = self._curve(coeffs) * scale
        # The unperturbed curve: what a bidder knows before the day (no look-ahead).
        self._prior_shares = self._curve(np.asarray(DIURNAL_LOG_FOURIER, dtype=np.float64))
        self.profile = self._fixed_profile or AdvertiserProfile.draw(
            self.campaigns.category, rng, self.population, **declared_profiles(self.campaigns))
        k = len(self.campaigns)
        if len(self.profile.level) != k:
            raise ValueError(f"profile has {len(self.profile.level)} advertisers, episode has {k}")
        self._bind_source(rng)
        self.group_table = np.asarray(self.group_table, bool)
        self.mult = np.where(self.group_table, self.mult, 0.0).astype(np.float32)
        self.adv = np.asarray(self.adv, np.float32)
        self.tables = Tables.stack([self])

    def _curve(self, coeffs: np.ndarray) -> np.ndarray:
        """Per-tick shares of the day (sum 1) for diurnal Fourier ``coeffs``, shift and tilt."""
        curve = diurnal_shares(self.n_ticks, coeffs, self.shift_hours)
        if self.daytime_tilt:
            hours = (np.arange(self.n_ticks) + 0.5) * 24.0 / self.n_ticks
            curve = curve * np.exp(self.daytime_tilt * np.cos(
                2 * np.pi * (hours - self.tilt_peak_hour) / 24.0))
            curve /= curve.sum()
        return curve

    def _popularity_z(self) -> np.ndarray:
        """(k,) :func:`popularity_z` of the episode's campaigns, the agent at its declared
        ``popularity`` rank (0.5 when the campaigns declare none): what a cascade recalls by."""
        ranks = getattr(self.campaigns, "popularity", None)
        rank = DEFAULT_POPULARITY if ranks is None or len(ranks) == 0 else float(ranks[0])
        return popularity_z(self.campaigns.budget, rank)

    def _bind_source(self, rng: np.random.Generator) -> None:  # pragma: no cover - abstract
        """Set ``adv`` (k, r), ``mult`` (G, k) and ``group_table`` (G, k) for the episode."""
        raise NotImplementedError

    def _rows(self, n: int, rng: np.random.Generator) -> Rows:  # pragma: no cover - abstract
        raise NotImplementedError

    def _quality(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n,) float32 log of a mean-one lognormal quality."""
        s = self.quality_sigma
        return rng.standard_normal(n, dtype=np.float32) * np.float32(s) - np.float32(0.5 * s * s)

    # -- sampling -----------------------------------------------------------------------------
    def expected_volume(self) -> np.ndarray:
        return self.daily_volume * self._shares

    def prior_volume(self) -> np.ndarray:
        return self.daily_volume * self._prior_shares

    def sample(self, tick: int, rng: np.random.Generator) -> ImpressionBatch:
        self._check_bound(tick)
        return self.sample_rows(int(rng.poisson(self.expected_volume()[tick])), rng)

    def sample_rows(self, n: int, rng: np.random.Generator) -> ImpressionBatch:
        """Draw ``n`` opportunities (arrival order) from this source."""
        if not self.bound:
            raise RuntimeError(f"{type(self).__name__} must be bound to an episode before "
                               "sampling")
        return assemble([self._rows(int(n), rng)], None, [self], self.tables, self.profile)


def assemble(rows: list[Rows], order: np.ndarray | None, sources, tables: Tables,
             profile: AdvertiserProfile) -> ImpressionBatch:
    """One batch from the rows of latent sources, in arrival ``order`` (one matmul).

    Args:
        rows: The rows drawn by each source.
        order: Arrival order: row t of the batch is row ``order[t]`` of the sources' rows
            concatenated (None for a single source, whose rows are in arrival order).
        sources: The bound sources, in the order of ``tables``.
        tables: Their stacked per-episode factors.
        profile: The advertiser profile they share.
    """
    if order is None:
        r = rows[0]
        n = len(r.groups)
        x, groups, click, noise = r.x, r.groups, r.click, r.noise
        source = np.full(n, sources[0].source_id, np.int8)
        sigma = np.float32(sources[0].sigma_ratio)
        info = dict(r.info)
    else:
        sizes = [len(r.groups) for r in rows]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        n = int(starts[-1])
        x = np.zeros((n, tables.adv.shape[1]), np.float32)
        co, go = tables.col_offsets, tables.group_offsets
        for i, r in enumerate(rows):
            x[starts[i]:starts[i + 1], co[i]:co[i + 1]] = r.x
        x = np.take(x, order, axis=0)
        take = lambda parts: np.take(np.concatenate(parts), order)  # noqa: E731
        groups = take([r.groups + go[i] for i, r in enumerate(rows)])
        click = take([r.click for r in rows])
        noise = take([r.noise for r in rows])
        source = take([np.full(m, s.source_id, np.int8) for m, s in zip(sizes, sources)])
        ratios = {s.sigma_ratio for s in sources}
        sigma = (np.float32(ratios.pop()) if len(ratios) == 1 else
                 take([np.full(m, s.sigma_ratio, np.float32) for m, s in zip(sizes, sources)]))
        names = sorted({name for s in sources for name in s.info_names})
        info = {name: take([r.info.get(name, np.full(m, -1, np.int32))
                            for m, r in zip(sizes, rows)]) for name in names}
    pvalue = matmul_rows(x, tables.adv.T)
    np.exp(pvalue, out=pvalue)
    pvalue *= np.take(tables.mult, groups, axis=0)
    return ImpressionBatch(
        pvalue, source, click_rate=click, sigma_ratio=sigma, groups=groups,
        group_table=tables.group_table, group_table_float=tables.group_table_float,
        pvalue_zero_when_ineligible=True, p_col_factor=profile.bias, p_row_noise=noise,
        sigma_col=profile.sigma_scale, value_col=profile.conversion_value,
        slots={s.source_id: s.slots for s in sources}, row_info=info,
        column_info=profile.column_info())
