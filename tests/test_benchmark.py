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


def test_a_run_is_reused_only_when_trained_on_the_same_data(tmp_path):
    from experiments.benchmark import dataset_settings, finished_run, offline_entries

    spec = PRESETS["full"]
    expert, heuristic = (dataset_settings(spec, name, 0) for name in ("data", "data_heuristic"))
    assert expert["behaviors"] == {"pid_budget": 0.5, "expert": 0.5} and expert["yardstick"]
    assert heuristic["behaviors"]["pid_cpa"] == 0.3 and heuristic["noise"] == 0.3
    assert offline_entries(spec)["dt_heuristic_data"][3] == "data_heuristic"
    assert offline_entries(spec)["dt"][3] == "data"
    want = {"agent": "dt", "steps": 2000, "seed": 0, "config": {}, "data": expert}
    done = tmp_path / "benchmark_done.json"
    assert finished_run(done, want) is None  # nothing there yet
    done.write_text(json.dumps({**want, "seconds": 3.0}))
    assert finished_run(done, want)["seconds"] == 3.0
    assert finished_run(done, {**want, "data": heuristic}) is None
    assert finished_run(done, {**want, "steps": 4000}) is None
    # A record from before datasets were recorded is not reused for an offline run...
    done.write_text(json.dumps({k: v for k, v in want.items() if k != "data"}))
    assert finished_run(done, want) is None
    # ...but an SB3 run, which reads no dataset, is.
    assert finished_run(done, {**want, "data": None}) is not None
    with pytest.raises(ValueError, match="dataset 'nope'"):
        dataset_settings(spec, "nope", 0)


@pytest.mark.slow
def test_smoke_benchmark_trains_and_ranks_every_agent(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- leaderboard:start -->\n<!-- leaderboard:end -->\n")
    out = tmp_path / "smoke"
    board = run_benchmark(preset="smoke", seed=0, out=out, progress=False, readme=readme)
    want = (set(HEURISTICS) | set(PRESETS["smoke"]["sb3"]) | set(PRESETS["smoke"]["offline"])
            | set(PRESETS["smoke"]["variants"]))
    assert set(board["agent"]) == want
    episodes = pd.read_csv(out / "episodes.csv")
    # Held-out days: disjoint from the data's days (seed + i, i < collect_episodes).
    assert episodes["seed"].min() >= 1_000_000
    assert (episodes["expected_score"] <= episodes["own_oracle_score"] * 1.02 + 1e-9).all()
    info = json.loads((out / "benchmark.json").read_text())
    assert info["preset"] == "smoke" and info["total_seconds"] > 0
    assert "| pid_cpa |" in readme.read_text()
    # GAS searches over the same seed's dt checkpoint: its search gain is gas minus dt.
    gas_config = json.loads((out / "runs" / "gas" / "seed0" / "config.json").read_text())
    assert gas_config["config"]["dt_path"] == str(out / "runs" / "dt" / "seed0")
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired["reference"]) == {"online_lp"}
    training = pd.read_csv(out / "training.csv").set_index("agent")
    assert training.loc["ppo", "steps"] == PRESETS["smoke"]["sb3"]["ppo"]
    assert (training["mean_train_seconds"] > 0).all()
    for name in ("summary.csv", "performance_profile.png"):
        assert (out / name).stat().st_size > 0
    # Re-running the same command reuses the data and the finished runs.
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("weights.pt")}
    run_benchmark(preset="smoke", seed=0, out=out, progress=False)
    after = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("weights.pt")}
    assert before == after and before


