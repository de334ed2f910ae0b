"""Tests for :mod:`bidenv.day`: the day's market state the env delegates to.

The named per-tick statistics (:class:`~bidenv.day.TickStats`) are checked against the
episode totals the env reports, summed here tick by tick; the market day is also played
directly, without Gymnasium.
"""

from __future__ import annotations

import ast
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import bidenv.day
from bidenv.campaign import Campaign, draw_competitor_campaigns
from bidenv.day import HistoryRow, MarketDay, TickStats
from bidenv.env import AutoBiddingEnv
from bidenv.features import FEATURE_NAMES
from bidenv.traffic import SlotSettings, make_traffic


@pytest.fixture
def tick_log(monkeypatch):
    """Every :class:`TickStats` the market days return, in order."""
    log = []
    simulate = MarketDay.simulate_tick

    def keep(self, alpha, on_auctions=None):
        stats = simulate(self, alpha, on_auctions)
        log.append((self.tick, stats))
        return stats

    monkeypatch.setattr(MarketDay, "simulate_tick", keep)
    return log


def play(env, seed, action, options=None):
    env.reset(seed=seed, options=options)
    infos = []
    while True:
        _, _, terminated, truncated, info = env.step(np.full(1, action, np.float32))
        infos.append(info)
        if terminated or truncated:
            return infos


@pytest.mark.parametrize("options, action", [
    (None, 0.3),
    ({"constraint": "roi", "target_roi": 2.0}, 0.5),
    ({"budget": 400.0}, 1.0),  # runs out of budget early
])
def test_tick_stats_add_up_to_the_episode_totals(tick_log, options, action):
    env = AutoBiddingEnv(opportunities_per_day=10_000, n_competitors=7)
    infos = play(env, 2, action, options)
    assert [t for t, _ in tick_log] == list(range(len(infos)))
    final = infos[-1]
    totals = {name: math.fsum(getattr(s, name)[0] for _, s in tick_log)
              for name in ("cost", "conversions", "value", "expected_conversions",
                           "expected_value", "expected_cost")}
    assert totals["cost"] == pytest.approx(final["total_cost"], rel=1e-12, abs=1e-12)
    assert totals["conversions"] == final["total_conversions"]
    assert totals["value"] == pytest.approx(final["total_value"], rel=1e-12, abs=1e-12)
    for name in ("expected_conversions", "expected_value", "expected_cost"):
        assert totals[name] == pytest.approx(final[name], rel=1e-12, abs=1e-12), name
    assert final["total_cost"] <= final["budget"]
    # Each info reports the agent's column of its tick's statistics.
    for info, (_, s) in zip(infos, tick_log):
        assert info["cost"] == s.cost[0] and info["conversions"] == s.conversions[0]
        assert info["value"] == s.value[0]
        for name in ("wins", "exposures", "clicks", "opportunities"):
            assert info[name] == getattr(s, name)[0], name
    # Every advertiser: the funnel per tick, and the day's totals are the sums of its ticks.
    for _, s in tick_log:
        assert np.all(s.conversions <= s.clicks) and np.all(s.clicks <= s.exposures)
        assert np.all(s.exposures <= s.wins) and np.all(s.wins <= s.opportunities)
        assert np.all(s.cost >= 0) and np.all(s.value >= 0)
    stacked = {f.name: np.array([getattr(s, f.name) for _, s in tick_log])
               for f in fields(TickStats)}
    np.testing.assert_allclose(stacked["cost"].sum(axis=0), env.spent, rtol=1e-12)
    np.testing.assert_array_equal(stacked["conversions"].sum(axis=0), env.conv)
    np.testing.assert_allclose(stacked["value"].sum(axis=0), env.value, rtol=1e-12)
    np.testing.assert_allclose(stacked["expected_cost"].sum(axis=0), env.exp_cost, rtol=1e-12)
    assert np.all(env.spent <= env.c.budget)


def test_history_rows_are_the_tick_statistics(tick_log):
    env = AutoBiddingEnv(opportunities_per_day=10_000, n_competitors=7)
    play(env, 5, 0.2, {"budget": 1e9})
    hist = env.day.hist
    assert hist.shape == (len(HistoryRow), env.n_ticks, env.k)
    for t, s in tick_log:
        np.testing.assert_array_equal(hist[HistoryRow.CONVERSION, t], s.conversions)
        np.testing.assert_array_equal(hist[HistoryRow.OPPORTUNITIES, t], s.opportunities)
        np.testing.assert_array_equal(hist[HistoryRow.WIN_RATE, t],
                                      s.wins / np.maximum(s.opportunities, 1.0))


def test_recorded_rest_of_day_is_played_without_the_agent(tick_log):
    env = AutoBiddingEnv(opportunities_per_day=10_000, n_competitors=7, record=True)
    infos = play(env, 1, 1.0, {"budget": 300.0})
    assert len(infos) < env.n_ticks  # the agent left early ...
    assert [t for t, _ in tick_log] == list(range(env.n_ticks))  # ... the day went on
    assert len(env.recording) == env.n_ticks
    rest = [s for t, s in tick_log if t >= len(infos)]
    assert all(s.wins[0] == 0 for s in rest)
    assert sum(s.wins[1:].sum() for s in rest) > 0
    assert env.tick == len(infos) and env.batch is None  # the agent's episode as it ended
    assert infos[-1]["total_cost"] == env.spent[0]


def test_market_day_without_gymnasium():
    rng = np.random.default_rng(0)
    agent = Campaign(budget=200.0, constraint="cpa", target_cpa=80.0, category=2)
    campaigns = [agent] + draw_competitor_campaigns(rng, 5, scale=0.02)
    streams = [np.random.default_rng(s) for s in range(4)]
    day = MarketDay(campaigns, make_traffic("mixed"), rng_traffic=streams[0],
                    rng_exposure=streams[1], rng_outcome=streams[2], rng_ties=streams[3],
                    n_ticks=6, opportunities_per_day=10_000, slot_settings=SlotSettings(),
                    mechanism="gsp", reserve_price=0.01)
    assert day.k == 6 and day.tick == 0 and not day.agent_done
    assert day.obs_all.shape == (6, len(FEATURE_NAMES))
    spent = np.zeros(day.k)
    while not day.agent_done:
        stats = day.play_tick(np.ones(day.k))
        assert isinstance(stats, TickStats) and stats.cost.shape == (day.k,)
        spent += stats.cost
    assert 1 <= day.tick <= 6 and day.batch is None
    np.testing.assert_allclose(spent, day.spent, rtol=1e-12)
    assert np.all(day.spent <= day.c.budget)
    zero = TickStats.zeros(3)
    assert all(np.array_equal(getattr(zero, f.name), np.zeros(3)) for f in fields(TickStats))


def test_the_day_does_not_depend_on_gymnasium():
    tree = ast.parse(Path(bidenv.day.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(m.split(".")[0] == "gymnasium" for m in names)
