"""Offline hand-offs: the public AuctionNet trajectory file, ``bidenv export-minari`` (always
with an env spec), the D4RL-style arrays and d3rlpy (issue 14, item 6).

Every file is made by the test itself; nothing is downloaded. The Minari and d3rlpy tests are
skipped when those optional packages are absent (``pip install 'bidenv[d3rlpy]'``).
"""

import os
import sys

import numpy as np
import pandas as pd
import pytest

from bidenv.auctionnet import (
    TRAJECTORY_COLUMNS,
    TRAJECTORY_STATE,
    import_auctionnet,
    import_auctionnet_trajectories,
    parse_states,
    synthetic_log,
)
from bidenv.offline import COLUMNS, OBS_COLUMNS, load_dataset, save_dataset, to_d4rl
from bidenv.scoring import alpha_to_action, cpa_score
from experiments.cli import main
from experiments.collect import collect, import_auctionnet_logs

#: A very small day so that collection takes well under a second per episode.
TINY = {"opportunities_per_day": 5000, "n_competitors": 4}
N_TICKS = 8


# --------------------------------------------------------------------------------------------
# A trajectory file made from a traffic log by the published column definitions
# --------------------------------------------------------------------------------------------
def trajectory_file(log: pd.DataFrame, n_ticks: int = N_TICKS) -> pd.DataFrame:
    """The trajectory file of a traffic log, by the column definitions the AuctionNet AIGB-track
    README publishes ("Trajectory data format"): per (period, advertiser, tick) the 16-number
    state of ``TRAJECTORY_STATE`` (past-tick means of per-tick means, 0 before the first tick;
    opportunity counts as sums), ``action = sum(bid) / sum(pValue)``, ``reward`` the exposed
    conversions, ``reward_continuous`` the exposed pValue, ``done`` at the last tick or where
    ``isEnd``, ``next_state`` the next row's state (empty where done)."""
    episode = ["deliveryPeriodIndex", "advertiserNumber"]
    log = log.assign(exposed_conv=log["conversionAction"] * log["isExposed"],
                     exposed_pvalue=log["pValue"] * log["isExposed"],
                     paid=log["cost"] * log["isExposed"])
    t = log.groupby(episode + ["timeStepIndex"], sort=True).agg(
        advertiserCategoryIndex=("advertiserCategoryIndex", "first"),
        budget=("budget", "first"), CPAConstraint=("CPAConstraint", "first"),
        remaining=("remainingBudget", "first"), is_end=("isEnd", "first"),
        bid=("bid", "mean"), lwc=("leastWinningCost", "mean"), conv=("conversionAction", "mean"),
        xi=("xi", "mean"), pvalue=("pValue", "mean"), n=("pValue", "size"),
        bid_sum=("bid", "sum"), pvalue_sum=("pValue", "sum"), reward=("exposed_conv", "sum"),
        reward_continuous=("exposed_pvalue", "sum"), paid=("paid", "sum"),
        conversions=("conversionAction", "sum")).reset_index()
    g = t.groupby(episode, sort=False)
    stems = ("bid", "lwc", "pvalue", "conv", "xi")
    hist = {c: g[c].transform(lambda x: x.expanding().mean().shift(1)).fillna(0.0) for c in stems}
    last3 = {c: g[c].transform(lambda x: x.rolling(3, min_periods=1).mean().shift(1)).fillna(0.0)
             for c in stems}
    hist_n = g["n"].transform(lambda x: x.cumsum().shift(1)).fillna(0.0)
    last3_n = g["n"].transform(lambda x: x.rolling(3, min_periods=1).sum().shift(1)).fillna(0.0)
    tick = t["timeStepIndex"]
    state = [tuple(float(v) for v in row) for row in zip(
        (n_ticks - tick) / n_ticks, t["remaining"] / t["budget"], hist["bid"], last3["bid"],
        hist["lwc"], hist["pvalue"], hist["conv"], hist["xi"], last3["lwc"], last3["pvalue"],
        last3["conv"], last3["xi"], t["pvalue"], t["n"], last3_n, hist_n)]
    positive = t["pvalue_sum"] > 0
    out = pd.DataFrame({
        "deliveryPeriodIndex": t["deliveryPeriodIndex"],
        "advertiserNumber": t["advertiserNumber"],
        "advertiserCategoryIndex": t["advertiserCategoryIndex"], "budget": t["budget"],
        "CPAConstraint": t["CPAConstraint"], "realAllCost": g["paid"].transform("sum"),
        "realAllConversion": g["conversions"].transform("sum"), "timeStepIndex": tick,
        "state": state,
        "action": np.where(positive, t["bid_sum"] / t["pvalue_sum"].where(positive, 1.0), 0.0),
        "reward": t["reward"], "reward_continuous": t["reward_continuous"],
        "done": ((tick == n_ticks - 1) | (t["is_end"] == 1)).astype(int)})
    out["next_state"] = out.groupby(episode)["state"].shift(-1)
    out.loc[out["done"] == 1, "next_state"] = None
    return out[list(TRAJECTORY_COLUMNS)]


