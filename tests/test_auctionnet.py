"""Import of AuctionNet traffic logs: features, actions and scores against independent sums."""

import math

import numpy as np
import pandas as pd
import pytest

from bidenv.auctionnet import (
    AUCTIONNET_COLUMNS,
    REQUIRED_COLUMNS,
    import_auctionnet,
    synthetic_log,
)
from bidenv.env import FEATURE_NAMES
from bidenv.offline import COLUMNS, Trajectories, load_dataset, validate_frame
from experiments.cli import main


@pytest.fixture(scope="module")
def log():
    # 2 periods x 3 advertisers x 48 ticks x about 5 opportunities; some days end early.
    return synthetic_log(n_periods=2, n_advertisers=3, opportunities_per_tick=5, seed=1,
                         pvalue_level=0.05, budget_range=(100.0, 600.0))


@pytest.fixture(scope="module")
def frame(log):
    return import_auctionnet(log)


def reference_row(log, period, advertiser, tick, n_ticks=48):
    """The features of one tick by plain loops over the log's rows (independent of pandas
    groupby and of the cumulative-sum code), following MarketDay.observe."""
    day = log[(log["deliveryPeriodIndex"] == period) & (log["advertiserNumber"] == advertiser)]
    rows = {t: day[day["timeStepIndex"] == t] for t in range(n_ticks)}
    per_tick = len(day) / n_ticks
    budget, cpa = day["budget"].iloc[0], day["CPAConstraint"].iloc[0]

    def tick_means(t):
        r = rows[t]
        n = len(r)
        return {"bid": sum(r["bid"]) / n / 0.1, "lwc": sum(r["leastWinningCost"]) / n / 0.1,
                "pvalue": sum(r["pValue"]) / n / 1e-3,
                "conversion": sum(r["conversionAction"] * r["isExposed"]),
                "win_rate": sum(r["xi"]) / n, "opportunities": n / per_tick}

    past = [tick_means(t) for t in range(tick)]
    last3 = past[-3:]
    out = {"time_left": (n_ticks - tick) / n_ticks}
    for name in ("bid", "lwc", "pvalue", "conversion", "win_rate", "opportunities"):
        suffix = "" if name in ("win_rate", "opportunities") else "_mean"
        out[f"hist_{name}{suffix}"] = sum(p[name] for p in past) / len(past) if past else 0.0
        out[f"last3_{name}{suffix}"] = sum(p[name] for p in last3) / len(last3) if past else 0.0
    spent = sum(sum(rows[t]["cost"] * rows[t]["isExposed"]) for t in range(tick))
    conv = sum(sum(rows[t]["conversionAction"] * rows[t]["isExposed"]) for t in range(tick))
    elapsed = sum(len(rows[t]) for t in range(tick)) / len(day)
    now = rows[tick]
    out.update(cur_pvalue_mean=now["pValue"].mean() / 1e-3,
               cur_opportunities=len(now) / per_tick,
               budget_left=max(0.0, 1 - spent / budget), traffic_elapsed=elapsed,
               pace_error=min(1.0, max(-1.0, spent / budget - elapsed)),
               constraint_ratio=0.0 if spent == 0 else (10.0 if conv == 0 else
                                                        min(10.0, spent / (conv * cpa))),
               is_roi=0.0)
    ratios = [b / (p * cpa) for b, p in zip(now["bid"], now["pValue"]) if p > 0]
    out["alpha"] = sum(ratios) / len(ratios)
    return out


@pytest.mark.parametrize("period, advertiser, tick", [(0, 1, 0), (0, 1, 1), (0, 1, 4),
                                                      (1, 2, 17), (1, 2, 47)])
def test_features_match_an_independent_computation(log, frame, period, advertiser, tick):
    episodes = {(p, a): e for e, p, a in frame.attrs["bidenv"]["episodes"]}
    e = episodes[(period, advertiser)]
    row = frame[(frame["episode"] == e) & (frame["tick"] == tick)].iloc[0]
    ref = reference_row(log, period, advertiser, tick)
    for name in FEATURE_NAMES:
        assert row[f"obs_{name}"] == pytest.approx(ref[name], rel=1e-5, abs=1e-6), name
    assert row["alpha"] == pytest.approx(ref["alpha"], rel=1e-9)
    assert row["action"] == pytest.approx(np.clip(math.log(ref["alpha"]) / math.log(10), -1, 1))


