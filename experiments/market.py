"""``bidenv market``: mixed markets of registered or checkpointed bidders, day after day.

The listed agents are the first K advertisers of the multi-agent env
(:func:`bidenv.multi_agent.parallel_env`); the other ``n_competitors + 1 - K`` advertisers of the
day are the env's heuristic competitors (none when K = 48 on the default env: the whole market).
Day ``i`` is ``reset(seed=seed + i)``: every agent instance gets its own campaign as the env
draws it, and the same seeds give the same traffic and competitors whatever the agents are.

Agent specs are those of ``bidenv evaluate`` (``name``, ``name:checkpoint``,
``pkg.module:Class[:checkpoint]``), each optionally followed by ``*count``:
``"dt*8,pid_budget*8,online_lp*4"``. ``dt`` alone is the decision transformer shipped in the
package (``agents/checkpoints/dt``); the other offline agents need a checkpoint (``gas:RUN``).

Every agent is driven as :func:`agents.run_episode` drives it in the single env: ``reset`` with
its campaign, ``act`` on its observation, then ``update(info, opportunities)`` with its own step
info and its own view of the tick's opportunities (the predicted value and least winning cost of
each opportunity it could enter, exactly the single env's ``last_tick_opportunities()`` for
advertiser 0). When every agent has left before the end of the day (budgets used up), the
competitors' remaining ticks are played with the agents out, so the market's totals are always
those of a whole day.

Outputs (``--out DIR``, each written atomically):

* ``agents.csv``: one row per day x agent (the env's final info of that agent);
* ``market.csv``: one row per day: the platform's revenue (total spend of all advertisers), the
  mean price per exposure and per won slot, conversions, and the advertisers' welfare (value of
  what they won at their own declared value: conversions x target CPA for CPA and budget
  campaigns, sales value for ROI campaigns) and surplus (welfare - spend), realised and
  expected (noise-free), summed over all advertisers of the day;
* ``summary.csv``: per agent spec, means over days with 95% bootstrap intervals; scores of
  different campaigns are in different units (conversions, sales value), so besides the raw
  score it gives ``score_per_budget``: the score in money (x target CPA for CPA and budget
  campaigns; an ROI campaign's score is sales value already) per unit of budget;
* ``market.png``.

``run_sweep`` plays the same days for several counts of one spec among K slots (the rest filled
with another spec) and writes ``sweep.csv`` and ``sweep.png`` with one subfolder per count.
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.validation import first_line

DEFAULT_ENV = "bidenv/AutoBidding-v0"
#: Market statistics summarised per day in ``summary.csv`` / ``sweep.csv``.
MARKET_MEANS = {"revenue": "revenue", "price_per_exposure": "price_per_exposure",
                "price_per_won_slot": "price_per_won_slot", "conversions": "conversions",
                "welfare": "welfare", "surplus": "surplus",
                "expected_welfare": "expected_welfare", "expected_surplus": "expected_surplus"}


# --------------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------------
def shipped_dt() -> Path:
    """The decision-transformer checkpoint shipped in the package."""
    import agents

    return Path(agents.__file__).resolve().parent / "checkpoints" / "dt"


def resolve_spec(spec: str) -> str:
    """The spec to build: ``dt`` alone is the shipped checkpoint (``dt:agents/checkpoints/dt``)."""
    return f"dt:{shipped_dt()}" if spec == "dt" else spec


def parse_agents(text, flag: str = "--agents") -> list[tuple[str, int]]:
    """``"dt*8,pid_budget*8"`` -> ``[("dt", 8), ("pid_budget", 8)]`` (count 1 when omitted).

    Raises:
        ValueError: one line naming ``flag``, on an empty list, a bad count or an empty spec.
    """
    if isinstance(text, (list, tuple)):
        items = [x if isinstance(x, str) else f"{x[0]}*{x[1]}" for x in text]
    else:
        items = str(text).split(",")
    out = []
    for item in (x.strip() for x in items):
        if not item:
            continue
        spec, star, count = item.rpartition("*") if "*" in item else (item, "", "1")
        spec = spec.strip()
        try:
            n = int(count)
        except ValueError:
            n = -1
        if not spec or n < (0 if star else 1):
            raise ValueError(f"{flag}: expected specs like 'dt*8,pid_budget*8' (name, "
                             f"name:checkpoint, each with an optional *count), got {item!r}")
        if n:
            out.append((spec, n))
    if not out:
        raise ValueError(f"{flag}: no agents given (expected e.g. 'dt*8,pid_budget*8')")
    return out


def _check_buildable(specs: list[str], flag: str) -> None:
    """Build every distinct spec once: a bad name or checkpoint is refused before any work."""
    import agents

    untrained = set(agents.available("offline")) - {"dt"}
    for spec in dict.fromkeys(specs):
        if spec in untrained:
            raise ValueError(f"{flag}: {spec!r} alone is an untrained model; give its "
                             f"checkpoint as {spec}:RUN_DIR")
        try:
            agents.from_spec(resolve_spec(spec))
        except (ValueError, FileNotFoundError, OSError, TypeError) as exc:
            first = first_line(exc)
            raise ValueError(f"{flag}: cannot build agent {spec!r}: {first}") from None


def env_settings(env_id: str, env_kwargs: dict | None) -> dict:
    """The constructor arguments of ``env_id`` (its registered kwargs, then ``env_kwargs``)."""
    import gymnasium as gym

    import bidenv  # noqa: F401  (registers the ids)
    from experiments.io import check_env_id

    check_env_id(env_id)
    entry = gym.spec(env_id).entry_point
    if entry not in ("bidenv.env:AutoBiddingEnv",):
        raise ValueError(f"--env: {env_id!r} is not an AutoBiddingEnv id (entry point {entry})")
    return {**gym.spec(env_id).kwargs, **dict(env_kwargs or {})}


# --------------------------------------------------------------------------------------------
# One day
# --------------------------------------------------------------------------------------------
_PROTOTYPES: dict[str, object] = {}
_ENVS: dict[tuple, object] = {}


def _agent(spec: str):
    """A fresh instance of ``spec`` (a copy of a prototype loaded once per process): results
    never depend on which days a worker played before."""
    import agents

    if spec not in _PROTOTYPES:
        _PROTOTYPES[spec] = agents.from_spec(resolve_spec(spec))
    return copy.deepcopy(_PROTOTYPES[spec])


def _env(n_agents: int, settings: dict):
    from bidenv.multi_agent import parallel_env

    key = (n_agents, json.dumps(settings, sort_keys=True, default=str))
    if key not in _ENVS:
        _ENVS[key] = parallel_env(n_agents=n_agents, **settings)
    return _ENVS[key]


class _Tap:
    """Watches a :class:`bidenv.day.MarketDay` without changing it: counts every advertiser's
    won slots and exposures and the ticks simulated. Needed because the day keeps no running
    totals of these (only spend, conversions and value), the env's infos give the agents' only,
    and the ticks that :meth:`~bidenv.day.MarketDay.play_rest_without_agent` plays return
    nothing."""

    def __init__(self, day):
        self.wins = np.zeros(day.k)
        self.exposures = np.zeros(day.k)
        self.ticks = 0
        simulate = day.simulate_tick  # the bound method; the instance attribute shadows it

        def tapped(alpha, on_auctions=None):
            stats = simulate(alpha, on_auctions)
            self.wins += stats.wins
            self.exposures += stats.exposures
            self.ticks += 1
            return stats

        day.simulate_tick = tapped


def play_market_day(specs: list[str], settings: dict, seed: int) -> tuple[list[dict], dict]:
    """One day of the market with ``specs[i]`` as advertiser ``i``: (agent rows, market row)."""
    from bidenv.multi_agent import run_agents
    from experiments.evaluate import violation_flags

    K = len(specs)
    env = _env(K, settings)
    obs, infos = env.reset(seed=seed)
    day = env.day
    tap = _Tap(day)
    final = run_agents(env, [_agent(s) for s in specs], obs, infos)
    agents_ticks = day.tick
    if day.tick < day.n_ticks and day.k > K:  # every agent left early: finish the day
        def alphas(obs_all):
            return env.env.alphas(np.zeros(K), obs_all)

        day.play_rest_without_agent(alphas)
    rows = []
    for i, (spec, campaign) in enumerate(zip(specs, env.agent_campaigns)):
        info = final[env.possible_agents[i]]
        violated, violated_realised = violation_flags(campaign.constraint, campaign.target,
                                                      info)
        # Money per unit of score: a CPA (or budget) campaign's score counts conversions, worth
        # the target CPA each; an ROI campaign's counts sales value already.
        unit = 1.0 if campaign.constraint == "roi" else campaign.target_cpa
        own_value = (info["total_value"] if campaign.constraint == "roi"
                     else info["total_conversions"] * campaign.target_cpa)
        rows.append({
            "seed": seed, "spec": spec, "index": i, "agent": env.possible_agents[i],
            "constraint": campaign.constraint, "category": campaign.category,
            "budget": campaign.budget, "target": campaign.target,
            "score": info["score"], "expected_score": info["expected_score"],
            "score_per_budget": info["score"] * unit / campaign.budget,
            "expected_score_per_budget": info["expected_score"] * unit / campaign.budget,
            "cost": info["total_cost"], "conversions": info["total_conversions"],
            "value": info["total_value"], "cpa": info["cpa"], "roi": info["roi"],
            "expected_cost": info["expected_cost"],
            "expected_conversions": info["expected_conversions"],
            "expected_value": info["expected_value"],
            "budget_used": info["total_cost"] / campaign.budget,
            "violated": violated, "violated_realised": violated_realised,
            "welfare": own_value, "surplus": own_value - info["total_cost"],
            "ticks": info["tick"],
        })
    return rows, market_totals(day, seed, K, tap, agents_ticks)


def declared_value(c, conversions: np.ndarray, value: np.ndarray) -> np.ndarray:
    """(k,) what each advertiser's outcomes are worth at its own declared value: conversions x
    target CPA (CPA and budget campaigns: the bid scale), sales value (ROI campaigns)."""
    return np.where(c.is_roi, value, conversions * np.nan_to_num(c.target_cpa))


def market_totals(day, seed: int, n_agents: int, tap: _Tap, agents_ticks: int) -> dict:
    """The day's market row from the :class:`MarketDay` totals of all its advertisers."""
    revenue = float(day.spent.sum())
    exposures, wins = float(tap.exposures.sum()), float(tap.wins.sum())
    welfare = float(declared_value(day.c, day.conv, day.value).sum())
    expected_welfare = float(declared_value(day.c, day.exp_conv, day.exp_value).sum())
    return {
        "seed": seed, "advertisers": day.k, "agents": n_agents,
        "revenue": revenue, "agents_spend": float(day.spent[:n_agents].sum()),
        "exposures": exposures, "won_slots": wins,
        "price_per_exposure": revenue / exposures if exposures else math.nan,
        "price_per_won_slot": revenue / wins if wins else math.nan,
        "conversions": float(day.conv.sum()), "value": float(day.value.sum()),
        "expected_conversions": float(day.exp_conv.sum()),
        "expected_cost": float(day.exp_cost.sum()),
        "welfare": welfare, "surplus": welfare - revenue,
        "expected_welfare": expected_welfare,
        "expected_surplus": expected_welfare - float(day.exp_cost.sum()),
        "budget_total": float(day.c.budget.sum()),
        "agents_ticks": agents_ticks, "market_ticks": tap.ticks,
    }


