"""``bidenv quickstart``: the main job a newcomer runs first.

On embedded defaults, in a few minutes on two cores:

1. **Leaderboard.** The heuristic bidders (:data:`HEURISTICS`, plus the generative bidder when
   a checkpoint ships with the package, see :func:`quickstart_agents`) bid for one campaign
   (:data:`CAMPAIGN`) on the same held-out days (common random numbers, the evaluation harness of
   :mod:`experiments.evaluate`), each day scored against its yardstick (the hindsight oracle
   of the day without the agent). Printed and written as ``leaderboard.csv``,
   ``leaderboard.md`` and ``episodes.csv``.
2. **Budget sweep.** The same campaign (:data:`SWEEP`) at six budgets with two bidders
   (:func:`experiments.analysis.simulate_budget`): ``budget_simulation.csv``,
   ``recommendation.csv``, the ROI-curve figures (``roi_curve.png``, ``marginal_cpa.png``,
   ``cpa_vs_budget.png``, ``budget_used.png``, ``pacing.png``) and all four curves in one
   panel, ``roi_curves.png``. The recommendation is printed.

Everything goes to ``--out`` (default ``bidenv-quickstart/`` in the working directory).
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pandas as pd

import agents
import bidenv  # noqa: F401  (registers the environments)
from bidenv.validation import check_int

#: The bidders on the leaderboard (registered names, see ``agents.available()``).
HEURISTICS = tuple(agents.available("heuristic"))
#: The small decision-transformer checkpoint shipped with the agents (trained on logged days of
#: ``bidenv/AutoBidding-v0``; how it was made is in ``SOURCE.md`` next to it). The quickstart
#: adds ``dt:<path>`` to the leaderboard when the folder exists and torch is installed.
DT_CHECKPOINT = Path(agents.__file__).resolve().parent / "checkpoints" / "dt"
#: The campaign of the leaderboard and of the budget sweep (budgets are for the reference day
#: of 500k opportunities and scaled to the environment's volume).
CAMPAIGN = {"budget": 2000.0, "constraint": "cpa", "target_cpa": 100.0, "category": 3}
#: The budget sweep: the campaign at six budgets, a CPA-controlling and a budget-pacing bidder.
SWEEP = {"budgets": [500, 1000, 1500, 2000, 3000, 4000], "constraint": "cpa",
         "target": CAMPAIGN["target_cpa"], "category": CAMPAIGN["category"], "traffic": "mixed",
         "strategies": ["pid_cpa", "pid_budget"]}
#: The columns of the leaderboard printed to the terminal.
_BOARD_COLUMNS = ["agent", "episodes", "mean_score", "ci_low", "ci_high", "mean_pct_of_oracle",
                  "violation_rate", "mean_budget_used"]


def torch_available() -> bool:
    """Whether torch can be imported (the base install does not need it)."""
    return importlib.util.find_spec("torch") is not None


def quickstart_agents() -> list[str]:
    """Agent specs of the leaderboard: the heuristics, and ``dt:<checkpoint>`` if shipped and
    torch is installed (``pip install bidenv[rl]``)."""
    specs = list(HEURISTICS)
    if DT_CHECKPOINT.is_dir() and torch_available():
        specs.append(f"dt:{DT_CHECKPOINT}")
    return specs


def default_workers() -> int:
    """Processes used by default: up to two (a laptop's spare cores, a CI runner's two)."""
    return max(1, min(2, os.cpu_count() or 1))


def write_panel(frame, out: Path) -> Path:
    """The four budget curves in one figure (``roi_curves.png``, the README's figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bidenv import plots
    from experiments.io import atomic_save_figure
    from experiments.simulate_budget import finish_figure

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    plots.roi_curve(frame, ax=axes[0, 0])
    plots.marginal_curve(frame, ax=axes[0, 1])
    plots.cpa_vs_budget(frame, ax=axes[1, 0])
    plots.budget_used_curve(frame, ax=axes[1, 1])
    spec = frame.attrs.get("spec", {})
    fig.suptitle(f"Budget sweep: category {spec.get('category', '?')}, target CPA "
                 f"{spec.get('targets', ['?'])[0]:g}, {spec.get('days', '?')} days per budget, "
                 f"{spec.get('env_id', '')}", fontsize=10)
    plots.caption(fig, frame)
    finish_figure(fig, bottom=0.04)
    return atomic_save_figure(fig, out / "roi_curves.png", tight=False)


def run_quickstart(*, episodes: int = 3, budget_days: int = 5, seed: int = 1000,
                   env_id: str = "bidenv/AutoBidding-v0", out="bidenv-quickstart",
                   workers: int | None = None, progress: bool = True,
                   sweep: dict | None = None) -> pd.DataFrame:
    """The README's first command: leaderboard on held-out days, then a budget sweep.

    Args:
        episodes: Held-out days per bidder for the leaderboard (day i is ``seed + i``).
        budget_days: Simulated days per budget in the sweep (day i is ``seed + i``).
        seed: First day's seed.
        env_id: Environment id (``bidenv/AutoBiddingLite-v0`` for a fast smoke run).
        out: Output folder.
        workers: Processes (None: :func:`default_workers`); results do not depend on it.
        progress: Show progress bars.
        sweep: Fields replacing those of :data:`SWEEP` (e.g. fewer budgets for a smoke test).

    Returns:
        The leaderboard (one row per bidder).
    """
    from experiments.analysis import parse_spec, recommend, simulate_budget
    from experiments.evaluate import (
        Scenario,
        evaluate,
        leaderboard,
        leaderboard_markdown,
        plot_results,
    )
    from experiments.io import atomic_write_csv, atomic_write_json, atomic_write_text
    from experiments.simulate_budget import print_advice, print_table, write_figures

    start = time.perf_counter()
    workers = default_workers() if workers is None else workers
    workers = check_int("workers", workers, 1)
    out = Path(out)
    specs = quickstart_agents()
    print(f"bidenv quickstart: {env_id}; {len(specs)} bidders x {episodes} held-out day(s) "
          f"from seed {seed}, then a budget sweep ({workers} worker(s))")
    if DT_CHECKPOINT.is_dir() and not torch_available():
        print("  (the shipped decision-transformer bidder needs torch: pip install -e \".[rl]\")")
    scenario = Scenario("quickstart", CAMPAIGN)
    frame, traces = evaluate(specs, episodes=episodes, seed=seed, scenarios=[scenario],
                             env_id=env_id, workers=workers, progress=progress)
    board = leaderboard(frame)
    atomic_write_csv(out / "episodes.csv", frame)
    atomic_write_csv(out / "leaderboard.csv", board)
    atomic_write_text(out / "leaderboard.md", leaderboard_markdown(board))
    plot_results(frame, board, traces, out)
    shown = board.sort_values("mean_score", ascending=False)[_BOARD_COLUMNS]
    print("\nLeaderboard (expected score per day, 95% interval, % of the day's yardstick: "
          "the hindsight oracle of the day without the agent):")
    with pd.option_context("display.width", 140, "display.max_columns", 20):
        print(shown.to_string(index=False, float_format=lambda x: f"{x:,.4g}"))
    leaderboard_s = time.perf_counter() - start

    spec = parse_spec(SWEEP, **{"days": budget_days, "seed": seed, "env_id": env_id,
                                **(sweep or {})})
    sweep = simulate_budget(spec, workers=workers, progress=progress)
    advice = recommend(sweep)
    atomic_write_csv(out / "budget_simulation.csv", sweep)
    atomic_write_csv(out / "recommendation.csv", advice)
    atomic_write_json(out / "spec.json", spec.to_dict())
    write_figures(sweep, spec, out)
    panel = write_panel(sweep, out)
    from experiments.report import write_report

    write_report(out, title="bidenv quickstart: leaderboard and budget sweep",
                 advice=list(advice["message"]), seed=seed,
                 spec={"leaderboard": {"env_id": env_id, "episodes": episodes, "seed": seed},
                       "budget_sweep": spec.to_dict()},
                 tables={"leaderboard.csv": board, "recommendation.csv": advice,
                         "budget_simulation.csv": sweep},
                 figures=[panel, out / "scores.png", out / "pct_of_oracle.png",
                          out / "pacing.png"])
    cols = ["strategy", "budget", "spend", "conversions", "cpa", "budget_used", "marginal_cpa",
            "marginal_cpa_lo", "marginal_cpa_hi"]
    print(f"\nBudget sweep (category {spec.category}, target CPA {spec.targets[0]:g}, "
          f"{budget_days} day(s) per budget):")
    print_table(sweep, cols)
    print_advice(advice)
    total = time.perf_counter() - start
    print(f"\nwrote to {out.resolve()}/:\n"
          f"  leaderboard.csv, leaderboard.md, episodes.csv, scores.png, pct_of_oracle.png\n"
          f"  budget_simulation.csv, recommendation.csv, roi_curves.png, roi_curve.png, "
          f"marginal_cpa.png, cpa_vs_budget.png, budget_used.png, pacing.png\n"
          f"  report.html (all of it in one page, to send or print)\n"
          f"done in {total:.0f} s (leaderboard {leaderboard_s:.0f} s, budget sweep "
          f"{total - leaderboard_s:.0f} s)")
    return board