def test_scores_are_penalised_with_the_exact_beta(log, frame):
    # Per day: totals by direct sums over the exposed rows up to the last kept tick.
    for e, p, a in frame.attrs["bidenv"]["episodes"]:
        rows = frame[frame["episode"] == e]
        last = rows["tick"].max()
        day = log[(log["deliveryPeriodIndex"] == p) & (log["advertiserNumber"] == a)
                  & (log["timeStepIndex"] <= last)]
        cost = float((day["cost"] * day["isExposed"]).sum())
        conv = float((day["conversionAction"] * day["isExposed"]).sum())
        cpa = day["CPAConstraint"].iloc[0]
        expected = 0.0 if conv == 0 else conv * min(1.0, (cpa * conv / cost)) ** 2
        assert rows["score"].iloc[-1] == pytest.approx(expected, rel=1e-9)
        assert rows["reward"].sum() == pytest.approx(expected, rel=1e-9, abs=1e-12)
        exp_conv = float((day["pValue"] * day["isExposed"]).sum())
        assert rows["expected_conversions"].iloc[-1] == pytest.approx(exp_conv, rel=1e-9)
        assert rows["expected_cost"].iloc[-1] == pytest.approx(cost, rel=1e-9)
    # At least one day is penalised (CPA above target), so the exponent matters.
    final = frame.groupby("episode").agg(score=("score", "last"), conv=("conversions", "sum"))
    assert (final["score"] < final["conv"] - 1e-9).any()


def test_a_tiny_log_by_hand():
    # One day, target CPA 10, two ticks of two opportunities.
    # tick 0: bids 0.2 and 0.1 at pValue 0.02 and 0.01 -> alpha = mean(1, 1) = 1;
    #         exposed win costs 15 and converts; the other wins, unexposed (costs nothing).
    # tick 1: bid 0.6 at pValue 0.02 -> ratio 3; bid 0 at pValue 0 is skipped -> alpha 3;
    #         exposed win costs 5, no conversion.
    # Score after tick 0: 1 * (10 / 15)^2 = 4/9; after tick 1: 1 * (10 / 20)^2 = 1/4.
    log = pd.DataFrame({
        "deliveryPeriodIndex": 7, "advertiserNumber": 2, "advertiserCategoryIndex": 3,
        "budget": 100.0, "CPAConstraint": 10.0, "timeStepIndex": [0, 0, 1, 1],
        "pValue": [0.02, 0.01, 0.02, 0.0], "bid": [0.2, 0.1, 0.6, 0.0], "xi": [1, 1, 1, 0],
        "cost": [15.0, 2.0, 5.0, 0.0], "isExposed": [1, 0, 1, 0],
        "conversionAction": [1, 0, 0, 0], "leastWinningCost": [0.1, 0.3, 0.2, 0.4], "isEnd": 0})
    frame = import_auctionnet(log, n_ticks=4)
    assert frame["tick"].tolist() == [0, 1] and frame["done"].tolist() == [False, True]
    np.testing.assert_allclose(frame["alpha"], [1.0, 3.0])
    np.testing.assert_allclose(frame["action"], [0.0, math.log(3) / math.log(10)])
    np.testing.assert_allclose(frame["cost"], [15.0, 5.0])
    np.testing.assert_allclose(frame["score"], [4 / 9, 1 / 4])
    np.testing.assert_allclose(frame["reward"], [4 / 9, 1 / 4 - 4 / 9])
    np.testing.assert_allclose(frame["expected_conversions"], [0.02, 0.04])
    # Expected CPA 15 / 0.02 = 750 against 10: 0.02 * (10 * 0.02 / 15)^2, then
    # 0.04 * (10 * 0.04 / 20)^2.
    np.testing.assert_allclose(frame["expected_score"], [0.02 * (0.2 / 15) ** 2, 1.6e-5])
    t1 = frame.iloc[1]
    assert t1["obs_time_left"] == 0.75  # (4 - 1) / 4
    assert t1["obs_budget_left"] == pytest.approx(0.85)  # 15 of 100 spent
    assert t1["obs_hist_bid_mean"] == pytest.approx(1.5)  # mean(0.2, 0.1) / 0.1
    assert t1["obs_hist_lwc_mean"] == pytest.approx(2.0)  # mean(0.1, 0.3) / 0.1
    assert t1["obs_hist_pvalue_mean"] == pytest.approx(15.0)  # 0.015 / 1e-3
    assert t1["obs_hist_conversion_mean"] == 1.0 and t1["obs_hist_win_rate"] == 1.0
    assert t1["obs_cur_pvalue_mean"] == pytest.approx(10.0)
    # 4 opportunities in a day of 4 ticks: 1 per tick on average; 2 this tick.
    assert t1["obs_cur_opportunities"] == 2.0 and t1["obs_hist_opportunities"] == 2.0
    assert t1["obs_traffic_elapsed"] == 0.5
    assert t1["obs_pace_error"] == pytest.approx(0.15 - 0.5)
    assert t1["obs_constraint_ratio"] == pytest.approx(1.5)  # CPA 15 / target 10
    assert frame["category"].tolist() == [3, 3] and set(frame["constraint"]) == {"cpa"}
    assert frame.attrs["bidenv"]["episodes"] == [[0, 7, 2]]


