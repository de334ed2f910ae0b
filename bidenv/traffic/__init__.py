"""Traffic sources: where ad opportunities come from (the traffic contract of DESIGN.md)."""

from bidenv.traffic.base import (
    SOURCE_FEED,
    SOURCE_NAMES,
    SOURCE_SEARCH,
    ImpressionBatch,
    SlotSettings,
    TrafficSource,
    diurnal_shares,
)
from bidenv.traffic.builtin import (
    AdvertiserProfile,
    FeedTraffic,
    SearchTraffic,
    TrafficMix,
    make_traffic,
    merge_batches,
)

__all__ = [
    "SOURCE_FEED", "SOURCE_NAMES", "SOURCE_SEARCH", "AdvertiserProfile", "FeedTraffic",
    "ImpressionBatch", "SearchTraffic", "SlotSettings", "TrafficMix", "TrafficSource",
    "diurnal_shares", "make_traffic", "merge_batches",
]
