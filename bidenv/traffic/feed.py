"""A recommendation feed as a source of ad opportunities.

Users scroll a feed of items in sessions; every ``ad_load`` items an ad slot comes up, which
is one ad opportunity. What an opportunity is worth to an advertiser depends on how well the
user's *current* interest matches the ad, how tired of ads the user already is, and which
advertisers the recommender's retrieval stage put forward at all.

Model, per episode (at :meth:`~bidenv.traffic.base.TrafficSource.bind`):

* ``n_users`` users with heavy-tailed activity (user of activity rank r starts a share of the
  sessions proportional to about ``r ** (1 / activity_skew - 1)``) and latent interest
  vectors ``u`` (standard normal marginally), grouped into ``n_interest_clusters`` clusters
  (``u = sqrt(c) mu_cluster + sqrt(1 - c) noise``), and a click propensity each.
* Candidate retrieval, as in two-stage recommenders: for each interest cluster the
  ``retrieval_share`` advertisers with the best recall score are candidates: relevance
  ``mu_cluster . w_a`` plus a popularity bias (``popularity_bias`` x the spread of relevance x
  the advertiser's standardised log budget, the engagement history such models learn from),
  cold-start advertisers excluded (no history to recall them by), plus, for each of
  ``exploration_variants`` variants of the cluster, ``exploration_size`` other advertisers
  drawn at random with cold-start advertisers ``cold_start_exploration`` times as likely
  (exploration gives new ads traffic). Only candidates may bid: the opportunity's eligibility
  group is (cluster, variant).
* With ``retrieval="generative"`` candidates are decoded per *user* instead (the
  eligibility group is the user): the ``generative_share`` of the advertisers with the best
  semantic match to the user's own interest, ``u . w_a`` standardised per advertiser over
  the users (no popularity term: a niche ad is a candidate for the users it suits as often
  as a broad one), a marketing ad's match lowered by ``generative_marketing_penalty``, plus
  ``generative_exploration_size`` explored ads weighted by ``cold_start_exploration`` for
  cold-start ads and by ``(median reach / reach) ** generative_tail_exploration`` against
  the cascade's reach. Its random keys come from a stream jumped off the episode's, so the
  users, sessions and everything else are the cascade's.

Per tick (at :meth:`~bidenv.traffic.base.TrafficSource.sample`):

* Sessions of geometric length (mean ``mean_session_ads`` ad opportunities); each session
  draws a user by activity and a drift direction ``v``. At the j-th ad of a session (j ads
  already seen) the user's interest is ``z = a_j u + sqrt(1 - a_j^2) v`` with
  ``a_j = exp(-drift * ad_load * j)``: it drifts away from the profile that retrieval used.
* Ad fatigue: conversion (and so pValue, the platform models it) falls as ``exp(-fatigue j)``
  and the click rate as ``exp(-click_fatigue j)``, times a drift term ``(1 + a_j) / 2`` (the
  retrieved ads match a drifting interest less), normalised so that the day's mean click
  rate stays within ``click_rate_range`` on average.
* ``pvalue[o, a] = level_scale * level_a * exp(z_o . w_a) * q_o * fatigue_j / N_a`` on
  candidates, 0 elsewhere, where ``q_o`` is a mean-one lognormal quality and ``N_a`` the
  expectation of ``exp(z . w_a) fatigue_j`` over this episode's users and positions (in
  closed form), so an advertiser's mean pValue over all feed opportunities is
  ``level_scale * level_a``; over the opportunities where it is a candidate it is higher
  (retrieval picks relevant ads), where it is only explored, lower.

Sessions are drawn within a tick (a session does not continue into the next tick) and a
single feed's rows come session by session; a mix interleaves sources at random.

References:
    Covington, Adams and Sargin (2016), "Deep Neural Networks for YouTube Recommendations",
    RecSys: candidate generation, then ranking.
    Jannach, Ludewig and Lerche (2017), "Session-based item recommendation in e-commerce: on
    short-term intents, reminders, trends and discounts" (interest drift within sessions).
    Ma, Liu and Shen (2016), "User Fatigue in Online News Recommendation", WWW: click
    rates fall with repeated exposure.
    Efraimidis and Spirakis (2006), "Weighted random sampling with a reservoir", Information
    Processing Letters: the exploration draw (weighted sampling without replacement).
"""

