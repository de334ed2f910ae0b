"""``bidenv simulate-budget``: a campaign at several budgets, as a table, figures and advice.

Writes to ``--out``: ``budget_simulation.csv`` (one row per strategy x target x budget, see
:func:`experiments.analysis.simulate_budget`), ``days.csv`` (the simulated days behind it),
``recommendation.csv``, ``spec.json`` (the resolved spec, to rerun it with ``--spec``) and the
figures ``roi_curve.png``, ``marginal_cpa.png`` (``marginal_roi.png`` for ROI campaigns),
``cpa_vs_budget.png`` (``roi_vs_budget.png``), ``budget_used.png`` and ``pacing.png`` (one day
of the first strategy at the middle budget), with ``--report`` also ``report.html`` (all of it
in one self-contained page, :mod:`experiments.report`); then prints the recommendation.

Retrieval comparison (``--retrieval cascade,generative``, or ``retrieval: [cascade,
generative]`` in a spec): the same budgets, strategies, days and seeds are played under each
retrieval mode (common random numbers). The tables stay one file each, with a ``retrieval``
column (``budget_simulation.csv``, ``days.csv``, ``recommendation.csv``: the advice per mode);
the figures are written once per mode with the mode as prefix (``cascade_roi_curve.png``,
``generative_roi_curve.png``, ...), plus ``retrieval_comparison.png`` (each strategy's ROI
curve and CPA/ROI by budget under both modes) first in the report. A single non-default mode
(``--retrieval generative``) writes the usual file names, with the ``retrieval`` column.
"""

from __future__ import annotations

import time
from pathlib import Path

from bidenv.validation import short_repr

#: Files the command writes (figures depend on the constraint; see :func:`output_files`).
TABLES = ("budget_simulation.csv", "days.csv", "recommendation.csv", "spec.json")


#: The figure of a retrieval comparison (several modes; see the module docstring).
COMPARISON_FIGURE = "retrieval_comparison.png"


def output_files(constraint: str, retrieval=("cascade",)) -> list[str]:
    """Names of every file :func:`run_simulate_budget` writes for a campaign constraint.

    ``retrieval``: the spec's retrieval modes; with several, the figures per mode are
    prefixed with the mode and :data:`COMPARISON_FIGURE` is added.
    """
    kind = "roi" if constraint == "roi" else "cpa"
    names = ["roi_curve.png", f"marginal_{kind}.png", f"{kind}_vs_budget.png",
             "budget_used.png", "pacing.png"]
    modes = (retrieval,) if isinstance(retrieval, str) else tuple(retrieval)
    if len(modes) < 2:
        return [*TABLES, *names]
    return [*TABLES, COMPARISON_FIGURE, *(f"{m}_{n}" for m in modes for n in names)]


