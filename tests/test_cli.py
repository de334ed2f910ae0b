"""The ``bidenv`` command line: sub-commands run end to end and write what they promise."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from experiments.cli import build_parser, main


@pytest.mark.slow
def test_quickstart_writes_leaderboard_and_roi_curves(tmp_path, capsys):
    from experiments.evaluate import leaderboard

    assert main(["quickstart", "--episodes", "1", "--budget-days", "1", "--workers", "1",
                 "--env", "bidenv/AutoBiddingLite-v0", "--seed", "5",
                 "--out", str(tmp_path)]) == 0
    board = pd.read_csv(tmp_path / "leaderboard.csv")
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    assert set(board["agent"]) == {"truthful", "pid_budget", "pid_cpa", "online_lp", "dt"}
    assert len(episodes) == 5 and (episodes["budget_used"] <= 1 + 1e-9).all()
    assert (episodes["seed"] == 5).all()
    # The leaderboard is the per-agent summary of the episode rows.
    pd.testing.assert_frame_equal(board, leaderboard(episodes), check_dtype=False)
    sweep = pd.read_csv(tmp_path / "budget_simulation.csv")
    assert len(sweep) == 12 and set(sweep["strategy"]) == {"pid_cpa", "pid_budget"}
    for name in ("roi_curves.png", "roi_curve.png", "marginal_cpa.png", "pacing.png"):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert "Leaderboard" in out and "Recommendation:" in out and "roi_curves.png" in out
    assert not list(tmp_path.glob(".*"))  # no half-written files left behind


def test_bench_prints_and_writes_figures(tmp_path, capsys):
    main(["bench", "--opportunities", "20000", "--advertisers", "8", "--repeats", "1",
          "--vector-envs", "4", "--vector-steps", "8", "--out", str(tmp_path)])
    figures = json.loads((tmp_path / "bench.json").read_text())
    for key in ("kernel_opps_per_s", "env_opps_per_s", "env_over_kernel", "peak_day_memory_mb"):
        assert figures[key] > 0
    assert figures["env_over_kernel"] == pytest.approx(
        figures["env_opps_per_s"] / figures["kernel_opps_per_s"])
    vector = figures["vector"]
    assert vector["n_envs"] == 4 and vector["env_id"] == "bidenv/AutoBiddingLite-v0"
    assert vector["native_over_single"] == pytest.approx(
        vector["native_steps_per_cpu_s"] / vector["single_steps_per_cpu_s"])
    out = capsys.readouterr().out
    assert "opportunities/s" in out and "native vector env" in out


@pytest.mark.parametrize("argv", [["quickstart", "--episodes", "0"],
                                  ["bench", "--opportunities", "-5"], ["no-such-command"]])
def test_bad_arguments_exit_with_usage_error(argv):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "experiments.cli", "--help"],
                         capture_output=True, text=True, check=True)
    assert "quickstart" in out.stdout and "bench" in out.stdout


@pytest.mark.parametrize("extra, message", [
    (["--seed", "-5"], "seed must be an integer >= 0, got -5"),
    (["--env", "nope/X-v0"], "--env: unknown environment 'nope/X-v0'"),
    (["--agents", "dt:/nonexistent"], "agents: cannot load 'dt:/nonexistent'"),
    (["--out", "FILE"], "is a file, not a folder"),
])
def test_evaluate_refuses_bad_input_in_one_line_before_any_work(tmp_path, extra, message):
    (tmp_path / "a_file").write_text("x")
    argv = {"--agents": "truthful", "--episodes": "1", "--out": str(tmp_path / "out"),
            "--env": "bidenv/AutoBiddingLite-v0"}
    for flag, value in zip(extra[::2], extra[1::2]):
        argv[flag] = str(tmp_path / "a_file") if value == "FILE" else value
    cmd = [sys.executable, "-m", "experiments.cli", "evaluate"]
    cmd += [x for kv in argv.items() for x in kv]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode != 0
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr[-600:]
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out" / "episodes.csv").exists()
