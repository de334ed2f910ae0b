"""``bidenv benchmark``: collect data, train every agent, evaluate all of them on held-out days.

One command produces the project's leaderboard::

    bidenv benchmark --preset full --out results/full --readme README.md

Steps (each skipped when its output already exists with the same settings, so an interrupted
benchmark re-run with the same command picks up where it stopped):

1. collect the offline datasets (``DIR/<name>.parquet``; ``full``: ``data`` of budget
   pacing and the hindsight expert, ``data_heuristic`` of the heuristic mix for the
   ablation), each reused while its metadata matches the preset;
2. train the online RL agents (stable-baselines3) and every offline agent for each training
   seed (``DIR/runs/<agent>/seed<k>``), in parallel processes with ``--workers``;
3. evaluate the heuristics and every trained run with :func:`experiments.evaluate.evaluate`
   on days ``reset(seed=S + 1_000_000 + i)``, disjoint from the data's days (``S + i``) and
   from training-time evaluation, every agent divided by the day's common yardstick. GAS
   runs on the ``dt`` run of its training seed (``dt_path``; only its critics are trained,
   after that DT run finishes), so ``gas`` minus ``dt`` is the search's gain on the same
   checkpoints (a GAS that trains its own DT is also evaluated with one candidate, as
   ``gas_1candidate``). The runs of one agent (training seeds) keep their ``run`` label and
   the statistics resample them (seeds, then days);
4. write ``episodes.csv``, ``leaderboard.csv/.md``, ``summary.csv`` (mean, IQM and
   optimality gap with two-level bootstrap intervals), ``paired.csv`` (every agent minus the
   reference agent on the same days, 95% intervals, probability of improvement), the figures
   (``performance_profile.png`` among them), ``training.csv`` (each agent's training budget)
   and ``benchmark.json`` (settings and timings); with ``--readme``, splice the leaderboard
   into that file between ``<!-- leaderboard:start -->`` and ``<!-- leaderboard:end -->``.

Fair training: every learned agent learns from the same campaign distribution as the
scenarios (the env's drawn agent campaigns, ROI included: :func:`bidenv.campaign.
draw_agent_campaign`, which the offline data collection uses too) and from the noise-free
reward: the SB3 agents train with ``reward_mode="expected_score"``, the offline agents on the
expected score increments.

Presets: ``smoke`` is a pipeline check sized for CI (tiny data, a few hundred steps);
``full`` is the real benchmark: 3 training seeds per learned agent, 20 held-out days per
scenario, on the calibrated market (Lite is the full env's market at a tenth of the volume).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pandas as pd

import agents
from bidenv.validation import check_int

EVAL_SEED_OFFSET = 1_000_000
HEURISTICS = agents.available("heuristic")
#: The agent every other one is compared with on the same days (paired differences).
REFERENCE_AGENT = "online_lp"
#: Reward the SB3 agents train on (the offline agents' signal, free of outcome noise).
SB3_REWARD = "expected_score"
#: ``dt_path`` of a GAS entry: the ``dt`` run of the same training seed, so that GAS's search
#: is measured against its own decision transformer (``dt``, the same checkpoints).
SAME_SEED_DT = "<dt run of the same seed>"
OFFLINE_AGENTS = agents.available("offline")
#: The heuristic behaviour mix of ``bidenv collect`` (the smoke preset's data, and the full
#: preset's ablation without expert days).
HEURISTIC_DATA = {"behaviors": None, "noise": 0.3, "yardstick": False}
#: The full preset's training data: days of budget pacing and of the hindsight expert (the
#: day's best constant multiplier) in equal shares, exploration noise 0.2, every day's
#: yardstick stored. Of the mixes tried, this one gave the decision transformer its best
#: result (README, "Expert data and what it bought"); the heuristic mix stays as an ablation.
EXPERT_DATA = {"behaviors": {"pid_budget": 0.5, "expert": 0.5}, "noise": 0.2, "yardstick": True}
#: Paired comparisons the README reports: (what is tested, agent with it, agent without it);
#: each pair is trained on the same data and seeds or plays the same checkpoints.
ABLATIONS = (
    ("expert data (pid_budget + expert days vs the heuristic mix)", "dt", "dt_heuristic_data"),
    ("information parity (opportunity features)", "dt_opportunity", "dt"),
    ("outcome-quality tokens (yardstick vs campaign)", "dt_yardstick", "dt"),
    ("residual over pid_budget (yardstick tokens both)", "dt_residual", "dt_yardstick"),
    # gas searches over the dt run of its own seed (dt_path) in the presets; a GAS that trains
    # its own DT is compared with itself at one candidate (gas_1candidate) instead
    ("critic search, 5 candidates vs 1 (same checkpoints)", "gas", "dt"),
    ("critic search, 5 candidates vs 1 (own DT)", "gas", "gas_1candidate"),
    ("search width, 15 candidates in U(0.8, 1.25) vs 5 in U(0.9, 1.1)", "gas_wide", "gas"),
)
#: The generative family: sequence models conditioned on a target return.
GENERATIVE = ("dt", "gave", "gave_stable", "gas", "diffbid")
#: Offline entries of a preset: label -> (agent name, gradient steps, config overrides[,
#: dataset]); the dataset is a key of the preset's ``datasets`` (default ``"data"``).
#: ``bc_top30`` is behaviour cloning of the best 30% of days (filtered BC, a strong baseline).
#: ``variants``: label -> (trained label, overrides at evaluation): the same checkpoints
#: played with other settings (GAS's search width), so their difference is paired.
PRESETS = {
    "smoke": {
        "env_id": "bidenv/AutoBiddingLite-v0", "collect_episodes": 24,
        "datasets": {"data": HEURISTIC_DATA},
        "sb3": {"ppo": 1024}, "sb3_seeds": 1,
        "offline": {name: (name, 30, {"batch_size": 32, **({"dt_path": SAME_SEED_DT}
                                                             if name == "gas" else {})})
                    for name in OFFLINE_AGENTS},
        "variants": {"gas_wide": ("gas", {"n_candidates": 3, "scale_low": 0.8,
                                          "scale_high": 1.25})},
        "ablations": ABLATIONS,
        "offline_seeds": 1, "episodes": 2, "scenarios": "smoke",
    },
    "full": {
        "env_id": "bidenv/AutoBiddingLite-v0", "collect_episodes": 600,
        "datasets": {"data": EXPERT_DATA, "data_heuristic": HEURISTIC_DATA},
        "sb3": {"ppo": 100_000, "sac": 30_000, "td3": 30_000}, "sb3_seeds": 3,
        # target scales (0.75 for campaign tokens, 1.1 for yardstick tokens): chosen on tuning
        # days (seeds 3,000,000+), never on the benchmark's held-out days.
        "offline": {"bc": ("bc", 2000, {}), "bc_top30": ("bc", 2000, {"top_fraction": 0.3}),
                    "iql": ("iql", 3000, {}), "cql": ("cql", 1500, {}),
                    "dt": ("dt", 2000, {"target_scale": 0.75}),
                    "dt_heuristic_data": ("dt", 2000, {"target_scale": 0.75},
                                          "data_heuristic"),
                    "dt_opportunity": ("dt", 2000, {"target_scale": 0.75,
                                                    "opportunity_features": True}),
                    # outcome-quality tokens, the conditioning that steers the intended way
                    "dt_yardstick": ("dt", 2000, {"return_baseline": "yardstick",
                                                  "target_quantile": 0.9,
                                                  "target_scale": 1.1}),
                    # residual policy learning over budget pacing (yardstick tokens)
                    "dt_residual": ("dt", 2000, {"residual_base": "pid_budget",
                                                 "return_baseline": "yardstick",
                                                 "target_quantile": 0.9}),
                    "gave": ("gave", 2000, {}),
                    "gave_stable": ("gave_stable", 2000, {}),
                    "diffbid": ("diffbid", 2000, {}),
                    "gas": ("gas", 2000, {"target_scale": 0.75, "dt_path": SAME_SEED_DT})},
        "variants": {"gas_wide": ("gas", {"n_candidates": 15, "scale_low": 0.8,
                                          "scale_high": 1.25})},
        "ablations": ABLATIONS,
        "offline_seeds": 3, "episodes": 20, "scenarios": "default",
    },
}


def offline_entries(spec: dict) -> dict:
    """``{label: (agent, steps, config, dataset)}`` of a preset (dataset filled in)."""
    return {label: (entry + ("data",))[:4] for label, entry in spec["offline"].items()}


def dataset_settings(spec: dict, name: str, seed: int) -> dict:
    """What determines the preset's dataset ``name``: compared with a file's metadata before
    it is reused, and with a run's record before the run is reused."""
    from experiments.collect import DEFAULT_BEHAVIORS

    if name not in spec["datasets"]:
        raise ValueError(f"dataset {name!r} is not in the preset (it has "
                         f"{sorted(spec['datasets'])})")
    d = spec["datasets"][name]
    return {"episodes": spec["collect_episodes"], "seed": seed, "env_id": spec["env_id"],
            "behaviors": dict(d["behaviors"] or DEFAULT_BEHAVIORS), "noise": d["noise"],
            "yardstick": bool(d["yardstick"])}


