"""``bidenv traffic-report``: look at what the traffic generators produce for one day.

Binds the chosen traffic (``"mixed"``, ``"feed"`` or ``"search"``) to one episode's
advertisers exactly as the environment does, draws the day tick by tick and writes to ``out``:

* ``diurnal_volume.png``: opportunities per half hour by source (realised and expected);
* ``pvalue_distribution.png``: distribution of predicted conversion rates (pValue) over the
  cells where an advertiser may bid, by source;
* ``eligible_per_opportunity.png``: how many advertisers may enter each auction, by source;
* ``query_rank_frequency.png``: search query frequency against rank on log-log axes, with
  the fitted power law (the Zipf long tail);
* ``session_fatigue.png``: feed click rate and pValue by ads already seen in the session;
* ``summary.csv``: one row per source and one for the whole day (volumes, diurnal shape,
  pValue level and spread, calibration, click rates, eligibility, query statistics).

Files are written atomically (to a temporary name in ``out``, then renamed into place with
``os.replace``), so a reader never sees a half-written figure or table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bidenv.env import AutoBiddingEnv
from bidenv.traffic import SOURCE_FEED, SOURCE_NAMES, SOURCE_SEARCH, TrafficMix
from bidenv.validation import check_int
from experiments.io import atomic_save_figure, atomic_write_csv

#: Eligible cells kept per tick and source for the pValue histogram.
_PVALUE_SAMPLE = 4000
#: Session positions shown in the fatigue figure.
_POSITIONS = 16


def _source_of(traffic, source_id):
    """The bound sub-source with ``source_id`` (or the source itself)."""
    if isinstance(traffic, TrafficMix):
        for s in traffic.sources:
            if s.source_id == source_id:
                return s
        return None
    return traffic if traffic.source_id == source_id else None


def zipf_fit(counts: np.ndarray, max_rank: int = 200) -> tuple[float, float]:
    """(slope, intercept) of log frequency on log rank over ranks 1..``max_rank`` seen."""
    counts = np.asarray(counts, dtype=np.float64)
    rank = np.arange(1, len(counts) + 1)
    keep = (counts > 0) & (rank <= max_rank)
    if keep.sum() < 3:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log(rank[keep]), np.log(counts[keep]), 1)
    return float(slope), float(intercept)


def _shape(per_tick: np.ndarray) -> dict:
    """Diurnal figures of an expected per-tick volume curve."""
    n = len(per_tick)
    total = max(per_tick.sum(), 1e-12)
    hours = (np.arange(n) + 0.5) * 24.0 / n
    part = lambda lo, hi: float(per_tick[(hours >= lo) & (hours < hi)].sum() / total)  # noqa: E731
    return {"peak_to_trough": float(per_tick.max() / max(per_tick.min(), 1e-12)),
            "peak_hour": float(hours[np.argmax(per_tick)] - 12.0 / n),
            "trough_hour": float(hours[np.argmin(per_tick)] - 12.0 / n),
            "share_00_06": part(0, 6), "share_06_18": part(6, 18), "share_18_24": part(18, 24)}


def run_traffic_report(out, *, seed: int = 0, n_advertisers: int = 48,
                       opportunities_per_day: float = 500_000, traffic="mixed",
                       progress: bool = True, retrieval: str = "cascade") -> pd.DataFrame:
    """Draw one day of traffic, write figures and ``summary.csv`` to ``out``.

    Args:
        out: Output folder (created if missing).
        seed: Episode seed (advertisers and the day's draws).
        n_advertisers: Advertisers in the market (the agent and its competitors).
        opportunities_per_day: Expected daily volume.
        traffic: ``"mixed"``, ``"feed"``, ``"search"`` or a traffic source instance.
        progress: Show a progress bar.
        retrieval: ``"cascade"`` (default) or ``"generative"`` (the traffic's retrieval mode;
            :func:`experiments.retrieval.run_retrieval_report` compares the two).

    Returns:
        The summary table (one row per source, then ``all``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm.auto import tqdm

    n_advertisers = check_int("n_advertisers", n_advertisers, 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = AutoBiddingEnv(n_competitors=int(n_advertisers) - 1,
                         opportunities_per_day=opportunities_per_day, traffic=traffic,
                         retrieval=retrieval)
    env.reset(seed=seed)
    source = env.traffic
    k, n_ticks = env.k, env.n_ticks
    rng = np.random.default_rng(seed)
    sample_rng = np.random.default_rng([seed, 1])
    ids = (SOURCE_FEED, SOURCE_SEARCH)
    volume = np.zeros((2, n_ticks))
    pv_samples = {s: [] for s in ids}
    stats = {s: dict(pv_sum=0.0, cells=0.0, true_est=0.0, pred_est=0.0, click=0.0,
                     zero=0, elig_hist=np.zeros(k + 1)) for s in ids}
    fatigue = np.zeros((3, _POSITIONS))  # count, click sum, mean-pValue sum by position
    search = _source_of(source, SOURCE_SEARCH)
    query_counts = np.zeros(search.vocabulary_size if search is not None else 1)
    profile = getattr(source, "profile", None)
    sigma_ratio = {"established": [], "cold_start": []}
    for tick in tqdm(range(n_ticks), desc="drawing traffic", unit="tick", disable=not progress):
        b = source.sample(tick, rng)
        per_opp = b.eligible_per_opportunity()
        established = np.ones(k, bool)
        if b.cold_start is not None:
            established &= ~b.cold_start
        if "marketing" in b.column_info:
            established &= ~b.column_info["marketing"]
        for s in ids:
            rows = np.flatnonzero(b.source == s)
            volume[s, tick] = len(rows)
            if not len(rows):
                continue
            st = stats[s]
            sub = b.take(rows)
            pv = sub.pvalue
            elig = sub.eligible
            st["pv_sum"] += float(pv.sum(dtype=np.float64))
            st["cells"] += float(per_opp[rows].sum())
            st["click"] += float(sub.click_rate.sum(dtype=np.float64))
            st["zero"] += int(np.count_nonzero(per_opp[rows] == 0))
            st["elig_hist"] += np.bincount(per_opp[rows], minlength=k + 1)[:k + 1]
            cells = np.flatnonzero(elig.ravel())
            if len(cells):
                pick = sample_rng.choice(cells, size=min(_PVALUE_SAMPLE, len(cells)),
                                         replace=False)
                pv_samples[s].append(pv.ravel()[pick])
                r, c = np.divmod(pick, k)
                keep = established[c]
                st["true_est"] += float(sub.p_conversion_at(r[keep], c[keep]).sum())
                st["pred_est"] += float(pv.ravel()[pick][keep].sum(dtype=np.float64))
                ratio = (sub.pvalue_sigma.ravel()[pick] / np.maximum(pv.ravel()[pick], 1e-30))
                sigma_ratio["established"].append(ratio[keep & (pv.ravel()[pick] > 0)])
                if b.cold_start is not None:
                    cold = b.cold_start[c] & (pv.ravel()[pick] > 0)
                    sigma_ratio["cold_start"].append(ratio[cold])
            if s == SOURCE_SEARCH and sub.query is not None:
                query_counts += np.bincount(sub.query, minlength=len(query_counts))
            if s == SOURCE_FEED and sub.session_position is not None:
                pos = np.minimum(sub.session_position, _POSITIONS - 1)
                fatigue[0] += np.bincount(pos, minlength=_POSITIONS)
                fatigue[1] += np.bincount(pos, weights=sub.click_rate, minlength=_POSITIONS)
                mean_pv = pv.sum(axis=1, dtype=np.float64) / np.maximum(per_opp[rows], 1)
                fatigue[2] += np.bincount(pos, weights=mean_pv, minlength=_POSITIONS)

    present = [s for s in ids if volume[s].sum() > 0]
    hours = (np.arange(n_ticks) + 0.5) * 24.0 / n_ticks
    colors = {SOURCE_FEED: "tab:blue", SOURCE_SEARCH: "tab:orange"}
    written = []

    # Diurnal volume by source.
    fig, ax = plt.subplots(figsize=(8, 4))
    for s in present:
        sub = _source_of(source, s)
        ax.plot(hours, volume[s], color=colors[s], lw=1.5, label=f"{SOURCE_NAMES[s]} (drawn)")
        if sub is not None:
            ax.plot(hours, sub.expected_volume(), color=colors[s], lw=1, ls="--",
                    label=f"{SOURCE_NAMES[s]} (expected)")
    if len(present) > 1:
        ax.plot(hours, volume.sum(axis=0), color="k", lw=1.5, label="all")
    ax.set(xlabel="hour of day", ylabel="opportunities per tick", xlim=(0, 24),
           title=f"Diurnal volume ({volume.sum():,.0f} opportunities, seed {seed})")
    ax.set_xticks(range(0, 25, 3))
    ax.legend(fontsize=8)
    written.append(atomic_save_figure(fig, out / "diurnal_volume.png"))

    # pValue distributions over eligible cells.
    fig, ax = plt.subplots(figsize=(8, 4))
    for s in present:
        if pv_samples[s]:
            v = np.concatenate(pv_samples[s])
            v = v[v > 0]
            ax.hist(np.log10(v), bins=80, density=True, histtype="step", lw=1.5,
                    color=colors[s], label=f"{SOURCE_NAMES[s]} (mean {v.mean():.2e})")
            ax.axvline(np.log10(v.mean()), color=colors[s], ls=":", lw=1)
    ax.set(xlabel="log10 pValue (predicted conversions per exposure)", ylabel="density",
           title="pValue where an advertiser may bid")
    ax.legend(fontsize=8)
    written.append(atomic_save_figure(fig, out / "pvalue_distribution.png"))

    # Eligible advertisers per opportunity.
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(present), 1)
    for i, s in enumerate(present):
        h = stats[s]["elig_hist"]
        ax.bar(np.arange(k + 1) + (i - (len(present) - 1) / 2) * width, h / max(h.sum(), 1),
               width=width, color=colors[s], label=SOURCE_NAMES[s])
    ax.set(xlabel=f"advertisers that may enter the auction (of {k})",
           ylabel="share of opportunities", title="Eligible advertisers per opportunity")
    ax.legend(fontsize=8)
    written.append(atomic_save_figure(fig, out / "eligible_per_opportunity.png"))

    # Query rank-frequency on log-log axes.
    fig, ax = plt.subplots(figsize=(6, 5))
    slope = float("nan")
    if search is not None and query_counts.sum() > 0:
        rank = np.arange(1, len(query_counts) + 1)
        seen = query_counts > 0
        ax.loglog(rank[seen], query_counts[seen], ".", ms=3, color=colors[SOURCE_SEARCH],
                  label="queries drawn")
        slope, intercept = zipf_fit(query_counts)
        fit_rank = rank[rank <= 200]
        ax.loglog(fit_rank, np.exp(intercept) * fit_rank ** slope, "k--", lw=1,
                  label=f"fit on ranks 1-200: slope {slope:.2f}")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no search traffic", ha="center", va="center",
                transform=ax.transAxes)
    ax.set(xlabel="query rank", ylabel="opportunities in the day",
           title="Search query rank-frequency")
    written.append(atomic_save_figure(fig, out / "query_rank_frequency.png"))

    # Feed session fatigue.
    fig, ax = plt.subplots(figsize=(7, 4))
    if fatigue[0].sum() > 0:
        seen = fatigue[0] > 0
        pos = np.arange(_POSITIONS)[seen]
        ax.plot(pos, fatigue[1][seen] / fatigue[0][seen], "o-", label="click rate")
        ax.set_ylabel("click rate")
        ax2 = ax.twinx()
        ax2.plot(pos, fatigue[2][seen] / fatigue[0][seen], "s--", color="tab:red",
                 label="mean pValue of candidates")
        ax2.set_ylabel("mean pValue", color="tab:red")
    else:
        ax.text(0.5, 0.5, "no feed traffic", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel=f"ads already seen in the session ({_POSITIONS - 1} = that many or more)",
           title="Feed: fatigue and interest drift within sessions")
    written.append(atomic_save_figure(fig, out / "session_fatigue.png"))

    # Summary table.
    rows = []
    total = volume.sum()
    for key in [SOURCE_NAMES[s] for s in present] + ["all"]:
        chosen = present if key == "all" else [s for s in present if SOURCE_NAMES[s] == key]
        if key == "all":
            expected = source.expected_volume()
        else:
            expected = _source_of(source, chosen[0]).expected_volume()
        st = {name: sum(stats[s][name] for s in chosen)
              for name in ("pv_sum", "cells", "true_est", "pred_est", "click", "zero")}
        hist = np.sum([stats[s]["elig_hist"] for s in chosen], axis=0)
        n = float(volume[chosen].sum())
        pv = np.concatenate([np.concatenate(pv_samples[s]) for s in chosen if pv_samples[s]]
                            or [np.zeros(0)])
        row = {"source": key, "opportunities": int(n), "share": n / max(total, 1),
               **_shape(np.asarray(expected, dtype=np.float64)),
               "pvalue_mean": st["pv_sum"] / max(st["cells"], 1),
               "pvalue_median": float(np.median(pv)) if len(pv) else float("nan"),
               "pvalue_p90": float(np.quantile(pv, 0.9)) if len(pv) else float("nan"),
               "true_over_predicted_established": st["true_est"] / max(st["pred_est"], 1e-30),
               "click_rate_mean": st["click"] / max(n, 1),
               "eligible_mean": float(hist @ np.arange(k + 1) / max(hist.sum(), 1)),
               "eligible_median": float(np.searchsorted(np.cumsum(hist), hist.sum() / 2)),
               "zero_eligible_share": st["zero"] / max(n, 1),
               "advertisers": k, "seed": seed}
        if key in ("search", "all"):
            row["distinct_queries"] = int(np.count_nonzero(query_counts))
            row["zipf_slope"] = slope
        rows.append(row)
    summary = pd.DataFrame(rows)
    for kind, values in sigma_ratio.items():
        v = np.concatenate(values) if values else np.zeros(0)
        summary[f"sigma_ratio_{kind}"] = float(v.mean()) if len(v) else float("nan")
    if profile is not None:
        summary["cold_start_advertisers"] = int(np.count_nonzero(profile.cold_start))
        summary["marketing_advertisers"] = int(np.count_nonzero(profile.marketing))
    written.append(atomic_write_csv(out / "summary.csv", summary))
    print(f"traffic report ({traffic if isinstance(traffic, str) else type(traffic).__name__},"
          f" {retrieval} retrieval, {total:,.0f} opportunities, {k} advertisers, seed {seed})"
          f" written to {out}:")
    for path in written:
        print(f"  {path}")
    return summary
