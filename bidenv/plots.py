"""Figures for budget simulation and single days (matplotlib).

Every function draws on ``ax`` (a new figure's axes when ``None``) and returns the axes, so
figures compose in notebooks::

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    roi_curve(frame, ax=axes[0])
    marginal_curve(frame, ax=axes[1])

``frame`` arguments are :func:`experiments.analysis.simulate_budget` outputs; ``trace`` arguments
are the per-tick frames of :func:`experiments.analysis.simulate_day` (``trace=True``).
"""

from __future__ import annotations

import numpy as np


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def _groups(frame):
    """(label, rows) per strategy and target, budgets increasing."""
    multi = frame["target"].nunique() > 1
    for (strategy, target), g in frame.groupby(["strategy", "target"], sort=False):
        label = f"{strategy} @ {target:g}" if multi else str(strategy)
        yield label, target, g.sort_values("budget")


def _band(ax, x, lo, hi, color):
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        ax.fill_between(np.asarray(x, float)[ok], lo[ok], hi[ok], color=color, alpha=0.15, lw=0)


def roi_curve(frame, *, y: str = "conversions", ax=None, target_line: bool = True,
              annotate_budgets: bool = True):
    """Spend against conversions (or sales value): what each extra unit of spend buys.

    One line per strategy (and target), one point per budget, with the 95% interval of ``y``
    as error bars. With ``target_line`` the line ``y = spend / target CPA`` (conversions) or
    ``y = target ROI x spend`` (value) is drawn: points above it are better than the target.

    Args:
        frame: :func:`experiments.analysis.simulate_budget` output.
        y: ``"conversions"`` or ``"value"``.
        ax: Axes to draw on (None: a new figure).
        target_line: Draw the target line(s).
        annotate_budgets: Label each point with its budget.
    """
    if y not in ("conversions", "value"):
        raise ValueError(f"y must be 'conversions' or 'value', got {y!r}")
    ax = _axes(ax)
    targets_drawn = set()
    xmax = 1.1 * float(np.nanmax(frame["spend"].to_numpy(float))) if len(frame) else 1.0
    for label, target, g in _groups(frame):
        (line,) = ax.plot(g["spend"], g[y], "o-", label=label)
        mid = g[y].to_numpy(float)
        err = np.vstack([mid - g[f"{y}_lo"].to_numpy(float), g[f"{y}_hi"].to_numpy(float) - mid])
        ax.errorbar(g["spend"], mid, yerr=np.where(np.isfinite(err), np.maximum(err, 0), 0),
                    fmt="none", ecolor=line.get_color(), alpha=0.4, capsize=2)
        if annotate_budgets:
            for _, r in g.iterrows():
                ax.annotate(f"{r['budget']:,.0f}", (r["spend"], r[y]), fontsize=7,
                            textcoords="offset points", xytext=(3, -9), color=line.get_color())
        constraint = g["constraint"].iloc[0]
        if target_line and target not in targets_drawn and constraint in ("cpa", "roi"):
            xs = np.array([0.0, xmax])
            if y == "conversions" and constraint == "cpa":
                ax.plot(xs, xs / target, "k--", lw=0.8, label=f"CPA = {target:g}")
            elif y == "value" and constraint == "roi":
                ax.plot(xs, xs * target, "k--", lw=0.8, label=f"ROI = {target:g}")
            targets_drawn.add(target)
    ax.set_xlabel("spend per day")
    ax.set_ylabel(f"{y} per day (expected)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title(f"Spend vs {y} by budget")
    ax.legend(fontsize=8)
    return ax


def marginal_curve(frame, *, kind: str | None = None, ax=None):
    """Marginal CPA (or ROI) between neighbouring budgets, against budget, with the target.

    The marginal CPA at budget ``b_j`` is the extra spend over the extra conversions bought by
    going from ``b_{j-1}`` to ``b_j``; where the line crosses the target, an extra unit of
    spend stops paying for itself. Infinite or undefined steps are left out.

    Args:
        frame: :func:`experiments.analysis.simulate_budget` output.
        kind: ``"cpa"`` or ``"roi"`` (None: from the campaign's constraint).
        ax: Axes to draw on.
    """
    ax = _axes(ax)
    if kind is None:
        kind = "roi" if (frame["constraint"] == "roi").all() else "cpa"
    if kind not in ("cpa", "roi"):
        raise ValueError(f"kind must be 'cpa' or 'roi', got {kind!r}")
    col = f"marginal_{kind}"
    drawn = set()
    for label, target, g in _groups(frame):
        v = g[col].to_numpy(float)
        ok = np.isfinite(v)
        (line,) = ax.plot(g["budget"][ok], v[ok], "o-", label=label)
        _band(ax, g["budget"], g[f"{col}_lo"], g[f"{col}_hi"], line.get_color())
        if target not in drawn and g["constraint"].iloc[0] == kind:
            ax.axhline(target, color="k", ls="--", lw=0.8, label=f"target {kind.upper()} "
                       f"{target:g}")
            drawn.add(target)
    ax.set_xlabel("daily budget")
    ax.set_ylabel(f"marginal {kind.upper()}")
    ax.set_title(f"Marginal {kind.upper()} between neighbouring budgets")
    ax.legend(fontsize=8)
    return ax


def cpa_vs_budget(frame, *, ax=None, kind: str | None = None):
    """Average CPA (or ROI) per budget, one line per strategy, with intervals and the target."""
    ax = _axes(ax)
    if kind is None:
        kind = "roi" if (frame["constraint"] == "roi").all() else "cpa"
    drawn = set()
    for label, target, g in _groups(frame):
        (line,) = ax.plot(g["budget"], g[kind], "o-", label=label)
        _band(ax, g["budget"], g[f"{kind}_lo"], g[f"{kind}_hi"], line.get_color())
        if target not in drawn and g["constraint"].iloc[0] == kind:
            ax.axhline(target, color="k", ls="--", lw=0.8, label=f"target {target:g}")
            drawn.add(target)
    ax.set_xlabel("daily budget")
    ax.set_ylabel(kind.upper())
    ax.set_title(f"{kind.upper()} by budget")
    ax.legend(fontsize=8)
    return ax


def budget_used_curve(frame, *, ax=None, saturation: float | None = 0.9):
    """Share of the budget spent per budget: where it falls, more budget buys nothing."""
    ax = _axes(ax)
    for label, _, g in _groups(frame):
        (line,) = ax.plot(g["budget"], g["budget_used"], "o-", label=label)
        _band(ax, g["budget"], g["budget_used_lo"], g["budget_used_hi"], line.get_color())
    if saturation is not None:
        ax.axhline(saturation, color="k", ls=":", lw=0.8, label=f"{saturation:.0%} used")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("daily budget")
    ax.set_ylabel("share of budget spent")
    ax.set_title("Budget used")
    ax.legend(fontsize=8)
    return ax


def source_mix(frame, *, ax=None):
    """Share of spend that went to feed vs search, per budget (first strategy and target)."""
    ax = _axes(ax)
    label, _, g = next(iter(_groups(frame)))
    x = np.arange(len(g))
    feed = g["feed_share_of_spend"].fillna(0).to_numpy(float)
    ax.bar(x, feed, label="feed")
    ax.bar(x, 1 - feed, bottom=feed, label="search")
    ax.set_xticks(x, [f"{b:,.0f}" for b in g["budget"]])
    ax.set_xlabel("daily budget")
    ax.set_ylabel("share of spend")
    ax.set_title(f"Spend by traffic source ({label})")
    ax.legend(fontsize=8)
    return ax


def pacing(trace, *, ax=None, label: str | None = None, show_traffic: bool = True):
    """Hourly pacing of one day: cumulative share of budget spent vs share of traffic past.

    A strategy that spends evenly over the day's opportunities follows the traffic line; above
    it the budget runs out early, below it money is left on the table.

    Args:
        trace: Per-tick frame of :func:`experiments.analysis.simulate_day` (``trace=True``), with
            ``hour``, ``spend_share`` and ``traffic_share``.
        ax: Axes to draw on.
        label: Legend label of the spend line.
        show_traffic: Also draw the traffic line.
    """
    ax = _axes(ax)
    hours = np.concatenate([[0.0], trace["hour"].to_numpy(float)])
    ax.step(hours, np.concatenate([[0.0], trace["spend_share"].to_numpy(float)]), where="post",
            label=label or "spend / budget")
    if show_traffic:
        ax.plot(hours, np.concatenate([[0.0], trace["traffic_share"].to_numpy(float)]), "k--",
                lw=0.8, label="traffic past / day")
    ax.set_xlim(0, 24)
    ax.set_ylim(0, 1.05)
    ax.set_xticks(range(0, 25, 3))
    ax.set_xlabel("hour of day")
    ax.set_ylabel("cumulative share")
    ax.set_title("Pacing over one day")
    ax.legend(fontsize=8)
    return ax


def bids_vs_lwc(opportunities, *, bid_scale: float, alpha: float, ax=None, max_points: int = 3000,
                seed: int = 0):
    """One tick's opportunities: the agent's bid against the least cost of winning a slot.

    Points above the diagonal were (or could have been) won. ``opportunities`` is
    ``env.unwrapped.last_tick_opportunities()``; the bid is ``alpha x bid_scale x pvalue``.
    """
    ax = _axes(ax)
    pv = np.asarray(opportunities["pvalue"], float)
    lwc = np.asarray(opportunities["least_winning_cost"], float)
    if len(pv) > max_points:
        keep = np.random.default_rng(seed).choice(len(pv), max_points, replace=False)
        pv, lwc = pv[keep], lwc[keep]
    bid = alpha * bid_scale * pv
    ax.scatter(lwc, bid, s=3, alpha=0.4)
    hi = float(np.nanmax(np.concatenate([bid, lwc]))) if len(pv) else 1.0
    ax.plot([0, hi], [0, hi], "k--", lw=0.8, label="bid = least winning cost")
    ax.set_xlabel("least winning cost")
    ax.set_ylabel("own bid")
    ax.set_title("Bids vs least winning cost (one tick)")
    ax.legend(fontsize=8)
    return ax
