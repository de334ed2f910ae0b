"""Traffic sources: where ad opportunities come from (the traffic contract of docs/design.md).

* :mod:`bidenv.traffic.base`: the contract, :class:`ImpressionBatch`, :class:`TrafficSource`,
  :class:`SlotSettings` and the diurnal curve.
* :mod:`bidenv.traffic.feed`: :class:`FeedTraffic`, a recommendation feed (users in sessions,
  interest drift, ad fatigue, retrieval-gated eligibility).
* :mod:`bidenv.traffic.search`: :class:`SearchTraffic`, a Zipf query vocabulary with intent
  and relevance-gated eligibility.
* :mod:`bidenv.traffic.mix`: :class:`TrafficMix` and :func:`make_traffic`.
* :mod:`bidenv.traffic.latent`: the advertisers (:class:`AdvertiserPopulation`,
  :class:`AdvertiserProfile`) and the shared one-matmul machinery.

Example:
    >>> import numpy as np
    >>> from bidenv.campaign import Campaign, CampaignArrays
    >>> from bidenv.traffic import make_traffic
    >>> ads = CampaignArrays.from_campaigns(
    ...     [Campaign(budget=100.0, target_cpa=50.0, category=c) for c in range(8)])
    >>> mix = make_traffic("mixed").bind(ads, n_ticks=48, opportunities_per_day=20_000,
    ...                                  rng=np.random.default_rng(0))
    >>> batch = mix.sample(18, np.random.default_rng(1))
    >>> batch.pvalue.shape[1], batch.pvalue.dtype, sorted(batch.row_info)
    (8, dtype('float32'), ['query', 'session_position', 'user'])
    >>> bool(np.all(batch.pvalue[~batch.eligible] == 0))
    True
"""

from bidenv.traffic.base import (
    SOURCE_FEED,
    SOURCE_NAMES,
    SOURCE_SEARCH,
    ImpressionBatch,
    SlotSettings,
    TrafficSource,
    diurnal_shares,
)
from bidenv.traffic.feed import FeedTraffic
from bidenv.traffic.latent import RETRIEVAL_MODES, AdvertiserPopulation, AdvertiserProfile
from bidenv.traffic.mix import TrafficMix, make_traffic, merge_batches
from bidenv.traffic.search import SearchTraffic

__all__ = [
    "RETRIEVAL_MODES", "SOURCE_FEED", "SOURCE_NAMES", "SOURCE_SEARCH", "AdvertiserPopulation",
    "AdvertiserProfile",
    "FeedTraffic", "ImpressionBatch", "SearchTraffic", "SlotSettings", "TrafficMix",
    "TrafficSource", "diurnal_shares", "make_traffic", "merge_batches",
]