@pytest.fixture(scope="module")
def log():
    # Small budgets: several advertisers run out of budget before the last tick.
    return synthetic_log(n_periods=2, n_advertisers=4, opportunities_per_tick=6,
                         n_ticks=N_TICKS, budget_range=(0.5, 3.0), seed=1)


@pytest.fixture(scope="module")
def traj_csv(log, tmp_path_factory):
    path = tmp_path_factory.mktemp("traj") / "trajectory_data.csv"
    trajectory_file(log).to_csv(path, index=False)
    return path


def test_the_trajectory_file_gives_the_same_days_as_its_traffic_log(log, traj_csv):
    """The two public files of the same days import to the same trajectories: every column,
    the episode ends (the first done row) and the metadata's episode keys."""
    expected = import_auctionnet(log, n_ticks=N_TICKS)
    got = import_auctionnet_logs([traj_csv], n_ticks=N_TICKS)
    meta = got.attrs["bidenv"]
    assert meta["format"] == "auctionnet_trajectory" and meta["formats"] == [meta["format"]]
    assert meta["episodes"] == [[e, p, a, 0] for e, p, a in expected.attrs["bidenv"]["episodes"]]
    raw = pd.read_csv(traj_csv)
    assert meta["rows"] == len(raw) and meta["dropped_rows"] == len(raw) - len(got) > 0
    assert list(got.columns) == list(COLUMNS) and len(got) == len(expected)
    for col in COLUMNS:
        if got[col].dtype.kind in "fi":
            np.testing.assert_allclose(got[col].to_numpy(float), expected[col].to_numpy(float),
                                       rtol=1e-9, atol=1e-9, err_msg=col)
        else:
            assert got[col].tolist() == expected[col].tolist(), col
    assert got["done"].sum() == got["episode"].nunique()  # every day ends with done


