"""The hindsight ``expert`` behaviour of ``bidenv collect`` and the per-day yardstick summary."""

import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import bidenv  # noqa: F401  (registers the envs)
from bidenv.campaign import budget_scale
from bidenv.offline import Trajectories, load_dataset, save_dataset, validate_frame
from bidenv.oracle import reference_hindsight
from experiments.cli import main
from experiments.collect import (
    DEFAULT_BEHAVIORS,
    EXPERT,
    SUMMARY_KEY,
    CollectConfig,
    behavior_plan,
    behaviors_csv_path,
    collect,
    parse_behaviors,
)

ENV = "bidenv/AutoBiddingLite-v0"
DAYS = 6
#: A very small Lite day for the worker test (two chunks of 10 days).
TINY = {"opportunities_per_day": 5000, "n_competitors": 4}


def _config(behaviors, **kw) -> CollectConfig:
    return CollectConfig(episodes=DAYS, seed=0, noise=0.0, env_id=ENV, behaviors=behaviors, **kw)


@pytest.fixture(scope="module")
def expert_frame():
    return collect(_config({EXPERT: 1.0}), progress=False)


@pytest.fixture(scope="module")
def mix_frame():
    return collect(_config(dict(DEFAULT_BEHAVIORS), yardstick=True), progress=False)


