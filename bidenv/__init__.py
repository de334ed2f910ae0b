"""bidenv: a fast Gymnasium simulator of multi-slot ad auctions for auto-bidding research.

Importing the package registers the environments ``bidenv/AutoBidding-v0`` (a full day:
about 500k opportunities, 48 advertisers) and ``bidenv/AutoBiddingLite-v0`` (about 50k
opportunities, 16 advertisers, for fast online RL). It needs numpy and gymnasium only.
"""

from gymnasium.envs.registration import register, registry

from bidenv.campaign import Campaign
from bidenv.scoring import campaign_score, cpa_score, roi_score

__version__ = "0.1.0"
__all__ = ["Campaign", "campaign_score", "cpa_score", "roi_score", "__version__"]

_ENVS = [
    dict(id="bidenv/AutoBidding-v0", entry_point="bidenv.env:AutoBiddingEnv"),
    dict(id="bidenv/AutoBiddingLite-v0", entry_point="bidenv.env:AutoBiddingEnv",
         kwargs={"opportunities_per_day": 50_000, "n_competitors": 15}),
]
for _spec in _ENVS:
    if _spec["id"] not in registry:
        register(**_spec)
