"""``bidenv evaluate``: every agent on the same held-out days, against the hindsight oracle.

Common random numbers: episode ``i`` of a scenario is ``env.reset(seed=seed + i,
options=<scenario's campaign>)`` for every agent, so every agent sees the same traffic, the same
competitors' campaigns and heuristics, and the same per-opportunity exposure and conversion
draws (the environment keeps independent random streams per part).

One yardstick per day: competitors react to the market, so what they bid depends on the agent,
and the hindsight oracle of each agent's own recording differs from agent to agent
(``own_oracle_score``). Every agent on a (scenario, day) is divided by the same number,
``oracle_score``: the oracle of that day recorded with the agent out of the market
(:func:`bidenv.oracle.reference_hindsight`), which depends on no agent, so adding or removing an
agent never changes another agent's rows. ``pct_of_oracle`` is relative to it; a policy can
exceed it a little (the rivals react to it), and the leaderboard reports how often
(``share_above_yardstick``) and by how much (``max_pct_of_oracle``).

Constraints are judged on the noise-free expected CPA / ROI (``violated``: expected cost /
expected conversions above ``VIOLATION_TOLERANCE`` x target, or expected value / expected cost
below target / tolerance); the realised ones, with a handful of conversions a day mostly noise,
give ``violated_realised``.

Outputs (``--out DIR``): ``episodes.csv`` (one row per agent x scenario x episode),
``leaderboard.csv`` and ``leaderboard.md`` (per agent x scenario: mean expected score with a
bootstrap 95% interval, median, interquartile mean, percent of oracle, violation rate), and
figures ``scores.png``, ``pct_of_oracle.png``, ``pacing.png``.

The leaderboard's ``*_score`` columns summarise the **expected** score (noise-free: exposure
probability x true conversion probability of the slots won), which is what docs/design.md says
benchmarks compare; ``mean_realised_score`` gives the realised one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.scoring import ratio
from bidenv.validation import check_int

VIOLATION_TOLERANCE = 1.05


@dataclass(frozen=True)
class Scenario:
    """A campaign to evaluate on; budgets are for the reference day of 500k opportunities.

    Attributes:
        name: Scenario name (a column of every output).
        campaign: Campaign fields (budget, constraint, target_cpa / target_roi, category).
    """

    name: str
    campaign: dict = field(hash=False)

    def options(self, opportunities_per_day: float) -> dict:
        """``reset`` options for an env of the given daily volume (budget scaled to it)."""
        from bidenv.campaign import budget_scale

        opts = dict(self.campaign)
        opts["budget"] = float(opts["budget"]) * budget_scale(opportunities_per_day)
        return opts


#: Scenario campaigns are inside the market of their category: the base budget is the
#: market's typical budget (``bidenv.campaign.MARKET_REFERENCE_BUDGET``, 4,000) and targets
#: are the category's market reference times the tightness (``bidenv.campaign.market_target``:
#: CPA ``MARKET_CPA[c] / tightness``, ROI ``MARKET_ROI[c] x tightness``), the range that
#: ``bidenv.campaign.draw_agent_campaign`` draws the agent's campaigns from.
_CATEGORY, _BASE_TIGHTNESS = 3, 1.0


def _campaign(constraint, budget_ratio, tightness):
    from bidenv.campaign import MARKET_REFERENCE_BUDGET, market_target

    key = "target_roi" if constraint == "roi" else "target_cpa"
    return {"budget": MARKET_REFERENCE_BUDGET * budget_ratio, "constraint": constraint,
            key: market_target(_CATEGORY, constraint, _BASE_TIGHTNESS * tightness),
            "category": _CATEGORY}


def _cpa(name, budget_ratio=1.0, tightness=1.0):
    return Scenario(name, _campaign("cpa", budget_ratio, tightness))


def _roi(name, budget_ratio=1.0, tightness=1.0):
    return Scenario(name, _campaign("roi", budget_ratio, tightness))


#: Named scenario grids. Tightness > 1 makes the target harder (lower CPA, higher ROI).
PRESETS: dict[str, list[Scenario]] = {
    "default": [_cpa("default"), _cpa("budget_0.5", 0.5), _cpa("budget_1.5", 1.5),
                _cpa("tight_cpa", 1.0, 1.4), _cpa("loose_cpa", 1.0, 0.7), _roi("roi")],
    "smoke": [_cpa("default")],
    "grid": [_cpa(f"budget_{b:g}_cpa_{t:g}", b, t) for b in (0.5, 1.0, 1.5)
             for t in (0.7, 1.0, 1.4)] + [_roi(f"roi_budget_{b:g}", b) for b in (0.5, 1.0, 1.5)],
    "roi": [_roi("roi"), _roi("roi_tight", 1.0, 1.5), _roi("roi_loose", 1.0, 0.75)],
}


def get_scenarios(spec) -> list[Scenario]:
    """Scenarios from a preset name, comma-separated names from the presets, or a list."""
    if isinstance(spec, (list, tuple)):
        return [s if isinstance(s, Scenario) else Scenario(**s) for s in spec]
    if spec in PRESETS:
        return list(PRESETS[spec])
    known = {s.name: s for preset in PRESETS.values() for s in preset}
    names = [x.strip() for x in str(spec).split(",") if x.strip()]
    unknown = [x for x in names if x not in known]
    if not names or unknown:
        raise ValueError(f"scenarios must be a preset ({', '.join(PRESETS)}) or scenario names "
                         f"from them ({', '.join(sorted(known))}); unknown: {unknown or spec!r}")
    return [known[x] for x in names]


# --------------------------------------------------------------------------------------------
# Running episodes
# --------------------------------------------------------------------------------------------
def _violated(constraint: str, cpa: float, roi: float, target: float) -> bool:
    if constraint == "cpa":
        return bool(cpa > VIOLATION_TOLERANCE * target)
    if constraint == "roi":
        return bool(not roi >= target / VIOLATION_TOLERANCE)
    return False


def violation_flags(constraint: str, target: float, info: dict) -> tuple[bool, bool]:
    """(violated on the expected CPA/ROI, violated on the realised one) for a final info."""
    exp_cpa = ratio(info["expected_cost"], info["expected_conversions"])
    exp_roi = ratio(info["expected_value"], info["expected_cost"])
    return (_violated(constraint, exp_cpa, exp_roi, target),
            _violated(constraint, info["cpa"], info["roi"], target))


def play_episode(env, agent, *, seed: int, options: dict | None, trace: bool = False):
    """One day: returns (final info, per-tick trace rows or None). Calls ``agent.update``."""
    from agents import run_episode

    rows = [] if trace else None

    def record(step):
        info = step.info
        rows.append({"tick": info["tick"], "alpha": info["alpha"],
                     "total_cost": info["total_cost"], "budget": info["budget"],
                     "expected_score": info["expected_score"],
                     "traffic_elapsed": float(env.unwrapped._elapsed[info["tick"]])})

    info = run_episode(env, agent, seed=seed, options=options,
                       on_step=record if trace else None)
    return info, rows


def _episode_row(env, agent_name: str, scenario: Scenario, episode: int, seed: int,
                 info: dict) -> dict:
    from bidenv.oracle import hindsight

    camp = env.unwrapped.agent_campaign
    own = hindsight(env)
    target = camp.target
    violated, violated_realised = violation_flags(camp.constraint, target, info)
    return {
        "agent": agent_name, "scenario": scenario.name, "episode": episode, "seed": seed,
        "constraint": camp.constraint, "budget": camp.budget, "target": target,
        "score": info["score"], "expected_score": info["expected_score"],
        "conversions": info["total_conversions"],
        "expected_conversions": info["expected_conversions"], "value": info["total_value"],
        "cost": info["total_cost"], "cpa": info["cpa"], "roi": info["roi"],
        "expected_cost": info["expected_cost"], "expected_value": info["expected_value"],
        "expected_cpa": ratio(info["expected_cost"], info["expected_conversions"]),
        "expected_roi": ratio(info["expected_value"], info["expected_cost"]),
        "budget_used": info["total_cost"] / camp.budget,
        "violated": violated, "violated_realised": violated_realised,
        "own_oracle_score": own["oracle_score"],
        "own_best_fixed_alpha_score": own["best_fixed_alpha_score"],
        "ticks": info["tick"],
    }


def _reference_row(env, scenario: Scenario, episode: int, seed: int, options: dict) -> dict:
    """The day's yardstick (oracle without the agent), shared by every agent on the day."""
    from bidenv.oracle import reference_hindsight

    ref = reference_hindsight(env, seed=seed, options=options)
    return {"scenario": scenario.name, "episode": episode,
            "oracle_score": ref["oracle_score"], "best_fixed_alpha": ref["best_fixed_alpha"],
            "best_fixed_alpha_score": ref["best_fixed_alpha_score"]}


