"""``bidenv market``: mixed markets of agents in the multi-agent env, checked against independent
replays of the same days."""

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

pytest.importorskip("pettingzoo")

import agents  # noqa: E402
import bidenv  # noqa: E402, F401
from bidenv.multi_agent import parallel_env  # noqa: E402
from experiments.cli import main  # noqa: E402
from experiments.market import parse_agents, play_market_day, run_market  # noqa: E402

LITE = "bidenv/AutoBiddingLite-v0"
SMALL = {"opportunities_per_day": 8_000, "n_competitors": 11}
SETTINGS = {**gym.spec(LITE).kwargs, **SMALL}
SPECS = "pid_budget*2,truthful*1"


def _replay(names, seed):
    """The day played straight through the multi-agent env: final infos, the day, and the
    exposures and won slots of all advertisers (summed from every tick's stats)."""
    env = parallel_env(n_agents=len(names), **SETTINGS)
    bidders = [agents.make(n) for n in names]
    obs, infos = env.reset(seed=seed)
    for bidder, campaign in zip(bidders, env.agent_campaigns):
        bidder.reset(campaign.to_dict())
    day, counts = env.day, {"exposures": 0.0, "wins": 0.0}
    play = day.play_tick

    def counted(alpha, on_auctions=None):
        stats = play(alpha, on_auctions)
        counts["exposures"] += stats.exposures.sum()
        counts["wins"] += stats.wins.sum()
        return stats

    day.play_tick = counted
    final = dict(infos)
    while env.agents:
        obs, _, _, _, step = env.step({a: bidders[i].act(obs[a])
                                       for i, a in enumerate(env.possible_agents)
                                       if a in env.agents})
        final.update(step)
    assert day.tick == day.n_ticks  # these bidders last the day: nothing left to complete
    return env, final, counts


def test_files_match_an_independent_replay_and_any_workers(tmp_path, capsys):
    main(["market", "--agents", SPECS, "--days", "2", "--seed", "7", "--env", LITE,
          "--env-kwargs", '{"opportunities_per_day": 8000, "n_competitors": 11}',
          "--workers", "1", "--out", str(tmp_path / "w1")])
    assert "revenue" in capsys.readouterr().out
    run_market(SPECS, days=2, seed=7, env_id=LITE, workers=2, out=tmp_path / "w2",
               env_kwargs=SMALL, progress=False)
    for name in ("agents.csv", "market.csv", "summary.csv"):
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes()
    assert (tmp_path / "w1" / "market.png").stat().st_size > 0
    assert not list((tmp_path / "w1").glob(".*"))  # no half-written files left behind

    rows = pd.read_csv(tmp_path / "w1" / "agents.csv")
    market = pd.read_csv(tmp_path / "w1" / "market.csv")
    assert len(rows) == 6 and len(market) == 2
    assert list(rows["spec"][:3]) == ["pid_budget", "pid_budget", "truthful"]
    for day in range(2):
        env, final, counts = _replay(["pid_budget", "pid_budget", "truthful"], 7 + day)
        mine = rows[rows["day"] == day].reset_index(drop=True)
        for i, agent in enumerate(env.possible_agents):
            info, camp = final[agent], env.agent_campaigns[i]
            row = mine.iloc[i]
            assert (row["index"], row["seed"], row["constraint"]) == (i, 7 + day,
                                                                      camp.constraint)
            assert row["budget"] == pytest.approx(camp.budget, rel=1e-12)
            for col, key in [("score", "score"), ("expected_score", "expected_score"),
                             ("cost", "total_cost"), ("conversions", "total_conversions"),
                             ("value", "total_value")]:
                assert row[col] == pytest.approx(info[key], rel=1e-12, abs=1e-12), col
            assert row["budget_used"] == pytest.approx(info["total_cost"] / camp.budget)
        # Market totals over all 12 advertisers, computed here from the replayed day.
        day_row, d = market.iloc[day], env.day
        assert day_row["advertisers"] == 12 and day_row["market_ticks"] == 48
        revenue = sum(float(d.spent[j]) for j in range(d.k))
        welfare = sum(float(d.value[j]) if c.constraint == "roi"
                      else float(d.conv[j]) * c.target_cpa for j, c in enumerate(d.campaigns))
        assert day_row["revenue"] == pytest.approx(revenue, rel=1e-9)
        assert day_row["revenue"] > mine["cost"].sum()  # the competitors spend too
        assert day_row["conversions"] == pytest.approx(float(d.conv.sum()))
        assert day_row["welfare"] == pytest.approx(welfare, rel=1e-9)
        assert day_row["surplus"] == pytest.approx(welfare - revenue, rel=1e-9)
        assert day_row["exposures"] == counts["exposures"]
        assert day_row["price_per_exposure"] == pytest.approx(revenue / counts["exposures"])
        assert day_row["price_per_won_slot"] == pytest.approx(revenue / counts["wins"])

    summary = pd.read_csv(tmp_path / "w1" / "summary.csv")
    pid = summary.set_index("spec").loc["pid_budget"]
    assert pid["instances"] == 2 and pid["days"] == 2
    per_day = rows[rows["spec"] == "pid_budget"].groupby("day")["score"].mean()
    assert pid["mean_score"] == pytest.approx(per_day.mean())
    assert pid["mean_score_low"] <= pid["mean_score"] <= pid["mean_score_high"]


