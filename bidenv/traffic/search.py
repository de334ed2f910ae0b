"""Search as a source of ad opportunities: queries with intent gate who may bid.

Model, per episode (at :meth:`~bidenv.traffic.base.TrafficSource.bind`):

* A vocabulary of ``vocabulary_size`` queries ranked by frequency; the query of rank r is
  typed with probability proportional to about ``r ** -zipf_exponent`` (exactly: the mass of
  ``x ** -s`` on ``[r, r + 1)``), so a few head queries are very frequent and most distinct
  queries are rare (the long tail).
* Each query has an intent category (categories with more advertisers get more queries), a
  commercial-intent strength ``c`` (Beta distributed; "buy running shoes" vs "history of
  running") and a latent vector near its category's centroid, in the same space as the ads.
* Eligibility by relevance above a threshold, as keyword plus semantic matching does:
  ``relevance = keyword_weight [ad category = intent] + related_weight [ad category =
  related category] + cos(query, ad)``, and an advertiser may bid iff ``relevance >
  threshold(r)``, where the threshold rises from ``head_threshold`` (rank 1) to
  ``tail_threshold`` (last rank) with log rank: tail queries are specific, so few
  advertisers match them, head queries many. Each query is an eligibility group. The cascade's
  matching favours popular advertisers (broad keyword lists, engagement-trained pre-ranking):
  ``popularity_bias`` x the advertiser's standardised log budget is added to its relevance
  (the agent's at its campaign's declared ``popularity`` rank: ``popularity_z``).
* ``pvalue[o, a] = level_scale * level_a * m[q, a] * boost * q_o`` on eligible advertisers,
  0 elsewhere, where ``m[q, a] = exp(query . w_a)`` normalised to mean 1 over the day's
  queries (semantic match), ``boost = intent_boost * (0.5 + c) / (0.5 + E[c])`` for
  advertisers of the query's category (intent-matching searches convert far better than
  feed impressions), ``related_share`` for the related category and ``semantic_share`` for
  other semantic matches, and ``q_o`` a mean-one lognormal quality. The click rate of a
  query grows with its commercial intent.
* ``retrieval="generative"`` (generative retrieval, which platforms report brings more
  long-tail inventory into auctions): tail queries are understood semantically, so the
  threshold rises only to ``generative_tail_threshold``, popularity does not enter, and a
  marketing ad's relevance is lowered by ``generative_marketing_penalty`` (its inflated appeal
  does not make its content match). Everything else, the draws included, is the cascade's.

Per tick only the query (one uniform, inverse CDF in closed form), the quality and the
prediction error are drawn per opportunity; everything per (query, advertiser) is a table.

References:
    Zipf (1949), "Human Behavior and the Principle of Least Effort"; Spink, Wolfram, Jansen
    and Saracevic (2001), "Searching the web: the public and their queries", JASIST (query
    frequencies are Zipf-like with a long tail of rare queries).
    Broder (2002), "A taxonomy of web search" (informational vs transactional intent).
    Rajput et al. (2023), "Recommender Systems with Generative Retrieval", NeurIPS: lower
    ``tail_threshold`` (semantic matching of tail queries) to model retrieval that brings
    more long-tail inventory.
"""

from __future__ import annotations

import numpy as np

from bidenv.campaign import N_CATEGORIES
from bidenv.traffic.base import SOURCE_SEARCH, SlotSettings
from bidenv.traffic.latent import LatentTraffic, Rows, matmul_rows
from bidenv.validation import check_int, check_number


def zipf_frequencies(vocabulary_size: int, exponent: float) -> np.ndarray:
    """Probability of each query rank 1..V: the mass of ``x ** -exponent`` on ``[r, r + 1)``."""
    edges = np.arange(1, vocabulary_size + 2, dtype=np.float64)
    cdf = _zipf_cdf(edges, vocabulary_size, exponent)
    return np.diff(cdf)


def _zipf_cdf(x, vocabulary_size, s):
    top = vocabulary_size + 1.0
    if abs(s - 1.0) < 1e-9:
        return np.log(x) / np.log(top)
    return (x ** (1 - s) - 1) / (top ** (1 - s) - 1)


