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


def test_readme_markdown_ranks_by_mean_percent_of_oracle():
    from experiments.benchmark import readme_markdown
    rows = []
    # a: 90 and 50 -> mean 70; b: 80 and 70 -> mean 75, so b leads though a wins "default".
    # Rows not in alphabetical order, so columns must be joined by agent, not by position.
    for agent, pct_default, pct_roi in [("b", 80.0, 70.0), ("a", 90.0, 50.0)]:
        for scenario, pct in [("default", pct_default), ("roi", pct_roi)]:
            rows.append({"agent": agent, "scenario": scenario, "episodes": 4,
                         "mean_score": pct / 10, "ci_low": pct / 10 - 1, "ci_high": pct / 10 + 1,
                         "median_score": 1.0, "iqm_score": 1.0, "mean_pct_of_oracle": pct,
                         "violation_rate": 0.25 if agent == "a" else 0.5,
                         "mean_budget_used": 1.0})
    board = pd.DataFrame(rows)
    spec = {"env_id": "bidenv/AutoBiddingLite-v0", "episodes": 4, "offline_seeds": 2}
    md = readme_markdown(board, spec, {"total_seconds": 600.0, "reused_runs": ["x/seed0"]},
                         workers=2)
    lines = md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| agent"))
    assert lines[header + 2].startswith("| b | 80.0 | 70.0 | 75.0 | 50% | 8.00 [7.00, 9.00] |")
    assert lines[header + 3].startswith("| a | 90.0 | 50.0 | 70.0 | 25% | 9.00 [8.00, 10.00] |")
    assert "Leader over all scenarios: **b**" in md
    assert "took 10 min" in md and "reused 1 finished" in md
    assert "#### default" in md and "\n# Leaderboard" not in md and "<details>" in md
