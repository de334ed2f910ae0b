"""The budget advice with its uncertainty (issue 16, item 1): the decision rule on hand-made
intervals, the few-days warning, ``--until-confident``, and what the figures say and show."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from experiments.analysis import (
    BudgetSpec,
    days_warning,
    decide,
    recommend,
    simulate_budget,
    simulate_until_confident,
    step_status,
    summarise_days,
)

LITE = "bidenv/AutoBiddingLite-v0"
BUDGETS = [500.0, 1000.0, 1500.0, 2000.0]


def _frame(marginal, lo, hi, *, constraint="cpa", target=100.0, used=None, days=20,
           budgets=BUDGETS):
    kind = "roi" if constraint == "roi" else "cpa"
    other = "cpa" if kind == "roi" else "roi"
    n = len(budgets)
    return pd.DataFrame({"strategy": "s", "constraint": constraint, "target": target,
                         "budget": budgets, "days": days, "spend": budgets,
                         "budget_used": used if used is not None else [1.0] * n,
                         f"marginal_{kind}": marginal, f"marginal_{kind}_lo": lo,
                         f"marginal_{kind}_hi": hi, f"marginal_{other}": np.nan})


def _advice(*args, **kwargs):
    return recommend(_frame(*args, **kwargs)).iloc[0]


# --------------------------------------------------------------------------------------------
# The decision rule
# --------------------------------------------------------------------------------------------
def test_raise_only_when_the_interval_is_below_the_target():
    row = _advice([60.0, 80.0, 130.0, 150.0], [50.0, 70.0, 110.0, 120.0],
                  [70.0, 95.0, 150.0, 190.0])
    assert row["decision"] == "raise" and row["recommended_budget"] == 1000
    assert (row["marginal_lo"], row["marginal_hi"]) == (70.0, 95.0)
    assert math.isnan(row["upper_budget"])
    assert row["message"].startswith("s at target CPA 100: raise the budget to 1,000 "
                                     "(marginal CPA 80, 95% interval [70, 95])")
    assert "at 1,500 the marginal CPA is 130, 95% interval [110, 150], over the target" in \
        row["message"]
    # The interval touching the target from below still counts as under it ("at or under").
    assert _advice([60.0, 90.0, 130.0, 150.0], [50.0, 80.0, 110.0, 120.0],
                   [70.0, 100.0, 150.0, 190.0])["recommended_budget"] == 1000


def test_a_straddling_interval_gives_uncertain_between_two_budgets():
    # 1,000's point estimate (83) passes, but its interval [66, 101] straddles the target: the
    # flat "raise to 1,000" of the issue becomes "uncertain between 500 and 1,000".
    row = _advice([60.0, 83.0, 130.0, 150.0], [50.0, 66.2, 110.0, 120.0],
                  [70.0, 100.1, 150.0, 190.0])
    assert row["decision"] == "uncertain"
    assert (row["recommended_budget"], row["upper_budget"]) == (500, 1000)
    assert "uncertain between 500 and 1,000: the marginal CPA at 1,000 is 83, 95% interval " \
           "[66.2, 100], which straddles the target; simulate more days" in row["message"]
    assert "raise" not in row["message"]
    # Several straddling steps: Y is the last budget before a confident miss.
    row = _advice([60.0, 95.0, 105.0, 150.0], [50.0, 80.0, 90.0, 120.0],
                  [70.0, 110.0, 120.0, 190.0])
    assert (row["recommended_budget"], row["upper_budget"]) == (500, 1500)
    # Straddling already at the first step: no budget is sure.
    row = _advice([95.0, 120.0, 130.0, 150.0], [80.0, 105.0, 110.0, 120.0],
                  [110.0, 150.0, 150.0, 190.0])
    assert row["decision"] == "uncertain" and math.isnan(row["recommended_budget"])
    assert "uncertain between less than 500 and 500" in row["message"]


def test_above_the_target_from_the_start():
    row = _advice([120.0, 130.0, 140.0, 150.0], [105.0, 110.0, 120.0, 120.0],
                  [140.0, 150.0, 160.0, 190.0])
    assert row["decision"] == "none" and math.isnan(row["recommended_budget"])
    assert "even the smallest budget (500) misses the target CPA at the margin" in row["message"]


def test_at_the_edge_of_the_range_say_try_larger_budgets():
    row = _advice([60.0, 70.0, 80.0, 90.0], [50.0, 60.0, 70.0, 80.0], [70.0, 80.0, 90.0, 99.0])
    assert row["decision"] == "try_larger" and row["recommended_budget"] == 2000
    assert "try larger budgets: at the largest budget tried, 2,000" in row["message"]
    assert "raise" not in row["message"] and "up to 2,000" not in row["message"]
    # Straddling at the largest budget: uncertain, and it says the range may be too small.
    row = _advice([60.0, 70.0, 80.0, 95.0], [50.0, 60.0, 70.0, 80.0],
                  [70.0, 80.0, 90.0, 110.0])
    assert (row["decision"], row["recommended_budget"], row["upper_budget"]) == \
        ("uncertain", 1500, 2000)
    assert "(the largest tried; if it holds there, try larger budgets)" in row["message"]
    # Larger budgets not spent (nan marginal: no extra spend) are no reason to try larger ones.
    row = _advice([60.0, 70.0, np.nan, np.nan], [50.0, 60.0, np.nan, np.nan],
                  [70.0, 80.0, np.nan, np.nan], used=[1.0, 1.0, 0.7, 0.5])
    assert row["decision"] == "raise" and row["recommended_budget"] == 1000
    assert "larger budgets are not spent" in row["message"]


def test_roi_intervals_must_lie_above_the_target():
    lo, hi = [2.5, 2.1, 1.5, 1.0], [3.5, 2.9, 2.5, 1.8]
    row = _advice([3.0, 2.5, 2.0, 1.4], lo, hi, constraint="roi", target=2.0)
    assert row["decision"] == "uncertain"
    assert (row["recommended_budget"], row["upper_budget"]) == (1000, 1500)
    assert "at target ROI 2" in row["message"] and "straddles" in row["message"]
    row = _advice([3.0, 2.5, 1.5, 1.4], lo, [3.5, 2.9, 1.9, 1.8], constraint="roi", target=2.0)
    assert (row["decision"], row["recommended_budget"]) == ("raise", 1000)
    assert "under the target" in row["message"]
    row = _advice([3.0, 2.8, 2.6, 2.4], [2.5, 2.4, 2.2, 2.0], [3.5] * 4, constraint="roi",
                  target=2.0)
    assert row["decision"] == "try_larger" and "try larger budgets" in row["message"]
    row = _advice([1.5, 1.4, 1.3, 1.2], [1.0] * 4, [1.9] * 4, constraint="roi", target=2.0)
    assert row["decision"] == "none"


def test_step_status_and_decide_directly():
    status = step_status([50.0, np.inf, np.nan, 95.0], [40.0, np.nan, np.nan, np.nan],
                         [60.0, np.nan, np.nan, np.nan], 100.0, "cpa")
    # inf: extra spend bought nothing (a miss); nan: no extra spend; no interval: straddle.
    assert list(status) == ["pass", "fail", "none", "straddle"]
    assert decide([1, 2, 3], ["pass", "none", "pass"]) == ("try_larger", 2, None)
    assert decide([1, 2, 3], ["pass", "straddle", "fail"]) == ("uncertain", 0, 1)
    assert decide([1, 2, 3], ["fail", "pass", "pass"]) == ("none", None, None)


# --------------------------------------------------------------------------------------------
# The few-days warning
# --------------------------------------------------------------------------------------------
def test_warning_below_ten_days_with_the_implied_width():
    lo, hi = [50.0, 70.0, 110.0, 120.0], [70.0, 95.0, 150.0, 190.0]
    row = _advice([60.0, 80.0, 130.0, 150.0], lo, hi, days=3)
    # Relative half-widths 1/6, 25/160, 20/130, 35/150: median about 16%.
    assert row["warning"].startswith("only 3 days simulated per budget (fewer than 10): the "
                                     "marginal CPA's 95% intervals are +/-16% wide")
    assert "simulate more days" in row["warning"]
    assert _advice([60.0, 80.0, 130.0, 150.0], lo, hi, days=10)["warning"] == ""
    # One day: no interval at all, so nothing is sure.
    row = _advice([60.0, 80.0, 130.0, 150.0], [60.0, 80.0, 130.0, 150.0],
                  [60.0, 80.0, 130.0, 150.0], days=1)
    assert row["decision"] == "uncertain" and "no interval can be computed" in row["warning"]
    assert days_warning(12) == "" and "fewer than 10" in days_warning(9, 0.3)


# --------------------------------------------------------------------------------------------
# --until-confident
# --------------------------------------------------------------------------------------------
def _fake_play(cpa_of_day, calls):
    """Days of two budgets (100, 200) whose second step's marginal CPA on day d is
    ``cpa_of_day(d)``; records the (first_day, days) of each block."""

    def play(spec, first_day):
        calls.append((first_day, spec.days))
        rows = []
        for d in range(first_day, first_day + spec.days):
            for budget, conv in ((100.0, 2.0), (200.0, 2.0 + 100.0 / cpa_of_day(d))):
                rows.append({"strategy": "pid_cpa", "constraint": "cpa", "target": 100.0,
                             "budget": budget, "day": d, "seed": spec.seed + d,
                             "spend": budget, "conversions": conv, "value": 2 * conv,
                             "score": conv, "budget_used": 1.0, "spend_feed": budget,
                             "spend_search": 0.0, "conversions_realised": conv,
                             "value_realised": 2 * conv, "score_realised": conv,
                             "day_scale": 1.0})
        return pd.DataFrame(rows)

    return play


def test_until_confident_adds_blocks_until_no_decision_straddles():
    calls = []
    spec = {"budgets": [100, 200], "target": 100, "strategies": ["pid_cpa"], "days": 2,
            "seed": 7}
    # Marginal CPA 75 or 105 on alternate days (mean about 89): two days straddle 100, more
    # days narrow the interval under it.
    frame, days, advice, stop = simulate_until_confident(
        spec, max_days=40, play=_fake_play(lambda d: 75.0 if d % 2 else 105.0, calls))
    assert stop["confident"] and 2 < stop["days"] < 40 and stop["days"] % 2 == 0
    assert advice.iloc[0]["decision"] == "try_larger"
    # Blocks continue the same days: 0-1, 2-3, ...; seeds S, S+1, ...
    assert calls == [(2 * i, 2) for i in range(stop["blocks"])]
    assert sorted(days["day"].unique()) == list(range(stop["days"]))
    assert list(days["seed"].unique()) == [7 + d for d in range(stop["days"])]
    assert (frame["days"] == stop["days"]).all() and frame.attrs["spec"]["days"] == stop["days"]
    # It stopped at the first confident block: one block fewer still straddled.
    fewer = summarise_days(days[days["day"] < stop["days"] - 2], seed=7)
    assert recommend(fewer).iloc[0]["decision"] == "uncertain"


def test_until_confident_stops_at_the_cap():
    calls = []
    spec = {"budgets": [100, 200], "target": 100, "strategies": ["pid_cpa"], "days": 2}
    # Marginal CPA 70 or 130 (mean about 100): straddles however many days.
    _, _, advice, stop = simulate_until_confident(
        spec, max_days=7, play=_fake_play(lambda d: 70.0 if d % 2 else 130.0, calls))
    assert not stop["confident"] and stop["days"] == 7 and stop["blocks"] == 4
    assert calls == [(0, 2), (2, 2), (4, 2), (6, 1)]  # the last block is cut at the cap
    assert advice.iloc[0]["decision"] == "uncertain"
    with pytest.raises(ValueError, match="max_days"):
        simulate_until_confident(spec, max_days=1, play=_fake_play(lambda d: 90.0, []))


def test_until_confident_on_the_command_line_continues_the_same_days(tmp_path, capsys):
    from experiments.cli import main

    out = tmp_path / "out"
    assert main(["simulate-budget", "--budgets", "200,400", "--target", "100", "--strategies",
                 "pid_cpa", "--days", "1", "--until-confident", "--max-days", "2", "--seed", "3",
                 "--env", LITE, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "--until-confident:" in text and "after 2 days per budget" in text
    assert "warning (pid_cpa): only 2 days simulated" in text
    assert json.loads((out / "spec.json").read_text())["days"] == 2
    frame = pd.read_csv(out / "budget_simulation.csv")
    once = simulate_budget(budgets=[200, 400], target=100, strategies=["pid_cpa"], days=2,
                           seed=3, env_id=LITE, progress=False)
    np.testing.assert_allclose(frame["marginal_cpa_hi"], once["marginal_cpa_hi"])
    with pytest.raises(SystemExit, match="--max-days needs --until-confident"):
        main(["simulate-budget", "--budgets", "200", "--max-days", "3", "--env", LITE,
              "--out", str(out)])


# --------------------------------------------------------------------------------------------
# Figures: days and 95% stated, labels that never overlap, pacing lines that never hide
# --------------------------------------------------------------------------------------------
def _crowded_frame(n_days=4):
    budgets = [100.0, 120.0, 140.0, 160.0, 180.0, 200.0, 1000.0, 2000.0, 4000.0]
    rng = np.random.default_rng(0)
    rows = []
    for strategy, tilt in (("pid_cpa", 1.0), ("pid_budget", 1.02)):
        for b in budgets:
            for d in range(n_days):
                spend = b * (1 - 0.02 * rng.random())
                conv = tilt * spend / 60 * (1 - spend / 9000) * (1 + 0.05 * rng.standard_normal())
                rows.append({"strategy": strategy, "constraint": "cpa", "target": 80.0,
                             "budget": b, "day": d, "spend": spend, "conversions": conv,
                             "value": 2 * conv, "score": conv, "budget_used": spend / b,
                             "spend_feed": spend, "spend_search": 0.0,
                             "conversions_realised": conv, "value_realised": 2 * conv,
                             "score_realised": conv, "day_scale": 1.0})
    frame = summarise_days(pd.DataFrame(rows), n_boot=100)
    spec = BudgetSpec(budgets=tuple(budgets), targets=(80.0,),
                      strategies=("pid_cpa", "pid_budget"), days=n_days, env_id=LITE)
    return frame, spec


@pytest.fixture()
def figures(monkeypatch, tmp_path):
    """write_figures' figures, laid out as saved, kept open (no day is simulated)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import experiments.analysis as analysis
    import experiments.io as io
    from experiments.simulate_budget import write_figures

    hours = np.arange(1, 25, dtype=float)
    share = np.clip(hours / 20, 0, 1)  # both strategies pace the same: the lines coincide
    trace = pd.DataFrame({"hour": hours, "spend_share": share, "traffic_share": hours / 24})
    monkeypatch.setattr(analysis, "simulate_day",
                        lambda *a, **k: ({"day_scale": 1.0}, trace))
    kept = {}

    def keep(fig, path, dpi=120, *, tight=True):
        if tight:
            fig.tight_layout()
        fig.canvas.draw()  # as savefig would: the labels are placed again at draw time
        kept[path.name] = fig
        return path

    monkeypatch.setattr(io, "atomic_save_figure", keep)
    frame, spec = _crowded_frame()
    write_figures(frame, spec, tmp_path)
    yield kept
    plt.close("all")