def test_each_agent_sees_its_own_opportunities_as_the_env_computes_them():
    """The view handed to ``update`` is the env's per-agent ``last_tick_opportunities``
    (pinned against the auctions in tests/test_multi_agent.py): advertiser 0's is the single
    env's rule, and every agent's counts the opportunities of its info, on every tick."""
    env = parallel_env(n_agents=3, **SETTINGS)
    bidders = [agents.make(n) for n in ("online_lp", "pid_cpa", "online_lp")]
    obs, _ = env.reset(seed=3)
    for bidder, campaign in zip(bidders, env.agent_campaigns):
        bidder.reset(campaign.to_dict())
    while env.agents:
        obs, _, _, _, infos = env.step({a: bidders[i].act(obs[a])
                                        for i, a in enumerate(env.possible_agents)
                                        if a in env.agents})
        pvalue, lwc = env.day.tick_opportunities
        first = env.last_tick_opportunities(env.possible_agents[0])
        np.testing.assert_array_equal(first["pvalue"], pvalue)
        np.testing.assert_array_equal(first["least_winning_cost"], lwc)
        for a, info in infos.items():
            i = env.possible_agents.index(a)
            view = env.last_tick_opportunities(a)
            assert len(view["pvalue"]) == info["opportunities"]
            bidders[i].update(info, view)


def test_one_learning_agent_plays_the_evaluation_harness_day():
    """With K = 1 a market day is the single env's day as ``agents.run_episode`` plays it."""
    rows, market = play_market_day(["online_lp"], SETTINGS, seed=4)
    env = gym.make(LITE, **SMALL)
    info = agents.run_episode(env, agents.make("online_lp"), seed=4)
    assert rows[0]["score"] == info["score"] and rows[0]["cost"] == info["total_cost"]
    assert market["revenue"] == pytest.approx(float(env.unwrapped.day.spent.sum()))


def test_the_market_day_is_completed_when_every_agent_leaves_early():
    agents.register("overbid_test", lambda: agents.FixedAlphaAgent(10.0), overwrite=True)
    rows, market = play_market_day(["overbid_test"] * 2, SETTINGS, seed=0)
    assert market["agents_ticks"] < 48 and market["market_ticks"] == 48
    assert all(r["budget_used"] > 0.99 for r in rows)
    assert market["revenue"] > market["agents_spend"]


def test_sweep_points_are_markets_on_the_same_days(tmp_path):
    main(["market", "--sweep", "truthful:0,2", "--fill", "pid_budget", "--slots", "2",
          "--days", "2", "--env", LITE, "--env-kwargs", '{"n_competitors": 11, '
          '"opportunities_per_day": 8000}', "--out", str(tmp_path / "sweep")])
    sweep = pd.read_csv(tmp_path / "sweep" / "sweep.csv")
    assert list(sweep["count"]) == [0, 2] and (tmp_path / "sweep" / "sweep.png").exists()
    assert np.isnan(sweep["sweep_mean_score"][0]) and np.isnan(sweep["fill_mean_score"][1])
    run_market("pid_budget*2", days=2, env_id=LITE, out=tmp_path / "alone", env_kwargs=SMALL,
               progress=False)
    for name in ("agents.csv", "market.csv"):
        assert ((tmp_path / "sweep" / "truthful_0" / name).read_bytes()
                == (tmp_path / "alone" / name).read_bytes())
    market = pd.read_csv(tmp_path / "alone" / "market.csv")
    assert sweep["revenue"][0] == pytest.approx(market["revenue"].mean())
    # Paired by advertiser-day: the truthful bidders against the same campaigns' pid_budget.
    base = pd.read_csv(tmp_path / "alone" / "agents.csv")
    both = pd.read_csv(tmp_path / "sweep" / "truthful_2" / "agents.csv")
    diff = (both["expected_score_per_budget"] - base["expected_score_per_budget"]
            ).groupby(both["day"]).mean().mean()
    assert sweep["sweep_vs_all_fill"][1] == pytest.approx(diff)
    assert sweep["fill_vs_all_fill"][0] == 0 and np.isnan(sweep["sweep_vs_all_fill"][0])


@pytest.mark.parametrize("argv,words", [
    (["--agents", "nosuch*2"], "cannot build agent 'nosuch'"),
    (["--agents", "pid_budget*x"], "expected specs like"),
    (["--agents", "pid_budget*0"], "no agents given"),
    (["--agents", "gas*2"], "untrained model"),
    (["--agents", "truthful*13"], "13 agents, but the market"),
    ([], "give --agents or --sweep"),
    (["--agents", "truthful", "--env-kwargs", '{"n_competitors": 0.5}'], "--env-kwargs"),
    (["--agents", "truthful", "--env-kwargs", "[1]"], "--env-kwargs"),
])
def test_bad_input_is_refused_in_one_line(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit) as exc:
        main(["market", *argv, "--days", "1", "--env", LITE,
              *([] if "--env-kwargs" in argv else ["--env-kwargs", '{"n_competitors": 11}']),
              "--out", str(tmp_path)])
    message = str(exc.value.code)
    assert message.startswith("bidenv market: --") and "\n" not in message
    assert words in message
    if argv and argv[0] == "--agents" and "--env-kwargs" not in argv:
        assert "--agents" in message


def test_parse_agents():
    assert parse_agents("dt*8, pid_budget*8,online_lp") == [
        ("dt", 8), ("pid_budget", 8), ("online_lp", 1)]
    assert parse_agents("gas:runs/gas*2") == [("gas:runs/gas", 2)]
