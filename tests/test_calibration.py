"""Tests for :mod:`bidenv.calibration` and `bidenv calibrate`: Lite is the same market, smaller."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import bidenv  # noqa: F401  (registers the ids)
from bidenv.calibration import (
    MATCHED,
    REFERENCE,
    MarketRecordingEnv,
    calibrate,
    make_market_env,
    market_statistics,
)
from bidenv.campaign import REFERENCE_DAILY_OPPORTUNITIES
from bidenv.competitors import HeuristicCompetitors, ScriptedCompetitors
from bidenv.env import FEATURE_NAMES
from bidenv.traffic import FeedTraffic, SearchTraffic, TrafficMix
from experiments.calibrate import COLUMNS
from experiments.cli import main

FULL = "bidenv/AutoBidding-v0"
LITE = "bidenv/AutoBiddingLite-v0"


def test_lite_is_the_full_advertiser_population_on_a_tenth_of_the_volume():
    spec = gym.spec(LITE)
    assert spec.kwargs == {"opportunities_per_day": 50_000}
    env = gym.make(LITE).unwrapped
    env.reset(seed=0)
    full = gym.make(FULL).unwrapped
    full.reset(seed=0)
    assert env.k == full.k == 48
    # Same campaigns, budgets scaled by the volume.
    np.testing.assert_allclose(env.c.budget[1:], full.c.budget[1:] / 10)
    np.testing.assert_array_equal(env.c.target_cpa[1:], full.c.target_cpa[1:])


#: A large truthful bidder (about 40% of its auctions won, 3/4 of its budget spent): its win
#: rate and spend vary least from day to day, so a few days decide the +-10% band.
STABLE_BIDDER = {"budget": 16000.0, "constraint": "cpa", "target_cpa": 200.0, "category": 3}


@pytest.mark.slow
def test_lite_matches_the_full_day_per_opportunity():
    # Means over 6 days, the same seeds for both. Over 8 disjoint 6-day windows (seeds
    # 1000-1047) the largest deviation of any matched statistic was 6.3% (the bidder's win
    # rate); market statistics stayed within 3.5%; this window is typical (< 2%).
    full = calibrate(FULL, days=6, seed=1000, campaign=STABLE_BIDDER)
    lite = calibrate(LITE, days=6, seed=1000, campaign=STABLE_BIDDER)
    for name in MATCHED:
        assert lite[name] == pytest.approx(full[name], rel=0.10), name
    # The fixed bidder really plays: it wins, spends and is not trivially out of budget.
    assert 0.1 < full["agent_win_rate"] < 0.9 and 0.3 < full["agent_budget_use"] < 0.99
    # The full day is still the calibrated market.
    assert full["least_winning_cost_mean"] == pytest.approx(REFERENCE["least_winning_cost_mean"],
                                                            rel=0.15)
    assert full["exposures_per_500k"] == pytest.approx(REFERENCE["exposures_per_500k"],
                                                       rel=0.1)
    assert lite["opportunities_per_day"] == pytest.approx(50_000, rel=0.1)


def test_constraint_competitors_hold_before_their_first_conversion():
    # The feature's cap (10) before any conversion is no evidence of a CPA ten times the
    # target: the controller waits for the first conversion, at any daily volume.
    policy = HeuristicCompetitors(mix=(0, 0, 1), noise=0.0)
    camp = dict(budget=10.0, constraint="cpa", target_cpa=50.0, target_roi=None, category=0)
    policy.reset([camp] * 3, list(FEATURE_NAMES), np.random.default_rng(0))
    obs = np.zeros((3, len(FEATURE_NAMES)), np.float32)
    obs[:, FEATURE_NAMES.index("constraint_ratio")] = 10.0
    first = policy.act(obs)
    np.testing.assert_array_equal(policy.act(obs), first)
    obs[:, FEATURE_NAMES.index("hist_conversion_mean")] = 0.5
    assert np.all(policy.act(obs) < first)


class _BidKeeper(MarketRecordingEnv):
    """Also keeps the cleared bids, the eligibility and the true rates, for brute force."""

    def reset(self, *, seed=None, options=None):
        self.raw = []
        return super().reset(seed=seed, options=options)

    def _record(self, batch, bids, res, n_slots, exposure, eligible, alpha):
        super()._record(batch, bids, res, n_slots, exposure, eligible, alpha)
        n = batch.n
        self.raw.append({
            "bids": bids.astype(np.float64).copy(),
            "eligible": np.asarray(batch.eligible).copy(),
            "p_conversion": np.asarray(batch.p_conversion, np.float64).copy(),
            "n_slots": np.broadcast_to(np.asarray(n_slots), (n,)).copy(),
            "exposure": np.broadcast_to(exposure, (n, np.shape(exposure)[-1])).copy(),
        })


def _brute_force(raw, reserve):
    """Per opportunity, by sorting its entering bids: lwc, GSP prices, winners' rates."""
    out = {"n_eligible": [], "lwc": [], "prices": [], "filled": [], "exposure": [],
           "p_conv": []}
    for tick in raw:
        for r in range(len(tick["bids"])):
            bids = tick["bids"][r]
            enter = np.flatnonzero(tick["eligible"][r] & (bids >= reserve) & (bids > 0))
            order = enter[np.argsort(-bids[enter], kind="stable")]
            b = bids[order]
            k_r = int(tick["n_slots"][r])
            out["n_eligible"].append(int(tick["eligible"][r].sum()))
            out["lwc"].append(max(reserve, b[k_r]) if len(b) > k_r else reserve)
            for j in range(k_r):
                if j < len(b):
                    price = max(reserve, b[j + 1]) if j + 1 < len(b) else reserve
                    out["prices"].append((j, price))
                    out["filled"].append(j)
                    out["exposure"].append((j, tick["exposure"][r, j]))
                    out["p_conv"].append(tick["exposure"][r, j]
                                         * tick["p_conversion"][r, order[j]])
    return out