def hand_trajectory() -> pd.DataFrame:
    """Two advertisers of one period, by hand (budget 100, target CPA 10, 4-tick days).

    Advertiser 1: ticks 0-2, done at tick 2, a tick 3 row after the end (dropped).
        budget_left before each tick 1.0, 0.8, 0.5 -> spend before 0, 20, 50; realAllCost 60
        -> costs 20, 30, 10. rewards (conversions) 1, 3, 2 -> CPA after tick 0: 20/1 -> score
        1 * (10/20)^2 = 0.25; after tick 1: 50/4 = 12.5 -> 4 * 0.64 = 2.56; after tick 2:
        60/6 = 10 -> 6. Volumes 10, 20, 10 (+10 after the end: day volume 50, 12.5 a tick).
        action 30 -> alpha 3; 10 -> 1; 0 with 10 opportunities -> alpha 0 -> action -1.
    Advertiser 2: ticks 0-1 and no done row (a day cut short): one row each, no conversions.
    """
    def state(time_left, budget_left, volume, last3_sum, hist_sum, win=0.5):
        return (time_left, budget_left, 0.2, 0.2, 0.1, 0.002, 0.01, win, 0.1, 0.002, 0.01, win,
                0.003, volume, last3_sum, hist_sum)

    rows = [
        (1, 0, state(1.0, 1.0, 10, 0, 0), 30.0, 1, 0.8, 0),
        (1, 1, state(0.75, 0.8, 20, 10, 10), 10.0, 3, 2.5, 0),
        (1, 2, state(0.5, 0.5, 10, 30, 30), 0.0, 2, 1.5, 1),
        (1, 3, state(0.25, 0.4, 10, 40, 40), 0.0, 0, 0.0, 1),
        (2, 0, state(1.0, 1.0, 10, 0, 0), 10.0, 0, 0.1, 0),
        (2, 1, state(0.75, 0.9, 10, 10, 10), 10.0, 0, 0.1, 0),
    ]
    return pd.DataFrame([{
        "deliveryPeriodIndex": 7, "advertiserNumber": a, "advertiserCategoryIndex": 3,
        "budget": 100.0, "CPAConstraint": 10.0, "realAllCost": 60.0 if a == 1 else 15.0,
        "realAllConversion": 6, "timeStepIndex": t, "state": str(s), "action": act,
        "reward": r, "reward_continuous": rc, "done": d, "next_state": None}
        for a, t, s, act, r, rc, d in rows])


def test_the_trajectory_file_by_hand(tmp_path):
    path = tmp_path / "trajectory_data.csv"
    hand_trajectory().to_csv(path, index=False)
    frame = import_auctionnet_trajectories(path, n_ticks=4)
    assert frame.attrs["bidenv"]["dropped_rows"] == 1 and len(frame) == 5
    one, two = frame[frame["episode"] == 0], frame[frame["episode"] == 1]
    np.testing.assert_allclose(one["cost"], [20, 30, 10])
    np.testing.assert_allclose(one["conversions"], [1, 3, 2])
    np.testing.assert_allclose(one["score"], [0.25, 2.56, 6.0])
    np.testing.assert_allclose(one["reward"], [0.25, 2.31, 3.44])
    assert one["score"].iloc[-1] == pytest.approx(cpa_score(6, 60, 10.0))
    np.testing.assert_allclose(one["alpha"], [3.0, 1.0, 0.0])
    np.testing.assert_allclose(one["action"], [*alpha_to_action(np.array([3.0, 1.0])), -1.0],
                               rtol=1e-6)
    np.testing.assert_allclose(one["expected_conversions"], [0.8, 3.3, 4.8])
    assert one["done"].tolist() == [False, False, True]
    assert two["done"].tolist() == [False, False]  # cut short: a timeout, not a terminal
    np.testing.assert_allclose(two["cost"], [10, 5])  # 100 x (1 - 0.9), then 15 - 10
    # Features: budget_left and time_left from the spend and tick; conversions per past tick
    # from the rewards; opportunity counts per tick of the day's mean volume (50 / 4 = 12.5).
    np.testing.assert_allclose(one["obs_budget_left"], [1.0, 0.8, 0.5])
    np.testing.assert_allclose(one["obs_time_left"], [1.0, 0.75, 0.5])
    np.testing.assert_allclose(one["obs_hist_conversion_mean"], [0, 1, 2])
    np.testing.assert_allclose(one["obs_last3_conversion_mean"], [0, 1, 2])
    np.testing.assert_allclose(one["obs_cur_opportunities"], [10 / 12.5, 20 / 12.5, 10 / 12.5])
    np.testing.assert_allclose(one["obs_hist_opportunities"], [0, 10 / 12.5, 15 / 12.5])
    np.testing.assert_allclose(one["obs_traffic_elapsed"], [0, 10 / 50, 30 / 50])
    np.testing.assert_allclose(one["obs_pace_error"], [0, 0.2 - 0.2, 0.5 - 0.6], atol=1e-7)
    np.testing.assert_allclose(one["obs_constraint_ratio"], [0, 2.0, 1.25])
    np.testing.assert_allclose(one["obs_hist_bid_mean"], [0.2 / 0.1] * 3)  # money / 0.1
    np.testing.assert_allclose(one["obs_hist_pvalue_mean"], [2.0] * 3)  # x1000
    np.testing.assert_allclose(one["obs_hist_win_rate"], [0.5] * 3)
    assert (frame["constraint"] == "cpa").all() and (frame["category"] == 3).all()
    assert (frame["value"] == 0).all() and frame["noise"].isna().all()