def test_days_end_at_the_first_is_end_tick(log, frame):
    for e, p, a in frame.attrs["bidenv"]["episodes"]:
        day = log[(log["deliveryPeriodIndex"] == p) & (log["advertiserNumber"] == a)]
        ends = day.loc[day["isEnd"] == 1, "timeStepIndex"]
        last = int(ends.min()) if len(ends) else 47
        rows = frame[frame["episode"] == e]
        assert rows["tick"].tolist() == list(range(last + 1))
        assert rows["done"].tolist() == [False] * last + [True]
    lengths = frame.groupby("episode").size()
    assert (lengths < 48).any() and (lengths == 48).any()  # the fixture has both kinds


def test_frame_is_a_valid_dataset_and_trajectories(tmp_path, frame):
    assert list(frame.columns) == list(COLUMNS)
    valid = validate_frame(frame)
    pd.testing.assert_frame_equal(valid, frame)
    traj = Trajectories.from_frame(frame)
    np.testing.assert_allclose(traj.returns_to_go()[:, 0], traj.final_scores())
    assert (frame["behavior"] == "auctionnet").all() and frame["noise"].isna().all()


def test_csv_file_chunks_and_metadata(tmp_path, log, frame):
    path = tmp_path / "period-7.csv"
    log.to_csv(path, index=False)
    from_file = import_auctionnet(path)
    pd.testing.assert_frame_equal(from_file, frame)
    meta = from_file.attrs["bidenv"]
    assert meta["source"] == "period-7.csv" and meta["rows"] == len(log)
    assert meta["n_ticks"] == 48 and meta["behaviors"] == {"auctionnet": 1.0}
    # Chunks that split ticks give the same days as one read.
    chunked = import_auctionnet(path, chunk_rows=37)
    pd.testing.assert_frame_equal(chunked, frame)
    # Row order does not matter; extra columns are ignored.
    shuffled = log.sample(frac=1.0, random_state=0).assign(extra=1)
    pd.testing.assert_frame_equal(import_auctionnet(shuffled), frame)


def _damaged(log, **changes):
    bad = log.copy()
    for col, (row, value) in changes.items():
        if row is None:
            bad[col] = value
        else:
            bad[col] = bad[col].astype(object)
            bad.loc[row, col] = value
    return bad


@pytest.mark.parametrize("change, message", [
    ({"pValue": (5, np.nan)}, r"'pValue' has NaN .*first at row 5, line 7"),
    ({"bid": (9, "high")}, r"'bid' must be numeric, found 'high' .*row 9"),
    ({"xi": (3, 2)}, "'xi' must be 0 or 1"),
    ({"timeStepIndex": (4, 1.5)}, "'timeStepIndex' must hold integers"),
    ({"timeStepIndex": (4, 48)}, r"'timeStepIndex' must lie in \[0, 48\)"),
    ({"cost": (2, -1.0)}, "'cost' must be >= 0"),
    ({"CPAConstraint": (0, 0.0)}, "'CPAConstraint' must be > 0"),
    ({"budget": (0, 999.0)}, "'budget' changes within deliveryPeriodIndex 0"),
])
def test_bad_logs_give_clear_errors(tmp_path, log, change, message):
    bad = _damaged(log, **change)
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(ValueError, match=message):
        import_auctionnet(path)


