"""``bidenv selfplay``: offline learners retrained round after round on the logs of the
multi-agent market they bid in (``experiments.selfplay``), on a tiny market."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("pettingzoo")

import agents  # noqa: E402
from bidenv.offline import COLUMNS, load_dataset  # noqa: E402
from experiments.cli import main  # noqa: E402
from experiments.selfplay import ROUND_COLUMNS, START_MIX, SelfPlayConfig, selfplay  # noqa: E402
from experiments.threads import pin_threads  # noqa: E402

TINY = {"opportunities_per_day": 8000, "n_competitors": 11}
K = 2


def _cli(out, *extra) -> list[str]:
    return ["selfplay", "--agent", "bc", "--n-agents", str(K), "--rounds", "2", "--days", "2",
            "--steps", "5", "--eval-days", "2", "--env-kwargs", json.dumps(TINY), "--out",
            str(out), *extra]


def test_two_rounds_write_files_and_round_1_is_played_by_round_0s_checkpoints(tmp_path):
    out = tmp_path / "sp"
    assert main(_cli(out, "--noise", "0")) == 0  # noise 0: the logged actions are the policy's
    for name in ("config.json", "rounds.csv", "days.csv", "selfplay.png"):
        assert (out / name).is_file(), name
    for r in (0, 1):
        assert (out / f"round_{r}" / "data.parquet").is_file()
        for k in range(K):
            for name in ("config.json", "weights.pt", "train.json"):
                assert (out / f"round_{r}" / f"agent_{k}" / name).is_file()

    table = pd.read_csv(out / "rounds.csv")
    assert list(table.columns) == ROUND_COLUMNS
    names = {"advertiser_0", "advertiser_1", "all"}
    for r, splits in ((0, {"play", "eval"}), (1, {"play", "eval"}), (2, {"eval"})):
        rows = table[table["round"] == r]
        assert set(rows["split"]) == splits
        for split in splits:
            part = rows[rows["split"] == split]
            assert set(part["agent"]) == names
            assert dict(zip(part["agent"], part["days"])) == {"advertiser_0": 2,
                                                              "advertiser_1": 2, "all": 4}
    assert table["mean_expected_score"].notna().all()
    assert table["budget_used"].between(0, 1 + 1e-9).all()
    assert table["violation_rate"].between(0, 1).all()
    assert set(table[table["round"] == 1]["policy"]) >= {"bc:round_0/agent_0"}

    data = {r: load_dataset(out / f"round_{r}" / "data.parquet")[0] for r in (0, 1)}
    for r, frame in data.items():
        assert set(COLUMNS) <= set(frame.columns)
        # one episode per agent and day; episode e is agent e % K's day e // K
        assert sorted(frame["episode"].unique()) == [(r * 2 + d) * K + k
                                                     for d in range(2) for k in range(K)]
        assert (frame.groupby("episode")["tick"].min() == 0).all()
    assert set(data[0]["behavior"]) <= set(START_MIX)
    r1 = data[1]
    assert (r1["behavior"] == "bc:round_" + "0/agent_" + (r1["episode"] % K).astype(str)).all()
    assert (r1["noise"] == 0).all()
    # Round 1 was played by round 0's trained checkpoints: their outputs on the logged
    # observations are the logged actions (and not the heuristics' of round 0).
    obs_cols = [c for c in COLUMNS if c.startswith("obs_")]
    for k in range(K):
        rows = r1[r1["episode"] % K == k]
        policy = agents.from_spec(f"bc:{out / 'round_0' / f'agent_{k}'}")
        acted = np.array([policy.act(o)[0] for o in rows[obs_cols].to_numpy(np.float32)])
        np.testing.assert_allclose(acted, rows["action"].to_numpy(), atol=1e-6)
        # the learners are independent: learner k saw its own days only (2 rounds x 2 days)
        train = json.loads((out / "round_1" / f"agent_{k}" / "train.json").read_text())
        assert train["data_fingerprint"]["episodes"] == 4
    mean_action = [d.groupby("episode")["action"].mean().to_numpy() for d in (data[0], r1)]
    assert not np.allclose(*mean_action)


def test_selfplay_is_deterministic_for_a_seed_dt_shared_window(tmp_path):
    import torch

    pin_threads(1)
    config = SelfPlayConfig(agent="dt", n_agents=K, rounds=2, days=2, steps=3, seed=3,
                            env_kwargs=TINY, eval_days=2, shared=True, window=1)
    tables = [selfplay(config, tmp_path / name, progress=False) for name in ("a", "b")]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "rounds.csv").read_text() == (b / "rounds.csv").read_text()
    assert (a / "days.csv").read_text() == (b / "days.csv").read_text()
    for r in (0, 1):
        fa, fb = (load_dataset(d / f"round_{r}" / "data.parquet")[0] for d in (a, b))
        pd.testing.assert_frame_equal(fa, fb)
        wa, wb = (torch.load(d / f"round_{r}" / "shared" / "weights.pt", weights_only=True)
                  for d in (a, b))
        for key in wa:
            if key.startswith("net."):
                for name, tensor in wa[key].items():
                    assert torch.equal(tensor, wb[key][name]), (r, key, name)
    # the shared model plays every agent; with --window 1 it trains on the last round only
    r1 = load_dataset(a / "round_1" / "data.parquet")[0]
    assert set(r1["behavior"]) == {"dt:round_0/shared"}
    train = json.loads((a / "round_1" / "shared" / "train.json").read_text())
    assert train["data_fingerprint"]["episodes"] == 2 * K
    assert not (a / "round_0" / "agent_0").exists()
    # another seed plays other days
    other = selfplay(dataclasses.replace(config, seed=4, rounds=1), tmp_path / "c",
                     progress=False)
    assert not np.allclose(other[other["split"] == "play"]["mean_spend"],
                           tables[0][(tables[0]["split"] == "play")
                                     & (tables[0]["round"] == 0)]["mean_spend"])


@pytest.mark.parametrize("extra, message", [
    (["--n-agents", "0"], "--n-agents must be an integer >= 1, got 0"),
    (["--n-agents", "13"], "--n-agents must be an integer in [1, 12], got 13"),
    (["--rounds", "0"], "--rounds must be an integer >= 1"),
    (["--steps", "-1"], "--steps must be an integer >= 1"),
    (["--noise", "5"], "--noise must be a number in [0, 3]"),
    (["--agent", "pid_cpa"], "--agent must be an offline agent"),
    (["--env-kwargs", "{bad"], "--env-kwargs: not JSON"),
    (["--env-kwargs", '{"n_competitors": -1}'], "--env-kwargs: n_competitors must be"),
    (["--env", "nope/X-v0"], "--env: unknown environment 'nope/X-v0'"),
    (["--start", "dt:/nonexistent"], "--start: checkpoint '/nonexistent' needs"),
    (["--start", "expert"], "--start: 'expert' needs the day's hindsight"),
    (["--set", "foo=1"], "--set:"),
    (["--eval-seed", "1"], "--eval-seed: the held-out days 1..2 overlap the training days"),
])
def test_bad_input_is_refused_in_one_line_naming_the_option(tmp_path, extra, message):
    out = tmp_path / "out"
    argv = _cli(out)
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    text = str(exc.value)
    assert text.startswith("bidenv selfplay: ") and "\n" not in text
    assert message in text, text
    assert not out.exists()  # refused before any work


@pytest.mark.parametrize("behavior", ["truthful", "online_lp"])
def test_logged_rows_are_bidenv_collects_rows_for_one_agent(behavior):
    """With one agent the multi-agent day is the single env's, and its logged rows
    (``bidenv.offline.step_row``) are the rows ``bidenv collect`` writes for the same day.
    ``online_lp`` paces on the opportunities ``update`` hands it: its rows match only if the
    agent sees its own view of every tick, as ``agents.run_episode`` gives it."""
    from bidenv.multi_agent import parallel_env
    from experiments.collect import CollectConfig, collect
    from experiments.selfplay import play_day

    frame = collect(CollectConfig(episodes=1, seed=5, behaviors={behavior: 1.0}, noise=0.0,
                                  env_kwargs=TINY), progress=False)
    first = frame.iloc[0]
    options = {"budget": first["budget"], "constraint": first["constraint"],
               "category": int(first["category"])}
    options.update({k: first[k] for k in ("target_cpa", "target_roi") if np.isfinite(first[k])})
    env = parallel_env(n_agents=1, **{"opportunities_per_day": 50_000, **TINY})
    rows, _ = play_day(env, [agents.make(behavior)], seed=5, sigmas=[0.0], noise_seeds=[0],
                       episodes=[0], behaviors=[behavior], options=options)
    pd.testing.assert_frame_equal(pd.DataFrame(rows, columns=list(COLUMNS)),
                                  frame[list(COLUMNS)], check_dtype=False)