@pytest.fixture(scope="module")
def reference():
    """Independently computed yardstick of (config, episode), cached."""
    env = gym.make(ENV, record=True)
    scale = budget_scale(env.unwrapped.opportunities_per_day)
    cache = {}

    def get(config, ep):
        plan = behavior_plan(config, ep)
        options = dict(plan["campaign"], budget=plan["campaign"]["budget"] * scale)
        key = (config.seed + ep, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = reference_hindsight(env, seed=config.seed + ep, options=options)
        return cache[key]

    yield get
    env.close()


def _final(frame) -> pd.DataFrame:
    return frame.groupby("episode").last()


def test_expert_plays_the_days_best_fixed_alpha_on_every_tick(expert_frame, reference):
    config = _config({EXPERT: 1.0})
    assert set(expert_frame["behavior"]) == {EXPERT}
    assert (expert_frame["noise"] == 0).all()
    for ep, day in expert_frame.groupby("episode"):
        alpha = reference(config, ep)["best_fixed_alpha"]
        np.testing.assert_allclose(day["alpha"], alpha, rtol=1e-5)
        assert day["tick"].tolist() == list(range(len(day)))


def test_expert_days_beat_the_heuristic_mix(expert_frame, mix_frame, reference):
    expert = expert_frame.attrs["bidenv"][SUMMARY_KEY]
    mix = mix_frame.attrs["bidenv"][SUMMARY_KEY]
    assert list(expert) == [EXPERT] and expert[EXPERT]["days"] == DAYS
    assert EXPERT not in mix and sum(s["days"] for s in mix.values()) == DAYS
    # The same seeds: the expert's mean percent of the yardstick is above the mix's, pooled.
    pooled = sum(s["mean"] * s["days"] for s in mix.values()) / DAYS
    assert expert[EXPERT]["mean"] > pooled + 5
    # Per day. Above: the expert's expected score is bounded by the oracle of its own
    # recording (bidenv.oracle, "Bound"), which differs from the day-without-agent yardstick by
    # a few percent (competitors react), and a fixed multiplier reaches only part of the
    # fractional oracle (best_fixed_alpha_score <= oracle_score); 105% leaves that margin.
    # Below: measured 75-94% on these seeds (62-94% over 20 Lite days); 50% guards against a
    # wrong alpha (the fixed behaviour's random alphas score 26-85%).
    config = _config({EXPERT: 1.0})
    for ep, row in _final(expert_frame).iterrows():
        ref = reference(config, ep)
        assert ref["best_fixed_alpha_score"] <= ref["oracle_score"] * (1 + 1e-9)
        pct = 100 * row["expected_score"] / ref["oracle_score"]
        assert 50 <= pct <= 105, (ep, pct)


def test_summary_matches_a_recomputation_from_the_rows(expert_frame, mix_frame, reference,
                                                       tmp_path):
    for which, frame in (("expert", expert_frame), ("mix", mix_frame)):
        config = _config({EXPERT: 1.0} if which == "expert" else dict(DEFAULT_BEHAVIORS),
                         yardstick=which == "mix")
        meta = frame.attrs["bidenv"]
        final = _final(frame)
        pct = pd.Series({ep: 100 * row["expected_score"] / reference(config, ep)["oracle_score"]
                         for ep, row in final.iterrows()})
        assert sum(s["days"] for s in meta[SUMMARY_KEY].values()) == DAYS
        for name, summary in meta[SUMMARY_KEY].items():
            mine = pct[final["behavior"] == name]
            assert summary["days"] == len(mine)
            assert math.isclose(summary["mean"], mine.mean(), rel_tol=1e-12)
            assert math.isclose(summary["median"], mine.median(), rel_tol=1e-12)
            assert all(type(v) in (int, float) for v in summary.values())
        assert meta["yardstick"] is (which == "mix")
        # The dataset format is unchanged and the summary round-trips through the file.
        path = save_dataset(frame, tmp_path / f"{which}.parquet")
        loaded, loaded_meta = load_dataset(path)
        pd.testing.assert_frame_equal(loaded, validate_frame(frame))
        assert loaded_meta[SUMMARY_KEY] == meta[SUMMARY_KEY]
        assert loaded.attrs["bidenv"] == loaded_meta
        # Each day's yardstick is in the metadata and reaches the trajectories.
        want = [reference(config, ep)["oracle_score"] for ep in final.index]
        assert [meta["day_yardstick"][str(ep)] for ep in final.index] == want
        traj = Trajectories.from_frame(loaded)
        np.testing.assert_array_equal(traj.yardsticks, want)
        np.testing.assert_array_equal(traj.subset([1, 0]).yardsticks, want[1::-1])


def test_behavior_parsing_accepts_expert_and_rejects_unknown_names(tmp_path):
    assert parse_behaviors("pid_budget=0.3,expert=0.3") == {"pid_budget": 0.3, EXPERT: 0.3}
    assert parse_behaviors("expert") == {EXPERT: 1.0}
    CollectConfig(behaviors={EXPERT: 1.0, "pid_cpa": 1.0})
    with pytest.raises(ValueError, match="unknown agent 'experts'"):
        CollectConfig(behaviors={"experts": 1.0})
    out = tmp_path / "x.parquet"
    with pytest.raises(SystemExit) as exc:
        main(["collect", "--episodes", "1", "--behavior", "expert=1,expertt=1", "--out",
              str(out)])
    message = str(exc.value)
    assert message.startswith("bidenv collect: --behavior: unknown agent(s) ['expertt']")
    assert "\n" not in message and "expert" in message.split("available:")[1]
    assert not out.exists()


def test_cli_prints_and_writes_the_behaviour_table(tmp_path, capsys):
    out = tmp_path / "d.parquet"
    main(["collect", "--episodes", "2", "--seed", "3", "--behavior", "truthful=1,expert=1",
          "--noise", "0", "--yardstick", "--out", str(out)])
    frame, meta = load_dataset(out)
    summary = meta[SUMMARY_KEY]
    assert sum(s["days"] for s in summary.values()) == 2 and meta["yardstick"] is True
    table = pd.read_csv(behaviors_csv_path(out))
    assert behaviors_csv_path(out).name == "d.behaviors.csv"
    assert table.columns.tolist() == ["behavior", "days", "mean_pct_of_yardstick",
                                      "median_pct_of_yardstick"]
    assert table.set_index("behavior")["mean_pct_of_yardstick"].to_dict() == pytest.approx(
        {k: s["mean"] for k, s in summary.items()})
    printed = capsys.readouterr().out
    assert "percent of the day's yardstick" in printed and str(behaviors_csv_path(out)) in printed
    # Without --yardstick and without expert: no table, no CSV.
    plain = tmp_path / "p.parquet"
    main(["collect", "--episodes", "1", "--behavior", "truthful", "--out", str(plain)])
    assert load_dataset(plain)[1][SUMMARY_KEY] == {}
    assert not behaviors_csv_path(plain).exists()
    assert "yardstick" not in capsys.readouterr().out


def test_expert_collection_is_independent_of_workers_and_leaves_other_days_alone():
    mix = {**DEFAULT_BEHAVIORS, EXPERT: 0.3}
    serial = collect(episodes=12, seed=5, noise=0.5, env_kwargs=TINY, behaviors=mix,
                     progress=False)
    parallel = collect(episodes=12, seed=5, noise=0.5, env_kwargs=TINY, behaviors=mix,
                       progress=False, workers=2)
    assert EXPERT in set(serial["behavior"]) and serial["behavior"].nunique() > 2
    pd.testing.assert_frame_equal(serial, parallel)
    assert serial.attrs["bidenv"] == parallel.attrs["bidenv"]
    assert list(serial.attrs["bidenv"][SUMMARY_KEY]) == [EXPERT]
    # Computing yardsticks (and the expert's) never changes a logged row.
    with_yardstick = collect(episodes=12, seed=5, noise=0.5, env_kwargs=TINY, behaviors=mix,
                             progress=False, yardstick=True)
    pd.testing.assert_frame_equal(serial, with_yardstick)


def test_expert_draws_nothing_from_the_plan_stream():
    # Swap expert for truthful (which draws nothing either) at the same place and weight: every
    # episode picks the same slot of the mix with the same campaign and noise, and the days
    # that are not expert days are logged identically.
    kw = dict(episodes=12, seed=5, noise=0.5, env_kwargs=TINY)
    with_expert = {"pid_cpa": 0.4, EXPERT: 0.3, "fixed": 0.3}
    without = {"pid_cpa": 0.4, "truthful": 0.3, "fixed": 0.3}
    a, b = CollectConfig(behaviors=with_expert, **kw), CollectConfig(behaviors=without, **kw)
    for ep in range(12):
        plan_a, plan_b = behavior_plan(a, ep), behavior_plan(b, ep)
        assert plan_a["behavior"] == {"truthful": EXPERT}.get(plan_b["behavior"],
                                                              plan_b["behavior"])
        assert {**plan_a, "behavior": None} == {**plan_b, "behavior": None}
    frame_a, frame_b = collect(a, progress=False), collect(b, progress=False)
    expert_days = set(frame_a.loc[frame_a["behavior"] == EXPERT, "episode"])
    assert 0 < len(expert_days) < 12

    def others(frame):
        return frame[~frame["episode"].isin(expert_days)].reset_index(drop=True)

    pd.testing.assert_frame_equal(others(frame_a), others(frame_b))
    # ... while the expert days themselves differ from the truthful ones (alpha != 1).
    assert not np.allclose(frame_a.loc[frame_a["behavior"] == EXPERT, "alpha"].to_numpy()[:5],
                           frame_b.loc[frame_b["behavior"] == "truthful", "alpha"].to_numpy()[:5])