def same_settings(recorded: dict, want: dict) -> bool:
    """``recorded`` (read back from JSON) holds ``want``'s keys with ``want``'s values, compared
    as JSON stores them (tuples as lists, keys as strings)."""
    return {k: recorded.get(k) for k in want} == json.loads(json.dumps(want))


def finished_run(done_file, want: dict) -> dict | None:
    """The record of a finished training run if it was trained as ``want`` says (agent,
    steps, seed, config and the settings of its data), else None (train it again)."""
    done_file = Path(done_file)
    if not done_file.is_file():
        return None
    done = json.loads(done_file.read_text())
    return done if same_settings(done, want) else None


def _train_job(job) -> tuple[str, float | None, bool]:
    """Worker: one training run; returns (run dir, training seconds, reused).

    A run whose ``benchmark_done.json`` matches the job is reused; its seconds are the ones
    recorded when it was trained (None for runs finished before seconds were recorded); threads
    are pinned by the command (``--threads``) and the pool's workers."""
    kind, name, steps, seed, run_dir, data, env_id, config, data_settings = job
    run_dir = Path(run_dir)
    done_file = run_dir / "benchmark_done.json"
    want = {"agent": name, "steps": steps, "seed": seed, "config": config,
            "data": data_settings}
    done = finished_run(done_file, want)
    if done is not None:
        return str(run_dir), done.get("seconds"), True
    start = time.perf_counter()
    if kind == "sb3":
        from agents.sb3 import TrainConfig, train

        train(TrainConfig(algo=name, env_id=env_id, timesteps=steps, seed=seed, **config),
              run_dir, progress=False)
    else:
        import agents
        from agents.common import fit

        fit(agents.make(name, **config), data, steps=steps, seed=seed, out=run_dir,
            checkpoint_every=max(steps // 4, 1), progress=False)
    from experiments.io import atomic_write_json

    seconds = time.perf_counter() - start
    atomic_write_json(done_file, {**want, "seconds": seconds})
    return str(run_dir), seconds, False


def _dependencies(jobs) -> dict:
    """{job index: index of the job it needs first} (a GAS run on the DT run of its seed)."""
    by_dir = {job[4]: i for i, job in enumerate(jobs)}
    needs = {}
    for i, job in enumerate(jobs):
        path = job[7].get("dt_path")
        if path:
            if path not in by_dir:
                raise ValueError(f"offline run {job[4]} needs the dt run {path}, which is not "
                                 "in the preset")
            needs[i] = by_dir[path]
    return needs


def _run_jobs(jobs, workers: int, on_done) -> list:
    """Run training jobs (in ``workers`` processes), each after the job it needs; returns
    their results in the order of ``jobs``."""
    needs = _dependencies(jobs)
    results = [None] * len(jobs)
    started: set[int] = set()
    done: set[int] = set()

    def ready():  # not started yet, and what it needs is done
        return [i for i in range(len(jobs))
                if i not in started and (i not in needs or needs[i] in done)]

    from experiments.pool import in_process

    if in_process(workers, len(jobs)):  # locally one worker; on Ray every job is a Ray task
        while len(done) < len(jobs):
            i = ready()[0]
            started.add(i)
            results[i] = _train_job(jobs[i])
            done.add(i)
            on_done()
        return results
    from concurrent.futures import FIRST_COMPLETED, wait

    from experiments.pool import worker_pool

    with worker_pool(workers, len(jobs)) as pool:
        running = {}
        while len(done) < len(jobs):
            for i in ready():
                started.add(i)
                running[pool.submit(_train_job, jobs[i])] = i
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                i = running.pop(future)
                results[i] = future.result()
                done.add(i)
                on_done()
    return results


def splice_readme(readme, markdown: str, command: str) -> None:
    """Replace the README's leaderboard block (between the two markers) by ``markdown``."""
    from experiments.io import atomic_write_text

    readme = Path(readme)
    text = readme.read_text()
    start, end = "<!-- leaderboard:start -->", "<!-- leaderboard:end -->"
    if start not in text or end not in text:
        raise ValueError(f"readme: {readme} has no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    block = f"{start}\n*Generated by `{command}`.*\n\n{markdown.strip()}\n{end}"
    atomic_write_text(readme, head + block + tail)


def training_table(spec: dict, train_seconds: dict) -> pd.DataFrame:
    """Each learned agent's training budget: kind, steps, data days, seeds, wall time.

    ``train_seconds`` maps ``label/seedK`` to the seconds of that run (None when unknown,
    e.g. a reused run trained before seconds were recorded)."""
    rows = []
    for algo, steps in spec["sb3"].items():
        rows.append({"agent": algo, "kind": "online (SB3)", "steps": steps,
                     "step_unit": "env steps", "data_days": steps / 48,
                     "seeds": spec["sb3_seeds"]})
    for label, (_, steps, _, dataset) in offline_entries(spec).items():
        rows.append({"agent": label, "kind": "offline", "steps": steps,
                     "step_unit": "gradient steps", "data_days": spec["collect_episodes"],
                     "seeds": spec["offline_seeds"], "dataset": dataset})
    for row in rows:
        secs = [v for k, v in train_seconds.items()
                if k.rsplit("/", 1)[0] == row["agent"] and v is not None]
        row["mean_train_seconds"] = sum(secs) / len(secs) if secs else math.nan
        row["runs_timed"] = len(secs)
    frame = pd.DataFrame(rows)
    return frame[frame["agent"].isin({k.rsplit("/", 1)[0] for k in train_seconds})
                 ].reset_index(drop=True) if train_seconds else frame.iloc[:0]


def _interval(point: float, lo: float, hi: float, fmt: str = ".1f") -> str:
    if not math.isfinite(point):
        return ""
    return f"{point:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def readme_markdown(board: pd.DataFrame, summary: pd.DataFrame, paired: pd.DataFrame | None,
                    training: pd.DataFrame, frame: pd.DataFrame, spec: dict, timings: dict,
                    workers: int, reference: str | None) -> str:
    """The README leaderboard: agents ranked by their mean percent of the day's yardstick
    over all scenarios with two-level bootstrap intervals, IQM, optimality gap, the paired
    difference against the reference agent with its interval and probability of improvement,
    violations and training budget; a per-scenario table; what the intervals allow one to
    conclude; and the per-scenario detail folded away."""
    from experiments.evaluate import leaderboard_markdown, markdown_table
    from experiments.stats import agent_matrix, day_columns, paired_difference

    summary = summary.set_index("agent")
    order = list(summary["mean"].sort_values(ascending=False, kind="stable").index)
    viol = board.groupby("agent")["violation_rate"].mean()
    table = pd.DataFrame(index=pd.Index(order, name="agent"))
    table["runs"] = summary["runs"].astype(int)
    table["mean % [95% CI]"] = [_interval(summary.at[a, "mean"], summary.at[a, "mean_low"],
                                          summary.at[a, "mean_high"]) for a in order]
    table["IQM %"] = [_interval(summary.at[a, "iqm"], summary.at[a, "iqm_low"],
                                summary.at[a, "iqm_high"]) for a in order]
    table["optimality gap"] = [f"{summary.at[a, 'optimality_gap']:.1f}" for a in order]
    if paired is not None and len(paired):
        allrows = paired[paired["scenario"] == "all"].set_index("agent")
        diff, poi = [], []
        for a in order:
            if a == reference:
                diff.append("(reference)")
                poi.append("")
                continue
            r = allrows.loc[a]
            mark = "" if r["significant"] else " ~"
            diff.append(_interval(r["mean_diff"], r["ci_low"], r["ci_high"], "+.1f") + mark)
            poi.append(f"{r['prob_improvement']:.2f}")
        table[f"vs {reference} (paired)"] = diff
        table[f"P(> {reference})"] = poi
    table["violations"] = [f"{viol.get(a, math.nan):.0%}" for a in order]
    budget = training.set_index("agent") if len(training) else pd.DataFrame()

    def train_cell(a):
        base = a.removesuffix("_1candidate")
        if base not in budget.index:
            return "none (heuristic)" if a in HEURISTICS else ""
        r = budget.loc[base]
        k = f"{r['steps'] / 1000:g}k {r['step_unit']}"
        data = (f" on {r['data_days']:.0f} logged days" if r["kind"] == "offline"
                else f" ({r['data_days']:.0f} simulated days)")
        if r["kind"] == "offline" and r.get("dataset", "data") not in ("data", None):
            data += f" (`{r['dataset']}`)"
        mins = (f", {r['mean_train_seconds'] / 60:.1f} min/seed"
                if math.isfinite(r["mean_train_seconds"]) else "")
        return k + data + mins + (" (same checkpoints, 1 candidate)" if base != a else "")

    table["training"] = [train_cell(a) for a in order]
    table = table.reset_index()

    pct = board.pivot(index="agent", columns="scenario", values="mean_pct_of_oracle")
    pct = pct[list(dict.fromkeys(board["scenario"]))].loc[order]
    per_scenario = pct.map(lambda v: f"{v:.1f}").reset_index()

    notes = []
    # Are the top two separable? Paired difference on the same days, seeds then days.
    strata = day_columns(frame)["scenario"].to_numpy()
    if len(order) > 1:
        a, b = order[0], order[1]
        d = paired_difference(agent_matrix(frame, a), agent_matrix(frame, b), strata=strata)
        inside = d["ci_low"] <= 0 <= d["ci_high"]
        notes.append(
            f"Leader over all scenarios: **{a}**, ahead of {b} by "
            f"{_interval(d['mean_diff'], d['ci_low'], d['ci_high'], '+.1f')} points (paired, "
            f"95% interval): " + ("the gap is inside the interval, so the two are not "
                                  "separable on these days." if inside else
                                  "the interval excludes 0."))
    present = set(frame["agent"])
    ablation_md = ""
    rows = []
    for what, a, b in spec.get("ablations", ()):
        if a in present and b in present:
            d = paired_difference(agent_matrix(frame, a), agent_matrix(frame, b), strata=strata)
            mark = "" if d["ci_low"] > 0 or d["ci_high"] < 0 else " ~"
            rows.append({"ablation": what, "comparison": f"{a} - {b}",
                         "paired difference [95% CI]": _interval(
                             d["mean_diff"], d["ci_low"], d["ci_high"], "+.1f") + mark,
                         "P(improvement)": f"{d['prob_improvement']:.2f}"})
    if rows:
        ablation_md = ("\nAblations (percent-of-yardstick points, paired on the same days; "
                       "`~`: inside the interval):\n\n" + markdown_table(pd.DataFrame(rows)))
    notes.extend(generative_verdict(frame, order, strata))
    above = (frame["expected_score"] > frame["oracle_score"] * (1 + 1e-9))
    if len(frame):
        worst = frame.loc[above, "pct_of_oracle"].max() if above.any() else math.nan
        notes.append(f"The yardstick is exceeded on {above.mean():.1%} of agent-days"
                     + (f" (at most {worst:.1f}%)" if above.any() else "") + ".")
    reused = timings.get("reused_runs", [])
    note = (f" and reused {len(reused)} finished training runs from an earlier one"
            if reused else "")
    return (
        "Percent of the day's **yardstick**: the hindsight oracle of the same day and campaign "
        "with the agent out of the market, one number per (scenario, day) for every agent. "
        "Intervals are 95% two-level bootstrap intervals (training seeds, then days within "
        "each scenario); the paired column is the agent minus the reference on the same days "
        "(`~`: the interval contains 0, no separable difference); `P(> ...)` is the "
        "probability of improvement (Agarwal et al. 2021); `violations` is the share of days "
        "whose expected CPA (ROI) misses the target by more than 5%.\n\n"
        + markdown_table(table)
        + "\nPer scenario (mean % of the yardstick):\n\n" + markdown_table(per_scenario)
        + ablation_md
        + "\n" + " ".join(notes)
        + f" Agents trained and evaluated on `{spec['env_id']}` (the calibrated market at a "
        f"tenth of the volume); {spec['episodes']} held-out days per scenario (common random "
        f"numbers); learned agents over {spec['offline_seeds']} (offline) and "
        f"{spec['sb3_seeds']} (SB3) training seeds. This invocation took "
        f"{timings['total_seconds'] / 60:.0f} min with {workers} worker(s) on "
        f"{os.cpu_count()} cores{note}.\n"
        "\n<details><summary>Per-scenario tables (score, interval, median, IQM, budget used)"
        f"</summary>\n\n{leaderboard_markdown(board, level=0).strip()}\n\n</details>\n")


def is_generative(label: str) -> bool:
    """A label of the generative family (``dt``, ``dt_yardstick``, ``gas_wide``, ...)."""
    return any(label == g or label.startswith(g + "_") for g in GENERATIVE)


def generative_verdict(frame: pd.DataFrame, order: list, strata) -> list[str]:
    """Sentences on the project's goal: the best generative agent against the best other one,
    paired over all scenarios and on ``default`` (empty if either family is missing)."""
    from experiments.stats import agent_matrix, day_columns, paired_difference

    gen = [a for a in order if is_generative(a)]
    other = [a for a in order if not is_generative(a)]
    if not gen or not other:
        return []
    out = []
    g, o = gen[0], other[0]
    d = paired_difference(agent_matrix(frame, g), agent_matrix(frame, o), strata=strata)
    verdict = ("leads" if d["ci_low"] > 0 else "trails" if d["ci_high"] < 0 else
               "is not separable from it")
    out.append(f"Best generative agent over all scenarios: **{g}**, against the best other "
               f"agent {o}: {_interval(d['mean_diff'], d['ci_low'], d['ci_high'], '+.1f')} "
               f"points (paired), so it {verdict}.")
    if "default" in set(frame["scenario"]):
        sub = frame[frame["scenario"] == "default"]
        means = sub.groupby("agent")["pct_of_oracle"].mean()
        gd = max((a for a in gen if a in means.index), key=lambda a: means[a])
        od = max((a for a in other if a in means.index), key=lambda a: means[a])
        d = paired_difference(agent_matrix(frame, gd, scenario="default"),
                              agent_matrix(frame, od, scenario="default"),
                              strata=day_columns(frame, scenario="default")["scenario"]
                              .to_numpy())
        out.append(f"On `default`: {gd} {means[gd]:.1f}% against {od} {means[od]:.1f}%, "
                   f"{_interval(d['mean_diff'], d['ci_low'], d['ci_high'], '+.1f')} points.")
    return out


def run_benchmark(*, preset: str = "smoke", seed: int = 0, out, workers: int = 1,
                  progress: bool = True, readme=None, agents_subset=None,
                  train_only: bool = False):
    """Collect, train and evaluate per the preset; returns the leaderboard frame (None with
    ``train_only``: collect and train, for a later invocation to reuse)."""
    from tqdm.auto import tqdm

    from bidenv.offline import load_dataset, save_dataset
    from experiments.collect import collect
    from experiments.evaluate import evaluate, write_results
    from experiments.io import atomic_write_csv, atomic_write_json

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
    workers = check_int("workers", workers, 1)
    spec = PRESETS[preset]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    from experiments.io import check_output_dir

    out = check_output_dir(out)
    timings: dict = {}
    start = time.perf_counter()

    # 1. data: each dataset the offline entries use
    used = {entry[3] for entry in offline_entries(spec).values()}
    data_paths, data_settings = {}, {}
    for name in sorted(used):
        want_meta = dataset_settings(spec, name, seed)
        path = out / f"{name}.parquet"
        if not (path.is_file() and same_settings(load_dataset(path)[1], want_meta)):
            t0 = time.perf_counter()
            frame = collect(episodes=want_meta["episodes"], seed=seed, env_id=spec["env_id"],
                            behaviors=want_meta["behaviors"], noise=want_meta["noise"],
                            yardstick=want_meta["yardstick"], workers=workers,
                            progress=progress)
            save_dataset(frame, path)
            timings[f"collect_seconds_{name}"] = time.perf_counter() - t0
        data_paths[name], data_settings[name] = path, want_meta

    # 2. training jobs
    jobs = []
    for algo, steps in spec["sb3"].items():
        for k in range(spec["sb3_seeds"]):
            jobs.append(("sb3", algo, steps, seed + k, str(out / "runs" / algo / f"seed{k}"),
                         None, spec["env_id"], {"reward_mode": SB3_REWARD}, None))
    labels = []  # one per job
    for algo in spec["sb3"]:
        labels += [algo] * spec["sb3_seeds"]
    for label, (name, steps, config, dataset) in offline_entries(spec).items():
        for k in range(spec["offline_seeds"]):
            config = dict(config)
            if config.get("dt_path") == SAME_SEED_DT:  # the dt run of this seed
                config["dt_path"] = str(out / "runs" / "dt" / f"seed{k}")
            jobs.append(("offline", name, steps, seed + k, str(out / "runs" / label / f"seed{k}"),
                         str(data_paths[dataset]), spec["env_id"], config,
                         data_settings[dataset]))
            labels.append(label)
    needs = _dependencies(jobs)
    if agents_subset is not None:
        agents_subset = set(agents_subset)
        known = set(HEURISTICS) | set(labels) | set(spec.get("variants", {}))
        if agents_subset - known:
            raise ValueError(f"agents: {sorted(agents_subset - known)} not in the preset; it "
                             f"has {sorted(known)}")
        wanted = agents_subset | {spec["variants"][v][0] for v in agents_subset
                                  if v in spec.get("variants", {})}
        keep = {i for i, label in enumerate(labels) if label in wanted}
        keep |= {needs[i] for i in keep if i in needs}  # a GAS run needs its DT run
        jobs, labels = [jobs[i] for i in sorted(keep)], [labels[i] for i in sorted(keep)]
    # Longest runs first, so that parallel workers finish together (results do not depend
    # on the order). A GAS run on a trained DT only trains critics.
    cost = {"gas": 6, "gave": 5, "gave_stable": 4, "diffbid": 4, "dt": 3, "ppo": 3, "sac": 3,
            "td3": 2}
    order = sorted(range(len(jobs)), key=lambda i: -(1.5 if jobs[i][7].get("dt_path") else
                                                     cost.get(jobs[i][1], 1)) * jobs[i][2])
    jobs, labels = [jobs[i] for i in order], [labels[i] for i in order]
    t0 = time.perf_counter()
    train_seconds = {}
    bar = tqdm(total=len(jobs), desc="training", unit="run", disable=not progress)
    results = _run_jobs(jobs, workers, on_done=lambda: bar.update())
    bar.close()
    reused = []
    for label, (run_dir, secs, was_reused) in zip(labels, results):
        key = f"{label}/{Path(run_dir).name}"
        train_seconds[key] = secs
        if was_reused:
            reused.append(key)
    timings["reused_runs"] = reused
    timings["train_wall_seconds"] = time.perf_counter() - t0
    if train_only:
        return None

    # 3. evaluation: each run under its own label, then pooled by agent with a ``run`` column
    heuristics = [h for h in HEURISTICS if agents_subset is None or h in agents_subset]
    entries = [(h, h, {}) for h in heuristics]
    label_of = {h: h for h in heuristics}
    for job, label in zip(jobs, labels):
        run = f"{label}/{Path(job[4]).name}"
        entries.append((run, f"{job[1]}:{job[4]}", {}))
        label_of[run] = label
        if job[1] == "gas" and not job[7].get("dt_path"):  # its own DT without the search
            run1 = f"gas_1candidate/{label}/{Path(job[4]).name}"
            entries.append((run1, f"gas:{job[4]}", {"n_candidates": 1}))
            label_of[run1] = "gas_1candidate" if label == "gas" else f"{label}_1candidate"
    for variant, (trained, overrides) in spec.get("variants", {}).items():
        if agents_subset is not None and variant not in agents_subset:
            continue
        for job, label in zip(jobs, labels):
            if label == trained:
                run = f"{variant}/{Path(job[4]).name}"
                entries.append((run, f"{job[1]}:{job[4]}", dict(overrides)))
                label_of[run] = variant
    t0 = time.perf_counter()
    frame, traces = evaluate(entries, episodes=spec["episodes"], seed=seed + EVAL_SEED_OFFSET,
                             scenarios=spec["scenarios"], env_id=spec["env_id"],
                             workers=workers, progress=progress)
    timings["evaluate_seconds"] = time.perf_counter() - t0
    frame["run"] = frame["agent"]
    frame["agent"] = frame["agent"].map(label_of)
    if len(traces):
        traces["agent"] = traces["agent"].map(label_of)
        traces = traces.drop_duplicates(["agent", "scenario", "episode", "tick"])
    training = training_table(spec, train_seconds)
    atomic_write_csv(out / "training.csv", training)
    reference = REFERENCE_AGENT if REFERENCE_AGENT in set(frame["agent"]) else None
    board = write_results(frame, traces, out, echo=progress, reference=reference)
    timings["total_seconds"] = time.perf_counter() - start
    atomic_write_json(out / "benchmark.json", {
        "preset": preset, "seed": seed, "eval_seed": seed + EVAL_SEED_OFFSET,
        "workers": workers, "cpu_count": os.cpu_count(), **timings,
        "train_seconds": train_seconds, "settings": spec})
    if readme is not None:
        command = f"bidenv benchmark --preset {preset} --seed {seed} --out {out}"
        paired = pd.read_csv(out / "paired.csv") if (out / "paired.csv").is_file() else None
        md = readme_markdown(board, pd.read_csv(out / "summary.csv"), paired, training, frame,
                             spec, timings, workers, reference)
        splice_readme(readme, md, command + " --readme README.md")
    return board