def attach_yardstick(rows: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """Join each agent row to its day's yardstick and compute ``pct_of_oracle`` from it."""
    frame = rows.merge(references, on=["scenario", "episode"], how="left", validate="m:1")
    if frame["oracle_score"].isna().any():
        raise RuntimeError("a (scenario, episode) has no yardstick")
    # NaN where the day offered nothing (yardstick 0).
    frame["pct_of_oracle"] = (100.0 * frame["expected_score"]
                              / frame["oracle_score"].where(frame["oracle_score"] > 0))
    return frame


def _run_task(task) -> tuple[list[dict], list[dict]]:
    """Worker: one agent on some (scenario, episode) pairs; returns rows and trace rows."""
    import gymnasium as gym

    import agents
    import bidenv  # noqa: F401  (registers the envs)

    agent_spec, name, env_id, env_kwargs, jobs, seed = task
    agent_spec, agent_kwargs = agent_spec if isinstance(agent_spec, tuple) else (agent_spec, {})
    env = gym.make(env_id, record=True, **env_kwargs)
    volume = env.unwrapped.opportunities_per_day
    rows, traces = [], []
    if agent_spec is None:  # the days' yardsticks
        for scenario, episode, _ in jobs:
            rows.append(_reference_row(env, scenario, episode, seed + episode,
                                       scenario.options(volume)))
        return rows, traces
    agent = agents.from_spec(agent_spec, **agent_kwargs)
    for scenario, episode, want_trace in jobs:
        info, trace = play_episode(env, agent, seed=seed + episode,
                                   options=scenario.options(volume), trace=want_trace)
        rows.append(_episode_row(env, name, scenario, episode, seed + episode, info))
        for t in trace or []:
            traces.append({"agent": name, "scenario": scenario.name, "episode": episode, **t})
    return rows, traces


def display_names(agent_specs) -> dict:
    """Short names for specs: ``ppo`` for ``ppo:runs/ppo`` unless two specs share a name."""
    import agents

    known = set(agents.available())

    def short_name(spec: str) -> str:
        head, _, rest = spec.partition(":")
        if rest and head not in known:  # a user's pkg.module:Class[:checkpoint] -> Class
            return rest.split(":", 1)[0]
        return head

    short = {spec: short_name(spec) for spec in agent_specs}
    counts = pd.Series(list(short.values())).value_counts()
    return {spec: (short[spec] if counts[short[spec]] == 1 else spec) for spec in agent_specs}


def evaluate(agent_specs, *, episodes: int = 5, seed: int = 0, scenarios="default",
             env_id: str = "bidenv/AutoBidding-v0", env_kwargs: dict | None = None,
             workers: int = 1, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluate agents with common random numbers; returns (episodes frame, traces frame).

    Args:
        agent_specs: Agent specs (``name`` or ``name:checkpoint``), a list or comma string;
            a list may also hold ``(label, spec, kwargs)`` tuples: the agent built by
            ``agents.from_spec(spec, **kwargs)`` and shown as ``label`` (e.g. one checkpoint
            evaluated with a setting changed).
        episodes: Days per scenario (episode i uses ``seed + i``).
        seed: First episode seed.
        scenarios: A preset name, scenario names, or a list of :class:`Scenario`.
        env_id: Environment id; ``env_kwargs`` are passed to ``gym.make``.
        workers: Processes; results are identical to ``workers=1``.
        progress: Show a progress bar.
    """
    from tqdm.auto import tqdm

    import agents

    if isinstance(agent_specs, str):
        agent_specs = [s.strip() for s in agent_specs.split(",") if s.strip()]
    entries = {}  # label -> (spec, kwargs)
    plain = [s for s in agent_specs if not isinstance(s, tuple)]
    names = display_names(list(dict.fromkeys(plain)))
    for item in agent_specs:
        label, spec, kwargs = item if isinstance(item, tuple) else (names[item], item, {})
        if entries.get(label, (spec, kwargs)) != (spec, kwargs):
            raise ValueError(f"agents: two different agents are labelled {label!r}")
        entries[label] = (spec, dict(kwargs))
    if not entries:
        raise ValueError("agents must name at least one agent")
    for spec, kwargs in entries.values():  # fail fast, before any worker starts
        try:
            agents.from_spec(spec, **kwargs)
        except (OSError, KeyError, RuntimeError) as exc:  # missing or corrupt checkpoint
            raise ValueError(f"agents: cannot load {spec!r}: {exc}") from None
    check_int("seed", seed, 0)
    from experiments.io import check_env_id

    check_env_id(env_id)
    episodes = check_int("episodes", episodes, 1)
    workers = check_int("workers", workers, 1)
    scenario_list = get_scenarios(scenarios)
    env_kwargs = dict(env_kwargs or {})
    # The yardstick of each (scenario, day) first: it depends on no agent.
    # Days are grouped into tasks of ``chunk`` days of one agent and scenario (one env and
    # one agent built per task, not per day), small enough for every worker to get several
    # tasks. Results do not depend on the grouping (each day is reset from its own seed).
    chunk = max(1, min(episodes, episodes * len(scenario_list) * (len(entries) + 1)
                       // (4 * workers)))
    groups = [list(range(i, min(i + chunk, episodes))) for i in range(0, episodes, chunk)]
    tasks = [(None, None, env_id, env_kwargs, [(scenario, e, False) for e in group], seed)
             for scenario in scenario_list for group in groups]
    for label, (spec, kwargs) in entries.items():
        for s_i, scenario in enumerate(scenario_list):
            for group in groups:
                jobs = [(scenario, e, s_i == 0 and e == 0) for e in group]
                tasks.append(((spec, kwargs), label, env_id, env_kwargs, jobs, seed))
    rows, references, traces = [], [], []
    bar = tqdm(total=episodes * len(scenario_list) * (len(entries) + 1), desc="evaluating",
               unit="day", disable=not progress)

    def take(task, result):
        r, t = result
        (references if task[0] is None else rows).extend(r)
        traces.extend(t)

    from experiments.pool import map_ordered

    # the bar moves as tasks finish; results are taken in task order (identical files)
    map_ordered(_run_task, tasks, workers, on_result=take,
                on_done=lambda task: bar.update(len(task[4])))
    bar.close()
    frame = attach_yardstick(pd.DataFrame(rows), pd.DataFrame(references))
    order = {label: i for i, label in enumerate(entries)}
    frame = frame.sort_values(["agent", "scenario", "episode"],
                              key=lambda c: c.map(order) if c.name == "agent" else c,
                              kind="stable").reset_index(drop=True)
    return frame, pd.DataFrame(traces)


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------
def bootstrap_ci(values, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of the mean (deterministic for a seed): a one-run
    :func:`experiments.stats.two_level_bootstrap`."""
    from experiments.stats import two_level_bootstrap

    _, lo, hi = two_level_bootstrap(np.asarray(values, dtype=np.float64).reshape(-1),
                                    n_boot=n_boot, level=level, seed=seed)
    return lo, hi


def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50% (:func:`experiments.stats.iqm`)."""
    from experiments.stats import iqm as _iqm

    return _iqm(values)


def leaderboard(frame: pd.DataFrame) -> pd.DataFrame:
    """Per agent x scenario summary of an episodes frame (see module docstring)."""
    from experiments.stats import agent_matrix, two_level_bootstrap

    rows = []
    for (agent, scenario), g in frame.groupby(["agent", "scenario"], sort=False):
        score = g["expected_score"].to_numpy()
        # Training seeds (the ``run`` column of a benchmark) then days are resampled.
        _, lo, hi = two_level_bootstrap(agent_matrix(frame, agent, scenario, "expected_score"))
        rows.append({
            "agent": agent, "scenario": scenario, "episodes": len(g),
            "runs": int(g["run"].nunique()) if "run" in g else 1,
            "mean_score": float(np.mean(score)), "ci_low": lo, "ci_high": hi,
            "median_score": float(np.median(score)), "iqm_score": iqm(score),
            "mean_pct_of_oracle": float(g["pct_of_oracle"].mean()),
            "violation_rate": float(g["violated"].mean()),
            "violation_rate_realised": float(g["violated_realised"].mean()),
            "share_above_yardstick": float((g["expected_score"]
                                            > g["oracle_score"] * (1 + 1e-9)).mean()),
            "max_pct_of_oracle": float(g["pct_of_oracle"].max()),
            "mean_realised_score": float(g["score"].mean()),
            "mean_budget_used": float(g["budget_used"].mean()),
            "mean_oracle_score": float(g["oracle_score"].mean()),
            "mean_own_oracle_score": float(g["own_oracle_score"].mean()),
            "mean_best_fixed_alpha_score": float(g["best_fixed_alpha_score"].mean()),
        })
    return pd.DataFrame(rows)


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".3g") -> str:
    """A GitHub Markdown table (no extra dependency)."""
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "" if not np.isfinite(v) else format(float(v), floatfmt)
        return str(v)

    head = "| " + " | ".join(frame.columns) + " |"
    sep = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([head, sep, *body]) + "\n"


def leaderboard_markdown(board: pd.DataFrame, *, level: int = 1) -> str:
    """The leaderboard as Markdown, one section per scenario, best mean score first.

    ``level`` is the heading level of the title (scenarios one below); ``level=0`` leaves the
    title out and heads the scenarios at level 4, for embedding under a README section."""
    cols = ["agent", "episodes", "mean_score", "ci_low", "ci_high", "median_score",
            "iqm_score", "mean_pct_of_oracle", "violation_rate", "mean_budget_used"]
    sub = "#" * (level + 1 if level else 4)
    parts = [f"{'#' * level} Leaderboard\n" if level else "",
             "Expected score (noise-free) per day; 95% bootstrap interval of the mean; "
             "percent of the hindsight oracle; share of days violating the constraint "
             f"(CPA > {VIOLATION_TOLERANCE} x target or ROI < target / {VIOLATION_TOLERANCE}).\n"]
    for scenario, g in board.groupby("scenario", sort=False):
        parts.append(f"\n{sub} {scenario}\n\n")
        parts.append(markdown_table(g.sort_values("mean_score", ascending=False)[cols]))
    return "".join(parts)


def plot_results(frame: pd.DataFrame, board: pd.DataFrame, traces: pd.DataFrame, out: Path):
    """Write scores.png, pct_of_oracle.png and pacing.png into ``out`` (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.io import atomic_save_figure

    agents_order = list(dict.fromkeys(board["agent"]))
    scenarios = list(dict.fromkeys(board["scenario"]))
    width = 0.8 / max(len(agents_order), 1)
    x = np.arange(len(scenarios))

    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(scenarios) + 2), 4))
    for i, agent in enumerate(agents_order):
        g = board[board["agent"] == agent].set_index("scenario").reindex(scenarios)
        err = np.vstack([g["mean_score"] - g["ci_low"], g["ci_high"] - g["mean_score"]])
        ax.bar(x + i * width, g["mean_score"], width, yerr=np.nan_to_num(err), capsize=3,
               label=agent)
    ax.set_xticks(x + width * (len(agents_order) - 1) / 2, scenarios, rotation=20)
    ax.set_ylabel("expected score per day (95% CI)")
    ax.set_title("Score by agent and scenario")
    ax.legend(fontsize=8)
    atomic_save_figure(fig, out / "scores.png")

    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(scenarios) + 2), 4))
    for i, agent in enumerate(agents_order):
        g = board[board["agent"] == agent].set_index("scenario").reindex(scenarios)
        ax.bar(x + i * width, g["mean_pct_of_oracle"], width, label=agent)
    ax.axhline(100, color="k", lw=0.8, ls="--")
    ax.set_xticks(x + width * (len(agents_order) - 1) / 2, scenarios, rotation=20)
    ax.set_ylabel("% of hindsight oracle")
    ax.set_title("Percent of oracle by scenario")
    ax.legend(fontsize=8)
    atomic_save_figure(fig, out / "pct_of_oracle.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    if len(traces):
        first = traces[traces["episode"] == traces["episode"].min()]
        for agent in agents_order:
            t = first[first["agent"] == agent]
            if len(t):
                ax.plot(t["tick"], t["total_cost"] / t["budget"], label=agent)
        t = first[first["agent"] == agents_order[0]]
        if len(t):
            ax.plot(t["tick"], t["traffic_elapsed"], "k--", lw=0.8, label="traffic elapsed")
        ax.set_title(f"Pacing on one day ({first['scenario'].iloc[0]}, seed of episode 0)")
    ax.set_xlabel("tick")
    ax.set_ylabel("share of budget spent")
    ax.legend(fontsize=8)
    atomic_save_figure(fig, out / "pacing.png")


def write_results(frame: pd.DataFrame, traces: pd.DataFrame, out, *, echo: bool = True,
                  reference: str | None = None) -> pd.DataFrame:
    """Write the results to ``out``; returns the leaderboard (printed as Markdown with ``echo``).

    Files: ``episodes.csv``, ``leaderboard.csv/.md``, ``pacing_trace.csv``, the figures,
    ``summary.csv`` (per agent over all scenarios: mean, IQM and optimality gap of the percent
    of the yardstick with two-level bootstrap intervals, :func:`experiments.stats.summary_table`),
    ``paired.csv`` (every agent minus ``reference`` on the same days, per scenario and over all,
    with 95% intervals and the probability of improvement; ``reference`` defaults to the first
    agent) and ``performance_profile.png``."""
    from experiments.io import atomic_write_csv, atomic_write_text
    from experiments.stats import paired_table, performance_profile, summary_table

    board = leaderboard(frame)
    out = Path(out)
    atomic_write_csv(out / "episodes.csv", frame)
    atomic_write_csv(out / "leaderboard.csv", board)
    if len(traces):
        atomic_write_csv(out / "pacing_trace.csv", traces)
    atomic_write_csv(out / "summary.csv", summary_table(frame))
    agent_names = list(dict.fromkeys(frame["agent"]))
    reference = reference or agent_names[0]
    if reference not in agent_names:
        raise ValueError(f"reference: {reference!r} is not one of the agents {agent_names}")
    if len(agent_names) > 1:
        atomic_write_csv(out / "paired.csv", paired_table(frame, reference))
    performance_profile(frame, out / "performance_profile.png")
    markdown = leaderboard_markdown(board)
    atomic_write_text(out / "leaderboard.md", markdown)
    plot_results(frame, board, traces, out)
    if echo:
        print(markdown)
    return board


def run_evaluate(agent_specs, *, episodes: int, seed: int, scenarios: str, out,
                 env_id: str = "bidenv/AutoBidding-v0", env_kwargs: dict | None = None,
                 workers: int = 1, progress: bool = True,
                 reference: str | None = None) -> pd.DataFrame:
    """The ``bidenv evaluate`` command: evaluate, write CSV/Markdown/figures, print the board."""
    from experiments.io import check_output_dir

    start = time.perf_counter()
    check_output_dir(out)
    if reference is not None:  # fail before the run, not after it
        specs = ([x.strip() for x in agent_specs.split(",") if x.strip()]
                 if isinstance(agent_specs, str) else list(agent_specs))
        labels = list(display_names(list(dict.fromkeys(specs))).values())
        if reference not in labels:
            raise ValueError(f"reference: {reference!r} is not one of the agents {labels}")
    frame, traces = evaluate(agent_specs, episodes=episodes, seed=seed, scenarios=scenarios,
                             env_id=env_id, env_kwargs=env_kwargs, workers=workers,
                             progress=progress)
    board = write_results(frame, traces, out, reference=reference)
    print(f"wrote {out}/episodes.csv, leaderboard.csv, leaderboard.md, summary.csv, paired.csv, "
          f"scores.png, pct_of_oracle.png, performance_profile.png, pacing.png in "
          f"{time.perf_counter() - start:.1f} s")
    return board
