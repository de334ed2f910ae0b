"""Market calibration: per-opportunity statistics of an environment's days.

:func:`calibrate` plays days of a registered environment with a *fixed bidder* (one constant
action, e.g. ``a = 0``, the truthful bid, for a campaign whose budget is given for the
reference day of 500k opportunities and scaled to the environment's volume with
:func:`bidenv.campaign.budget_scale`) and returns statistics of the market per opportunity,
so that days of different volumes (``bidenv/AutoBidding-v0`` and ``bidenv/AutoBiddingLite-v0``)
compare directly, and with the public benchmark's day (:data:`REFERENCE`).

Statistics (all per opportunity, pooled over the days played; ``_j`` is the slot, 1 = top):

* ``eligible_per_opportunity``: advertisers that may enter an auction (agent included);
* ``least_winning_cost_mean`` / ``_median``: ``max(reserve, b_{K+1})``, the smallest bid
  that wins a slot (the clearing price of the last slot), over all opportunities;
* ``slot_price_j``: mean price per exposure of slot j where it was allocated;
* ``fill_rate_j``: share of opportunities whose slot j was allocated;
* ``exposure_rate_j``: probability that an allocated slot j is shown (noise-free);
* ``exposures_per_500k`` / ``conversions_per_500k``: expected exposures and conversions of all
  advertisers per opportunity, times 500k (a reference day);
* ``opportunities_per_day``, ``opportunities_per_tick_median``: the volume itself;
* the fixed bidder's ``agent_win_rate`` (slots won per opportunity it could enter),
  ``agent_cpa`` (cost per *expected* conversion, free of outcome noise) and
  ``agent_budget_use`` (spent / budget).

The market statistics are the outcome of the real auctions of every tick, including the
ticks after an early end of the bidder (``record=True`` plays the rest of the day without
it). :class:`MarketRecordingEnv` keeps them: a subclass of
:class:`~bidenv.env.AutoBiddingEnv` whose per-tick recording hook stores the market's
outcome (:func:`tick_market_record`) instead of the oracle's view.

Simulator layer: numpy and gymnasium only (no agents, experiments or torch).
"""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np

from bidenv.campaign import REFERENCE_DAILY_OPPORTUNITIES, Campaign, budget_scale
from bidenv.env import AutoBiddingEnv

#: Reference numbers of the public auto-bidding benchmark's day (about 500k opportunities,
#: 48 advertisers, 3 slots): least winning cost, slot prices and exposure rates per slot,
#: exposures and conversions of the whole market per day.
REFERENCE = {
    "opportunities_per_day": 500_000.0,
    "least_winning_cost_mean": 0.08,
    "least_winning_cost_median": 0.074,
    "slot_price_1": 0.108,
    "slot_price_2": 0.091,
    "slot_price_3": 0.081,
    "exposure_rate_1": 1.0,
    "exposure_rate_2": 0.80,
    "exposure_rate_3": 0.48,
    "exposures_per_500k": 1.14e6,
    "conversions_per_500k": 1100.0,
}

#: The fixed bidder's campaign (budget for a 500k-opportunity day; scaled to the volume): the
#: top of the competitors' budget range and a generous target, so that bidding truthfully it
#: wins about a fifth of its auctions and spends about 3/4 of its budget. A bidder that wins
#: rarely sits at the margin of the market, where its win rate swings by +-30% from day to
#: day; a larger one raises the prices it is measured in (16,000 at target 200: +5%).
DEFAULT_CAMPAIGN = {"budget": 8000.0, "constraint": "cpa", "target_cpa": 150.0, "category": 3}

#: Statistics compared between a small day and the full one (the +-10% band).
MATCHED = ("eligible_per_opportunity", "least_winning_cost_mean", "slot_price_1",
           "slot_price_2", "slot_price_3", "fill_rate_1", "fill_rate_2", "fill_rate_3",
           "agent_win_rate", "agent_cpa", "agent_budget_use")