def test_readme_markdown_ranks_by_mean_percent_of_the_yardstick():
    from experiments.benchmark import readme_markdown, training_table
    from experiments.evaluate import leaderboard
    from experiments.stats import paired_table, summary_table

    rows = []
    # a: 90 on default and 50 on roi -> mean 70; b: 80 and 70 -> mean 75, so b leads though
    # a wins "default". Rows not in alphabetical order, so columns must be joined by agent.
    for agent, pct_default, pct_roi in [("b", 80.0, 70.0), ("a", 90.0, 50.0)]:
        for scenario, pct in [("default", pct_default), ("roi", pct_roi)]:
            for episode in range(4):
                rows.append({"agent": agent, "run": agent, "scenario": scenario,
                             "episode": episode, "expected_score": pct / 10, "score": pct / 10,
                             "oracle_score": 10.0, "own_oracle_score": 10.0,
                             "best_fixed_alpha_score": 9.0,
                             "pct_of_oracle": pct, "violated": agent == "a" and episode == 0,
                             "violated_realised": False, "budget_used": 1.0})
    frame = pd.DataFrame(rows)
    board = leaderboard(frame)
    spec = {"env_id": "bidenv/AutoBiddingLite-v0", "episodes": 4, "offline_seeds": 3,
            "sb3_seeds": 3, "sb3": {}, "offline": {}, "collect_episodes": 10}
    md = readme_markdown(board, summary_table(frame), paired_table(frame, "b"),
                         training_table(spec, {}), frame, spec,
                         {"total_seconds": 600.0, "reused_runs": ["x/seed0"]}, workers=2,
                         reference="b")
    lines = md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| agent"))
    # Constant days: every interval is a point; a - b = (10 - 20) / 2 = -5 on every resample.
    assert lines[header + 2].startswith("| b | 1 | 75.0 [75.0, 75.0] |")
    assert "(reference)" in lines[header + 2]
    assert lines[header + 3].startswith("| a | 1 | 70.0 [70.0, 70.0] |")
    assert "-5.0 [-5.0, -5.0] | 0.50 | 25% |" in lines[header + 3]
    assert "Leader over all scenarios: **b**, ahead of a by +5.0 [+5.0, +5.0]" in md
    assert "interval excludes 0" in md
    assert "took 10 min" in md and "reused 1 finished" in md
    assert "exceeded on 0.0% of agent-days" in md
    scen = next(i for i, line in enumerate(lines) if line.startswith("| agent | default"))
    assert lines[scen + 2] == "| b | 80.0 | 70.0 |" and lines[scen + 3] == "| a | 90.0 | 50.0 |"
    assert "#### default" in md and "\n# Leaderboard" not in md and "<details>" in md


def test_readme_markdown_reports_ablations_and_the_generative_verdict():
    from experiments.benchmark import is_generative, readme_markdown, training_table
    from experiments.evaluate import leaderboard
    from experiments.stats import paired_table, summary_table

    assert is_generative("dt_yardstick") and is_generative("gas_wide") and is_generative("gas")
    assert not is_generative("pid_budget") and not is_generative("dtx")
    rows = []
    # pid_budget 80 everywhere; dt 70 on default, 90 on roi (mean 80: not separable overall,
    # -10 on default); dt_heuristic_data 5 below dt on every day.
    pct = {"pid_budget": (80.0, 80.0), "dt": (70.0, 90.0), "dt_heuristic_data": (65.0, 85.0)}
    for agent, (p_default, p_roi) in pct.items():
        for scenario, value in [("default", p_default), ("roi", p_roi)]:
            for episode in range(4):
                v = value + (episode % 2) * 2.0  # days differ, differences do not
                rows.append({"agent": agent, "run": agent, "scenario": scenario,
                             "episode": episode, "expected_score": v / 10, "score": v / 10,
                             "oracle_score": 10.0, "own_oracle_score": 10.0,
                             "best_fixed_alpha_score": 9.0, "pct_of_oracle": v,
                             "violated": False, "violated_realised": False,
                             "budget_used": 1.0})
    frame = pd.DataFrame(rows)
    spec = {"env_id": "bidenv/AutoBiddingLite-v0", "episodes": 4, "offline_seeds": 1,
            "sb3_seeds": 1, "sb3": {}, "offline": {}, "collect_episodes": 10,
            "ablations": (("expert data", "dt", "dt_heuristic_data"),
                          ("absent", "gas_wide", "gas"))}
    md = readme_markdown(leaderboard(frame), summary_table(frame),
                         paired_table(frame, "pid_budget"), training_table(spec, {}), frame,
                         spec, {"total_seconds": 60.0}, workers=1, reference="pid_budget")
    assert "| expert data | dt - dt_heuristic_data | +5.0 [+5.0, +5.0] | 1.00 |" in md
    assert "absent" not in md  # agents not in the run are left out
    assert ("Best generative agent over all scenarios: **dt**, against the best other agent "
            "pid_budget: +0.0 [+0.0, +0.0] points (paired), so it is not separable") in md
    assert "On `default`: dt 71.0% against pid_budget 81.0%, -10.0 [-10.0, -10.0] points." in md
