"""``bidenv selfplay``: independent offline learners retrained, round after round, on the logs of
the market they bid in (:func:`bidenv.multi_agent.parallel_env`).

A round ``r`` (0, 1, ..., R - 1):

1. **Play.** K policies bid together as ``advertiser_0 .. advertiser_{K-1}`` of
   ``parallel_env(n_agents=K)`` on D market days (day ``i = r x D + d`` is
   ``reset(seed=seed + i)``), each under the exploration noise of ``bidenv collect``
   (per agent and day sigma ~ U(0, noise), alpha x exp(sigma N(0, 1))). Round 0's policies are
   the ``start`` behaviour (a mix of heuristics drawn per agent and day, as ``bidenv collect``
   draws them, or one checkpoint for every agent); round ``r >= 1``'s are the checkpoints
   trained at the end of round ``r - 1``.
2. **Log.** Every agent's day is one episode of the offline dataset format
   (:mod:`bidenv.offline`, rows built by :func:`bidenv.offline.step_row`), written to
   ``DIR/round_r/data.parquet``; episode ``e = i x K + k`` is agent ``k``'s day ``i``
   (``agent = episode % K``), ``behavior`` is the policy that played it.
3. **Train.** Independent learners (default): learner ``k`` is a fresh ``agent`` trained with
   :func:`agents.common.fit` for ``steps`` gradient steps on *its own* episodes of the last
   ``window`` rounds (0: all rounds so far), saved to ``DIR/round_r/agent_k/``. With
   ``shared=True`` one model is trained on every agent's episodes (``DIR/round_r/shared/``)
   and all K agents play it.
4. **Evaluate.** Before the round's play, the K current policies play E fixed held-out days
   together (``reset(seed=eval_seed + j)``, no exploration noise, the same days and campaigns
   every round), so the rounds are compared on the same days; after the last round the final
   checkpoints are evaluated too (``round = R``, ``split = "eval"`` only).

Independent learners are the default because each advertiser then learns only from what it
saw, like a real advertiser's bidder, and the market each one faces moves as the others
learn (the non-stationarity self-play studies). The shared model pools K times more days per
round, which small rounds need; it is one option away.

Agents' ``update`` gets each agent's own per-opportunity view of the tick
(``AutoBiddingParallelEnv.last_tick_opportunities``). The default start mix
(:data:`START_MIX`) is ``bidenv collect``'s without ``online_lp`` (the mix the measured runs
used), and the logs have no ``opp_*`` columns (``opportunity_features=True`` is refused).

Outputs under ``DIR``: ``round_r/data.parquet``, ``round_r/agent_k/`` (or ``shared/``),
``days.csv`` (one row per round, split, day and agent), ``rounds.csv`` (per round, split
(``play`` or ``eval``) and agent, and ``all``: days, mean score and expected score, spend,
budget used, CPA over the CPA days, ROI over the ROI days, violation rate on the expected
CPA/ROI as in ``bidenv evaluate``), ``selfplay.png`` and ``config.json``. Deterministic for a
seed (one thread).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.validation import check_int, check_number

#: Round 0's default behaviour: ``bidenv collect``'s mix without ``online_lp`` (the mix the
#: measured runs used; see the module docstring).
START_MIX = {"pid_cpa": 0.3, "pid_budget": 0.2, "fixed": 0.15, "truthful": 0.05,
             "random": 0.05}
#: ``--start dt``: the decision-transformer checkpoint shipped with the agents.
SHIPPED_DT = "dt"
#: First held-out evaluation day's seed (the harness's held-out seeds).
EVAL_SEED = 1_000_000
SPLITS = ("play", "eval")
ROUND_COLUMNS = ["round", "split", "agent", "policy", "days", "mean_score",
                 "mean_expected_score", "mean_spend", "budget_used", "cpa", "roi",
                 "violation_rate"]


@dataclass(frozen=True)
class SelfPlayConfig:
    """Settings of a self-play run (the command's flags; errors name them).

    Attributes:
        agent: The offline learner (``agents.available("offline")``: ``dt``, ``bc``, ...).
        n_agents: K, the learning advertisers of the market.
        rounds: R rounds of play, log and train.
        days: D market days played per round.
        steps: Gradient steps per learner per round.
        seed: Day ``i`` of the run is ``reset(seed=seed + i)``; noise and training seeds
            derive from it.
        env_id: A bidenv environment id (its registered keywords are the market's).
        env_kwargs: More keywords of :class:`bidenv.env.AutoBiddingEnv`, over the id's.
        start: Round 0's policies: ``"mix"`` (:data:`START_MIX`), a behaviour mix as
            ``bidenv collect --behavior`` takes it, or a checkpoint ``NAME:PATH`` played by
            every agent (``"dt"``: the shipped decision transformer).
        noise: Exploration of the logged days: per agent and day sigma ~ U(0, noise).
        eval_days: E held-out days per evaluation.
        eval_seed: Held-out day ``j`` is ``reset(seed=eval_seed + j)``.
        shared: One model trained on every agent's logs instead of one per agent.
        window: Rounds of logs each learner trains on (the last ``window``; 0: all so far).
        overrides: Config fields of the learner (``--set KEY=VALUE``).
    """

    agent: str = "dt"
    n_agents: int = 4
    rounds: int = 3
    days: int = 8
    steps: int = 300
    seed: int = 0
    env_id: str = "bidenv/AutoBiddingLite-v0"
    env_kwargs: dict = field(default_factory=dict)
    start: str = "mix"
    noise: float = 0.3
    eval_days: int = 8
    eval_seed: int = EVAL_SEED
    shared: bool = False
    window: int = 0
    overrides: dict = field(default_factory=dict)

    def __post_init__(self):
        import agents

        offline = agents.available("offline")
        if self.agent not in offline:
            raise ValueError(f"--agent must be an offline agent ({', '.join(offline)}), got "
                             f"{str(self.agent)[:80]!r}")
        check_int("--n-agents", self.n_agents, 1)
        check_int("--rounds", self.rounds, 1)
        check_int("--days", self.days, 1)
        check_int("--steps", self.steps, 1)
        check_int("--seed", self.seed, 0)
        check_int("--eval-days", self.eval_days, 1)
        check_int("--eval-seed", self.eval_seed, 0)
        check_int("--window", self.window, 0)
        check_number("--noise", self.noise, 0, 3)
        if not isinstance(self.shared, (bool, np.bool_)):
            raise ValueError(f"shared must be True or False, got {self.shared!r}")
        if not isinstance(self.env_kwargs, dict):
            raise ValueError('--env-kwargs: expected a JSON object like {"n_competitors": 11}, '
                             f"got {str(self.env_kwargs)[:80]!r}")
        if not isinstance(self.overrides, dict):
            raise ValueError(f"--set: expected KEY=VALUE fields, got {self.overrides!r}")
        train_end = self.seed + self.rounds * self.days
        if self.seed < self.eval_seed + self.eval_days and self.eval_seed < train_end:
            raise ValueError(f"--eval-seed: the held-out days {self.eval_seed}.."
                             f"{self.eval_seed + self.eval_days - 1} overlap the training days "
                             f"{self.seed}..{train_end - 1}")

    def metadata(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------
def parse_start(start: str):
    """``("mix", {name: weight})`` or ``("checkpoint", spec)`` for ``--start``.

    Raises:
        ValueError: naming ``--start`` for a bad mix, the ``expert`` behaviour (it needs the
            day's hindsight, which the multi-agent env does not record) or a spec without a
            checkpoint path.
    """
    import agents
    from experiments.collect import EXPERT, parse_behaviors

    text = str(start).strip()
    if text == SHIPPED_DT:
        from experiments.quickstart import DT_CHECKPOINT

        return "checkpoint", f"dt:{DT_CHECKPOINT}"
    if ":" in text:
        name, _, path = text.partition(":")
        if not name or not path:
            raise ValueError(f"--start: a checkpoint is NAME:PATH (e.g. dt:agents/checkpoints/"
                             f"dt), got {text[:80]!r}")
        return "checkpoint", text
    if text == "mix":
        return "mix", dict(START_MIX)
    try:
        mix = parse_behaviors(text)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--behavior", "--start", 1)) from None
    untrained = [n for n in mix if n in agents.available("offline")
                 or n in agents.available("online_rl")]
    if untrained:
        raise ValueError(f"--start: {untrained[0]!r} would be an untrained model; give a "
                         f"checkpoint as {untrained[0]}:PATH ('dt' alone is the shipped one)")
    if EXPERT in mix:
        raise ValueError("--start: 'expert' needs the day's hindsight, which the multi-agent "
                         "env does not record; use heuristics or a checkpoint NAME:PATH")
    return "mix", mix


def _load(spec: str, where: Path | None = None):
    """The agent of checkpoint ``NAME:PATH`` (``PATH`` under ``where`` if given); for the
    ``--start`` checkpoint (no ``where``) any failure is a ``ValueError`` naming the flag."""
    import agents

    name, _, path = spec.partition(":")
    if where is not None:
        return agents.from_spec(f"{name}:{where / path}")
    try:
        return agents.from_spec(spec)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise ValueError(f"--start: {exc}") from None


def _plan(config: SelfPlayConfig, mix: dict, seed: int, index: int) -> dict:
    """The behaviour (round 0, mix start), sigma and noise seed of one agent-day, drawn as
    :func:`experiments.collect.behavior_plan` draws a day's (its campaign is not used: the
    market draws every agent's)."""
    from experiments.collect import CollectConfig, behavior_plan

    plan_config = CollectConfig(episodes=1, seed=seed, behaviors=mix, noise=config.noise)
    return behavior_plan(plan_config, index)


# --------------------------------------------------------------------------------------------
# One market day
# --------------------------------------------------------------------------------------------
def play_day(env, policies, *, seed: int, sigmas, noise_seeds, episodes, behaviors,
             log: bool = True, options: dict | None = None) -> tuple[list[dict], list[dict]]:
    """Play one day of ``env`` (a :class:`bidenv.multi_agent.AutoBiddingParallelEnv`) with one
    policy per agent under exploration noise ``sigmas[k]`` (``options``: of ``env.reset``).

    Returns:
        (dataset rows of every agent's day (:func:`bidenv.offline.step_row`, empty without
        ``log``), one summary per agent: final score, expected score, spend, budget, CPA/ROI,
        the expected ones and whether the constraint was violated).
    """
    from bidenv.multi_agent import run_agents
    from bidenv.offline import step_row
    from experiments.collect import Noisy
    from experiments.evaluate import violation_flags

    obs, infos = env.reset(seed=seed, options=options)
    campaigns = [c.to_dict() for c in env.agent_campaigns]
    actors = [Noisy(p, float(s), int(ns), env.env.max_alpha)
              for p, s, ns in zip(policies, sigmas, noise_seeds)]
    rows: list[dict] = []

    def record(k, obs_k, action, reward, done, info):
        rows.append(step_row(episode=episodes[k], tick=info["tick"] - 1, obs=obs_k,
                             action=action, reward=reward, done=done, campaign=campaigns[k],
                             info=info, behavior=behaviors[k], noise=sigmas[k]))

    final = run_agents(env, actors, obs, infos, on_step=record if log else None)
    summaries = []
    for k, name in enumerate(env.possible_agents):
        info, camp = final[name], env.agent_campaigns[k]
        violated, _ = violation_flags(camp.constraint, camp.target, info)
        summaries.append({
            "agent": name, "behavior": behaviors[k], "constraint": camp.constraint,
            "target": camp.target, "budget": camp.budget, "score": info["score"],
            "expected_score": info["expected_score"], "spend": info["total_cost"],
            "budget_used": info["total_cost"] / camp.budget,
            "conversions": info["total_conversions"], "value": info["total_value"],
            "violated": bool(violated)})
    return rows, summaries


def round_table(days: pd.DataFrame) -> pd.DataFrame:
    """``rounds.csv`` from ``days.csv``: per (round, split, agent) and over all agents
    (``agent = "all"``): days, mean score and expected score, mean spend and budget used, CPA
    (spend / conversions over the CPA days), ROI (value / spend over the ROI days) and the
    violation rate (expected CPA/ROI beyond the target, as ``bidenv evaluate``)."""
    def summarise(g: pd.DataFrame) -> dict:
        cpa, roi = g[g["constraint"] == "cpa"], g[g["constraint"] == "roi"]
        policies = list(dict.fromkeys(g["policy"]))
        return {"policy": policies[0] if len(policies) == 1 else "one per agent",
                "days": len(g),
                "mean_score": g["score"].mean(),
                "mean_expected_score": g["expected_score"].mean(),
                "mean_spend": g["spend"].mean(), "budget_used": g["budget_used"].mean(),
                "cpa": (cpa["spend"].sum() / cpa["conversions"].sum()
                        if cpa["conversions"].sum() > 0 else math.nan),
                "roi": roi["value"].sum() / roi["spend"].sum() if roi["spend"].sum() > 0
                else math.nan,
                "violation_rate": g["violated"].mean()}

    out = []
    for (r, split), g in days.groupby(["round", "split"], sort=True):
        for agent, ga in g.groupby("agent", sort=True):
            out.append({"round": r, "split": split, "agent": agent, **summarise(ga)})
        out.append({"round": r, "split": split, "agent": "all", **summarise(g)})
    table = pd.DataFrame(out, columns=ROUND_COLUMNS)
    order = {s: i for i, s in enumerate(SPLITS)}
    return table.sort_values(["round", "split"], key=lambda s: s.map(order) if s.name == "split"
                             else s, kind="stable").reset_index(drop=True)


def plot_selfplay(table: pd.DataFrame, path, title: str = "") -> Path:
    """Mean expected score per agent on the held-out days, and budget used / violation rate
    of all agents, against the round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.io import atomic_save_figure

    ev = table[table["split"] == "eval"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for agent, g in ev.groupby("agent", sort=True):
        bold = agent == "all"
        ax1.plot(g["round"], g["mean_expected_score"], marker="o",
                 lw=2.5 if bold else 1, color="black" if bold else None,
                 label="all agents" if bold else agent)
    ax1.set(xlabel="round (policies that played it; the last: final checkpoints)",
            ylabel="mean expected score, held-out days")
    ax1.legend(fontsize=7)
    for split, style in (("eval", "-"), ("play", "--")):
        g = table[(table["split"] == split) & (table["agent"] == "all")]
        ax2.plot(g["round"], g["budget_used"], style, marker="o", color="C0",
                 label=f"budget used ({split})")
        ax2.plot(g["round"], g["violation_rate"], style, marker="s", color="C3",
                 label=f"violation rate ({split})")
    ax2.set(xlabel="round", ylabel="share", ylim=(0, 1.05))
    ax2.legend(fontsize=7)
    for ax in (ax1, ax2):
        ax.set_xticks(sorted(table["round"].unique()))
    fig.suptitle(title, fontsize=10)
    return atomic_save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------
def _env_kwargs(config: SelfPlayConfig) -> dict:
    from experiments.market import env_settings

    return env_settings(config.env_id, config.env_kwargs)


def make_env(config: SelfPlayConfig):
    """The market of the run, ``parallel_env(n_agents=K, **env keywords)``; bad keywords are
    refused naming ``--n-agents`` or ``--env-kwargs``."""
    from bidenv.multi_agent import parallel_env

    try:
        return parallel_env(n_agents=config.n_agents, **_env_kwargs(config))
    except (TypeError, ValueError) as exc:
        text = str(exc)
        if text.startswith("--"):
            raise
        if text.startswith("n_agents"):
            raise ValueError("--n-agents" + text[len("n_agents"):]) from None
        raise ValueError(f"--env-kwargs: {text}") from None


def _learner(config: SelfPlayConfig):
    import agents

    try:
        agent = agents.make(config.agent, **config.overrides)
    except TypeError as exc:
        raise ValueError(f"--set: {exc}") from None
    if getattr(agent.config, "opportunity_features", False):
        raise ValueError("--set: opportunity_features needs the opp_* columns, which the "
                         "self-play logs do not have")
    return agent


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def selfplay(config: SelfPlayConfig, out, *, progress: bool = True) -> pd.DataFrame:
    """Run ``config.rounds`` rounds of self-play into ``out``; returns the rounds table.

    See the module docstring for what a round does and what is written.
    """
    from agents.common import fit
    from bidenv.offline import COLUMNS, save_dataset, validate_frame
    from experiments.io import atomic_write_csv, atomic_write_json, check_output_dir

    kind, start = parse_start(config.start)  # every input is checked before any work
    env = make_env(config)
    _learner(config)
    if kind == "checkpoint":
        _load(start)
    out = check_output_dir(out)
    K, D = config.n_agents, config.days
    say = print if progress else (lambda *a, **k: None)
    atomic_write_json(out / "config.json", config.metadata())
    say(f"self-play: {K} {config.agent} learner(s) ({'shared' if config.shared else 'independent'}"
        f"), {config.rounds} rounds of {D} days on {config.env_id}, {config.steps} steps per "
        f"round, {config.eval_days} held-out days")

    def policies_for(r: int):
        """(per-agent policy labels, the K loaded agents or None: heuristics drawn per day)."""
        if r == 0 and kind == "mix":
            return ["mix"] * K, None
        if r == 0:
            labels = [str(config.start).strip()] * K
            loaded = [_load(start) for _ in range(K)]
        else:
            sub = "shared" if config.shared else None
            labels = [f"{config.agent}:round_{r - 1}/{sub or f'agent_{k}'}" for k in range(K)]
            loaded = [_load(label, out) for label in labels]
        return labels, loaded

    def play(r: int, split: str, labels, loaded) -> tuple[list[dict], list[dict]]:
        import agents

        rows, days = [], []
        n = D if split == "play" else config.eval_days
        for d in range(n):
            i = r * D + d if split == "play" else d
            day_seed = (config.seed if split == "play" else config.eval_seed) + i
            plans = [_plan(config, start if kind == "mix" else {"fixed": 1.0},
                           _seed(config.seed, 0 if split == "play" else 1), i * K + k)
                     for k in range(K)]
            if loaded is None:
                policies = [agents.make(p["behavior"], **p["kwargs"]) for p in plans]
                behaviors = [p["behavior"] for p in plans]
            else:
                policies, behaviors = loaded, list(labels)
            sigmas = [p["noise"] if split == "play" else 0.0 for p in plans]
            r_rows, summaries = play_day(
                env, policies, seed=day_seed, sigmas=sigmas,
                noise_seeds=[p["noise_seed"] for p in plans],
                episodes=[i * K + k for k in range(K)], behaviors=behaviors,
                log=split == "play")
            rows += r_rows
            for k, s in enumerate(summaries):
                days.append({"round": r, "split": split, "day": i, "seed": day_seed,
                             "policy": labels[k], **s})
        return rows, days

    start_time = time.perf_counter()
    all_days: list[dict] = []
    frames: list[pd.DataFrame] = []
    for r in range(config.rounds + 1):
        t0 = time.perf_counter()
        labels, loaded = policies_for(r)
        _, ev_days = play(r, "eval", labels, loaded)
        all_days += ev_days
        ev = pd.DataFrame(ev_days)
        if r == config.rounds:
            say(f"final checkpoints: held-out mean expected score "
                f"{ev['expected_score'].mean():.1f} ({time.perf_counter() - t0:.0f} s)")
            break
        rows, pl_days = play(r, "play", labels, loaded)
        all_days += pl_days
        frame = validate_frame(pd.DataFrame(rows, columns=list(COLUMNS)))
        frame.attrs["bidenv"] = {
            "source": "bidenv.selfplay", "round": r, "selfplay": config.metadata(),
            "env_kwargs": _env_kwargs(config), "agent_of_episode": "episode % n_agents",
            "n_agents": K, "policies": labels,
            "day_seeds": {str(i * K + k): config.seed + i
                          for i in range(r * D, (r + 1) * D) for k in range(K)}}
        rdir = out / f"round_{r}"
        rdir.mkdir(exist_ok=True)
        save_dataset(frame, rdir / "data.parquet")
        frames.append(frame)
        t1 = time.perf_counter()
        window = frames if config.window == 0 else frames[-config.window:]
        data = pd.concat(window, ignore_index=True)
        data.attrs["bidenv"] = {**frame.attrs["bidenv"],
                                "rounds": list(range(r + 1 - len(window), r + 1))}
        groups = ([("shared", data)] if config.shared else
                  [(f"agent_{k}", data[data["episode"] % K == k]) for k in range(K)])
        for g, (name, part) in enumerate(groups):
            part = part.reset_index(drop=True)
            part.attrs["bidenv"] = data.attrs["bidenv"]
            learner = _learner(config)
            fit(learner, part, steps=config.steps, seed=_seed(config.seed, r, g),
                out=rdir / name, progress=False, log=False)
        pl = pd.DataFrame(pl_days)
        say(f"round {r}: held-out mean expected score {ev['expected_score'].mean():.1f}; "
            f"played {D} days x {K} agents (mean expected score "
            f"{pl['expected_score'].mean():.1f}, {len(frame)} rows), trained {len(groups)} "
            f"{config.agent} for {config.steps} steps in {time.perf_counter() - t1:.0f} s "
            f"(round {time.perf_counter() - t0:.0f} s)")
    env.close()
    days = pd.DataFrame(all_days)
    days["agent"] = days["agent"].astype(str)
    table = round_table(days)
    atomic_write_csv(out / "days.csv", days)
    atomic_write_csv(out / "rounds.csv", table)
    plot_selfplay(table, out / "selfplay.png",
                  title=f"self-play: {K} {config.agent} learners, {config.days} days per round, "
                  f"{config.eval_days} held-out days")
    say(f"wrote {out}/rounds.csv, days.csv, selfplay.png and round_*/ in "
        f"{time.perf_counter() - start_time:.0f} s")
    return table


def run_selfplay(*, agent: str, n_agents: int, rounds: int, days: int, steps: int, seed: int,
                 env_id: str, env_kwargs: str | dict | None, start: str, noise: float,
                 eval_days: int, eval_seed: int, shared: bool, window: int, overrides,
                 out) -> pd.DataFrame:
    """The ``bidenv selfplay`` command: parse the flags, run, print the rounds table."""
    from experiments.train import parse_overrides

    if isinstance(env_kwargs, str):
        try:
            env_kwargs = json.loads(env_kwargs)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--env-kwargs: not JSON ({exc.msg})") from None
    config = SelfPlayConfig(agent=agent, n_agents=n_agents, rounds=rounds, days=days,
                            steps=steps, seed=seed, env_id=env_id,
                            env_kwargs=env_kwargs or {}, start=start, noise=noise,
                            eval_days=eval_days, eval_seed=eval_seed, shared=shared,
                            window=window, overrides=parse_overrides(overrides))
    table = selfplay(config, out)
    show = table[table["agent"] == "all"][["round", "split", "days", "mean_score",
                                           "mean_expected_score", "budget_used", "cpa", "roi",
                                           "violation_rate"]]
    print(show.round(3).to_string(index=False))
    return table