def zipf_ranks(u: np.ndarray, vocabulary_size: int, exponent: float) -> np.ndarray:
    """Query ranks (1-based) for uniforms ``u`` (inverse of the CDF of :func:`zipf_frequencies`)."""
    top = vocabulary_size + 1.0
    if abs(exponent - 1.0) < 1e-9:
        x = top ** u
    else:
        x = (1 + u * (top ** (1 - exponent) - 1)) ** (1 / (1 - exponent))
    return np.clip(x.astype(np.intp), 1, vocabulary_size)


class SearchTraffic(LatentTraffic):
    """Search opportunities: a Zipf query vocabulary whose relevance gates eligibility.

    See the module docstring for the model. All arguments are optional.

    Args:
        daily_volume: Expected opportunities per day (None: the env's ``opportunities_per_day``).
        slots: Slot settings (None: the env's; ``"native"``: :attr:`native_slots`, four
            slots with a steeper decay than a feed's).
        vocabulary_size: Number of distinct queries.
        zipf_exponent: Power of the rank-frequency law (about 1 in query logs).
        intent_boost: Conversion-rate multiplier for advertisers matching the intent (at the
            average commercial intent).
        related_share: Rate multiplier for advertisers of the related category.
        semantic_share: Rate multiplier for other advertisers that match semantically.
        keyword_weight: Relevance bonus of the intent category (keyword match).
        related_weight: Relevance bonus of the related category.
        head_threshold: Relevance threshold of the most frequent query.
        tail_threshold: Relevance threshold of the rarest query.
        query_cohesion: Share of a query vector's variance explained by its intent category.
        commercial_intent: (a, b) of the Beta distribution of commercial intent.
        daytime_tilt: Diurnal tilt (> 0: relatively more search in working hours, so search
            peaks in the morning and has quieter nights than the feed).
        level_scale: Multiplier of every advertiser's pValue level on search (0.5 with the
            default boosts calibrates the default market to docs/design.md's reference day).
        popularity_bias: Relevance added per standard deviation of an advertiser's log
            budget by the cascade's matching (0: none; generative retrieval never adds it).
        generative_tail_threshold: Threshold of the rarest query with generative retrieval.
        generative_marketing_penalty: Relevance taken off marketing ads with generative
            retrieval.
        sigma_ratio, shift_hours, tilt_peak_hour, volume_noise, quality_sigma, population,
            profile, retrieval: As :class:`~bidenv.traffic.latent.LatentTraffic`.
    """

    source_id = SOURCE_SEARCH
    name = "search"
    click_rate_range = (0.03, 0.08)
    native_slots = SlotSettings(4, (1.0, 0.6, 0.5, 0.4))
    info_names = ("query",)

    def __init__(self, daily_volume=None, slots=None, *, vocabulary_size: int = 2000,
                 zipf_exponent: float = 0.9, intent_boost: float = 2.5,
                 related_share: float = 0.5, semantic_share: float = 0.5,
                 keyword_weight: float = 1.0, related_weight: float = 0.5,
                 head_threshold: float = 0.0, tail_threshold: float = 1.8,
                 query_cohesion: float = 0.6, commercial_intent=(2.0, 3.0),
                 daytime_tilt: float = 0.3, level_scale: float = 0.5,
                 generative_tail_threshold: float = 0.6,
                 generative_marketing_penalty: float = 1.0, popularity_bias: float = 0.2,
                 **kwargs):
        super().__init__(daily_volume, slots, daytime_tilt=daytime_tilt,
                         level_scale=level_scale, **kwargs)
        self.vocabulary_size = check_int("vocabulary_size", vocabulary_size, 1)
        self.zipf_exponent = check_number("zipf_exponent", zipf_exponent, 0.0, 5.0,
                                          low_open=True)
        self.intent_boost = check_number("intent_boost", intent_boost, 1.0, 100.0)
        self.related_share = check_number("related_share", related_share, 0.0, 1.0,
                                          low_open=True)
        self.semantic_share = check_number("semantic_share", semantic_share, 0.0, 1.0,
                                           low_open=True)
        self.keyword_weight = check_number("keyword_weight", keyword_weight, 0.0, 10.0)
        self.related_weight = check_number("related_weight", related_weight, 0.0, 10.0)
        self.head_threshold = check_number("head_threshold", head_threshold, -2.0, 12.0)
        self.tail_threshold = check_number("tail_threshold", tail_threshold,
                                           self.head_threshold, 12.0)
        self.query_cohesion = check_number("query_cohesion", query_cohesion, 0.0, 1.0)
        self.generative_tail_threshold = check_number(
            "generative_tail_threshold", generative_tail_threshold, -2.0, 12.0)
        self.generative_marketing_penalty = check_number(
            "generative_marketing_penalty", generative_marketing_penalty, 0.0, 100.0)
        self.popularity_bias = check_number("popularity_bias", popularity_bias, 0.0, 12.0)
        try:
            a, b = (float(v) for v in commercial_intent)
        except (TypeError, ValueError):
            a = b = float("nan")
        if not (a > 0 and b > 0):
            raise ValueError(f"commercial_intent must be two Beta parameters > 0, got "
                             f"{commercial_intent!r}")
        self.commercial_intent = (a, b)

    # -- episode ------------------------------------------------------------------------------
    def _bind_source(self, rng):
        prof = self.profile
        k, d = prof.ad_factors.shape
        V = self.vocabulary_size
        w = prof.ad_factors.astype(np.float64)
        cats = prof.category
        self.frequency = zipf_frequencies(V, self.zipf_exponent)
        # Queries: intent category (more queries where more advertisers are), commercial
        # intent, and a latent vector near the intent category's centroid.
        weight = np.bincount(cats, minlength=N_CATEGORIES) + 0.5
        self.intent = rng.choice(N_CATEGORIES, size=V, p=weight / weight.sum())
        self.commercial = rng.beta(*self.commercial_intent, size=V)
        c = self.query_cohesion
        vectors = (np.sqrt(c) * prof.category_centroids[self.intent]
                   + np.sqrt(1 - c) * rng.standard_normal((V, d)))
        self.related = (np.arange(N_CATEGORIES) + rng.integers(1, N_CATEGORIES, N_CATEGORIES)
                        ) % N_CATEGORIES if N_CATEGORIES > 1 else np.zeros(1, np.int64)
        match = cats[None, :] == self.intent[:, None]
        near = cats[None, :] == self.related[self.intent][:, None]
        dot = matmul_rows(vectors, w.T)  # (query, advertiser)
        cosine = dot / np.maximum(
            np.linalg.norm(vectors, axis=1)[:, None] * np.linalg.norm(w, axis=1)[None, :], 1e-12)
        relevance = self.keyword_weight * match + self.related_weight * near + cosine
        specificity = np.log(np.arange(1, V + 1)) / np.log(V) if V > 1 else np.zeros(1)
        self.threshold = (self.head_threshold
                          + (self.tail_threshold - self.head_threshold) * specificity)
        recall = relevance
        if self.popularity_bias:
            z = self._popularity_z()
            recall = relevance + self.popularity_bias * z[None, :]
        self.group_table = recall > self.threshold[:, None]  # (query, advertiser)
        self.cascade_reach = self.frequency @ self.group_table
        if self.retrieval == "generative":
            # Candidates decoded by semantic match to the query's intent: the threshold
            # rises less towards the tail (rare queries are understood, not just matched by
            # keyword), and a marketing ad's inflated appeal does not raise its match.
            self.threshold = (self.head_threshold + (self.generative_tail_threshold
                                                     - self.head_threshold) * specificity)
            score = relevance - self.generative_marketing_penalty * prof.marketing[None, :]
            self.group_table = score > self.threshold[:, None]
        mean_c = self.commercial_intent[0] / sum(self.commercial_intent)
        boost = np.where(match, self.intent_boost * (0.5 + self.commercial[:, None])
                         / (0.5 + mean_c),
                         np.where(near, self.related_share, self.semantic_share))
        # Relevance normalised so that its mean over all of the day's queries is 1 for each
        # advertiser; eligibility and intent then raise the mean where it may bid.
        match_value = np.exp(dot)
        match_value /= self.frequency @ match_value
        level = prof.level * self.level_scale
        self.mult = self.group_table * boost * match_value * level[None, :]
        self.query_click = np.minimum(
            rng.uniform(*self.click_rate_range, V) * (0.5 + self.commercial) / (0.5 + mean_c),
            1.0).astype(np.float32)
        self.adv = np.ones((k, 1))  # x column: log quality

    # -- ticks --------------------------------------------------------------------------------
    def _rows(self, n: int, rng: np.random.Generator) -> Rows:
        query = zipf_ranks(rng.random(n), self.vocabulary_size, self.zipf_exponent) - 1
        x = self._quality(n, rng)[:, None]
        noise = rng.standard_normal(n, dtype=np.float32)
        return Rows(x, query, self.query_click[query], noise, {"query": query.astype(np.int32)})