def test_bad_log_structure(tmp_path, log):
    path = tmp_path / "bad.csv"
    log.drop(columns=["leastWinningCost", "isEnd"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"missing columns \['leastWinningCost', 'isEnd'\]"):
        import_auctionnet(path)
    day = (log["deliveryPeriodIndex"] == 1) & (log["advertiserNumber"] == 0)
    log[~(day & (log["timeStepIndex"] == 2))].to_csv(path, index=False)
    with pytest.raises(ValueError, match="advertiserNumber 0 has no rows for timeStepIndex 2"):
        import_auctionnet(path)
    log[~(day & (log["timeStepIndex"] == 0))].to_csv(path, index=False)
    with pytest.raises(ValueError, match="timeStepIndex 0"):
        import_auctionnet(path)
    path.write_text("")
    with pytest.raises(ValueError, match="not a readable CSV"):
        import_auctionnet(path)
    log.iloc[:0].to_csv(path, index=False)
    with pytest.raises(ValueError, match="no rows"):
        import_auctionnet(path)
    with pytest.raises(FileNotFoundError):
        import_auctionnet(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="n_ticks must be an integer >= 1"):
        import_auctionnet(log, n_ticks=0)
    with pytest.raises(ValueError, match="max_alpha"):
        import_auctionnet(log, max_alpha=1.0)


def test_schema_constants():
    assert len(AUCTIONNET_COLUMNS) == 18 and set(REQUIRED_COLUMNS) <= set(AUCTIONNET_COLUMNS)
    assert list(synthetic_log(1, 2, 2, n_ticks=3).columns) == list(AUCTIONNET_COLUMNS)


def test_cli_import_writes_a_loadable_file(tmp_path, log, frame, capsys):
    csv, out = tmp_path / "log.csv", tmp_path / "an.parquet"
    log.to_csv(csv, index=False)
    assert main(["import-auctionnet", str(csv), "--out", str(out)]) == 0
    loaded, meta = load_dataset(out)
    pd.testing.assert_frame_equal(loaded, frame)
    assert meta["source"] == "log.csv" and meta["rows"] == len(log)
    printed = capsys.readouterr().out
    assert f"{len(log)} log rows" in printed and str(out) in printed
    with pytest.raises(SystemExit, match="bidenv import-auctionnet: .*does not exist"):
        main(["import-auctionnet", str(tmp_path / "nope.csv"), "--out", str(out)])


def test_several_logs_import_as_one_dataset_with_episodes_numbered_across(tmp_path, log, frame):
    from experiments.cli import main
    from experiments.collect import import_auctionnet_logs

    (tmp_path / "logs").mkdir()
    for name in ("period-8.csv", "period-7.csv"):
        log.to_csv(tmp_path / "logs" / name, index=False)
    both = import_auctionnet_logs(str(tmp_path / "logs" / "period-*.csv"))  # sorted: 7, 8
    n = frame["episode"].nunique()
    assert sorted(both["episode"].unique()) == list(range(2 * n))
    first = both[both["episode"] < n].reset_index(drop=True)
    second = both[both["episode"] >= n].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, frame, check_like=False)
    pd.testing.assert_frame_equal(second.assign(episode=second["episode"] - n), frame)
    meta = both.attrs["bidenv"]
    assert meta["sources"] == ["period-7.csv", "period-8.csv"]
    assert meta["rows"] == 2 * len(log)
    assert [row[-1] for row in meta["episodes"]] == [0] * n + [1] * n
    assert [row[0] for row in meta["episodes"]] == list(range(2 * n))
    # The command takes several files and globs; the dataset loads back.
    out = tmp_path / "both.parquet"
    assert main(["import-auctionnet", str(tmp_path / "logs" / "period-7.csv"),
                 str(tmp_path / "logs" / "period-8.csv"), "--out", str(out)]) == 0
    loaded = Trajectories.from_frame(pd.read_parquet(out))
    assert len(loaded.lengths) == 2 * n
    with pytest.raises(SystemExit, match="matches no file"):
        main(["import-auctionnet", str(tmp_path / "none-*.csv"), "--out", str(out)])
    with pytest.raises(SystemExit, match="named twice"):
        main(["import-auctionnet", str(tmp_path / "logs" / "period-7.csv"),
              str(tmp_path / "logs" / "period-7.csv"), "--out", str(out)])
