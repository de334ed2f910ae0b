"""Budget simulation (experiments.analysis), its figures, `bidenv simulate-budget`, quickstart."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from experiments.analysis import (
    BudgetSpec,
    load_spec,
    marginal_rates,
    parse_spec,
    recommend,
    simulate_budget,
    simulate_day,
    simulate_days,
    summarise_days,
)
from experiments.cli import main
from experiments.simulate_budget import output_files

LITE = "bidenv/AutoBiddingLite-v0"


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------
def test_more_budget_never_lowers_spend_for_pacing_strategies():
    spec = parse_spec(budgets=[100, 300, 1000, 3000], target=100, category=3,
                      strategies=["pid_budget", "pid_cpa"], days=2, seed=7, env_id=LITE)
    days = simulate_days(spec, progress=False)
    for _, g in days.groupby(["strategy", "day"]):
        spend = g.sort_values("budget")["spend"].to_numpy()
        assert np.all(np.diff(spend) >= -1e-9), spend
        budgets = g.sort_values("budget")["budget"].to_numpy()
        assert np.all(spend <= budgets + 1e-6)  # never overspent
    # The sweep is not trivially flat: the largest budget buys more than the smallest.
    big = days[days["budget"] == 3000]["spend"].mean()
    assert big > 2 * days[days["budget"] == 100]["spend"].mean()


def test_day_figures_add_up():
    day, trace = simulate_day("pid_cpa", budget=500, target=100, seed=3, env_id=LITE, trace=True)
    assert day["spend_feed"] + day["spend_search"] == pytest.approx(day["spend"], rel=1e-9)
    assert day["budget_used"] == pytest.approx(day["spend"] / 500)
    assert trace["spend"].iloc[-1] == pytest.approx(day["spend"])
    assert np.all(np.diff(trace["spend_share"]) >= 0)
    assert np.all(np.diff(trace["traffic_share"]) >= 0) and trace["hour"].iloc[-1] <= 24
    # Feed-only traffic puts all spend on the feed.
    feed_day = simulate_day("pid_cpa", budget=500, target=100, seed=3, env_id=LITE,
                            traffic="feed")
    assert feed_day["spend_search"] == 0 and feed_day["spend_feed"] > 0


def test_serial_equals_parallel():
    kwargs = dict(budgets=[200, 600], target=80, strategies=["pid_cpa", "truthful"], days=2,
                  seed=11, env_id=LITE, progress=False)
    serial = simulate_budget(workers=1, **kwargs)
    parallel = simulate_budget(workers=2, **kwargs)
    pd.testing.assert_frame_equal(serial, parallel)
    assert list(serial["strategy"]) == ["pid_cpa", "pid_cpa", "truthful", "truthful"]


# --------------------------------------------------------------------------------------------
# Marginals, summaries and the recommendation on hand-made numbers
# --------------------------------------------------------------------------------------------
def test_marginal_rates_by_hand():
    spend = [100.0, 200.0, 250.0, 250.5, 300.0]
    conv = [4.0, 6.0, 6.5, 6.6, 6.5]
    value = [300.0, 500.0, 550.0, 560.0, 555.0]
    budgets = [100, 200, 300, 400, 500]
    cpa, roi = marginal_rates(spend, conv, value, budgets)
    # 100/4, 100/2, 50/0.5; then 0.5 extra spend on a step of 100 (< 1%): not spent, nan;
    # then 49.5 extra spend buys fewer conversions: inf.
    np.testing.assert_allclose(cpa[:3], [25.0, 50.0, 100.0])
    assert math.isnan(cpa[3]) and cpa[4] == math.inf
    np.testing.assert_allclose(roi[[0, 1, 2, 4]], [3.0, 2.0, 1.0, -5.0 / 49.5])
    assert math.isnan(roi[3])
    # Without budgets only a spend step of zero counts as "not spent".
    cpa_raw, _ = marginal_rates(spend, conv, value)
    assert cpa_raw[3] == pytest.approx(0.5 / 0.1)


def _days_frame():
    """Two days x two budgets of one strategy, numbers chosen to check by hand."""
    rows = []
    for budget, day, spend, conv, value, feed in [
            (100, 0, 90.0, 3.0, 270.0, 60.0), (100, 1, 100.0, 2.0, 150.0, 100.0),
            (200, 0, 180.0, 4.0, 400.0, 90.0), (200, 1, 150.0, 3.0, 300.0, 150.0)]:
        rows.append({"strategy": "s", "constraint": "cpa", "target": 40.0, "budget": budget,
                     "day": day, "spend": spend, "conversions": conv, "value": value,
                     "score": conv, "budget_used": spend / budget, "spend_feed": feed,
                     "spend_search": spend - feed, "conversions_realised": conv,
                     "value_realised": value, "score_realised": conv})
    return pd.DataFrame(rows)


def test_summary_by_hand():
    frame = summarise_days(_days_frame(), n_boot=200)
    lo, hi = frame.iloc[0], frame.iloc[1]
    assert lo["spend"] == pytest.approx(95.0) and hi["spend"] == pytest.approx(165.0)
    assert lo["conversions"] == pytest.approx(2.5) and hi["conversions"] == pytest.approx(3.5)
    # CPA is a ratio of means; marginal CPA from zero, then between the budgets.
    assert lo["cpa"] == pytest.approx(95.0 / 2.5) and hi["cpa"] == pytest.approx(165.0 / 3.5)
    assert lo["marginal_cpa"] == pytest.approx(95.0 / 2.5)
    assert hi["marginal_cpa"] == pytest.approx((165.0 - 95.0) / (3.5 - 2.5))
    assert hi["marginal_roi"] == pytest.approx((350.0 - 210.0) / (165.0 - 95.0))
    assert lo["feed_share_of_spend"] == pytest.approx(80.0 / 95.0)
    assert hi["budget_used"] == pytest.approx((0.9 + 0.75) / 2)
    # Bootstrap intervals over two days lie between the day values and contain the mean.
    assert 90.0 <= lo["spend_lo"] <= 95.0 <= lo["spend_hi"] <= 100.0
    # Paired resampling: resampling day 0 twice gives marginal CPA 90/1 = 90, day 1 twice
    # 50/1 = 50; the interval lies within [50, 90].
    assert 50.0 - 1e-9 <= hi["marginal_cpa_lo"] <= hi["marginal_cpa_hi"] <= 90.0 + 1e-9


def _hand_frame(constraint, target, budgets, marginal, used, spend):
    kind = "roi" if constraint == "roi" else "cpa"
    other = "cpa" if kind == "roi" else "roi"
    return pd.DataFrame({"strategy": "s", "constraint": constraint, "target": target,
                         "budget": budgets, "spend": spend, "budget_used": used,
                         f"marginal_{kind}": marginal, f"marginal_{other}": np.nan,
                         # point intervals: the decision rule on the estimates alone
                         f"marginal_{kind}_lo": marginal, f"marginal_{kind}_hi": marginal})


def test_recommend_by_hand():
    frame = _hand_frame("cpa", 50.0, [1000, 2000, 3000, 4000, 5000],
                        [30.0, 45.0, 49.0, 70.0, np.nan], [1.0, 1.0, 0.95, 0.8, 0.64],
                        [1000.0, 2000.0, 2850.0, 3200.0, 3200.0])
    row = recommend(frame).iloc[0]
    assert row["recommended_budget"] == 3000 and row["marginal_at_recommended"] == 49.0
    # 4,000 is the first budget used < 90% whose spend is within 5% of the most spent.
    assert row["saturation_budget"] == 4000 and row["max_spend"] == 3200
    assert "3,000" in row["message"] and "4,000" in row["message"]
    # A nan step (no extra spend) neither breaks nor extends the run; a later pass after a
    # failure does not count ("stays under").
    frame2 = _hand_frame("cpa", 50.0, [1, 2, 3, 4], [40.0, np.nan, 45.0, 60.0],
                         [1.0] * 4, [1.0, 2.0, 3.0, 4.0])
    frame2.loc[3, "marginal_cpa"] = 60.0
    row2 = recommend(pd.concat([frame2, frame2.assign(strategy="t", marginal_cpa=[40.0, 60.0,
                                                                               45.0, 45.0])]))
    assert list(row2["recommended_budget"]) == [3.0, 1.0]
    assert row2["saturation_budget"].isna().all()
    # ROI: marginal ROI must stay at or above the target; a first step below it gives nan.
    roi = _hand_frame("roi", 2.0, [100, 200, 300], [3.0, 2.0, 1.5], [1.0, 1.0, 1.0],
                      [100.0, 200.0, 300.0])
    assert recommend(roi).iloc[0]["recommended_budget"] == 200
    bad = _hand_frame("roi", 2.0, [100, 200], [1.5, 1.0], [1.0, 1.0], [100.0, 200.0])
    assert math.isnan(recommend(bad).iloc[0]["recommended_budget"])
    with pytest.raises(ValueError, match="saturation"):
        recommend(frame, saturation=0)
    with pytest.raises(ValueError, match="lacks columns"):
        recommend(frame.drop(columns="budget_used"))


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------
def test_spec_defaults_and_ranges():
    spec = parse_spec({"budget_range": {"start": 1000, "stop": 4000, "num": 4}})
    assert spec.budgets == (1000.0, 2000.0, 3000.0, 4000.0)
    assert spec.targets == (100.0,) and spec.strategies == ("pid_cpa", "online_lp")
    assert parse_spec({"budgets": [3000, 1000], "target": 2.5, "constraint": "roi"}).budgets == (
        1000.0, 3000.0)
    mix = parse_spec({"budgets": [1], "traffic": {"feed": 3, "search": 1}})
    assert mix.traffic_label == "feed 75% / search 25%"
    assert parse_spec(spec.to_dict()) == spec  # round trip


@pytest.mark.parametrize("spec, match", [
    ({}, "exactly one of 'budgets'"),
    ({"budgets": [1000], "budget_range": [1, 2, 2]}, "exactly one of 'budgets'"),
    ({"budgets": []}, r"'budgets' must be a list of 1-200 numbers"),
    ({"budgets": [1000, -5]}, r"'budgets\[1\]' must be a number in \(0, 1e\+09\]"),
    ({"budgets": "lots"}, "'budgets' must be a list"),
    ({"budgets": [1000, 1000]}, "duplicates"),
    ({"budget_range": {"start": 5, "stop": 1, "num": 3}}, "stop > start"),
    ({"budget_range": {"start": 5}}, "'budget_range' must be"),
    ({"budgets": [1000], "days": 0}, r"'days' must be an integer in \[1, 10000\]"),
    ({"budgets": [1000], "days": 2.5}, "'days' must be an integer"),
    ({"budgets": [1000], "category": 9}, r"'category' must be an integer in \[0, 7\]"),
    ({"budgets": [1000], "target": 0}, r"'target' must be a number in \(0"),
    ({"budgets": [1000], "targets": [50, "x"]}, "'targets' must be a number"),
    ({"budgets": [1000], "target": 5, "targets": [5]}, "not both"),
    ({"budgets": [1000], "constraint": "cpc"}, "'constraint' must be one of"),
    ({"budgets": [1000], "traffic": "tv"}, "'traffic' must be one of"),
    ({"budgets": [1000], "traffic": {"feed": -1}}, r"'traffic.feed' must be a number in \[0"),
    ({"budgets": [1000], "traffic": {"radio": 1}}, "'feed' and 'search' only"),
    ({"budgets": [1000], "strategies": ["no_such_bidder"]}, "'strategies': unknown agent"),
    ({"budgets": [1000], "strategies": []}, "'strategies' must be a non-empty list"),
    ({"budgets": [1000], "seed": -1}, r"'seed' must be an integer in \[0"),
    ({"budgets": [1000], "env_id": "CartPole-v1x"}, "'env_id' must be a registered"),
    ({"budgets": [1000], "budjet": 5}, r"unknown spec field\(s\) \['budjet'\]"),
])
def test_bad_specs_name_the_field(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_spec(spec)


def test_spec_files(tmp_path):
    good = tmp_path / "spec.json"
    good.write_text(json.dumps({"budgets": [1000, 2000], "target": 80, "days": 2}))
    assert load_spec(good).targets == (80.0,) and load_spec(good).days == 2
    broken = tmp_path / "broken.json"
    broken.write_text("{budgets: [1000")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_spec(broken)
    with pytest.raises(ValueError, match="does not exist"):
        load_spec(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="must end in .json, .yaml or .yml"):
        (tmp_path / "spec.txt").write_text("{}")
        load_spec(tmp_path / "spec.txt")
    listed = tmp_path / "list.json"
    listed.write_text("[1000, 2000]")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_spec(listed)
    missing = tmp_path / "missing_days.json"
    missing.write_text(json.dumps({"target": 80}))
    with pytest.raises(ValueError, match="exactly one of 'budgets'"):
        load_spec(missing)
    yaml = pytest.importorskip("yaml")
    ok = tmp_path / "spec.yaml"
    ok.write_text("budget_range: {start: 1000, stop: 3000, num: 3}\ntraffic: {feed: 0.7, "
                  "search: 0.3}\nstrategies: [pid_cpa]\n")
    assert load_spec(ok).budgets == (1000.0, 2000.0, 3000.0)
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("budgets: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_spec(unsafe)
    assert yaml.safe_load("a: 1") == {"a": 1}


# --------------------------------------------------------------------------------------------
# Command line, figures, quickstart
# --------------------------------------------------------------------------------------------
def test_cli_writes_the_files_it_promises(tmp_path, capsys):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps({"budgets": [200, 400], "target": 100, "days": 3,
                                     "strategies": ["pid_cpa"], "env_id": LITE}))
    out = tmp_path / "out"
    assert main(["simulate-budget", "--spec", str(spec_file), "--days", "1", "--seed", "4",
                 "--traffic", "feed=0.7,search=0.3", "--out", str(out)]) == 0
    for name in output_files("cpa"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*"))  # no temporary files left behind
    frame = pd.read_csv(out / "budget_simulation.csv")
    assert list(frame["budget"]) == [200, 400] and (frame["days"] == 1).all()
    days = pd.read_csv(out / "days.csv")
    assert list(days["seed"]) == [4, 4]
    written = json.loads((out / "spec.json").read_text())
    assert written["days"] == 1 and written["traffic"] == {"feed": 0.7, "search": 0.3}
    assert load_spec(out / "spec.json") == BudgetSpec(**{**written, "budgets": (200.0, 400.0),
                                                         "targets": (100.0,),
                                                         "strategies": ("pid_cpa",)})
    text = capsys.readouterr().out
    assert "Recommendation:" in text and "pid_cpa at target CPA 100" in text
    with pytest.raises(SystemExit, match=r"'category' must be an integer in \[0, 7\]"):
        main(["simulate-budget", "--budgets", "100", "--days", "1", "--category", "12",
              "--out", str(out)])
    with pytest.raises(SystemExit, match="--budget-range must be START:STOP:NUM"):
        main(["simulate-budget", "--budget-range", "1000:2000", "--out", str(out)])


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path, capsys):
    from experiments.quickstart import run_quickstart

    board = run_quickstart(episodes=1, budget_days=1, env_id=LITE, out=tmp_path, workers=1,
                           progress=False, sweep={"budgets": [300, 600],
                                                  "strategies": ["pid_cpa"]})
    assert set(board["agent"]) == {"truthful", "pid_budget", "pid_cpa", "online_lp", "dt"}
    for name in ("leaderboard.csv", "leaderboard.md", "episodes.csv", "budget_simulation.csv",
                 "recommendation.csv", "roi_curves.png", "roi_curve.png", "marginal_cpa.png",
                 "pacing.png", "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    assert (episodes["expected_score"] <= episodes["own_oracle_score"] * 1.02 + 1e-9).all()
    assert (episodes.groupby(["scenario", "episode"])["oracle_score"].nunique() == 1).all()
    text = capsys.readouterr().out
    assert "Leaderboard" in text and "Recommendation:" in text and str(tmp_path) in text


def test_the_shipped_dt_checkpoint_loads_without_pickle_and_plays(monkeypatch):
    torch = pytest.importorskip("torch")
    import agents
    from experiments import quickstart

    path = quickstart.DT_CHECKPOINT
    tensors = torch.load(path / "weights.pt", weights_only=True)
    assert set(tensors) == {"net.model"}  # inference-only: no optimiser state
    assert quickstart.quickstart_agents()[-1] == f"dt:{path}"
    agent = agents.from_spec(f"dt:{path}")
    import gymnasium as gym

    campaign = {"budget": 2000.0, "constraint": "cpa", "target_cpa": 100.0}
    obs, _ = gym.make(LITE).reset(seed=5, options=campaign)
    agent.reset(campaign)
    action = agent.act(obs)
    assert action.shape == (1,) and -1.0 <= float(action[0]) <= 1.0
    # Without torch (the base install) the quickstart leaves it out instead of failing.
    monkeypatch.setattr(quickstart, "torch_available", lambda: False)
    assert quickstart.quickstart_agents() == list(quickstart.HEURISTICS)


def test_plots_return_their_axes_and_draw_the_targets():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bidenv import plots

    frame = summarise_days(_days_frame(), n_boot=50)
    fig, axes = plt.subplots(2, 3)
    assert plots.roi_curve(frame, ax=axes[0, 0]) is axes[0, 0]
    # The target line is conversions = spend / target CPA (target 40).
    target = next(line for line in axes[0, 0].lines if line.get_label() == "CPA = 40")
    x, y = target.get_data()
    np.testing.assert_allclose(np.asarray(y), np.asarray(x) / 40.0)
    assert plots.marginal_curve(frame, ax=axes[0, 1]) is axes[0, 1]
    marginal = axes[0, 1].lines[0].get_data()[1]
    np.testing.assert_allclose(marginal, frame["marginal_cpa"])
    assert any(line.get_label() == "target CPA 40" for line in axes[0, 1].lines)
    assert plots.cpa_vs_budget(frame, ax=axes[0, 2]) is axes[0, 2]
    assert plots.budget_used_curve(frame, ax=axes[1, 0]) is axes[1, 0]
    assert plots.source_mix(frame, ax=axes[1, 1]) is axes[1, 1]
    trace = pd.DataFrame({"hour": [8.0, 16.0, 24.0], "spend_share": [0.2, 0.7, 1.0],
                          "traffic_share": [0.3, 0.7, 1.0]})
    assert plots.pacing(trace, ax=axes[1, 2]) is axes[1, 2]
    with pytest.raises(ValueError, match="y must be"):
        plots.roi_curve(frame, y="clicks")
    plt.close("all")