@pytest.mark.parametrize("native_slots", [False, True])
def test_statistics_match_a_brute_force_count(native_slots):
    # A small day: 7 competitors, a few thousand opportunities; with native slots the feed
    # has 2 slots and search 4, so slot counts differ between rows.
    traffic = (TrafficMix([FeedTraffic(slots="native"), SearchTraffic(slots="native")],
                          shares=[0.6, 0.4]) if native_slots else "mixed")
    env = _BidKeeper(n_competitors=7, opportunities_per_day=3_000, traffic=traffic,
                     competitors=ScriptedCompetitors(np.linspace(-0.6, 0.4, 7)),
                     campaign={"budget": 20.0, "target_cpa": 80.0, "category": 2})
    env.reset(seed=3)
    done = False
    while not done:
        *_, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        done = terminated or truncated
    assert len(env.market_ticks) == env.n_ticks  # the whole day, even after an early end
    stats = market_statistics(env.market_ticks)
    bf = _brute_force(env.raw, env.reserve_price)
    n = len(bf["lwc"])
    assert n == sum(len(t["lwc"]) for t in env.market_ticks) > 1000
    # Per opportunity, the recorded least winning cost is the brute-force one.
    np.testing.assert_allclose(np.concatenate([t["lwc"] for t in env.market_ticks]),
                               bf["lwc"], rtol=1e-6)
    assert stats["least_winning_cost_mean"] == pytest.approx(np.mean(bf["lwc"]), rel=1e-6)
    assert stats["least_winning_cost_median"] == pytest.approx(np.median(bf["lwc"]), rel=1e-6)
    assert stats["eligible_per_opportunity"] == pytest.approx(np.mean(bf["n_eligible"]))
    K = max(int(t["n_slots"].max()) for t in env.raw)
    n_slots = np.concatenate([t["n_slots"] for t in env.raw])
    prices = np.array(bf["prices"])
    expo = np.array(bf["exposure"])
    filled = np.bincount(bf["filled"], minlength=K)
    for j in range(K):
        mine = prices[:, 0] == j
        assert stats[f"slot_price_{j + 1}"] == pytest.approx(prices[mine, 1].mean(), rel=1e-6)
        assert stats[f"fill_rate_{j + 1}"] == pytest.approx(filled[j] / np.sum(n_slots > j))
        assert stats[f"exposure_rate_{j + 1}"] == pytest.approx(
            expo[expo[:, 0] == j, 1].mean(), rel=1e-9)
    assert f"slot_price_{K + 1}" not in stats
    assert stats["exposures_per_500k"] == pytest.approx(
        expo[:, 1].sum() / n * REFERENCE_DAILY_OPPORTUNITIES, rel=1e-9)
    assert stats["conversions_per_500k"] == pytest.approx(
        np.sum(bf["p_conv"]) / n * REFERENCE_DAILY_OPPORTUNITIES, rel=1e-6)
    assert stats["opportunities_per_tick_median"] == np.median([len(t["bids"]) for t in env.raw])


def test_tick_record_fills_unallocated_slots_with_zeros():
    env = make_market_env(LITE)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    rec = env.market_ticks[0]
    assert set(rec) == {"n_eligible", "lwc", "prices", "allocated", "has_slot", "exposure",
                        "p_conversion"}
    assert np.all(rec["prices"][~rec["allocated"]] == 0)
    assert np.all(rec["p_conversion"][~rec["allocated"]] == 0)
    n, K = rec["prices"].shape
    assert K == 3 and len(rec["lwc"]) == len(rec["n_eligible"]) == n > 0
    assert np.all(rec["lwc"] >= env.reserve_price)


def test_calibrate_validates_days():
    with pytest.raises(ValueError, match="days"):
        calibrate(LITE, days=0)


def test_cli_writes_calibration_csv(tmp_path, capsys):
    assert main(["calibrate", "--days", "1", "--seed", "7", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "calibration.csv")
    assert list(table.columns) == COLUMNS
    stats = set(table["statistic"])
    assert set(MATCHED) <= stats and {"exposure_rate_1", "conversions_per_500k",
                                      "opportunities_per_tick_median"} <= stats
    row = table.set_index("statistic").loc["least_winning_cost_mean"]
    assert row["reference"] == REFERENCE["least_winning_cost_mean"]
    assert row["lite_over_full"] == pytest.approx(row["lite"] / row["full"])
    assert table["full"].notna().all() and table["lite"].notna().all()
    printed = capsys.readouterr().out
    assert "Lite/full" in printed and "calibration.csv" in printed
