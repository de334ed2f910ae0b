"""The ``bidenv`` command line: sub-commands run end to end and write what they promise."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from experiments.cli import build_parser, main


def test_quickstart_writes_summary(tmp_path, capsys):
    assert main(["quickstart", "--episodes", "1", "--env", "bidenv/AutoBiddingLite-v0",
                 "--out", str(tmp_path)]) == 0
    summary = pd.read_csv(tmp_path / "summary.csv")
    episodes = pd.read_csv(tmp_path / "episodes.csv")
    assert set(summary["strategy"]) == {"truthful", "shaded_0.8", "budget_pacing", "cpa_control"}
    assert len(episodes) == 4 and (episodes["budget_used"] <= 1 + 1e-9).all()
    # The summary is the per-strategy mean of the episode rows.
    row = summary.set_index("strategy").loc["truthful"]
    assert row["score"] == pytest.approx(episodes.set_index("strategy").loc["truthful", "score"])
    out = capsys.readouterr().out
    assert "budget_pacing" in out and "summary.csv" in out
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written files left behind


def test_quickstart_is_reproducible(tmp_path):
    for name in ("a", "b"):
        main(["quickstart", "--episodes", "1", "--env", "bidenv/AutoBiddingLite-v0",
              "--seed", "5", "--out", str(tmp_path / name)])
    a = pd.read_csv(tmp_path / "a" / "episodes.csv")
    b = pd.read_csv(tmp_path / "b" / "episodes.csv")
    pd.testing.assert_frame_equal(a, b)


def test_bench_prints_and_writes_figures(tmp_path, capsys):
    main(["bench", "--opportunities", "20000", "--advertisers", "8", "--repeats", "1",
          "--out", str(tmp_path)])
    figures = json.loads((tmp_path / "bench.json").read_text())
    for key in ("kernel_opps_per_s", "env_opps_per_s", "env_over_kernel", "peak_day_memory_mb"):
        assert figures[key] > 0
    assert figures["env_over_kernel"] == pytest.approx(
        figures["env_opps_per_s"] / figures["kernel_opps_per_s"])
    assert "opportunities/s" in capsys.readouterr().out


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
