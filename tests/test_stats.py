"""Statistics module: two-level bootstrap, paired comparisons, tables and performance profiles."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import trim_mean

from experiments.evaluate import bootstrap_ci
from experiments.stats import (
    agent_matrix,
    day_columns,
    iqm,
    optimality_gap,
    paired_difference,
    paired_table,
    performance_profile,
    probability_of_improvement,
    profile_curve,
    summary_table,
    two_level_bootstrap,
)


def _frame(seed=0, days=12, scenarios=("default", "roi")):
    """Episodes frame: 'h' heuristic (1 run, no gain), 'dt' learned (3 runs, +5 on average)."""
    rng = np.random.default_rng(seed)
    rows = []
    for scenario in scenarios:
        for ep in range(days):
            day_effect = rng.normal(60, 15)
            rows.append({"agent": "h", "run": "h", "scenario": scenario, "episode": ep,
                         "pct_of_oracle": day_effect})
            for r, offset in enumerate([4.0, 5.0, 6.0]):
                rows.append({"agent": "dt", "run": f"dt:runs/dt/seed{r}", "scenario": scenario,
                             "episode": ep, "pct_of_oracle": day_effect + offset
                             + rng.normal(0, 0.5)})
    return pd.DataFrame(rows)


# --- point statistics ---------------------------------------------------------------------------

def test_point_statistics_by_hand():
    x = np.array([[90.0, 110.0], [100.0, 80.0]])
    assert optimality_gap(x) == pytest.approx(7.5)  # (10 + 0 + 0 + 20) / 4
    assert optimality_gap(x, threshold=95.0) == pytest.approx(5.0)  # (5 + 0 + 0 + 15) / 4
    assert iqm([1.0, 2.0, 3.0, 1000.0, np.nan]) == pytest.approx(2.5)
    assert math.isnan(iqm([np.nan]))
    assert two_level_bootstrap(x, statistic="optimality_gap")[0] == pytest.approx(7.5)
    assert two_level_bootstrap(x, statistic="mean")[0] == pytest.approx(95.0)
    assert two_level_bootstrap(x, statistic="median")[0] == pytest.approx(95.0)
    y = np.arange(24.0).reshape(3, 8) ** 1.5
    assert two_level_bootstrap(y, statistic="iqm")[0] == pytest.approx(trim_mean(y.ravel(), 0.25))
    # NaN cells are ignored, as in evaluate.iqm
    y[1, 3] = np.nan
    finite = y[np.isfinite(y)]
    assert two_level_bootstrap(y, statistic="iqm")[0] == pytest.approx(trim_mean(finite, 0.25))
    assert two_level_bootstrap(y, statistic="mean")[0] == pytest.approx(finite.mean())


def test_probability_of_improvement_by_hand():
    # one day; a's runs score 1 and 2, b's runs 2 and 2:
    # pairs (1,2)=0, (1,2)=0, (2,2)=0.5, (2,2)=0.5 -> 1/4
    assert probability_of_improvement([[1.0], [2.0]], [[2.0], [2.0]]) == pytest.approx(0.25)
    # two days, one run each: day 1 a wins (1), day 2 tie (0.5) -> 0.75
    assert probability_of_improvement([3.0, 4.0], [1.0, 4.0]) == pytest.approx(0.75)
    # per-day average, then over days: day 1 as above (0.25), day 2 a's runs 5, 0 vs 1, 1 -> 0.5
    a = [[1.0, 5.0], [2.0, 0.0]]
    b = [[2.0, 1.0], [2.0, 1.0]]
    assert probability_of_improvement(a, b) == pytest.approx((0.25 + 0.5) / 2)


def test_profile_curve_by_hand():
    scores = [[10.0, 50.0], [90.0, 100.0]]
    np.testing.assert_allclose(profile_curve(scores, [0, 50, 95, 100]), [1.0, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(profile_curve([1.0, np.nan, 3.0], [2.0]), [0.5])


# --- two-level bootstrap ------------------------------------------------------------------------

def test_one_run_equals_one_level_bootstrap():
    x = np.random.default_rng(1).normal(50, 10, size=40)
    point, lo, hi = two_level_bootstrap(x[None, :], n_boot=500, seed=7)
    ref_lo, ref_hi = bootstrap_ci(x, n_boot=500, seed=7)
    assert point == pytest.approx(x.mean())
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), abs=1e-12)
    # by hand: resample days with the same generator
    idx = np.random.default_rng(7).integers(0, 40, size=(500, 40))
    assert (lo, hi) == pytest.approx(tuple(np.quantile(x[idx].mean(axis=1), [0.025, 0.975])))
    # 1-D input is one run; NaN cells are dropped like bootstrap_ci drops them
    with_nan = np.concatenate([x, [np.nan]])
    assert two_level_bootstrap(with_nan, n_boot=500, seed=7)[1:] == pytest.approx((lo, hi))


def test_seed_offsets_widen_the_interval():
    rng = np.random.default_rng(3)
    offsets = np.array([-15.0, -5.0, 0.0, 8.0, 14.0])
    x = 50 + offsets[:, None] + rng.normal(0, 1, size=(5, 60))
    point, lo, hi = two_level_bootstrap(x, n_boot=2000, seed=0)
    pooled_lo, pooled_hi = bootstrap_ci(x.ravel(), n_boot=2000, seed=0)
    assert point == pytest.approx(x.mean())
    assert lo < point < hi
    # seed-to-seed sd ~ 11.6 over 5 runs: half-width ~ 1.96 * 11.6 / sqrt(5) * sqrt(4/5) ~ 9
    assert 5.0 < (hi - lo) / 2 < 13.0
    # pooling 300 rows as independent understates it by about sqrt(60)
    assert (hi - lo) > 4 * (pooled_hi - pooled_lo)


def test_stratification_keeps_per_stratum_day_counts():
    # stratum A: 2 days scoring 0, stratum B: 6 days scoring 100, two identical runs
    x = np.tile([0.0, 0.0, 100, 100, 100, 100, 100, 100], (2, 1))
    strata = ["A", "A", "B", "B", "B", "B", "B", "B"]
    point, lo, hi = two_level_bootstrap(x, strata=strata, n_boot=300)
    assert (point, lo, hi) == pytest.approx((75.0, 75.0, 75.0))  # every replicate keeps 2 + 6
    _, lo_free, hi_free = two_level_bootstrap(x, n_boot=300)
    assert hi_free - lo_free > 20  # without strata the A/B mix varies


def test_bootstrap_is_deterministic_and_validates():
    x = np.random.default_rng(0).normal(size=(3, 20))
    assert two_level_bootstrap(x, seed=4) == two_level_bootstrap(x, seed=4)
    assert two_level_bootstrap(x, seed=4) != two_level_bootstrap(x, seed=5)
    assert all(math.isnan(v) for v in two_level_bootstrap([np.nan, np.nan]))
    with pytest.raises(ValueError, match="level"):
        two_level_bootstrap(x, level=1.5)
    with pytest.raises(ValueError, match="level"):
        two_level_bootstrap(x, level=0.0)
    with pytest.raises(ValueError, match="n_boot"):
        two_level_bootstrap(x, n_boot=0)
    with pytest.raises(ValueError, match="statistic"):
        two_level_bootstrap(x, statistic="max")
    with pytest.raises(ValueError, match="strata"):
        two_level_bootstrap(x, strata=["a", "b"])
    with pytest.raises(ValueError, match="values"):
        two_level_bootstrap(np.zeros((2, 2, 2)))


# --- paired difference --------------------------------------------------------------------------

def test_exact_shift_gives_a_point_interval():
    rng = np.random.default_rng(2)
    b = rng.normal(50, 20, size=(3, 30))  # large day-to-day and run-to-run variation
    # one run each, a = b + 3 on every day: the paired interval is exactly [3, 3]
    res = paired_difference(b[[0]] + 3.0, b[[0]], n_boot=500)
    assert res["mean_diff"] == pytest.approx(3.0)
    assert res["ci_low"] == pytest.approx(3.0) and res["ci_high"] == pytest.approx(3.0)
    assert (res["prob_improvement"], res["poi_low"], res["poi_high"]) == (1.0, 1.0, 1.0)
    assert res["n_days"] == 30 and res["runs_a"] == 1 and res["runs_b"] == 1
    # identical runs on each side: resampling runs changes nothing either
    same = np.tile(b[0], (2, 1))
    res = paired_difference(same + 3.0, same, n_boot=500)
    assert res["ci_low"] == pytest.approx(3.0) and res["ci_high"] == pytest.approx(3.0)
    assert res["prob_improvement"] == 1.0
    # three different runs per agent, resampled independently: seed variance widens the interval
    res = paired_difference(b + 3.0, b, n_boot=500)
    assert res["mean_diff"] == pytest.approx(3.0)
    assert res["ci_low"] < 3.0 < res["ci_high"] and res["ci_high"] - res["ci_low"] > 1.0
    # one run against three: per-day difference is a minus the mean of b's runs
    res = paired_difference(b[[0]] + 3.0, b, n_boot=10)
    assert res["mean_diff"] == pytest.approx(3.0 + b[0].mean() - b.mean())


def test_pairing_removes_day_to_day_variance():
    rng = np.random.default_rng(5)
    day = rng.normal(60, 20, size=50)  # large day effects shared by both agents
    a = day + 5 + rng.normal(0, 1, size=(1, 50))
    b = day + rng.normal(0, 1, size=(1, 50))
    res = paired_difference(a, b, n_boot=2000, seed=1)
    assert res["mean_diff"] == pytest.approx(a.mean() - b.mean())
    assert res["ci_low"] < 5.0 < res["ci_high"]
    # independent unpaired bootstrap by hand: days of a and b resampled separately
    g = np.random.default_rng(1)
    ia, ib = g.integers(0, 50, size=(2000, 50)), g.integers(0, 50, size=(2000, 50))
    unpaired = a[0][ia].mean(axis=1) - b[0][ib].mean(axis=1)
    u_lo, u_hi = np.quantile(unpaired, [0.025, 0.975])
    assert u_lo < 5.0 < u_hi
    assert (res["ci_high"] - res["ci_low"]) < (u_hi - u_lo) / 5
    # the paired interval matches the one-level bootstrap of the daily differences
    d_lo, d_hi = bootstrap_ci((a - b)[0], n_boot=2000, seed=1)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((d_lo, d_hi))
    assert res["prob_improvement"] > 0.95 and res["poi_low"] <= res["prob_improvement"]


def test_paired_difference_validates():
    with pytest.raises(ValueError, match="days"):
        paired_difference(np.zeros((2, 5)), np.zeros((2, 6)))
    with pytest.raises(ValueError, match="level"):
        paired_difference(np.zeros(5), np.zeros(5), level=95)
    with pytest.raises(ValueError, match="n_boot"):
        paired_difference(np.zeros(5), np.zeros(5), n_boot=-1)
    res = paired_difference([np.nan, 1.0], [2.0, np.nan])  # no shared day
    assert res["n_days"] == 0 and math.isnan(res["mean_diff"])


# --- episodes frames ----------------------------------------------------------------------------

def test_agent_matrix_layout():
    frame = _frame(days=3)
    m = agent_matrix(frame, "dt")
    assert m.shape == (3, 6)
    days = day_columns(frame)
    assert list(days["scenario"]) == ["default"] * 3 + ["roi"] * 3
    row = frame[(frame["run"] == "dt:runs/dt/seed1") & (frame["scenario"] == "roi")
                & (frame["episode"] == 2)]
    assert m[1, 5] == row["pct_of_oracle"].item()
    assert agent_matrix(frame, "h", scenario="roi").shape == (1, 3)
    # without a run column each agent is one run; a day an agent lacks is NaN
    no_run = frame.drop(columns="run")
    no_run = no_run[~((no_run["agent"] == "h") & (no_run["episode"] == 0))]
    with pytest.raises(ValueError, match="duplicate"):
        agent_matrix(no_run, "dt")  # three runs collapse onto one label
    h = agent_matrix(no_run, "h")
    assert h.shape == (1, 6) and np.isnan(h[0, [0, 3]]).all() and np.isfinite(h[0, [1, 2]]).all()
    with pytest.raises(ValueError, match="agent"):
        agent_matrix(frame, "nobody")
    with pytest.raises(ValueError, match="value"):
        agent_matrix(frame, "dt", value="nope")
    with pytest.raises(ValueError, match="scenario"):
        agent_matrix(frame, "dt", scenario="nope")


def test_summary_table():
    frame = _frame()
    table = summary_table(frame, n_boot=500).set_index("agent")
    assert list(table.index) == ["h", "dt"]
    assert table.loc["dt", "runs"] == 3 and table.loc["h", "runs"] == 1
    assert (table["days"] == 24).all()
    dt = frame.loc[frame["agent"] == "dt", "pct_of_oracle"].to_numpy()
    assert table.loc["dt", "mean"] == pytest.approx(dt.mean())
    assert table.loc["dt", "iqm"] == pytest.approx(trim_mean(dt, 0.25))
    assert table.loc["dt", "optimality_gap"] == pytest.approx(np.maximum(0, 100 - dt).mean())
    for stat in ("mean", "iqm", "optimality_gap"):
        assert (table[f"{stat}_low"] <= table[stat]).all()
        assert (table[stat] <= table[f"{stat}_high"]).all()
    # a single-run heuristic still gets a non-degenerate interval (days are random)
    assert table.loc["h", "mean_high"] - table.loc["h", "mean_low"] > 5


def test_paired_table():
    frame = _frame()
    table = paired_table(frame, "h", n_boot=500)
    assert list(table["scenario"]) == ["default", "roi", "all"]
    assert (table["agent"] == "dt").all() and (table["reference"] == "h").all()
    overall = table.set_index("scenario").loc["all"]
    dt = agent_matrix(frame, "dt")
    h = agent_matrix(frame, "h")
    assert overall["mean_diff"] == pytest.approx(dt.mean() - h.mean())  # about +5
    assert overall["ci_low"] < overall["mean_diff"] < overall["ci_high"]
    assert overall["ci_low"] > 3 and overall["ci_high"] < 7
    assert overall["days"] == 24 and overall["runs"] == 3 and overall["reference_runs"] == 1
    assert overall["prob_improvement"] == pytest.approx(1.0)
    assert table["significant"].all()
    # equal agents: not significant
    twin = frame[frame["agent"] == "h"].assign(agent="h2", run="h2")
    both = pd.concat([frame[frame["agent"] == "h"], twin])
    row = paired_table(both, "h", n_boot=200).set_index("scenario").loc["all"]
    assert row["mean_diff"] == 0 and not row["significant"] and row["prob_improvement"] == 0.5
    with pytest.raises(ValueError, match="reference"):
        paired_table(frame, "nobody")


def test_performance_profile_writes_figure(tmp_path):
    frame = _frame(days=5)
    path = tmp_path / "profile.png"
    curves = performance_profile(frame, path, taus=[0.0, 60.0, 200.0], n_boot=200)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dt = curves[curves["agent"] == "dt"].set_index("tau")
    scores = agent_matrix(frame, "dt").ravel()
    assert dt.loc[60.0, "fraction"] == pytest.approx((scores > 60).mean())
    assert dt.loc[0.0, "fraction"] == 1.0 and dt.loc[200.0, "fraction"] == 0.0
    assert (curves["low"] <= curves["fraction"] + 1e-12).all()
    assert (curves["fraction"] <= curves["high"] + 1e-12).all()
    with pytest.raises(ValueError, match="n_boot"):
        performance_profile(frame, tmp_path / "x.png", n_boot=0)


# --- vectorised code against plain loops (same draws: days, then runs of a, then runs of b) -----

def test_vectorised_bootstraps_match_loops():
    rng = np.random.default_rng(9)
    a = rng.normal(size=(3, 7)).round(1)
    b = rng.normal(size=(2, 7)).round(1)  # rounding makes some ties
    a[1, 2] = np.nan
    n = 40
    g = np.random.default_rng(4)
    days = g.integers(0, 7, size=(n, 7))
    runs_a, runs_b = g.integers(0, 3, size=(n, 3)), g.integers(0, 2, size=(n, 2))
    diffs, pois, iqms = [], [], []
    for k in range(n):
        ak, bk = a[runs_a[k]][:, days[k]], b[runs_b[k]][:, days[k]]
        diffs.append(np.mean(np.nanmean(ak, axis=0) - np.nanmean(bk, axis=0)))
        per_day = []
        for d in range(7):
            s = [1.0 if x > y else 0.5 if x == y else 0.0
                 for x in ak[:, d] for y in bk[:, d] if np.isfinite(x)]
            per_day.append(np.mean(s))
        pois.append(np.mean(per_day))
        iqms.append(iqm(ak))
    res = paired_difference(a, b, n_boot=n, level=0.9, seed=4)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx(tuple(np.quantile(diffs, [.05, .95])))
    assert (res["poi_low"], res["poi_high"]) == pytest.approx(tuple(np.quantile(pois, [.05, .95])))
    assert two_level_bootstrap(a, statistic="iqm", n_boot=n, level=0.9, seed=4)[1:] == \
        pytest.approx(tuple(np.quantile(iqms, [.05, .95])))
