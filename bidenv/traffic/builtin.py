"""Built-in traffic sources: a recommendation feed, search, and their mix.

This module gathers the built-in sources for backward compatibility; they live in
:mod:`bidenv.traffic.feed`, :mod:`bidenv.traffic.search` and :mod:`bidenv.traffic.mix`, on
the shared machinery of :mod:`bidenv.traffic.latent`.
"""

from bidenv.traffic.feed import FeedTraffic
from bidenv.traffic.latent import (
    CATEGORY_LEVELS,
    MEAN_PVALUE,
    AdvertiserPopulation,
    AdvertiserProfile,
    LatentTraffic,
    Rows,
    Tables,
    assemble,
)
from bidenv.traffic.mix import DEFAULT_SEARCH_SHARE, TrafficMix, make_traffic, merge_batches
from bidenv.traffic.search import SearchTraffic, zipf_frequencies, zipf_ranks

#: Former name of :class:`~bidenv.traffic.latent.LatentTraffic`.
_LatentTraffic = LatentTraffic

__all__ = [
    "CATEGORY_LEVELS", "DEFAULT_SEARCH_SHARE", "MEAN_PVALUE", "AdvertiserPopulation",
    "AdvertiserProfile", "FeedTraffic", "LatentTraffic", "Rows", "SearchTraffic", "Tables",
    "TrafficMix", "assemble", "make_traffic", "merge_batches", "zipf_frequencies", "zipf_ranks",
]