def tick_market_record(batch, bids, res, n_slots, exposure) -> dict:
    """The market's outcome of one tick, per opportunity (what :func:`market_sums` reads).

    Args:
        batch: The tick's :class:`~bidenv.traffic.ImpressionBatch`.
        bids: (n, k) bids as cleared (columns of advertisers dropped for lack of budget are
            0 from the row where they dropped out).
        res: The tick's :class:`~bidenv.auction.AuctionResult` (after budget drops).
        n_slots: Slot count, an int or (n,) array.
        exposure: Marginal exposure probability of each slot, (K,) or (n, K).

    Returns:
        ``{"n_eligible", "lwc", "prices", "allocated", "has_slot", "exposure",
        "p_conversion"}``: (n,) and (n, K) arrays (``p_conversion``: the true conversion
        probability of the slot's winner, 0 where unallocated).
    """
    n = batch.n
    winners = np.asarray(res.winners)
    K = winners.shape[1]
    allocated = winners >= 0
    has_slot = np.arange(K)[None, :] < np.broadcast_to(np.asarray(n_slots), (n,))[:, None]
    expo = np.broadcast_to(np.asarray(exposure, np.float64), (n, np.shape(exposure)[-1]))
    expo = np.ascontiguousarray(expo[:, :K])
    flat = np.flatnonzero(allocated)
    p_conv = np.zeros((n, K))
    if flat.size:
        p_conv.ravel()[flat] = batch.p_conversion_at(flat // K, winners.ravel()[flat])
    return {
        "n_eligible": np.asarray(batch.eligible_per_opportunity(), np.int32),
        "lwc": np.asarray(res.least_winning_cost, np.float64),
        "prices": np.asarray(res.prices, np.float64),
        "allocated": allocated,
        "has_slot": has_slot,
        "exposure": expo,
        "p_conversion": p_conv,
    }


class MarketRecordingEnv(AutoBiddingEnv):
    """:class:`~bidenv.env.AutoBiddingEnv` that records the market's outcome of every tick.

    Built with ``record=True`` (so the rest of the day is played when the agent stops early);
    after a day, :attr:`market_ticks` holds one :func:`tick_market_record` per tick. The
    oracle's recording (``env.recording``) stays empty.
    """

    def __init__(self, **kwargs):
        kwargs["record"] = True
        super().__init__(**kwargs)
        self.market_ticks: list[dict] = []

    def reset(self, *, seed=None, options=None):
        self.market_ticks = []
        return super().reset(seed=seed, options=options)

    def _record(self, batch, bids, res, n_slots, exposure, eligible, alpha):
        self.market_ticks.append(tick_market_record(batch, bids, res, n_slots, exposure))


def market_sums(ticks: list[dict]) -> dict:
    """Sums and counts of the market statistics over per-tick records (vectorised).

    Sums of several days add up (``{k: a[k] + b[k]}``) except ``lwc_values`` and
    ``tick_sizes``, which concatenate; :func:`statistics_from_sums` turns them into means.
    """
    cat = lambda name: np.concatenate([t[name] for t in ticks]) if ticks else None  # noqa: E731
    if not ticks:
        raise ValueError("no tick recorded: play at least one tick")
    K = max(t["prices"].shape[1] for t in ticks)
    pad = lambda a: np.pad(a, ((0, 0), (0, K - a.shape[1])))  # noqa: E731
    prices = np.concatenate([pad(t["prices"]) for t in ticks])
    allocated = np.concatenate([pad(t["allocated"]) for t in ticks])
    has_slot = np.concatenate([pad(t["has_slot"]) for t in ticks])
    exposure = np.concatenate([pad(t["exposure"]) for t in ticks])
    p_conv = np.concatenate([pad(t["p_conversion"]) for t in ticks])
    lwc = cat("lwc")
    expo_won = np.where(allocated, exposure, 0.0)
    return {
        "n": float(len(lwc)),
        "eligible": float(cat("n_eligible").sum(dtype=np.float64)),
        "lwc": float(lwc.sum()),
        "lwc_values": lwc,
        "price": np.where(allocated, prices, 0.0).sum(axis=0),
        "allocated": allocated.sum(axis=0).astype(np.float64),
        "has_slot": has_slot.sum(axis=0).astype(np.float64),
        "exposure": expo_won.sum(axis=0),
        "conversions": float((expo_won * p_conv).sum()),
        "tick_sizes": np.array([len(t["lwc"]) for t in ticks], np.float64),
    }


def add_sums(a: dict | None, b: dict) -> dict:
    """Sums of two sets of days (:func:`market_sums`)."""
    if a is None:
        return dict(b)
    out = {}
    for key in b:
        if key in ("lwc_values", "tick_sizes"):
            out[key] = np.concatenate([a[key], b[key]])
        else:
            x, y = np.asarray(a[key]), np.asarray(b[key])
            if x.shape != y.shape:  # different slot counts: pad the shorter
                width = max(x.size, y.size)
                x, y = np.pad(x, (0, width - x.size)), np.pad(y, (0, width - y.size))
            out[key] = x + y
    return out


def statistics_from_sums(sums: dict, days: int | None = None) -> dict:
    """Per-opportunity statistics (see the module docstring) from :func:`market_sums`."""
    n = max(sums["n"], 1.0)
    per = REFERENCE_DAILY_OPPORTUNITIES / n
    stats = {
        "eligible_per_opportunity": sums["eligible"] / n,
        "least_winning_cost_mean": sums["lwc"] / n,
        "least_winning_cost_median": float(np.median(sums["lwc_values"])),
    }
    allocated = np.asarray(sums["allocated"])
    with np.errstate(invalid="ignore", divide="ignore"):
        price = np.where(allocated > 0, sums["price"] / np.maximum(allocated, 1), math.nan)
        fill = np.where(sums["has_slot"] > 0,
                        allocated / np.maximum(sums["has_slot"], 1), math.nan)
        expo = np.where(allocated > 0, sums["exposure"] / np.maximum(allocated, 1), math.nan)
    for j in range(len(allocated)):
        stats[f"slot_price_{j + 1}"] = float(price[j])
    for j in range(len(allocated)):
        stats[f"fill_rate_{j + 1}"] = float(fill[j])
    for j in range(len(allocated)):
        stats[f"exposure_rate_{j + 1}"] = float(expo[j])
    stats["exposures_per_500k"] = float(np.sum(sums["exposure"])) * per
    stats["conversions_per_500k"] = sums["conversions"] * per
    if days:
        stats["opportunities_per_day"] = sums["n"] / days
    stats["opportunities_per_tick_median"] = float(np.median(sums["tick_sizes"]))
    return stats


def market_statistics(ticks: list[dict]) -> dict:
    """Per-opportunity market statistics of per-tick records (:func:`tick_market_record`)."""
    return statistics_from_sums(market_sums(ticks))


def make_market_env(env_id: str, **kwargs) -> MarketRecordingEnv:
    """A :class:`MarketRecordingEnv` with the registered arguments of ``env_id``."""
    spec = gym.spec(env_id)
    entry = spec.entry_point
    if entry not in ("bidenv.env:AutoBiddingEnv", AutoBiddingEnv):
        raise ValueError(f"{env_id} is not an AutoBiddingEnv (entry point {entry!r})")
    return MarketRecordingEnv(**{**dict(spec.kwargs or {}), **kwargs})


def scaled_campaign(campaign, opportunities_per_day: float) -> Campaign:
    """``campaign`` (budget for a 500k-opportunity day) with its budget scaled to the volume."""
    camp = Campaign.coerce(campaign)
    return camp.replace(budget=camp.budget * budget_scale(opportunities_per_day))


def play_day(env: MarketRecordingEnv, seed: int, action: float = 0.0) -> tuple[dict, dict]:
    """Play one day with a constant action; returns (market sums, bidder totals)."""
    env.reset(seed=seed)
    a = np.full(1, action, np.float32)
    wins = opportunities = 0
    done = False
    info = {}
    while not done:
        _, _, terminated, truncated, info = env.step(a)
        wins += info["wins"]
        opportunities += info["opportunities"]
        done = terminated or truncated
    agent = {"wins": float(wins), "opportunities": float(opportunities),
             "cost": info["total_cost"], "expected_conversions": info["expected_conversions"],
             "budget": info["budget"]}
    return market_sums(env.market_ticks), agent


def calibrate(env_id: str, days: int = 3, seed: int = 0, *, action: float = 0.0,
              campaign=None, progress=None, **env_kwargs) -> dict:
    """Play ``days`` days (seeds ``seed, seed + 1, ...``) of ``env_id`` with a fixed bidder.

    Args:
        env_id: A registered :class:`~bidenv.env.AutoBiddingEnv` id.
        days: Days to play.
        seed: Seed of the first day.
        action: The bidder's constant action (0: the truthful bid).
        campaign: The bidder's campaign (dict or :class:`~bidenv.campaign.Campaign`) with its
            budget for a 500k-opportunity day; scaled to the env's volume. Default
            :data:`DEFAULT_CAMPAIGN`.
        progress: Optional callable called once per day played (e.g. a progress bar's update).
        **env_kwargs: Overrides of the registered arguments.

    Returns:
        The statistics (module docstring), each a float.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    env = make_market_env(env_id, **env_kwargs)
    env.campaign = scaled_campaign(campaign or DEFAULT_CAMPAIGN, env.opportunities_per_day)
    sums, agent = None, None
    for d in range(days):
        s, a = play_day(env, seed + d, action)
        sums = add_sums(sums, s)
        agent = a if agent is None else {k: agent[k] + a[k] for k in a}
        if progress is not None:
            progress(1)
    stats = statistics_from_sums(sums, days)
    stats["agent_win_rate"] = agent["wins"] / max(agent["opportunities"], 1.0)
    stats["agent_cpa"] = (agent["cost"] / agent["expected_conversions"]
                          if agent["expected_conversions"] > 0 else math.nan)
    stats["agent_budget_use"] = agent["cost"] / agent["budget"]
    return {name: float(value) for name, value in stats.items()}
