"""What generative retrieval does to the market's traffic, against the cascade.

:func:`compare_retrieval` plays the same days (same seeds: the same advertisers, users,
queries and draws) under ``retrieval="cascade"`` and ``retrieval="generative"`` with the agent
out of the market and the default heuristic competitors bidding as they do, and sums per
group of competitors and mode:

* ``eligible`` (opportunities the advertiser may enter: what retrieval decides),
  ``exposures`` (slots won and shown), ``expected_conversions``, ``conversions``
  (realised), ``cost``;

for the groups (all defined on the competitors of each day, from attributes that do not
depend on the retrieval mode):

* ``long_tail``: the bottom quartile by *cascade reach*, the share of the day's
  opportunities where the cascade makes the advertiser eligible (its popularity rank with
  the cascade; ``TrafficMix.cascade_reach``);
* ``cold_start``: the cold-start advertisers (``AdvertiserProfile.cold_start``);
* ``long_tail_or_cold_start``: either of them (the group the calibration targets: exposure
  +40%);
* ``small``: the bottom quartile by daily budget (the calibration targets their
  conversions: +18%);
* ``marketing``: marketing-style advertisers; ``all``: every competitor.

``bidenv traffic-report --retrieval both`` prints the table and writes it with a figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.env import AutoBiddingEnv
from bidenv.validation import check_int
from experiments.io import atomic_save_figure, atomic_write_csv

#: Groups of competitors compared, in table order.
GROUPS = ("long_tail", "cold_start", "long_tail_or_cold_start", "small", "marketing", "all")
#: Summed outcomes per group.
METRICS = ("eligible", "exposures", "expected_conversions", "conversions", "cost")
#: Quantile that defines the long tail (cascade reach) and small advertisers (budget).
GROUP_QUANTILE = 0.25


def _groups(env: AutoBiddingEnv) -> dict:
    """(k,) bool mask of each group of competitors on the env's current day."""
    k = env.k
    comp = np.arange(k) >= 1
    reach = env.traffic.cascade_reach
    budget = env.c.budget
    profile = env.traffic.profile
    long_tail = comp & (reach <= np.quantile(reach[comp], GROUP_QUANTILE))
    cold = comp & profile.cold_start
    return {"long_tail": long_tail, "cold_start": cold, "long_tail_or_cold_start": long_tail | cold,
            "small": comp & (budget <= np.quantile(budget[comp], GROUP_QUANTILE)),
            "marketing": comp & profile.marketing, "all": comp}


def play_day(seed: int, retrieval: str, **env_kwargs) -> dict:
    """One day with the agent out: per-group sums of :data:`METRICS` (and group sizes)."""
    env = AutoBiddingEnv(retrieval=retrieval, **env_kwargs)
    env.reset(seed=seed)
    day = env.day
    exposures, eligible = np.zeros(env.k), np.zeros(env.k)
    simulate = day.simulate_tick

    def counted(alpha, on_auctions=None):
        stats = simulate(alpha, on_auctions)
        exposures[:] += stats.exposures
        eligible[:] += stats.opportunities
        return stats

    day.simulate_tick = counted
    day.play_rest_without_agent(lambda obs: env.alphas(np.zeros(1), obs))
    values = {"eligible": eligible, "exposures": exposures, "expected_conversions": day.exp_conv,
              "conversions": day.conv, "cost": day.spent}
    rows = {}
    for group, mask in _groups(env).items():
        rows[group] = {m: float(values[m][mask].sum()) for m in METRICS}
        rows[group]["advertisers"] = int(mask.sum())
    return rows