def _texts(fig):
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def test_every_figure_states_the_days_and_the_interval_level(figures):
    assert set(figures) == {"roi_curve.png", "marginal_cpa.png", "cpa_vs_budget.png",
                            "budget_used.png", "pacing.png"}
    for name, fig in figures.items():
        text = " | ".join(_texts(fig))
        days = "1 simulated day" if name == "pacing.png" else "4 simulated days"
        assert days in text and "95%" in text, (name, text)
        # The money note (reference-day scaling), once, as the caption.
        assert text.count("money per day of 500k opportunities") == 1, name


def _boxes_overlap(boxes):
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if boxes[i].overlaps(boxes[j]):
                return True
    return False


def test_budget_labels_and_tick_labels_never_overlap(figures):
    for name, fig in figures.items():
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            for axis in (ax.xaxis, ax.yaxis):
                ticks = [t.get_window_extent(renderer) for t in axis.get_ticklabels()
                         if t.get_visible() and t.get_text()]
                assert not _boxes_overlap(ticks), (name, [t.get_text() for t in
                                                          axis.get_ticklabels()])
    ax = figures["roi_curve.png"].axes[0]
    renderer = figures["roi_curve.png"].canvas.get_renderer()
    labels = ax._bidenv_budget_labels
    assert len(labels) == 18  # 9 budgets x 2 strategies, crowded at the low end
    shown = [t for t in labels if t.get_visible()]
    assert not _boxes_overlap([t.get_window_extent(renderer) for t in shown])
    # Crowded ones may be left out, but not most of them, and the large budgets are labelled.
    assert len(shown) >= 6 and {"100", "4,000", "2,000"} <= {t.get_text() for t in shown}


def test_pacing_lines_never_hide_each_other(figures):
    ax = figures["pacing.png"].axes[0]
    lines = [line for line in ax.lines if line.get_label() in ("pid_cpa", "pid_budget")]
    assert len(lines) == 2
    assert len({(line.get_linestyle(), line.get_marker()) for line in lines}) == 2
    # Markers at different points, so that even coinciding lines both show.
    assert lines[0].get_markevery() != lines[1].get_markevery()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"pid_cpa", "pid_budget", "traffic past / day"} <= set(legend)