def test_state_spellings_are_parsed_without_evaluating_code():
    row = [0.5] * len(TRAJECTORY_STATE)
    spellings = [str(tuple(row)), str(list(row)),
                 "(" + ", ".join(f"np.float64({v})" for v in row) + ")"]
    np.testing.assert_array_equal(parse_states(spellings), np.full((3, 16), 0.5))
    with pytest.raises(ValueError, match=r"'state' must hold tuples of 16 numbers, found 15 "
                                         r"\(first at row 0"):
        parse_states([str(tuple(row[:-1]))])
    with pytest.raises(ValueError, match="not a finite number"):
        parse_states(["(__import__('os'), " + ", ".join(["1"] * 15) + ")"])


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns="realAllCost"), r"missing columns \['realAllCost'\]"),
    (lambda f: f.assign(action=["x"] + [1.0] * 5), r"column 'action' must hold finite numbers"
                                                   r", found 'x' \(first at row 0"),
    (lambda f: f.assign(done=[0, 2, 0, 0, 0, 0]), r"'done' must be 0 or 1 \(first at row 1"),
    (lambda f: f.assign(reward=[0, 0, -1, 0, 0, 0]), r"'reward' must be >= 0 \(first at row 2"),
    (lambda f: f.assign(timeStepIndex=[0, 1, 2, 4, 0, 1]), r"timeStepIndex' must lie in \[0, 4\)"),
    (lambda f: f.assign(timeStepIndex=[0, 1, 3, 3, 0, 1]), r"no row for timeStepIndex 2"),
    (lambda f: f.assign(budget=[100.0, 90.0, 100, 100, 100, 100]), r"'budget' changes within"),
    (lambda f: f.assign(state=["(1, 2)"] * 6), r"tuples of 16 numbers, found 2"),
])
def test_bad_trajectory_files_are_refused_naming_the_column(tmp_path, change, message):
    path = tmp_path / "t.csv"
    change(hand_trajectory()).to_csv(path, index=False)
    with pytest.raises(ValueError, match=message):
        import_auctionnet_trajectories(path, n_ticks=4)


def test_import_auctionnet_reads_both_formats_together(log, traj_csv, tmp_path, capsys):
    traffic = tmp_path / "period-7.csv"
    log.to_csv(traffic, index=False)
    out = tmp_path / "both.parquet"
    assert main(["import-auctionnet", str(traffic), str(traj_csv), "--out", str(out),
                 "--n-ticks", str(N_TICKS)]) == 0
    assert "2 file(s)" in capsys.readouterr().out
    frame, meta = load_dataset(out)
    n = len(meta["episodes"]) // 2
    assert meta["formats"] == ["auctionnet", "auctionnet_trajectory"]
    assert meta["format"] == "auctionnet+auctionnet_trajectory"
    assert sorted(frame["episode"].unique()) == list(range(2 * n))
    first, second = frame[frame["episode"] < n], frame[frame["episode"] >= n]
    np.testing.assert_allclose(first["score"], second["score"])
    with pytest.raises(SystemExit, match=r"bidenv import-auctionnet: .*trajectory file "
                                         r"t.csv: missing columns \['reward'\]"):
        hand_trajectory().drop(columns="reward").to_csv(tmp_path / "t.csv", index=False)
        main(["import-auctionnet", str(tmp_path / "t.csv"), "--out", str(tmp_path / "t.pq")])
    assert not (tmp_path / "t.pq").exists()