def compare_retrieval(days: int = 10, seed: int = 0, *, progress: bool = False,
                      **env_kwargs) -> pd.DataFrame:
    # env_kwargs: AutoBiddingEnv arguments (opportunities_per_day, n_competitors, traffic).
    """Per group: the summed outcomes of ``days`` days (seeds ``seed``..) in both modes.

    Returns a frame indexed by group with ``<metric>_cascade``, ``<metric>_generative`` and
    ``<metric>_change`` (generative / cascade - 1) for each of :data:`METRICS`, and
    ``advertisers`` (competitors in the group over all days).
    """
    days = check_int("days", days, 1)
    total = {mode: {g: dict.fromkeys((*METRICS, "advertisers"), 0.0) for g in GROUPS}
             for mode in ("cascade", "generative")}
    seeds = range(int(seed), int(seed) + days)
    if progress:
        from tqdm.auto import tqdm

        seeds = tqdm(seeds, desc="retrieval days")
    for s in seeds:
        for mode in total:
            for group, row in play_day(s, mode, **env_kwargs).items():
                for key, value in row.items():
                    total[mode][group][key] += value
    table = pd.DataFrame(index=pd.Index(GROUPS, name="group"))
    table["advertisers"] = [int(total["cascade"][g]["advertisers"]) for g in GROUPS]
    for m in METRICS:
        casc = np.array([total["cascade"][g][m] for g in GROUPS])
        gen = np.array([total["generative"][g][m] for g in GROUPS])
        table[f"{m}_cascade"] = casc
        table[f"{m}_generative"] = gen
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"{m}_change"] = gen / casc - 1.0
    return table


#: Rows of the printed summary: (group, metric, label).
SUMMARY_ROWS = (
    ("long_tail_or_cold_start", "eligible", "long-tail and cold-start: eligible opportunities"),
    ("long_tail_or_cold_start", "exposures", "long-tail and cold-start: exposures"),
    ("long_tail", "exposures", "long-tail: exposures"),
    ("cold_start", "exposures", "cold-start: exposures"),
    ("small", "expected_conversions", "small: expected conversions"),
    ("small", "conversions", "small: conversions"),
    ("marketing", "eligible", "marketing-style: eligible opportunities"),
    ("marketing", "exposures", "marketing-style: exposures"),
    ("all", "exposures", "all competitors: exposures"),
    ("all", "expected_conversions", "all competitors: expected conversions"),
)


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """The headline changes of :func:`compare_retrieval` (one row per group and metric)."""
    rows = [{"what": label, "cascade": table.loc[g, f"{m}_cascade"],
             "generative": table.loc[g, f"{m}_generative"],
             "change_pct": 100.0 * table.loc[g, f"{m}_change"]}
            for g, m, label in SUMMARY_ROWS]
    return pd.DataFrame(rows)


def run_retrieval_report(out, *, seed: int = 0, days: int = 10, n_advertisers: int = 48,
                         opportunities_per_day: float = 500_000, traffic="mixed",
                         progress: bool = True) -> pd.DataFrame:
    """``bidenv traffic-report --retrieval both``: both modes side by side.

    Writes a traffic report per mode (``out/cascade``, ``out/generative``: the figures and
    ``summary.csv`` of :func:`experiments.traffic_report.run_traffic_report` for day
    ``seed``), ``retrieval.csv`` (:func:`compare_retrieval` over ``days`` days) and
    ``retrieval_modes.png`` (change per group), and prints the summary table.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from experiments.traffic_report import run_traffic_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_advertisers = check_int("n_advertisers", n_advertisers, 1)
    for mode in ("cascade", "generative"):
        run_traffic_report(out / mode, seed=seed, n_advertisers=n_advertisers,
                           opportunities_per_day=opportunities_per_day, traffic=traffic,
                           progress=progress, retrieval=mode)
    table = compare_retrieval(days, seed, progress=progress, traffic=traffic,
                              n_competitors=n_advertisers - 1,
                              opportunities_per_day=opportunities_per_day)
    written = [atomic_write_csv(out / "retrieval.csv", table.reset_index())]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(GROUPS))
    for i, (metric, label) in enumerate((("exposures", "exposures"),
                                         ("expected_conversions", "expected conversions"))):
        ax.bar(x + (i - 0.5) * 0.38, 100 * table[f"{metric}_change"], 0.38, label=label)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, [g.replace("_", " ") for g in GROUPS], rotation=20, ha="right")
    ax.set_ylabel("generative vs cascade (%)")
    ax.set_title(f"Generative vs cascade retrieval: competitors' totals over {days} days "
                 f"(seeds {seed}-{seed + days - 1})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    written.append(atomic_save_figure(fig, out / "retrieval_modes.png"))
    summary = summary_table(table)
    print(f"generative vs cascade retrieval, {days} days (seeds {seed}-{seed + days - 1}), "
          f"{opportunities_per_day:,.0f} opportunities/day, agent out, heuristic competitors:")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    for path in written:
        print(f"  {path}")
    return summary
