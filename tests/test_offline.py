"""Offline datasets: collection, files, trajectories, return-to-go, and the Minari export."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bidenv.offline import (
    COLUMNS,
    OBS_COLUMNS,
    Normalizer,
    Trajectories,
    load_dataset,
    save_dataset,
    validate_frame,
)
from bidenv.scoring import cpa_score
from experiments.cli import main
from experiments.collect import DEFAULT_BEHAVIORS, CollectConfig, behavior_plan, collect

#: A very small day so that collection tests take well under a second per episode.
TINY = {"opportunities_per_day": 5000, "n_competitors": 4}


@pytest.fixture(scope="module")
def tiny_frame():
    return collect(episodes=11, seed=3, noise=0.5, env_kwargs=TINY, progress=False)


# --------------------------------------------------------------------------------------------
# A hand-made frame: numbers computed by hand
# --------------------------------------------------------------------------------------------
def hand_frame(n_episodes: int = 2) -> pd.DataFrame:
    """Episode 0: 3 ticks of a CPA campaign (target 10); other episodes: 2 ticks.

    Episode 0, by hand (beta = 2, score = conv * min(1, target * conv / cost) ** 2):
        tick 0: cost 20, 1 conversion   -> totals (20, 1): CPA 20 -> 1 * (10/20)^2 = 0.25
        tick 1: cost 10, 3 conversions  -> totals (30, 4): CPA 7.5 -> 4
        tick 2: cost 30, 1 conversion   -> totals (60, 5): CPA 12  -> 5 * (10/12)^2 = 125/36
    Other episodes: tick 0: cost 5, 1 conversion -> 1; tick 1: cost 0, 0 -> 1.
    """
    rows = []
    for e in range(n_episodes):
        ticks = ([(20.0, 1.0, 0.25), (10.0, 3.0, 4.0), (30.0, 1.0, 125 / 36)] if e == 0
                 else [(5.0, 1.0, 1.0), (0.0, 0.0, 1.0)])
        prev = 0.0
        for t, (cost, conv, score) in enumerate(ticks):
            row = {"episode": e, "tick": t}
            row.update({c: 0.01 * (i + 1) + t + 10 * e for i, c in enumerate(OBS_COLUMNS)})
            row.update(action=0.1 * t - 0.05 * e, alpha=10 ** (0.1 * t - 0.05 * e),
                       reward=score - prev, done=t == len(ticks) - 1, budget=100.0,
                       constraint="cpa", target_cpa=10.0, target_roi=math.nan, category=1,
                       cost=cost, conversions=conv, value=0.0, score=score,
                       expected_score=score / 2, expected_conversions=conv,
                       expected_cost=cost, expected_value=0.0, behavior="hand", noise=0.0)
            rows.append(row)
            prev = score
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_hand_frame_scores_use_the_exact_beta():
    frame = hand_frame()
    ep0 = frame[frame["episode"] == 0]
    cum_cost, cum_conv = ep0["cost"].cumsum(), ep0["conversions"].cumsum()
    # The hand numbers are the scoring module's with beta = 2 (beta = 1 would give 0.5 first).
    np.testing.assert_allclose(cpa_score(cum_conv.to_numpy(), cum_cost.to_numpy(), 10.0),
                               [0.25, 4.0, 125 / 36])
    assert cpa_score(1.0, 20.0, 10.0, beta=1.0) == 0.5


def test_returns_to_go_telescope_to_the_final_score():
    traj = Trajectories.from_frame(hand_frame())
    final = 125 / 36
    rtg = traj.returns_to_go()
    assert rtg.shape == (2, 3)
    np.testing.assert_allclose(rtg[0], [final, final - 0.25, final - 4.0])
    # Episode 1 has 2 ticks: R = (1, 1 - 1) and the padded tick is 0.
    np.testing.assert_allclose(rtg[1], [1.0, 0.0, 0.0])
    # R_t - R_{t+1} is the score increment (the reward); R_0 is the final score.
    np.testing.assert_allclose(rtg[0, :-1] - rtg[0, 1:], traj.rewards[0, :-1], rtol=1e-6)
    np.testing.assert_allclose(traj.final_scores(), [final, 1.0])
    np.testing.assert_allclose(traj.returns_to_go(expected=True)[0],
                               [final / 2, final / 2 - 0.125, final / 2 - 2.0])
    assert traj.mask.tolist() == [[True, True, True], [True, True, False]]


def test_transitions_shapes_and_terminals():
    frame = hand_frame()
    traj = Trajectories.from_frame(frame)
    tr = traj.transitions(reward_scale=2.0)
    n, f = len(frame), len(OBS_COLUMNS)
    assert tr["obs"].shape == (n, f) and tr["next_obs"].shape == (n, f)
    assert tr["actions"].shape == (n, 1) and tr["rewards"].shape == (n,)
    assert tr["dones"].tolist() == [0, 0, 1, 0, 1]
    obs = frame[OBS_COLUMNS].to_numpy(np.float32)
    np.testing.assert_array_equal(tr["obs"], obs)
    # s' is the next tick's state, and the terminal tick's own state (masked by done).
    np.testing.assert_array_equal(tr["next_obs"], obs[[1, 2, 2, 4, 4]])
    np.testing.assert_allclose(tr["rewards"], 2 * np.array([0.25, 3.75, 125 / 36 - 4, 1, 0]),
                               rtol=1e-6)
    np.testing.assert_allclose(tr["actions"][:, 0], [0, 0.1, 0.2, -0.05, 0.05], atol=1e-7)


def test_split_is_disjoint_and_deterministic():
    traj = Trajectories.from_frame(hand_frame(20))
    train, val = traj.split(0.25, seed=1)
    assert len(val.episodes) == 5 and len(train.episodes) == 15
    assert set(train.episodes).isdisjoint(val.episodes)
    assert sorted(set(train.episodes) | set(val.episodes)) == list(range(20))
    again_train, again_val = traj.split(0.25, seed=1)
    assert again_val.episodes.tolist() == val.episodes.tolist()
    other = [traj.split(0.25, seed=s)[1].episodes.tolist() for s in range(2, 6)]
    assert any(o != val.episodes.tolist() for o in other)
    # Subsets carry each episode's own rows.
    e = int(val.episodes[0])
    np.testing.assert_array_equal(val.obs[0], traj.obs[e])
    assert val.campaigns[0] == traj.campaigns[e]
    with pytest.raises(ValueError, match="val_fraction"):
        traj.split(1.0)


def test_normalizer_matches_numpy_over_real_ticks():
    traj = Trajectories.from_frame(hand_frame(3))
    norm = traj.normalizer()
    states = hand_frame(3)[OBS_COLUMNS].to_numpy(np.float64)  # 7 real ticks, no padding
    np.testing.assert_allclose(norm.mean, states.mean(0), rtol=1e-6)
    np.testing.assert_allclose(norm.std, states.std(0), rtol=1e-5)
    z = norm(states)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    back = Normalizer.from_dict(norm.to_dict())
    np.testing.assert_array_equal(back.mean, norm.mean)
    np.testing.assert_array_equal(back.std, norm.std)
    const = Normalizer.fit(np.ones((4, 2)))
    np.testing.assert_allclose(const.std, [1e-3, 1e-3])  # floored, never 0


# --------------------------------------------------------------------------------------------
# Collection
# --------------------------------------------------------------------------------------------
def test_collect_is_deterministic_and_independent_of_workers(tiny_frame):
    again = collect(episodes=11, seed=3, noise=0.5, env_kwargs=TINY, progress=False)
    pd.testing.assert_frame_equal(tiny_frame, again)
    # 11 episodes are two chunks of work, so two processes really split them.
    parallel = collect(episodes=11, seed=3, noise=0.5, env_kwargs=TINY, progress=False,
                       workers=2)
    pd.testing.assert_frame_equal(tiny_frame, parallel)
    other = collect(episodes=2, seed=4, noise=0.5, env_kwargs=TINY, progress=False)
    assert not np.allclose(other["budget"].iloc[0], tiny_frame["budget"].iloc[0])


def test_collect_records_behaviour_mix_and_noise(tiny_frame):
    meta = tiny_frame.attrs["bidenv"]
    assert meta["behaviors"] == DEFAULT_BEHAVIORS and meta["noise"] == 0.5
    assert meta["seed"] == 3 and meta["env_kwargs"] == TINY
    validate_frame(tiny_frame)
    config = CollectConfig(episodes=11, seed=3, noise=0.5, env_kwargs=TINY)
    per_episode = tiny_frame.groupby("episode").first()
    for ep, row in per_episode.iterrows():
        plan = behavior_plan(config, ep)
        assert row["behavior"] == plan["behavior"]
        assert row["noise"] == plan["noise"] and 0 <= row["noise"] <= 0.5
        assert row["target_cpa"] == plan["campaign"].get("target_cpa", row["target_cpa"])
    assert set(tiny_frame["behavior"]) <= set(DEFAULT_BEHAVIORS)
    # Rewards telescope to each day's final score; the last tick is done.
    by_ep = tiny_frame.groupby("episode")
    np.testing.assert_allclose(by_ep["reward"].sum(), by_ep["score"].last(), atol=1e-9)
    assert by_ep["done"].last().all() and not by_ep["done"].apply(lambda d: d.iloc[:-1].any()).any()


def test_exploration_noise_is_the_recorded_log_normal_draw():
    # A fixed-alpha behaviour: without noise every action is log(alpha) / log(10); with noise
    # sigma the action moves by sigma * z / log(10), z from the episode's noise stream.
    config = CollectConfig(episodes=1, seed=7, behaviors={"fixed": 1.0}, noise=0.8,
                           env_kwargs=TINY)
    frame = collect(config, progress=False)
    plan = behavior_plan(config, 0)
    z = np.random.default_rng(plan["noise_seed"]).standard_normal(len(frame))
    base = math.log(plan["kwargs"]["alpha"]) / math.log(10.0)
    expected = np.clip(base + plan["noise"] * z / math.log(10.0), -1, 1)
    assert plan["noise"] > 0
    np.testing.assert_allclose(frame["action"], expected, atol=1e-6)
    np.testing.assert_allclose(frame["alpha"], 10.0 ** frame["action"], rtol=1e-5)
    quiet = collect(config, noise=0.0, progress=False)
    np.testing.assert_allclose(quiet["action"], base, atol=1e-6)


def test_collect_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown agent 'nope'"):
        CollectConfig(behaviors={"nope": 1.0})
    with pytest.raises(ValueError, match="noise must be"):
        CollectConfig(noise=-0.1)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        CollectConfig(seed=-1)
    with pytest.raises(ValueError, match="workers"):
        collect(episodes=1, workers=0, progress=False)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def test_save_load_round_trip_keeps_rows_and_metadata(tmp_path, tiny_frame):
    path = save_dataset(tiny_frame, tmp_path / "d.parquet", metadata={"note": "x"})
    frame, meta = load_dataset(path)
    pd.testing.assert_frame_equal(frame, validate_frame(tiny_frame))
    assert meta["behaviors"] == DEFAULT_BEHAVIORS and meta["noise"] == 0.5
    assert meta["source"] == "bidenv.collect" and meta["note"] == "x"
    assert frame.attrs["bidenv"] == meta
    assert [p.name for p in tmp_path.iterdir()] == ["d.parquet"]


def test_save_is_atomic(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    save_dataset(hand_frame(), path)
    before = path.read_bytes()

    def broken(table, where, **kwargs):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        save_dataset(hand_frame(3), path)  # an existing file stays as it was
    with pytest.raises(OSError, match="disk full"):
        save_dataset(hand_frame(3), tmp_path / "new.parquet")  # no new file appears
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet"]


def _write_raw(frame, path):
    frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.drop(columns=["action"]), r"missing columns \['action'\]"),
    (lambda f: f.assign(obs_budget_left=f["obs_budget_left"].where(f["tick"] != 1)),
     "'obs_budget_left' has NaN"),
    (lambda f: f.assign(done=f["done"].astype(int)), "'done' must be bool"),
    (lambda f: f.assign(episode=f["episode"] + 0.5), "'episode' must hold integers"),
    (lambda f: f.assign(cost=f["cost"].astype(str)), "'cost' must be numeric"),
    (lambda f: f.assign(constraint="cap"), "'constraint' must be cpa, roi or budget"),
    (lambda f: f.assign(action=f["action"] * 20), "'action' must lie in"),
    (lambda f: f[~((f["episode"] == 0) & (f["tick"] == 1))], "episode 0 has ticks"),
    (lambda f: pd.concat([f, f.iloc[[0]]]), "episode 0 has ticks"),
    (lambda f: f.iloc[:0], "no rows"),
    (lambda f: f.assign(budget=f["budget"].where(f["tick"] != 2, 0.0)),
     r"'budget' must be in \(0, 1e\+30\] \(first bad value 0 at row 2\)"),
    (lambda f: f.assign(budget=f["budget"].where(f["tick"] != 1, 2e30)),
     r"'budget' must be in \(0, 1e\+30\] \(first bad value 2e\+30 at row 1\)"),
    (lambda f: f.assign(target_cpa=-f["target_cpa"]), r"need target_cpa in \[1e-30, 1e\+30\]"),
    (lambda f: f.assign(target_cpa=3e38), r"need target_cpa in \[1e-30, 1e\+30\]"),
])
def test_bad_files_give_clear_errors(tmp_path, damage, message):
    path = _write_raw(damage(hand_frame()), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match=message):
        load_dataset(path)


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_text("episode,tick\n0,0\n")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        load_dataset(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "missing.parquet")


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def test_cli_collect_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "data.parquet"
    assert main(["collect", "--episodes", "3", "--seed", "5", "--out", str(out)]) == 0
    frame, meta = load_dataset(out)
    assert frame["episode"].nunique() == 3 and meta["behaviors"] == DEFAULT_BEHAVIORS
    assert meta["env_id"] == "bidenv/AutoBiddingLite-v0" and meta["seed"] == 5
    printed = capsys.readouterr().out
    assert f"{len(frame)} rows" in printed and "days/s" in printed and str(out) in printed
    # The same days as the library call.
    pd.testing.assert_frame_equal(frame, validate_frame(collect(episodes=3, seed=5,
                                                                progress=False)))


def test_cli_collect_behaviour_spec(tmp_path):
    out = tmp_path / "d.parquet"
    main(["collect", "--episodes", "2", "--behavior", "truthful=1,fixed=0", "--noise", "0",
          "--out", str(out)])
    frame, meta = load_dataset(out)
    assert meta["behaviors"] == {"truthful": 1.0, "fixed": 0.0} and meta["noise"] == 0.0
    assert set(frame["behavior"]) == {"truthful"}
    np.testing.assert_allclose(frame["alpha"], 1.0)


@pytest.mark.parametrize("args, message", [
    (["--behavior", "nope"], "unknown agent"),
    (["--behavior", "pid_cpa=-1"], "weight of 'pid_cpa'"),
    (["--behavior", "pid_cpa=0"], "must not all be 0"),
    (["--noise", "5"], "noise must be"),
    (["--env", "bidenv/Nope-v0"], "unknown environment"),
    (["--seed", "-2"], "seed must be"),
])
def test_cli_collect_errors(tmp_path, args, message):
    with pytest.raises(SystemExit, match=f"bidenv collect: .*{message}"):
        main(["collect", "--episodes", "1", "--out", str(tmp_path / "x.parquet"), *args])
    assert not (tmp_path / "x.parquet").exists()


# --------------------------------------------------------------------------------------------
# Minari (optional extra)
# --------------------------------------------------------------------------------------------
def test_minari_is_imported_lazily_with_a_clear_error(monkeypatch):
    code = ("import sys, bidenv, bidenv.offline, bidenv.minari_export; "
            "assert 'minari' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    from bidenv.minari_export import export_minari

    monkeypatch.setitem(sys.modules, "minari", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install bidenv\[minari\]"):
        export_minari(hand_frame(), "bidenv/x-v0")


def test_minari_export_round_trip(tmp_path, tiny_frame):
    minari = pytest.importorskip("minari")
    import gymnasium as gym

    from bidenv.minari_export import export_minari

    frame = tiny_frame[tiny_frame["episode"] < 3]
    ds = export_minari(frame, "bidenv/tiny-mix-v0", datasets_path=tmp_path)
    assert ds.total_episodes == 3 and ds.total_steps == len(frame)
    with pytest.raises(ValueError, match="already exists"):
        export_minari(frame, "bidenv/tiny-mix-v0", datasets_path=tmp_path)
    monkey = pytest.MonkeyPatch()
    monkey.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    try:
        loaded = minari.load_dataset("bidenv/tiny-mix-v0")
        episodes = list(loaded.iterate_episodes())
        env = loaded.recover_environment()
        meta = loaded.storage.get_episode_metadata([1])
        meta = list(meta)[0]
    finally:
        monkey.undo()
    rows = frame[frame["episode"] == 1]
    ep = episodes[1]
    assert ep.observations.shape == (len(rows) + 1, len(OBS_COLUMNS))
    np.testing.assert_array_equal(ep.observations[:-1], rows[OBS_COLUMNS].to_numpy(np.float32))
    np.testing.assert_array_equal(ep.observations[-1], ep.observations[-2])
    np.testing.assert_allclose(ep.actions[:, 0], rows["action"], rtol=1e-6)
    assert ep.rewards.sum() == pytest.approx(rows["score"].iloc[-1])
    assert ep.terminations[-1] and not ep.terminations[:-1].any() and not ep.truncations.any()
    np.testing.assert_allclose(ep.infos["score"][1:], rows["score"])
    # The stored seed and campaign replay the day's first observation in the stored env.
    assert meta["seed"] == 3 + 1
    obs, _ = env.reset(seed=int(meta["seed"]), options=meta["options"])
    np.testing.assert_array_equal(obs, ep.observations[0])
    assert isinstance(env.unwrapped, gym.Env) and env.unwrapped.opportunities_per_day == 5000


def test_minari_export_without_an_environment(tmp_path):
    pytest.importorskip("minari")
    from bidenv.minari_export import export_minari

    frame = hand_frame()
    frame.attrs["bidenv"] = {"source": "log.csv", "behaviors": {"auctionnet": 1.0}}
    with pytest.raises(ValueError, match="data_format"):
        export_minari(frame, "an-v0", datasets_path=tmp_path, data_format="csv")
    ds = export_minari(frame, "an-v0", datasets_path=tmp_path)
    # Imported logs get the env they model (an export always records an env spec).
    assert ds.spec.env_spec.id == "bidenv/AutoBidding-v0"
    assert ds.total_episodes == 2 and ds.total_steps == 5
    assert "auctionnet=1" in ds.storage.metadata["algorithm_name"]
    first = next(iter(ds.iterate_episodes()))
    np.testing.assert_allclose(first.rewards, [0.25, 3.75, 125 / 36 - 4])
    assert first.terminations.tolist() == [False, False, True]