# --------------------------------------------------------------------------------------------
# D4RL-style arrays
# --------------------------------------------------------------------------------------------
def test_to_d4rl_against_the_frame_by_hand(tmp_path):
    frame = import_auctionnet_trajectories(hand_trajectory(), n_ticks=4)
    save_dataset(frame, tmp_path / "h.parquet")
    d = to_d4rl(tmp_path / "h.parquet")
    assert set(d) == {"observations", "actions", "rewards", "terminals", "timeouts",
                      "next_observations"}
    n, f = len(frame), len(OBS_COLUMNS)
    assert d["observations"].shape == d["next_observations"].shape == (n, f)
    assert d["actions"].shape == (n, 1) and d["rewards"].shape == (n,)
    assert d["observations"].dtype == d["actions"].dtype == d["rewards"].dtype == np.float32
    assert d["terminals"].dtype == d["timeouts"].dtype == bool
    # Episode 0 (3 ticks) ends done; episode 1 (2 ticks) was cut short.
    assert d["terminals"].tolist() == [False, False, True, False, False]
    assert d["timeouts"].tolist() == [False, False, False, False, True]
    obs = frame[OBS_COLUMNS].to_numpy(np.float32)
    np.testing.assert_array_equal(d["observations"], obs)
    np.testing.assert_array_equal(d["next_observations"], obs[[1, 2, 2, 4, 4]])
    np.testing.assert_allclose(d["rewards"], frame["reward"], rtol=1e-6)
    np.testing.assert_allclose(d["actions"][:, 0], frame["action"], rtol=1e-6)


# --------------------------------------------------------------------------------------------
# bidenv export-minari
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    path = tmp_path_factory.mktemp("collected") / "tiny.parquet"
    save_dataset(collect(episodes=3, seed=3, noise=0.5, env_kwargs=TINY, progress=False), path)
    return path


@pytest.fixture(scope="module")
def imported(log, tmp_path_factory):
    path = tmp_path_factory.mktemp("imported") / "an.parquet"
    save_dataset(import_auctionnet(log, n_ticks=N_TICKS), path)
    return path


@pytest.mark.parametrize("args, message", [
    (["--dataset-id", "bad id"], r"--dataset-id must be a Minari id \[namespace/\]name-vN"),
    (["--dataset-id", "bidenv/noversion"], r"--dataset-id must be a Minari id"),
    (["--dataset-id", "a-v0", "--env", "bidenv/Nope-v0"],
     r"--env: unknown environment 'bidenv/Nope-v0'; bidenv's are .*bidenv/AutoBidding-v0"),
    (["--dataset-id", "a-v0", "--out", "FILE"], r"--out must be a folder"),
])
def test_export_minari_bad_input(collected, tmp_path, args, message):
    (tmp_path / "FILE").write_text("x")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    with pytest.raises(SystemExit, match=f"bidenv export-minari: {message}"):
        main(["export-minari", str(collected), *args])
    with pytest.raises(SystemExit, match=r"DATA: dataset .*nope.parquet' does not exist"):
        main(["export-minari", str(tmp_path / "nope.parquet"), "--dataset-id", "a-v0"])