def _run_day(task):
    point, specs, settings, day, seed = task
    rows, market = play_market_day(list(specs), settings, seed)
    for row in rows:
        row.update(point=point, day=day)
    market.update(point=point, day=day)
    return rows, market


# --------------------------------------------------------------------------------------------
# Running and summarising
# --------------------------------------------------------------------------------------------
def _order(frame: pd.DataFrame, first: list[str]) -> pd.DataFrame:
    return frame[first + [c for c in frame.columns if c not in first]]


def play_days(points: dict[str, list[str]], *, days: int, seed: int, settings: dict,
              workers: int, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Play ``days`` days (seeds ``seed + i``) of every point (label -> advertiser specs);
    returns (agent rows, market rows), in task order whatever ``workers`` is."""
    from tqdm.auto import tqdm

    from experiments.pool import map_ordered

    tasks = [(label, tuple(specs), settings, d, seed + d) for label, specs in points.items()
             for d in range(days)]
    with tqdm(total=len(tasks), desc="market days", unit="day", disable=not progress) as bar:
        results = map_ordered(_run_day, tasks, workers, on_done=lambda _: bar.update())
    agent_rows = [row for rows, _ in results for row in rows]
    market_rows = [market for _, market in results]
    agents_frame = _order(pd.DataFrame(agent_rows), ["point", "day", "seed", "spec", "index"])
    market_frame = _order(pd.DataFrame(market_rows), ["point", "day", "seed"])
    return agents_frame, market_frame


def summarise(agents_frame: pd.DataFrame, market_frame: pd.DataFrame) -> pd.DataFrame:
    """Per agent spec (and one ``market`` row): means over days with 95% bootstrap intervals.

    An agent spec's day value is the mean over its instances that day; intervals resample
    days. ``cpa`` is its total cost / total conversions over its CPA campaigns, ``roi`` its
    total value / total cost over its ROI campaigns."""
    from experiments.stats import mean_intervals

    rows = []
    for spec, group in agents_frame.groupby("spec", sort=False):
        per_day = group.groupby("day")[["score", "expected_score", "score_per_budget",
                                        "expected_score_per_budget", "cost", "budget_used",
                                        "welfare", "surplus"]].mean()
        row = {"spec": spec, "instances": int(group["index"].nunique()),
               "days": int(group["day"].nunique())}
        row.update(mean_intervals(per_day, {"score": "mean_score",
                                            "expected_score": "mean_expected_score",
                                            "score_per_budget": "mean_score_per_budget",
                                            "expected_score_per_budget":
                                                "mean_expected_score_per_budget",
                                            "cost": "mean_spend"}))
        row["budget_used"] = float(group["budget_used"].mean())
        cpa = group[group["constraint"] == "cpa"]
        roi = group[group["constraint"] == "roi"]
        row["cpa"] = (float(cpa["cost"].sum() / cpa["conversions"].sum())
                      if len(cpa) and cpa["conversions"].sum() > 0 else math.nan)
        row["roi"] = (float(roi["value"].sum() / roi["cost"].sum())
                      if len(roi) and roi["cost"].sum() > 0 else math.nan)
        row["violation_rate"] = float(group["violated"].mean())
        row["violation_rate_realised"] = float(group["violated_realised"].mean())
        row["mean_surplus"] = float(per_day["surplus"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def market_summary(market_frame: pd.DataFrame) -> dict:
    """Means over days of the market statistics, with 95% bootstrap intervals."""
    from experiments.stats import mean_intervals

    return mean_intervals(market_frame, MARKET_MEANS)


def _plot_market(agents_frame, market_frame, summary, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.io import atomic_save_figure

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(summary))
    for j, (col, label) in enumerate([("mean_expected_score_per_budget", "expected"),
                                      ("mean_score_per_budget", "realised")]):
        mean = summary[col].to_numpy(float)
        err = np.vstack([mean - summary[f"{col}_low"], summary[f"{col}_high"] - mean])
        ax1.bar(x + (j - 0.5) * 0.38, mean, 0.38, yerr=err, capsize=3, label=label)
    ax1.set_xticks(x, [str(s)[:24] for s in summary["spec"]], rotation=20, ha="right")
    ax1.set_ylabel("score in money / budget")
    ax1.set_title("Agents (95% intervals over days)")
    ax1.legend()
    days = market_frame["day"].to_numpy()
    for col, label in [("revenue", "platform revenue"), ("welfare", "advertisers' welfare"),
                       ("surplus", "advertisers' surplus")]:
        ax2.plot(days, market_frame[col], marker="o", label=label)
    ax2.set_xlabel("day")
    ax2.set_ylabel("money per day (all advertisers)")
    ax2.set_title("Market")
    ax2.legend()
    atomic_save_figure(fig, path)


def _write(out: Path, agents_frame, market_frame, summary) -> None:
    from experiments.io import atomic_write_csv

    atomic_write_csv(out / "agents.csv", agents_frame.drop(columns="point"))
    atomic_write_csv(out / "market.csv", market_frame.drop(columns="point"))
    atomic_write_csv(out / "summary.csv", summary)
    _plot_market(agents_frame, market_frame, summary, out / "market.png")


def _prepare(all_specs: list[str], env_id: str, env_kwargs, flag: str = "--agents") -> dict:
    from bidenv.env import AutoBiddingEnv

    settings = env_settings(env_id, env_kwargs)
    try:
        most = AutoBiddingEnv(**settings).n_competitors + 1
    except (TypeError, ValueError) as exc:
        if not env_kwargs:
            raise
        first = first_line(exc)
        raise ValueError(f"--env-kwargs: {first}") from None
    for specs in all_specs:
        if len(specs) > most:
            raise ValueError(f"{flag}: {len(specs)} agents, but the market of {env_id} has "
                             f"{most} advertisers")
    _check_buildable([s for specs in all_specs for s in specs], flag)
    return settings


def _expand(pairs: list[tuple[str, int]]) -> list[str]:
    return [spec for spec, n in pairs for _ in range(n)]


def run_market(specs, days: int, seed: int = 0, env_id: str = DEFAULT_ENV, workers: int = 1,
               out="bidenv-market", *, env_kwargs: dict | None = None,
               progress: bool = True) -> dict:
    """Play ``days`` market days with ``specs`` as the first K advertisers; write the files.

    Args:
        specs: ``"dt*8,pid_budget*8"`` or a list of specs / (spec, count) pairs.
        days: Days to play; day ``i`` uses seed ``seed + i``.
        seed: First day's seed.
        env_id: An ``AutoBiddingEnv`` id (its registered settings, then ``env_kwargs``).
        workers: Days played in parallel (:func:`experiments.pool.map_ordered`); the files are
            identical for any value.
        out: Output folder.
        env_kwargs: Env settings over the id's (e.g. ``{"n_competitors": 11}``).

    Returns:
        ``{"agents": frame, "market": frame, "summary": frame, "out": Path}``.
    """
    from bidenv.validation import check_int
    from experiments.io import check_output_dir

    days = check_int("--days", days, 1)
    workers = check_int("--workers", workers, 1)
    pairs = parse_agents(specs)
    expanded = _expand(pairs)
    settings = _prepare([expanded], env_id, env_kwargs)
    out = check_output_dir(out)
    start = time.perf_counter()
    agents_frame, market_frame = play_days({"market": expanded}, days=days, seed=seed,
                                           settings=settings, workers=workers, progress=progress)
    summary = summarise(agents_frame, market_frame)
    _write(out, agents_frame, market_frame, summary)
    if progress:
        m = market_summary(market_frame)
        print(f"{len(expanded)} agents ({', '.join(f'{s}*{n}' for s, n in pairs)}) in "
              f"{env_id}, {days} day(s) from seed {seed}: revenue {m['revenue']:.0f}/day, "
              f"welfare {m['welfare']:.0f}, surplus {m['surplus']:.0f}, price per exposure "
              f"{m['price_per_exposure']:.4f}")
        print(summary[["spec", "instances", "mean_score", "mean_expected_score",
                       "mean_expected_score_per_budget", "mean_expected_score_per_budget_low",
                       "mean_expected_score_per_budget_high", "mean_spend", "cpa", "roi",
                       "violation_rate"]].to_string(index=False, float_format="%.3g"))
        print(f"wrote agents.csv, market.csv, summary.csv, market.png in {out} "
              f"({time.perf_counter() - start:.0f} s)")
    return {"agents": agents_frame, "market": market_frame, "summary": summary, "out": out}


# --------------------------------------------------------------------------------------------
# Sweep: the share of one bidder among K slots
# --------------------------------------------------------------------------------------------
def parse_sweep(text: str) -> tuple[str, list[int]]:
    """``"dt:0,4,8"`` (or ``"gas:RUN:0,8,16"``) -> ``("dt", [0, 4, 8])``: the spec is
    everything before the last ``:``."""
    spec, sep, counts = str(text).rpartition(":")
    try:
        values = [int(x) for x in counts.split(",") if x.strip()]
    except ValueError:
        values = []
    if not sep or not spec.strip() or not values or min(values) < 0:
        raise ValueError(f"--sweep: expected SPEC:COUNTS like 'dt:0,4,8,12,16', got {text!r}")
    return spec.strip(), sorted(dict.fromkeys(values))


def run_sweep(sweep: str, fill: str, slots: int, days: int, seed: int = 0,
              env_id: str = DEFAULT_ENV, workers: int = 1, out="bidenv-market-sweep", *,
              env_kwargs: dict | None = None, progress: bool = True) -> pd.DataFrame:
    """For each count m of ``sweep`` (``"dt:0,4,8"``): the market of ``spec*m`` and
    ``fill*(slots - m)`` on the same days; writes ``OUT/<spec>_<m>/`` (the market files of
    that point) and ``OUT/sweep.csv``, ``OUT/sweep.png``. Returns the sweep frame."""
    from bidenv.validation import check_int
    from experiments.io import atomic_write_csv, check_output_dir

    days = check_int("--days", days, 1)
    workers = check_int("--workers", workers, 1)
    slots = check_int("--slots", slots, 1)
    spec, counts = parse_sweep(sweep)
    fill = str(fill).strip()
    if not fill or "*" in fill or "," in fill:
        raise ValueError(f"--fill: expected one agent spec like pid_budget, got {fill!r}")
    if counts[-1] > slots:
        raise ValueError(f"--sweep: count {counts[-1]} is more than --slots {slots}")
    label = spec.split(":")[0].replace(".", "_") or "agent"
    points = {f"{label}_{m}": [spec] * m + [fill] * (slots - m) for m in counts}
    settings = _prepare(list(points.values()), env_id, env_kwargs, "--sweep/--fill/--slots")
    out = check_output_dir(out)
    start = time.perf_counter()
    agents_frame, market_frame = play_days(points, days=days, seed=seed, settings=settings,
                                           workers=workers, progress=progress)
    base = next(iter(points)) if counts[0] == 0 else None  # the all-fill market
    rows = []
    for m, point in zip(counts, points):
        a = agents_frame[agents_frame["point"] == point]
        mk = market_frame[market_frame["point"] == point]
        summary = summarise(a, mk)
        _write(check_output_dir(out / point), a, mk, summary)
        row = {"point": point, "count": m, "slots": slots, "share": m / slots,
               "days": days, "advertisers": int(mk["advertisers"].iloc[0])}
        row.update(market_summary(mk))
        row.update(_market_paired(market_frame, point, base))
        for name, who in (("sweep", spec), ("fill", fill)):
            s = summary[summary["spec"] == who]
            for col in ("mean_score", "mean_expected_score", "mean_score_per_budget",
                        "mean_expected_score_per_budget"):
                for suffix in ("", "_low", "_high"):
                    row[f"{name}_{col}{suffix}"] = (float(s[col + suffix].iloc[0]) if len(s)
                                                    else math.nan)
            for col in ("mean_spend", "violation_rate", "budget_used"):
                row[f"{name}_{col}"] = float(s[col].iloc[0]) if len(s) else math.nan
            row.update(_paired(agents_frame, point, base, who, f"{name}_vs_all_fill"))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.insert(1, "sweep_spec", spec)
    frame.insert(2, "fill_spec", fill)
    atomic_write_csv(out / "sweep.csv", frame)
    _plot_sweep(frame, spec, fill, env_id, out / "sweep.png")
    if progress:
        cols = ["count", "revenue", "price_per_exposure", "welfare", "surplus",
                "welfare_vs_all_fill", "sweep_mean_expected_score_per_budget",
                "fill_mean_expected_score_per_budget", "sweep_vs_all_fill",
                "fill_vs_all_fill"]
        print(frame[cols].to_string(index=False, float_format="%.4g"))
        print(f"wrote sweep.csv, sweep.png and {len(points)} market folders in {out} "
              f"({time.perf_counter() - start:.0f} s)")
    return frame


def _market_paired(market_frame: pd.DataFrame, point: str, base: str | None) -> dict:
    """Each market statistic at ``point`` minus the all-fill market's on the same day (common
    random numbers), mean over days with a 95% interval: ``<stat>_vs_all_fill``."""
    from experiments.stats import mean_intervals

    names = {col: f"{col}_vs_all_fill" for col in MARKET_MEANS}
    if base is None:
        return {f"{n}{x}": math.nan for n in names.values() for x in ("", "_low", "_high")}
    here = market_frame[market_frame["point"] == point].set_index("day")[list(names)]
    ref = market_frame[market_frame["point"] == base].set_index("day")[list(names)]
    return mean_intervals(here - ref.loc[here.index], names)


def _paired(agents_frame: pd.DataFrame, point: str, base: str | None, spec: str,
            name: str) -> dict:
    """The mean change of ``spec``'s instances at ``point`` in expected score per budget
    against the same advertiser-days (day and index: the same campaigns) in the all-fill
    market ``base`` (the sweep's count 0), with a 95% interval over days; NaN without one."""
    from experiments.stats import mean_intervals

    col = "expected_score_per_budget"
    here = agents_frame[(agents_frame["point"] == point) & (agents_frame["spec"] == spec)]
    if base is None or here.empty:
        return {name: math.nan, f"{name}_low": math.nan, f"{name}_high": math.nan}
    ref = agents_frame[agents_frame["point"] == base].set_index(["day", "index"])[col]
    diff = here[col].to_numpy() - ref.loc[list(zip(here["day"], here["index"]))].to_numpy()
    per_day = pd.DataFrame({"day": here["day"].to_numpy(), "diff": diff}).groupby("day").mean()
    return mean_intervals(per_day, {"diff": name})


def _plot_sweep(frame: pd.DataFrame, spec: str, fill: str, env_id: str, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.io import atomic_save_figure

    x = frame["count"].to_numpy(float)
    slots = int(frame["slots"].iloc[0])

    def band(ax, col, label, **kw):
        mean = frame[col].to_numpy(float)
        line = ax.plot(x, mean, marker="o", label=label, **kw)[0]
        ax.fill_between(x, frame[f"{col}_low"], frame[f"{col}_high"], alpha=0.2,
                        color=line.get_color())

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    band(axes[0], "revenue", "platform revenue")
    band(axes[0], "welfare", "advertisers' welfare")
    band(axes[0], "surplus", "advertisers' surplus")
    axes[0].set_ylabel("money per day (all advertisers)")
    axes[0].set_title("Market")
    paired = frame["revenue_vs_all_fill"].notna().any()
    if paired:
        for col, label in (("revenue", "platform revenue"), ("welfare", "advertisers' welfare"),
                           ("surplus", "advertisers' surplus")):
            band(axes[1], f"{col}_vs_all_fill", label)
        axes[1].axhline(0, color="grey", lw=0.8)
        axes[1].set_ylabel(f"change vs the all-{fill[:20]} market")
        axes[1].set_title("Market, paired by day")
    else:
        band(axes[1], "price_per_exposure", "price per exposure")
        axes[1].set_ylabel("mean price")
        axes[1].set_title("Prices")
    for who, name in (("sweep", spec), ("fill", fill)):
        col = f"{who}_vs_all_fill" if paired else f"{who}_mean_expected_score_per_budget"
        keep = frame[col].notna().to_numpy()
        line = axes[2].plot(x[keep], frame[col].to_numpy(float)[keep], marker="o",
                            label=name[:30])[0]
        axes[2].fill_between(x[keep], frame[f"{col}_low"][keep], frame[f"{col}_high"][keep],
                             alpha=0.2, color=line.get_color())
    if paired:
        axes[2].axhline(0, color="grey", lw=0.8)
        axes[2].set_ylabel("expected score / budget,\nchange vs the same campaigns")
    else:
        axes[2].set_ylabel("expected score in money / budget")
    axes[2].set_title(f"Bidders, paired with the all-{fill[:20]} market" if paired
                      else "Bidders")
    for ax in axes:
        ax.set_xlabel(f"{spec[:20]} bidders among the first {slots} advertisers")
        ax.legend(fontsize=8)
    fig.suptitle(f"{env_id}: {spec} replacing {fill}, {int(frame['days'].iloc[0])} days per "
                 "point (95% intervals over days)", fontsize=10)
    atomic_save_figure(fig, path)