from __future__ import annotations

import numpy as np

from bidenv.traffic.base import SOURCE_FEED, SlotSettings
from bidenv.traffic.latent import LatentTraffic, Rows, side_stream
from bidenv.validation import check_int, check_number

#: Positions in a session beyond this share one set of drift/fatigue factors.
_MAX_POSITION = 256


class FeedTraffic(LatentTraffic):
    """Recommendation-feed opportunities: users in sessions, retrieval-gated eligibility.

    See the module docstring for the model. All arguments are optional.

    Args:
        daily_volume: Expected opportunities per day (None: the env's ``opportunities_per_day``).
        slots: Slot settings (None: the env's; ``"native"``: :attr:`native_slots`, two slots).
        n_users: Size of the user population.
        activity_skew: Heavy tail of user activity (1: uniform; larger: a few users start
            most sessions).
        n_interest_clusters: Number of user interest clusters (retrieval groups).
        interest_cohesion: Share of a user's interest variance explained by the cluster.
        mean_session_ads: Mean number of ad opportunities per session (geometric).
        ad_load: Feed items per ad opportunity (drift is per item scrolled).
        drift: Interest drift per item scrolled (0: none).
        fatigue: Log-decrease of the conversion rate per ad already seen in the session.
        click_fatigue: Log-decrease of the click rate per ad already seen in the session.
        retrieval_share: Share of the advertisers retrieved as candidates per cluster.
        popularity_bias: Weight of popularity (log budget, standardised) in the cascade's
            recall score, in units of the spread of relevance (0: relevance only).
        cold_start_recall: Whether the cascade's recall can retrieve cold-start advertisers
            (False: they have no history, only exploration reaches them).
        exploration_size: Extra random candidates per (cluster, variant).
        exploration_variants: Exploration variants per cluster.
        cold_start_exploration: How much more likely a cold-start advertiser is explored.
        daytime_tilt: Diurnal tilt (< 0: relatively more feed in the evening, when people
            scroll for entertainment; the feed then peaks late in the evening).
        level_scale: Multiplier of every advertiser's pValue level on the feed (0.9
            calibrates the default market to docs/design.md's reference day).
        generative_share: Share of the advertisers decoded per user (generative retrieval).
        generative_exploration_size: Explored ads per user (generative retrieval).
        generative_tail_exploration: Exponent of the exploration weight against the
            cascade's reach (generative retrieval; 0: none).
        generative_marketing_penalty: Match taken off marketing ads (generative retrieval).
        sigma_ratio, shift_hours, tilt_peak_hour, volume_noise, quality_sigma, population,
            profile, retrieval: As :class:`~bidenv.traffic.latent.LatentTraffic`.
    """

    source_id = SOURCE_FEED
    name = "feed"
    native_slots = SlotSettings(2, (1.0, 0.7))
    info_names = ("user", "session_position")

    def __init__(self, daily_volume=None, slots=None, *, n_users: int = 4096,
                 activity_skew: float = 2.5, n_interest_clusters: int = 16,
                 interest_cohesion: float = 0.7, mean_session_ads: float = 6.0,
                 ad_load: int = 5, drift: float = 0.02, fatigue: float = 0.05,
                 click_fatigue: float = 0.08, retrieval_share: float = 0.8,
                 exploration_size: int = 2, exploration_variants: int = 4,
                 cold_start_exploration: float = 4.0, daytime_tilt: float = -0.1,
                 level_scale: float = 0.9, generative_share: float = 0.3,
                 generative_exploration_size: int = 4,
                 generative_tail_exploration: float = 3.0,
                 generative_marketing_penalty: float = 1.0, popularity_bias: float = 6.0,
                 cold_start_recall: bool = False, **kwargs):
        super().__init__(daily_volume, slots, daytime_tilt=daytime_tilt,
                         level_scale=level_scale, **kwargs)
        self.n_users = check_int("n_users", n_users, 1)
        self.activity_skew = check_number("activity_skew", activity_skew, 1.0, 20.0)
        self.n_interest_clusters = check_int("n_interest_clusters", n_interest_clusters, 1)
        self.interest_cohesion = check_number("interest_cohesion", interest_cohesion, 0.0, 1.0)
        self.mean_session_ads = check_number("mean_session_ads", mean_session_ads, 1.0, 1e4)
        self.ad_load = check_int("ad_load", ad_load, 1)
        self.drift = check_number("drift", drift, 0.0, 10.0)
        self.fatigue = check_number("fatigue", fatigue, 0.0, 10.0)
        self.click_fatigue = check_number("click_fatigue", click_fatigue, 0.0, 10.0)
        self.retrieval_share = check_number("retrieval_share", retrieval_share, 0.0, 1.0,
                                            low_open=True)
        self.exploration_size = check_int("exploration_size", exploration_size, 0)
        self.exploration_variants = check_int("exploration_variants", exploration_variants, 1)
        self.cold_start_exploration = check_number("cold_start_exploration",
                                                   cold_start_exploration, 0.0, 1e3,
                                                   low_open=True)
        self.generative_share = check_number("generative_share", generative_share, 0.0, 1.0,
                                             low_open=True)
        self.generative_marketing_penalty = check_number(
            "generative_marketing_penalty", generative_marketing_penalty, 0.0, 100.0)
        self.generative_tail_exploration = check_number(
            "generative_tail_exploration", generative_tail_exploration, 0.0, 20.0)
        self.popularity_bias = check_number("popularity_bias", popularity_bias, 0.0, 100.0)
        if not isinstance(cold_start_recall, (bool, np.bool_)):
            raise ValueError(f"cold_start_recall must be True or False, got {cold_start_recall!r}")
        self.cold_start_recall = bool(cold_start_recall)
        self.generative_exploration_size = check_int(
            "generative_exploration_size", generative_exploration_size, 0)

    # -- episode ------------------------------------------------------------------------------
    def _bind_source(self, rng):
        prof = self.profile
        k, d = prof.ad_factors.shape
        w = prof.ad_factors.astype(np.float64)
        C, V = self.n_interest_clusters, self.exploration_variants
        # Users: interest vectors around their cluster's centroid, click propensities.
        centroids = rng.standard_normal((C, d))
        self.user_cluster = rng.integers(C, size=self.n_users)
        c = self.interest_cohesion
        users = (np.sqrt(c) * centroids[self.user_cluster]
                 + np.sqrt(1 - c) * rng.standard_normal((self.n_users, d)))
        self.user_factors = users.astype(np.float32)
        self.user_click = rng.uniform(*self.click_rate_range, self.n_users).astype(np.float32)
        self.cluster_centroids = centroids
        # Within-session tables by position j (ads already seen).
        j = np.arange(_MAX_POSITION)
        p = 1.0 / self.mean_session_ads
        weight = p * (1 - p) ** j  # share of opportunities at position j (geometric sessions)
        weight /= weight.sum()
        a = np.exp(-self.drift * self.ad_load * j)
        self._keep = a.astype(np.float32)
        self._drift = np.sqrt(1 - a * a).astype(np.float32)
        log_fatigue = -self.fatigue * j
        log_fatigue -= np.log(weight @ np.exp(log_fatigue))  # mean one over a day
        self._log_fatigue = log_fatigue.astype(np.float32)
        click = np.exp(-self.click_fatigue * j) * (1 + a) / 2
        self._click_factor = (click / (weight @ click)).astype(np.float32)
        # Retrieval: top candidates per cluster plus exploration per (cluster, variant).
        relevance = centroids @ w.T  # (C, k)
        m = min(k, max(1, int(round(self.retrieval_share * k))))
        retrieved = np.zeros((C, k), bool)
        top = np.argpartition(-self._recall_score(relevance), m - 1, axis=1)[:, :m]
        retrieved[np.arange(C)[:, None], top] = True
        table = np.repeat(retrieved, V, axis=0)  # group g = cluster * V + variant
        if self.exploration_size and m < k:
            chance = np.where(prof.cold_start, self.cold_start_exploration, 1.0)
            # Weighted sampling without replacement by Gumbel keys (Efraimidis-Spirakis).
            keys = np.log(chance)[None, :] - np.log(-np.log(rng.random((C * V, k))))
            keys[table] = -np.inf
            e = min(self.exploration_size, k - m)
            pick = np.argpartition(-keys, e - 1, axis=1)[:, :e]
            table[np.arange(C * V)[:, None], pick] = True
        # Popularity with the cascade: the activity-weighted share of the day's feed
        # opportunities where each advertiser is a candidate (variants are equally likely).
        ranks = np.arange(self.n_users + 1) / self.n_users
        activity = np.diff(ranks ** (1.0 / self.activity_skew))  # P(session by user r)
        cluster_weight = np.bincount(self.user_cluster, weights=activity, minlength=C)
        self.cascade_reach = (np.repeat(cluster_weight, V) / V) @ table / cluster_weight.sum()
        if self.retrieval == "generative":
            table = self._generative_table(users, w, m, rng)
        self.group_table = table
        # Normalise relevance so that each advertiser's mean pValue over all of the day's feed
        # opportunities is its level: E[exp(z . w) f_j | cluster c, position j] in closed form
        # (z = a_j (sqrt(c) mu_c + sqrt(1 - c) eps) + b_j v with standard normal eps, v),
        # averaged over this episode's activity-weighted clusters and the positions.
        used = weight > 1e-6
        aj, wj = a[used], weight[used] * np.exp(log_fatigue[used])
        sq = np.sum(w * w, axis=1)  # |w_a|^2
        spread = (aj ** 2 * (1 - c) + (1 - aj ** 2))[:, None] * sq[None, :] / 2  # (J, k)
        expected = np.zeros(k)
        for cl in range(C):
            log_e = (aj[:, None] * np.sqrt(c) * relevance[cl][None, :]) + spread
            expected += cluster_weight[cl] * (wj @ np.exp(log_e))
        expected /= wj.sum() * cluster_weight.sum()
        level = prof.level * self.level_scale / expected
        self.mult = table * level[None, :]
        self.adv = np.hstack([w, np.ones((k, 1))])  # x columns: interest z, log quality

    def _recall_score(self, relevance: np.ndarray) -> np.ndarray:
        """(C, k) score by which the cascade recalls the ``retrieval_share`` top advertisers.

        ``relevance + popularity_bias * sd(relevance) * z_a``, where ``z_a`` is the advertiser's
        standardised log popularity (:func:`~bidenv.traffic.latent.popularity_z`: the daily
        budget, as the engagement history recall models learn from; the agent's at its
        campaign's declared ``popularity`` rank). Cold-start advertisers have no history to
        recall them by: unless ``cold_start_recall``, only exploration reaches them.
        """
        prof = self.profile
        score = relevance
        if self.popularity_bias:
            z = self._popularity_z()
            score = relevance + self.popularity_bias * relevance.std() * z[None, :]
        if not self.cold_start_recall:
            score = np.where(prof.cold_start[None, :], -np.inf, score)
        return score

    def _generative_table(self, users, w, m, rng) -> np.ndarray:
        """(n_users, k) candidates of generative retrieval: one eligibility group per user.

        Each user's candidates are decoded from the user's own interest vector ``u`` (not
        the cluster's average): the ``generative_share`` of the advertisers with the best
        semantic match ``u . w_a``, where a marketing ad's match is lowered by
        ``generative_marketing_penalty`` (its inflated engagement does not make its content
        match), plus ``exploration_size`` advertisers explored as in the cascade (cold-start
        ads ``cold_start_exploration`` times as likely). The random keys come from a stream
        jumped off ``rng`` (``rng`` does not move: the rest of the day is the cascade's).
        """
        prof = self.profile
        k = w.shape[0]
        side = side_stream(rng)
        match = users @ w.T  # (user, advertiser) semantic match
        # Without the popularity term: each ad's match is standardised over the users, so a
        # niche ad is decoded for the users it suits best as often as a broad one is.
        match = (match - match.mean(axis=0)) / np.maximum(match.std(axis=0), 1e-12)
        score = match - self.generative_marketing_penalty * prof.marketing[None, :]
        g = min(k, max(1, int(round(self.generative_share * k))))
        table = np.zeros((self.n_users, k), bool)
        top = np.argpartition(-score, g - 1, axis=1)[:, :g]
        table[np.arange(self.n_users)[:, None], top] = True
        if self.generative_exploration_size and g < k:
            chance = np.where(prof.cold_start, self.cold_start_exploration, 1.0)
            # Exploration against popularity: inversely to the cascade's reach.
            reach = np.maximum(self.cascade_reach, 1e-6)
            chance = chance * (np.median(reach) / reach) ** self.generative_tail_exploration
            keys = np.log(chance)[None, :] - np.log(-np.log(side.random((self.n_users, k))))
            keys[table] = -np.inf
            e = min(self.generative_exploration_size, k - g)
            pick = np.argpartition(-keys, e - 1, axis=1)[:, :e]
            table[np.arange(self.n_users)[:, None], pick] = True
        return table

    # -- ticks --------------------------------------------------------------------------------
    def _rows(self, n: int, rng: np.random.Generator) -> Rows:
        d = self.user_factors.shape[1]
        if n == 0:
            empty = np.zeros(0, np.int32)
            return Rows(np.zeros((0, d + 1), np.float32), np.zeros(0, np.intp),
                        np.zeros(0, np.float32), np.zeros(0, np.float32),
                        {"user": empty, "session_position": empty})
        p = 1.0 / self.mean_session_ads
        guess = int(n * p * 1.1) + 16
        lengths = rng.geometric(p, guess)
        ends = np.cumsum(lengths)
        while ends[-1] < n:
            lengths = np.concatenate([lengths, rng.geometric(p, guess)])
            ends = np.cumsum(lengths)
        s = int(np.searchsorted(ends, n)) + 1  # sessions needed for n opportunities
        lengths = lengths[:s]
        starts = ends[:s] - lengths
        session = np.repeat(np.arange(s), lengths)[:n]
        position = np.arange(n) - starts[session]
        pos = np.minimum(position, _MAX_POSITION - 1)
        # Per session: the user (by activity rank), a drift direction, an exploration variant.
        user_s = np.minimum((self.n_users * rng.random(s) ** self.activity_skew).astype(np.intp),
                            self.n_users - 1)
        drift_s = rng.standard_normal((s, d), dtype=np.float32)
        variant_s = rng.integers(self.exploration_variants, size=s)
        user = user_s[session]
        interest = np.take(self.user_factors, user, axis=0)
        interest *= np.take(self._keep, pos)[:, None]
        drifted = np.take(drift_s, session, axis=0)
        drifted *= np.take(self._drift, pos)[:, None]
        interest += drifted
        x = np.empty((n, d + 1), np.float32)
        x[:, :d] = interest
        x[:, d] = self._quality(n, rng) + np.take(self._log_fatigue, pos)
        if self.retrieval == "generative":
            groups = user  # one candidate set per user (variant_s is drawn all the same)
        else:
            groups = self.user_cluster[user] * self.exploration_variants + variant_s[session]
        click = np.minimum(self.user_click[user] * self._click_factor[pos], np.float32(1.0))
        noise = rng.standard_normal(n, dtype=np.float32)
        return Rows(x, groups, click, noise,
                    {"user": user.astype(np.int32), "session_position": position.astype(np.int32)})
