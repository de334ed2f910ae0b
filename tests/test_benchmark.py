"""The smoke benchmark end to end (collect, train every agent, evaluate, leaderboard, README)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytest.importorskip("torch")

from experiments.benchmark import (  # noqa: E402
    HEURISTICS,
    PRESETS,
    run_benchmark,
    splice_readme,  # noqa: E402
)


def test_splice_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\nrest\n")
    splice_readme(readme, "| a | b |", "bidenv benchmark --preset smoke")
    text = readme.read_text()
    assert text.startswith("intro\n<!-- leaderboard:start -->\n")
    assert "old" not in text and "| a | b |" in text and text.endswith("end -->\nrest\n")
    assert "`bidenv benchmark --preset smoke`" in text
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="leaderboard:start"):
        splice_readme(readme, "x", "cmd")


def test_smoke_benchmark_trains_and_ranks_every_agent(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- leaderboard:start -->\n<!-- leaderboard:end -->\n")
    out = tmp_path / "smoke"
    board = run_benchmark(preset="smoke", seed=0, out=out, progress=False, readme=readme)
    want = set(HEURISTICS) | set(PRESETS["smoke"]["sb3"]) | set(PRESETS["smoke"]["offline"])
    assert set(board["agent"]) == want
    episodes = pd.read_csv(out / "episodes.csv")
    # Held-out days: disjoint from the data's days (seed + i, i < collect_episodes).
    assert episodes["seed"].min() >= 1_000_000
    assert (episodes["expected_score"] <= episodes["oracle_score"] * 1.02 + 1e-9).all()
    info = json.loads((out / "benchmark.json").read_text())
    assert info["preset"] == "smoke" and info["total_seconds"] > 0
    assert "| pid_cpa |" in readme.read_text()
    # Re-running the same command reuses the data and the finished runs.
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("weights.pt")}
    run_benchmark(preset="smoke", seed=0, out=out, progress=False)
    after = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("weights.pt")}
    assert before == after and before