def test_export_minari_without_minari_fails_in_one_line_naming_the_extra(collected, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # as if not installed
    with pytest.raises(SystemExit) as info:
        main(["export-minari", str(collected), "--dataset-id", "bidenv/x-v0",
              "--out", str(tmp_path)])
    text = str(info.value)
    assert "\n" not in text and text.startswith("bidenv export-minari: ")
    assert "pip install 'bidenv[minari]'" in text
    assert list(tmp_path.iterdir()) == []


def test_export_minari_records_the_env_that_played_the_days(collected, tmp_path, monkeypatch,
                                                            capsys):
    minari = pytest.importorskip("minari")
    stale = tmp_path / ".export-minari.tmp-999999999-abc"  # left by a killed export
    stale.mkdir()
    assert main(["export-minari", str(collected), "--dataset-id", "bidenv/tiny-v0",
                 "--out", str(tmp_path)]) == 0
    assert "env spec bidenv/AutoBiddingLite-v0" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bidenv"]  # no staging folder left
    assert (tmp_path / "bidenv" / "namespace_metadata.json").is_file()
    with pytest.raises(SystemExit, match="bidenv export-minari: --dataset-id: a Minari dataset "
                                         "'bidenv/tiny-v0' already exists"):
        main(["export-minari", str(collected), "--dataset-id", "bidenv/tiny-v0",
              "--out", str(tmp_path)])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert "bidenv/tiny-v0" in minari.list_local_datasets()
    ds = minari.load_dataset("bidenv/tiny-v0")
    frame, meta = load_dataset(collected)
    assert ds.total_episodes == 3 and ds.total_steps == len(frame)
    assert ds.spec.env_spec.id == meta["env_id"] and ds.spec.env_spec.max_episode_steps == 48
    env = ds.recover_environment()
    assert env.unwrapped.opportunities_per_day == TINY["opportunities_per_day"]


def test_export_minari_gives_imported_logs_an_env_spec(imported, tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    assert main(["export-minari", str(imported), "--dataset-id", "auctionnet-v0",
                 "--out", str(tmp_path)]) == 0
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    ds = minari.load_dataset("auctionnet-v0")
    spec = ds.spec.env_spec
    assert spec is not None and spec.id == "bidenv/AutoBidding-v0"
    # The log's 8-tick days: the recorded env plays 8-tick days and the time limit fits them.
    assert spec.kwargs["n_ticks"] == N_TICKS and spec.max_episode_steps == N_TICKS
    assert ds.storage.metadata["description"].startswith("Imported logs (auctionnet), not days "
                                                         "played in bidenv")
    frame, _ = load_dataset(imported)
    assert ds.total_episodes == frame["episode"].nunique()


# --------------------------------------------------------------------------------------------
# d3rlpy (optional: pip install 'bidenv[d3rlpy]')
# --------------------------------------------------------------------------------------------
def test_d3rlpy_reads_our_data(collected, tmp_path, monkeypatch):
    d3rlpy = pytest.importorskip("d3rlpy")
    pytest.importorskip("minari")
    frame, _ = load_dataset(collected)
    obs = frame[OBS_COLUMNS].to_numpy(np.float32)
    # The bridge: every episode aligned with the frame.
    d = to_d4rl(collected)
    dataset = d3rlpy.dataset.MDPDataset(d["observations"], d["actions"], d["rewards"],
                                        d["terminals"], timeouts=d["timeouts"])
    assert dataset.size() == frame["episode"].nunique()
    assert dataset.transition_count == len(frame)
    for e, episode in enumerate(dataset.episodes):
        rows = (frame["episode"] == e).to_numpy()
        np.testing.assert_array_equal(episode.observations, obs[rows])
        np.testing.assert_allclose(episode.actions[:, 0], frame.loc[rows, "action"], rtol=1e-6)
        assert episode.terminated == bool(frame.loc[rows, "done"].iloc[-1])
    # d3rlpy's own Minari loader reads our export, with the recorded env and its time limit.
    main(["export-minari", str(collected), "--dataset-id", "bidenv/d3-v0", "--out",
          str(tmp_path)])
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    loaded, env = d3rlpy.datasets.get_minari("bidenv/d3-v0")
    assert env.spec.max_episode_steps == 48 and env.unwrapped.spec.id == "bidenv/AutoBiddingLite-v0"
    assert loaded.size() == dataset.size() and loaded.transition_count == len(frame)
    first = (frame["episode"] == 0).to_numpy()
    np.testing.assert_array_equal(loaded.episodes[0].observations, obs[first])
    # A d3rlpy algorithm trains on the bridged dataset (two gradient steps, no logs written).
    bc = d3rlpy.algos.BCConfig(batch_size=8).create(device="cpu:0")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        bc.fit(dataset, n_steps=2, n_steps_per_epoch=2, show_progress=False,
               logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    finally:
        os.chdir(cwd)
    assert bc.predict(d["observations"][:3]).shape == (3, 1)
