"""``bidenv steer``: does a generative bidder's target return steer it?

A decision transformer is conditioned on the return still to earn; the user's knob on a trained
checkpoint is ``config.target_scale`` (the inference target ``R_0`` is ``target_scale`` times
the checkpoint's base target). This command evaluates one checkpoint at several scales on the
same held-out days (common random numbers, one yardstick per day, as ``bidenv evaluate``) and
reports, per scale, the target ``R_0`` in the tokens' units, the mean share of the budget spent
and the mean percent of the yardstick with 95% intervals, next to the support of the data (the
training days' first tokens, :meth:`agents.dt.DTAgent.training_targets`). A bidder whose
conditioning steers spends more and, within the data's support, scores higher as the target
rises; one that ignores its target draws flat lines.

Writes ``steering.csv``, ``episodes.csv`` (every day at every scale, as ``bidenv evaluate``)
and ``steering.png`` (spend share and percent of the yardstick against
the target, the data's 5-95% range shaded).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

#: Target scales evaluated by default (x the checkpoint's base target).
DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)


def data_support(spec: str) -> dict:
    """Quantiles (5, 50, 95%) of the training days' first return-to-go token and the
    checkpoint's base target, for a ``name:checkpoint`` spec of the decision-transformer
    family."""
    import agents

    agent = agents.from_spec(spec)
    if not hasattr(agent, "training_targets"):
        raise ValueError(f"agent: {spec!r} is not conditioned on a target return (use dt, "
                         "gave, gave_stable or gas with a checkpoint)")
    r0 = agent.training_targets()
    q05, q50, q95 = (float(np.quantile(r0, q)) for q in (0.05, 0.5, 0.95))
    return {"base_target": float(agent.model.target_base), "q05": q05, "q50": q50, "q95": q95,
            "days": int(len(r0))}


def steering(spec: str, *, scales=DEFAULT_SCALES, episodes: int = 10, seed: int = 2_000_000,
             scenarios="default", env_id: str = "bidenv/AutoBiddingLite-v0", workers: int = 1,
             progress: bool = True) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Evaluate ``spec`` at each target scale on the same days.

    Returns:
        ``(table, support, episodes)``: one row per scale (``scale``, ``target``, ``days``,
        ``spend_share`` and ``pct_of_yardstick`` with ``*_low``/``*_high`` 95% intervals,
        ``expected_score``), the data's support (:func:`data_support`) and the episode rows.
    """
    from experiments.evaluate import evaluate
    from experiments.stats import mean_intervals

    scales = [float(s) for s in scales]
    if not scales or any(not (np.isfinite(s) and s > 0) for s in scales):
        raise ValueError(f"scales must be finite numbers > 0, got {scales}")
    support = data_support(spec)
    entries = [(f"x{s:g}", spec, {"target_scale": s}) for s in scales]
    frame, _ = evaluate(entries, episodes=episodes, seed=seed, scenarios=scenarios,
                        env_id=env_id, workers=workers, progress=progress)
    rows = []
    for s, (label, _, _) in zip(scales, entries):
        days = frame[frame["agent"] == label]
        row = {"scale": s, "target": s * support["base_target"], "days": len(days),
               "expected_score": float(days["expected_score"].mean())}
        row.update(mean_intervals(days, {"budget_used": "spend_share",
                                         "pct_of_oracle": "pct_of_yardstick"}))
        rows.append(row)
    return pd.DataFrame(rows), support, frame


def plot_steering(table: pd.DataFrame, support: dict, path, title: str = "") -> Path:
    """Spend share and percent of the yardstick against the target, data support shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.io import atomic_save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, col, label in ((axes[0], "spend_share", "share of budget spent"),
                           (axes[1], "pct_of_yardstick", "% of the day's yardstick")):
        ax.axvspan(support["q05"], support["q95"], color="0.9",
                   label="training days' R_0 (5-95%)")
        ax.axvline(support["q50"], color="0.6", lw=1, ls=":", label="median of the data")
        ax.errorbar(table["target"], table[col],
                    yerr=[table[col] - table[f"{col}_low"], table[f"{col}_high"] - table[col]],
                    marker="o", capsize=3, color="C0")
        ax.set(xlabel="target return R_0 (tokens' units)", ylabel=label)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(title or "Target-return conditioning", fontsize=10)
    return atomic_save_figure(fig, path)


def run_steer(spec: str, *, scales, episodes: int, seed: int, scenarios: str, env_id: str,
              workers: int, out) -> pd.DataFrame:
    """The ``bidenv steer`` command: evaluate, write ``steering.csv``/``.png``, print."""
    from experiments.io import atomic_write_csv, check_output_dir

    start = time.perf_counter()
    out = check_output_dir(out)
    table, support, frame = steering(spec, scales=scales, episodes=episodes, seed=seed,
                                     scenarios=scenarios, env_id=env_id, workers=workers)
    atomic_write_csv(out / "steering.csv", table)
    atomic_write_csv(out / "episodes.csv", frame)
    plot_steering(table, support, out / "steering.png", title=f"{spec} on {env_id}")
    rho = float(pd.Series(table["scale"]).corr(table["spend_share"], method="spearman"))
    print(f"data support of R_0 (training days): 5% {support['q05']:.3g}, median "
          f"{support['q50']:.3g}, 95% {support['q95']:.3g}; base target "
          f"{support['base_target']:.3g}")
    print(table[["scale", "target", "spend_share", "pct_of_yardstick", "pct_of_yardstick_low",
                 "pct_of_yardstick_high"]].round(3).to_string(index=False))
    print(f"Spearman(scale, spend share) = {rho:+.2f}; wrote {out}/steering.csv, "
          f"episodes.csv, steering.png in {time.perf_counter() - start:.1f} s")
    return table
