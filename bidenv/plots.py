"""Figures for budget simulation and single days (matplotlib).

Every function draws on ``ax`` (a new figure's axes when ``None``) and returns the axes, so
figures compose in notebooks::

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    roi_curve(frame, ax=axes[0])
    marginal_curve(frame, ax=axes[1])

``frame`` arguments are :func:`experiments.analysis.simulate_budget` outputs; ``trace`` arguments
are the per-tick frames of :func:`experiments.analysis.simulate_day` (``trace=True``).

Every budget figure says in its title how many simulated days it averages and that its bands
(error bars) are 95% bootstrap intervals over those days. Budgets and spend are the campaign's
money per day (:data:`MONEY_NOTE` says how they relate to the environment's day, once, as the
caption :func:`caption` adds). Budget labels on the points never overlap: :func:`declutter`
moves a label that would cover another one, or leaves it out.
"""

from __future__ import annotations

import numpy as np

#: How budgets and spend relate to the simulated day (a figure caption, the printed table).
MONEY_NOTE = ("Budgets and spend: the campaign's money per day of 500k opportunities (the "
              "default environment's day; a smaller environment plays a share of that day, "
              "with the budget scaled down by that share and spend scaled back up)")


def days_note(frame) -> str:
    """``"mean of N simulated days per budget; bands: 95% intervals"`` for a frame."""
    days = sorted(set(frame["days"].astype(int))) if "days" in frame and len(frame) else []
    if not days:
        return "bands: 95% bootstrap intervals over days"
    n = f"{days[0]}" if len(days) == 1 else f"{days[0]}-{days[-1]}"
    if days[-1] < 2:
        return f"{n} simulated day per budget: no interval"
    return f"mean of {n} simulated days per budget; bands: 95% intervals"


def money_note(scale: float | None = None) -> str:
    """:data:`MONEY_NOTE`, with the environment's day as a share of the reference day when
    ``scale`` is given and not 1."""
    if scale is not None and abs(scale - 1) > 1e-9:
        return f"{MONEY_NOTE}; this environment's day is {scale:.3g} of it"
    return MONEY_NOTE


def caption(fig, frame=None, *, scale: float | None = None, extra: str = ""):
    """Add the figure caption, the money note (:data:`MONEY_NOTE`; titles state the days).

    ``scale`` (or the frame's ``day_scale``) is the environment's day as a share of the
    reference day; ``extra`` is text put before the note.
    """
    if scale is None and frame is not None and "day_scale" in frame and len(frame):
        scale = float(frame["day_scale"].iloc[0])
    text = ". ".join(p for p in (extra, money_note(scale)) if p) + "."
    return fig.text(0.01, 0.005, text, fontsize=6.5, ha="left", va="bottom", wrap=True)


def _money_axis(axis):
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def declutter(ax, offsets=((4, -10), (4, 4), (-4, 4), (-4, -10), (8, -18), (8, 12),
                           (-8, 12), (-8, -18)), renderer=None):
    """Place the budget labels of :func:`roi_curve` so that none overlaps another.

    Each label tries the offsets (in points from its point) in turn and keeps the first whose
    box overlaps no label already placed and stays inside the axes; a label with no such place
    is hidden. :func:`roi_curve` also runs it whenever the axes are drawn, so the labels stay
    apart after a layout change (``tight_layout``, a resize, ``savefig`` at another dpi).
    """
    texts = getattr(ax, "_bidenv_budget_labels", [])
    if not texts:
        return ax
    if renderer is None:
        renderer = ax.figure.canvas.get_renderer()
    from matplotlib.transforms import Bbox

    inside = ax.get_window_extent(renderer)
    # The points' markers are obstacles too (a label should not cover a point).
    r = 3.0 * renderer.points_to_pixels(1.0)
    points = [ax.transData.transform(line.get_xydata()) for line in ax.lines
              if line.get_marker() not in (None, "None", "", " ")]
    obstacles = [Bbox.from_extents(x - r, y - r, x + r, y + r)
                 for xy in points for x, y in xy if np.isfinite(x) and np.isfinite(y)]
    kept = []
    for t in texts:
        t.set_visible(True)
        # First a place clear of labels and points; failing that, clear of labels only.
        places = [(d, avoid) for avoid in (True, False) for d in offsets]
        for (dx, dy), avoid_points in places:
            t.xyann = (dx, dy)
            t.set_horizontalalignment("left" if dx >= 0 else "right")
            box = t.get_window_extent(renderer).expanded(1.08, 1.15)
            if (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0
                    and box.y1 <= inside.y1 and not any(box.overlaps(k) for k in kept)
                    and not (avoid_points and any(box.overlaps(o) for o in obstacles))):
                kept.append(box)
                break
        else:
            t.set_visible(False)
    return ax


