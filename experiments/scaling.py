"""``bidenv scale``: would more compute help? Percent of the yardstick against training steps
and model width.

For each agent and width, one training run goes to the largest step count; a copy of the
model is saved at every requested step count on the way (the learning rate is constant after
warm-up and a run's batches do not depend on its length, so the copy at step k *is* the model a
k-step run ends with; ``tests/test_scaling.py`` checks this against a separate k-step run).
Every copy is then evaluated on the same held-out days (common random numbers, one yardstick
per day, as ``bidenv evaluate``). The width is the config field ``--width-field`` (default
``embed_dim``, the decision-transformer family's token width); the number of trainable
parameters is reported beside it.

Writes ``scaling.csv`` (agent, width, parameters, steps, training seconds, mean percent of
the yardstick with a 95% interval, spend share), ``episodes.csv`` and ``scaling.png``
(percent of the yardstick against steps, one line per width, with interval bars).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.validation import check_int

DEFAULT_STEPS = (250, 500, 1000, 2000)
DEFAULT_WIDTHS = (32, 64, 128)


def _positive_sorted(name: str, values) -> list[int]:
    values = [check_int(name, v, 1) for v in values]
    if not values:
        raise ValueError(f"{name} must list at least one integer >= 1")
    return sorted(set(values))


def train_checkpoints(agent_name: str, data, *, steps, width: int, width_field: str,
                      seed: int, out, config: dict | None = None) -> tuple[dict, float, int]:
    """Train one run to ``max(steps)``, saving the model at each step count under
    ``out/step<k>``. Returns ({k: checkpoint dir}, training seconds, trainable parameters)."""
    import agents
    from agents.common import fit

    out = Path(out)
    steps = _positive_sorted("steps", steps)
    agent = agents.make(agent_name, **{**(config or {}), width_field: width})
    saved: dict[int, str] = {}

    def save_copy(a) -> dict:
        if a.step in steps:
            path = out / f"step{a.step}"
            a.save(path)
            saved[a.step] = str(path)
        return {}

    # every step count is a multiple of their gcd, so the callback sees each of them
    every = int(np.gcd.reduce(steps))
    start = time.perf_counter()
    fit(agent, data, steps=steps[-1], seed=seed, out=None, eval_every=every,
        evaluate=save_copy, progress=False, log=False)
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in agent.model.parameters() if p.requires_grad) \
        if hasattr(agent, "model") else 0
    return saved, seconds, int(params)


def scaling(agent_names, data, *, steps=DEFAULT_STEPS, widths=DEFAULT_WIDTHS,
            width_field: str = "embed_dim", seed: int = 0, episodes: int = 10,
            eval_seed: int = 3_000_000, scenarios="default",
            env_id: str = "bidenv/AutoBiddingLite-v0", workers: int = 1, out,
            config: dict | None = None, progress: bool = True
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and evaluate the grid; returns (table, episodes frame)."""
    from experiments.evaluate import evaluate
    from experiments.pool import map_ordered
    from experiments.stats import mean_intervals

    steps = _positive_sorted("steps", steps)
    widths = _positive_sorted("widths", widths)
    agent_names = list(agent_names)
    if not agent_names:
        raise ValueError("agents must name at least one agent")
    out = Path(out)
    tasks = [(name, str(data), steps, w, width_field, seed, str(out / "runs" / name / f"w{w}"),
              dict(config or {})) for name in agent_names for w in widths]
    trained = map_ordered(_train_task, tasks, workers)
    entries, meta = [], {}
    for (name, _, _, w, *_), (saved, seconds, params) in zip(tasks, trained):
        for k, path in sorted(saved.items()):
            label = f"{name}/w{w}/step{k}"
            entries.append((label, f"{name}:{path}", {}))
            meta[label] = {"agent": name, "width": w, "parameters": params, "steps": k,
                           "train_seconds_to_max_steps": seconds}
    frame, _ = evaluate(entries, episodes=episodes, seed=eval_seed, scenarios=scenarios,
                        env_id=env_id, workers=workers, progress=progress)
    rows = []
    for label, info in meta.items():
        days = frame[frame["agent"] == label]
        rows.append(dict(info, days=len(days), **mean_intervals(
            days, {"pct_of_oracle": "pct_of_yardstick", "budget_used": "spend_share"})))
    return pd.DataFrame(rows), frame


def _train_task(task):
    name, data, steps, width, width_field, seed, out, config = task
    return train_checkpoints(name, data, steps=steps, width=width, width_field=width_field,
                             seed=seed, out=out, config=config)


def plot_scaling(table: pd.DataFrame, path, title: str = "", eval_seed: int | None = None
                 ) -> Path:
    """Percent of the yardstick against training steps, one line per (agent, width)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.io import atomic_save_figure

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, ((agent, width), rows) in enumerate(table.groupby(["agent", "width"], sort=True)):
        rows = rows.sort_values("steps")
        y = rows["pct_of_yardstick"]
        ax.errorbar(rows["steps"] * (1 + 0.02 * i), y,
                    yerr=[y - rows["pct_of_yardstick_low"], rows["pct_of_yardstick_high"] - y],
                    marker="o", capsize=3,
                    label=f"{agent}, width {width} ({rows['parameters'].iloc[0] / 1e3:.0f}k "
                          "params)")
    ax.set_xscale("log")
    ax.set(xlabel="training steps (log scale)", ylabel="% of the day's yardstick (95% CI)")
    days = int(table["days"].max()) if len(table) else 0
    seeds = f" (seeds from {eval_seed:,})" if eval_seed is not None else ""
    ax.set_title(title or f"Scaling: {days} evaluation days per point{seeds}", fontsize=10)
    ax.legend(fontsize=8)
    return atomic_save_figure(fig, path)


def run_scale(agent_names, data, *, steps, widths, width_field: str, seed: int, episodes: int,
              eval_seed: int, scenarios: str, env_id: str, workers: int, out,
              config: dict | None = None) -> pd.DataFrame:
    """The ``bidenv scale`` command: train, evaluate, write ``scaling.csv``/``.png``, print."""
    from experiments.io import atomic_write_csv, check_output_dir

    start = time.perf_counter()
    out = check_output_dir(out)
    if not Path(data).is_file():
        raise FileNotFoundError(f"--data: no dataset at {str(data)!r}")
    table, frame = scaling(agent_names, data, steps=steps, widths=widths,
                           width_field=width_field, seed=seed, episodes=episodes,
                           eval_seed=eval_seed, scenarios=scenarios, env_id=env_id,
                           workers=workers, out=out, config=config)
    atomic_write_csv(out / "scaling.csv", table)
    atomic_write_csv(out / "episodes.csv", frame)
    plot_scaling(table, out / "scaling.png", eval_seed=eval_seed)
    print(table[["agent", "width", "parameters", "steps", "pct_of_yardstick",
                 "pct_of_yardstick_low", "pct_of_yardstick_high", "spend_share"]]
          .round(3).to_string(index=False))
    print(f"wrote {out}/scaling.csv, episodes.csv, scaling.png in "
          f"{time.perf_counter() - start:.0f} s")
    return table