def write_figures(frame, spec, out: Path, *, prefix: str = "") -> list[Path]:
    """The budget figures of a :func:`~experiments.analysis.simulate_budget` frame, as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bidenv import plots
    from experiments.analysis import simulate_day
    from experiments.io import atomic_save_figure

    kind = "roi" if spec.constraint == "roi" else "cpa"
    y = "value" if kind == "roi" else "conversions"
    mode = spec.retrieval_modes[0]
    # Which retrieval, when not the default alone (a comparison draws one set per mode).
    head = f"[{mode} retrieval] " if spec.compares_retrieval else ""
    written = []
    drawers = [("roi_curve.png", lambda ax: plots.roi_curve(frame, y=y, ax=ax)),
               (f"marginal_{kind}.png", lambda ax: plots.marginal_curve(frame, kind=kind, ax=ax)),
               (f"{kind}_vs_budget.png", lambda ax: plots.cpa_vs_budget(frame, kind=kind, ax=ax)),
               ("budget_used.png", lambda ax: plots.budget_used_curve(frame, ax=ax))]
    for name, draw in drawers:
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        draw(ax)
        if head:
            ax.set_title(head + ax.get_title(), fontsize=10)
        plots.caption(fig, frame)
        finish_figure(fig)
        written.append(atomic_save_figure(fig, out / f"{prefix}{name}", tight=False))
    budget = spec.budgets[len(spec.budgets) // 2]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    scale = None
    for i, strategy in enumerate(spec.strategies):
        day, trace = simulate_day(strategy, budget=budget, constraint=spec.constraint,
                                  target=spec.targets[0], category=spec.category,
                                  traffic=spec.traffic, seed=spec.seed, env_id=spec.env_id,
                                  trace=True, cold_start=spec.cold_start,
                                  marketing_style=spec.marketing_style,
                                  popularity=spec.popularity, retrieval=mode)
        scale = day["day_scale"]
        plots.pacing(trace, ax=ax, label=strategy, show_traffic=strategy == spec.strategies[-1],
                     style=i)
    ax.set_title(f"{head}Pacing at budget {budget:,.0f}: 1 simulated day (day 0, seed {spec.seed})"
                 f"\none day, so no 95% interval; each strategy its own line style",
                 fontsize=10)
    plots.caption(fig, scale=scale)
    finish_figure(fig)
    written.append(atomic_save_figure(fig, out / f"{prefix}pacing.png", tight=False))
    return written


def write_comparison(frame, spec, out: Path, *, name: str = COMPARISON_FIGURE) -> Path:
    """:func:`bidenv.plots.retrieval_comparison` of a frame with a ``retrieval`` column (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bidenv import plots
    from experiments.io import atomic_save_figure

    kind = "roi" if spec.constraint == "roi" else "cpa"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    plots.retrieval_comparison(frame, kind=kind, axes=axes)
    extra = ("Every retrieval mode plays the same simulated days (seeds): common random "
             "numbers; solid: cascade, dashed: generative")
    plots.caption(fig, frame, extra=extra)
    finish_figure(fig)
    return atomic_save_figure(fig, out / name, tight=False)


def comparison_table(frame):
    """One row per (strategy, target, budget), spend, conversions (value) and CPA (ROI) per
    retrieval mode side by side, and the generative/cascade change of the last in percent."""
    kind = "roi" if (frame["constraint"] == "roi").all() else "cpa"
    y = "value" if kind == "roi" else "conversions"
    wide = frame.pivot_table(index=["strategy", "target", "budget"], columns="retrieval",
                             values=["spend", y, kind], sort=False)
    modes = list(dict.fromkeys(frame["retrieval"]))
    table = wide.reindex(columns=[(m, r) for m in ("spend", y, kind) for r in modes])
    table.columns = [f"{m}_{r}" for m, r in table.columns]
    if {"cascade", "generative"} <= set(modes):
        for m in (y, kind):
            table[f"{m}_change_%"] = 100 * (table[f"{m}_generative"] / table[f"{m}_cascade"] - 1)
    order = {s: i for i, s in enumerate(dict.fromkeys(frame["strategy"]))}
    table = table.reset_index()
    return table.sort_values(["strategy", "target", "budget"], kind="stable",
                             key=lambda c: c.map(order) if c.name == "strategy" else c
                             ).reset_index(drop=True)


def finish_figure(fig, bottom: float = 0.08) -> None:
    """Make room for the caption (:func:`bidenv.plots.caption`: ``bottom`` of the figure's
    height), lay the figure out, then place the budget labels."""
    from bidenv import plots

    fig.tight_layout(rect=(0, bottom, 1, 1))
    for ax in fig.axes:
        plots.declutter(ax)


def _numbers(flag: str, text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values:
        raise ValueError(f"{flag} must be comma-separated numbers, got {short_repr(text)}")
    return values


def fields_from_args(args) -> dict:
    """Spec fields from the parsed command-line flags (``None`` for flags not given)."""
    fields = {"constraint": args.constraint, "category": args.category, "days": args.days,
              "seed": args.seed, "env_id": args.env, "strategies": args.strategies,
              "cold_start": getattr(args, "cold_start", None),
              "marketing_style": getattr(args, "marketing_style", None),
              "popularity": getattr(args, "popularity", None)}
    if fields["popularity"] is not None:
        from experiments.analysis import check_popularity

        fields["popularity"] = check_popularity("--popularity", fields["popularity"])
    retrieval = getattr(args, "retrieval", None)
    if retrieval is not None:
        from experiments.analysis import RETRIEVAL_MODES

        modes = [m.strip() for m in retrieval.split(",")]
        if not all(m in RETRIEVAL_MODES for m in modes) or len(set(modes)) != len(modes):
            raise ValueError(f"--retrieval must be {' or '.join(RETRIEVAL_MODES)}, or "
                             f"cascade,generative to compare both, got {short_repr(retrieval)}")
        fields["retrieval"] = modes[0] if len(modes) == 1 else tuple(modes)
    if args.budgets is not None and args.budget_range is not None:
        raise ValueError("give --budgets or --budget-range, not both")
    if args.budgets is not None:
        fields["budgets"] = _numbers("--budgets", args.budgets)
    if args.budget_range is not None:
        parts = args.budget_range.split(":")
        try:
            start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
        except (ValueError, IndexError):
            raise ValueError(f"--budget-range must be START:STOP:NUM like 1000:8000:8, got "
                             f"{short_repr(args.budget_range)}") from None
        if len(parts) != 3:
            raise ValueError(f"--budget-range must be START:STOP:NUM, got "
                             f"{short_repr(args.budget_range)}")
        fields["budget_range"] = {"start": start, "stop": stop, "num": num}
    if args.target is not None:
        fields["targets"] = _numbers("--target", args.target)
    if args.traffic is not None:
        if "=" in args.traffic:
            shares = {}
            for part in args.traffic.split(","):
                key, _, value = part.partition("=")
                try:
                    shares[key.strip()] = float(value)
                except ValueError:
                    raise ValueError(f"--traffic shares must look like feed=0.7,search=0.3, got "
                                     f"{short_repr(args.traffic)}") from None
            fields["traffic"] = shares
        else:
            fields["traffic"] = args.traffic
    return fields


def print_advice(advice) -> None:
    """Print the recommendation's messages, then each distinct warning (few days) once."""
    print("\nRecommendation:")
    for message in advice["message"]:
        print(f"  {message}")
    if "warning" not in advice:
        return
    names = advice["strategy"]
    if "retrieval" in advice:
        names = advice["strategy"] + ", " + advice["retrieval"] + " retrieval"
    for who, warning in dict.fromkeys(zip(names, advice["warning"])):
        if warning:
            print(f"  warning ({who}): {warning}")


def print_table(frame, cols) -> None:
    """The budget table, headed by what its money columns mean (the reference-day scaling)."""
    import pandas as pd

    from bidenv.plots import days_note, money_note

    scale = frame["day_scale"].iloc[0] if "day_scale" in frame and len(frame) else None
    print(f"{money_note(scale)}. Means of the simulated days ({days_note(frame)}); "
          "marginal_*_lo/_hi: the marginal's 95% interval.")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(frame[cols].to_string(index=False, float_format=lambda x: f"{x:,.4g}"))


def run_simulate_budget(spec=None, *, out, workers: int = 1, progress: bool = True,
                        report: bool = False, until_confident: bool = False,
                        max_days: int | None = None, **fields):
    """The ``bidenv simulate-budget`` command; returns (frame, recommendation).

    Args:
        spec: A spec mapping, a :class:`~experiments.analysis.BudgetSpec` or a path to a JSON/YAML
            spec file; ``fields`` override it (``None`` values are ignored).
        out: Output folder.
        workers: Processes for the simulated days (the results do not depend on it).
        progress: Show a progress bar.
        report: Also write ``report.html`` (:func:`experiments.report.write_report`).
        until_confident: Keep adding blocks of ``days`` days (the same seeds continuing) until
            no decision straddles the target, up to ``max_days``
            (:func:`~experiments.analysis.simulate_until_confident`).
        max_days: Cap on the days per budget with ``until_confident`` (default 40).
    """
    from dataclasses import replace

    from experiments.analysis import (
        MAX_DAYS_CONFIDENT,
        load_spec,
        parse_spec,
        recommend,
        simulate_budget,
        simulate_until_confident,
    )
    from experiments.io import atomic_write_csv, atomic_write_json

    start = time.perf_counter()
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    spec = parse_spec(spec, **fields)
    from experiments.io import check_output_dir

    out = check_output_dir(out)
    label = {"cpa": "target CPA", "roi": "target ROI", "budget": "bid scale"}[spec.constraint]
    print(f"bidenv simulate-budget: {spec.env_id}, category {spec.category}, traffic "
          f"{spec.traffic_label}, {label} {', '.join(f'{t:g}' for t in spec.targets)}; "
          f"{len(spec.budgets)} budgets x {len(spec.strategies)} strategies x {spec.days} days"
          + (f", more until confident (at most {max_days or MAX_DAYS_CONFIDENT})"
             if until_confident else ""))
    if until_confident:
        frame, days, advice, stop = simulate_until_confident(
            spec, max_days=max_days or MAX_DAYS_CONFIDENT, workers=workers, progress=progress)
        block, spec = spec.days, replace(spec, days=stop["days"])
        verdict = ("no decision straddles the target" if stop["confident"]
                   else "still uncertain at the cap (raise --max-days)")
        print(f"--until-confident: {verdict} after {stop['days']} days per budget "
              f"({stop['blocks']} block(s) of {block} days, cap {stop['max_days']})")
    else:
        if max_days is not None:
            raise ValueError("--max-days needs --until-confident")
        frame, days = simulate_budget(spec, workers=workers, progress=progress,
                                      return_days=True)
        advice = recommend(frame)
    atomic_write_csv(out / "budget_simulation.csv", frame)
    atomic_write_csv(out / "days.csv", days)
    atomic_write_csv(out / "recommendation.csv", advice)
    atomic_write_json(out / "spec.json", spec.to_dict())
    modes = spec.retrieval_modes
    if len(modes) > 1:
        figures = [write_comparison(frame, spec, out)]
        for mode in modes:
            figures += write_figures(frame[frame["retrieval"] == mode].reset_index(drop=True),
                                     replace(spec, retrieval=mode), out, prefix=f"{mode}_")
    else:
        figures = write_figures(frame, spec, out)
    if report:
        from experiments.report import write_report

        write_report(out, title=f"Budget simulation: category {spec.category}, {label} "
                     f"{', '.join(f'{t:g}' for t in spec.targets)}, {spec.days} days per budget"
                     + (f", {' vs '.join(modes)} retrieval" if spec.compares_retrieval else ""),
                     advice=[m if not isinstance(w, str) or not w else f"{m} ({w})"
                             for m, w in zip(advice["message"],
                                             advice.get("warning", [""] * len(advice)))],
                     spec=spec.to_dict(), seed=spec.seed,
                     tables={"recommendation.csv": advice, "budget_simulation.csv": frame,
                             "days.csv": days}, figures=figures)
    kind = "roi" if spec.constraint == "roi" else "cpa"
    cols = ["strategy", "target", "budget", "spend", "conversions", "value", "cpa", "roi",
            "budget_used", "marginal_cpa", "marginal_roi", f"marginal_{kind}_lo",
            f"marginal_{kind}_hi"]
    if "retrieval" in frame:
        cols.insert(0, "retrieval")
    print_table(frame, cols)
    if len(modes) > 1:
        import pandas as pd

        print(f"\nRetrieval modes side by side (the same days; {COMPARISON_FIGURE}):")
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(comparison_table(frame).to_string(index=False,
                                                    float_format=lambda x: f"{x:,.4g}"))
    print_advice(advice)
    written = output_files(spec.constraint, modes) + (["report.html"] if report else [])
    print(f"\nwrote {', '.join(written)} to {out}/ in "
          f"{time.perf_counter() - start:.1f} s")
    return frame, advice