def _declutter_on_draw(ax):
    """An invisible artist drawn before the labels that places them (:func:`declutter`)."""
    from matplotlib.artist import Artist

    class _Placer(Artist):
        def draw(self, renderer):
            declutter(ax, renderer=renderer)

    if not any(isinstance(a, Artist) and type(a).__name__ == "_Placer" for a in ax.artists):
        placer = _Placer()
        placer.set_zorder(-100)
        placer.set_in_layout(False)
        ax.add_artist(placer)


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


def _error_bars(ax, g, y, color):
    """The 95% interval of ``y`` (``y_lo``/``y_hi``) as error bars at each point's spend."""
    mid = g[y].to_numpy(float)
    err = np.vstack([mid - g[f"{y}_lo"].to_numpy(float), g[f"{y}_hi"].to_numpy(float) - mid])
    ax.errorbar(g["spend"], mid, yerr=np.where(np.isfinite(err), np.maximum(err, 0), 0),
                fmt="none", ecolor=color, alpha=0.4, capsize=2)


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
    labels = []
    xmax = 1.1 * float(np.nanmax(frame["spend"].to_numpy(float))) if len(frame) else 1.0
    for label, target, g in _groups(frame):
        (line,) = ax.plot(g["spend"], g[y], "o-", label=label)
        _error_bars(ax, g, y, line.get_color())
        if annotate_budgets:
            for _, r in g.iterrows():
                text = ax.annotate(f"{r['budget']:,.0f}", (r["spend"], r[y]), fontsize=7,
                                   textcoords="offset points", xytext=(4, -10),
                                   color=line.get_color())
                text.set_in_layout(False)
                labels.append(text)
        constraint = g["constraint"].iloc[0]
        if target_line and target not in targets_drawn and constraint in ("cpa", "roi"):
            xs = np.array([0.0, xmax])
            if y == "conversions" and constraint == "cpa":
                ax.plot(xs, xs / target, "k--", lw=0.8, label=f"CPA = {target:g}")
            elif y == "value" and constraint == "roi":
                ax.plot(xs, xs * target, "k--", lw=0.8, label=f"ROI = {target:g}")
            targets_drawn.add(target)
    ax.set_xlabel("spend per day (labels: daily budget)")
    ax.set_ylabel(f"{y} per day (expected)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    _money_axis(ax.xaxis)
    ax.set_title(f"Spend vs {y} by budget\n{days_note(frame)}", fontsize=10)
    ax.legend(fontsize=8)
    ax._bidenv_budget_labels = getattr(ax, "_bidenv_budget_labels", []) + labels
    _declutter_on_draw(ax)
    declutter(ax)
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
    _money_axis(ax.xaxis)
    ax.set_ylabel(f"marginal {kind.upper()}")
    ax.set_title(f"Marginal {kind.upper()} between neighbouring budgets\n{days_note(frame)}",
                 fontsize=10)
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
    _money_axis(ax.xaxis)
    ax.set_ylabel(kind.upper())
    ax.set_title(f"{kind.upper()} by budget\n{days_note(frame)}", fontsize=10)
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
    _money_axis(ax.xaxis)
    ax.set_ylabel("share of budget spent")
    ax.set_title(f"Budget used\n{days_note(frame)}", fontsize=10)
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
    ax.set_title(f"Spend by traffic source ({label})\n{days_note(frame)}", fontsize=10)
    ax.legend(fontsize=8)
    return ax


#: (line style, marker) of successive strategies in :func:`pacing`.
PACING_STYLES = (("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"))


def pacing(trace, *, ax=None, label: str | None = None, show_traffic: bool = True,
           style: int = 0):
    """Hourly pacing of one day: cumulative share of budget spent vs share of traffic past.

    A strategy that spends evenly over the day's opportunities follows the traffic line; above
    it the budget runs out early, below it money is left on the table.

    Args:
        trace: Per-tick frame of :func:`experiments.analysis.simulate_day` (``trace=True``), with
            ``hour``, ``spend_share`` and ``traffic_share``.
        ax: Axes to draw on.
        label: Legend label of the spend line.
        show_traffic: Also draw the traffic line.
        style: Index of the line style and marker (give each strategy its own, so that no
            line hides another where they coincide).
    """
    ax = _axes(ax)
    hours = np.concatenate([[0.0], trace["hour"].to_numpy(float)])
    ls, marker = PACING_STYLES[style % len(PACING_STYLES)]
    period = max(len(hours) // 8, 1)
    ax.step(hours, np.concatenate([[0.0], trace["spend_share"].to_numpy(float)]), where="post",
            label=label or "spend / budget", ls=ls, marker=marker, ms=4, lw=1.4,
            markevery=(style * max(period // len(PACING_STYLES), 1) % period, period),
            zorder=3 + style)
    if show_traffic:
        ax.plot(hours, np.concatenate([[0.0], trace["traffic_share"].to_numpy(float)]),
                color="0.5", lw=2.5, alpha=0.5, label="traffic past / day", zorder=2)
    ax.set_xlim(0, 24)
    ax.set_ylim(0, 1.05)
    ax.set_xticks(range(0, 25, 3))
    ax.set_xlabel("hour of day")
    ax.set_ylabel("cumulative share")
    ax.set_title("Pacing over one simulated day (one day: no interval)", fontsize=10)
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


#: Line style per retrieval mode in :func:`retrieval_comparison` (others: dotted).
RETRIEVAL_STYLES = {"cascade": ("-", "o"), "generative": ("--", "s")}


def retrieval_comparison(frame, *, kind: str | None = None, axes=None):
    """Each strategy's curves under each retrieval mode, on the same days (common random numbers).

    Left: spend against conversions (sales value for an ROI campaign), the ROI curve, one
    point per budget with its 95% interval as error bars; right: CPA (ROI) by budget with its
    95% band and the target. Colour: the strategy (and target); line style: the retrieval mode
    (cascade solid, generative dashed).

    Args:
        frame: :func:`experiments.analysis.simulate_budget` output with a ``retrieval`` column
            (a spec with ``retrieval=("cascade", "generative")``).
        kind: ``"cpa"`` or ``"roi"`` (default: from the frame's constraint).
        axes: Two axes (None: a new 11 x 4.6 inch figure).

    Returns:
        The two axes.
    """
    if "retrieval" not in frame:
        raise ValueError("retrieval_comparison needs a frame with a 'retrieval' column "
                         "(simulate_budget with retrieval=('cascade', 'generative'))")
    if kind is None:
        kind = "roi" if (frame["constraint"] == "roi").all() else "cpa"
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    ax_curve, ax_kind = axes
    y = "value" if kind == "roi" else "conversions"
    modes = list(dict.fromkeys(frame["retrieval"]))
    first = frame[frame["retrieval"] == modes[0]]
    colours = {label: f"C{i}" for i, (label, _, _) in enumerate(_groups(first))}
    targets = set()
    for mode in modes:
        ls, marker = RETRIEVAL_STYLES.get(mode, (":", "^"))
        for label, target, g in _groups(frame[frame["retrieval"] == mode]):
            colour = colours.setdefault(label, f"C{len(colours)}")
            name = f"{label}, {mode}"
            ax_curve.plot(g["spend"], g[y], ls=ls, marker=marker, color=colour, label=name)
            _error_bars(ax_curve, g, y, colour)
            ax_kind.plot(g["budget"], g[kind], ls=ls, marker=marker, color=colour, label=name)
            _band(ax_kind, g["budget"], g[f"{kind}_lo"], g[f"{kind}_hi"], colour)
            if g["constraint"].iloc[0] == kind:
                targets.add(float(target))
    xmax = 1.1 * float(np.nanmax(frame["spend"].to_numpy(float))) if len(frame) else 1.0
    for target in sorted(targets):
        xs = np.array([0.0, xmax])
        ax_curve.plot(xs, xs / target if kind == "cpa" else xs * target, "k:", lw=0.8,
                      label=f"{kind.upper()} = {target:g}")
        ax_kind.axhline(target, color="k", ls=":", lw=0.8, label=f"target {target:g}")
    note = days_note(frame)
    ax_curve.set_xlabel("spend per day")
    ax_curve.set_ylabel(f"{y} per day (expected)")
    ax_curve.set_xlim(left=0)
    ax_curve.set_ylim(bottom=0)
    _money_axis(ax_curve.xaxis)
    ax_curve.set_title(f"Spend vs {y}: {' vs '.join(modes)} retrieval\n{note}", fontsize=10)
    ax_kind.set_xlabel("daily budget")
    _money_axis(ax_kind.xaxis)
    ax_kind.set_ylabel(kind.upper())
    ax_kind.set_title(f"{kind.upper()} by budget: {' vs '.join(modes)} retrieval\n{note}",
                      fontsize=10)
    for ax in axes:
        ax.legend(fontsize=7)
    return axes
