"""bidenv: a fast Gymnasium simulator of multi-slot ad auctions for auto-bidding research.

Importing the package registers the environments ``bidenv/AutoBidding-v0`` (a full day:
about 500k opportunities, 48 advertisers) and ``bidenv/AutoBiddingLite-v0`` (about 50k
opportunities, for fast online RL). It needs numpy and gymnasium only.

Lite is the same market on a tenth of the volume: the same 48 advertisers (47 competitors)
with every budget scaled to the volume (:func:`bidenv.campaign.budget_scale`), the same
traffic per opportunity, so that per opportunity (eligible advertisers, least winning cost,
slot prices and fill rates, a fixed bidder's win rate, cost per conversion and budget use)
it matches the full day within +-10%; ``bidenv calibrate`` (:mod:`bidenv.calibration`)
measures both side by side.
"""

from gymnasium.envs.registration import register, registry

from bidenv.campaign import Campaign
from bidenv.scoring import campaign_score, cpa_score, roi_score

__version__ = "0.1.0"
__all__ = ["Campaign", "campaign_score", "cpa_score", "roi_score", "__version__"]

#: Ticks of the default day: the ids' ``max_episode_steps`` (a day ends by itself at its last
#: tick; for a longer ``n_ticks`` pass ``max_episode_steps=n_ticks`` to ``gym.make`` too, or
#: the TimeLimit wrapper truncates it at 48).
DAY_TICKS = 48
_ENVS = [
    dict(id="bidenv/AutoBidding-v0", entry_point="bidenv.env:AutoBiddingEnv",
         vector_entry_point="bidenv.vector:AutoBiddingVectorEnv", max_episode_steps=DAY_TICKS),
    # The full market (47 competitors, budgets scaled to the volume) on a tenth of the day.
    dict(id="bidenv/AutoBiddingLite-v0", entry_point="bidenv.env:AutoBiddingEnv",
         vector_entry_point="bidenv.vector:AutoBiddingVectorEnv",
         kwargs={"opportunities_per_day": 50_000}, max_episode_steps=DAY_TICKS),
]
for _spec in _ENVS:
    if _spec["id"] not in registry:
        register(**_spec)
