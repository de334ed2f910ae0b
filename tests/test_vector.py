"""The native vector env: N days in one pass, each the day a single env plays on its seed."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import bidenv  # noqa: F401
from bidenv.day import play_ticks
from bidenv.vector import AutoBiddingVectorEnv

LITE = "bidenv/AutoBiddingLite-v0"
SMALL = dict(opportunities_per_day=8_000, n_competitors=11)


def _vec(n, **kwargs):
    return gym.make_vec(LITE, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)


def _actions(step, n):
    # Different per env and per step; env 1 bids 10x its value so that its budget runs out
    # early (a day that ends before its last tick).
    a = np.sin(0.7 * step + np.arange(n))[:, None].astype(np.float32) * 0.5
    a[1:2] = 1.0
    return a


def _same_info(vinfo, i, info):
    for key, value in info.items():
        assert vinfo[f"_{key}"][i], key
        got = vinfo[key][i]
        if isinstance(value, float):
            # Exactly: the same arithmetic on the same draws (NaN: a CPA before any sale).
            assert float(got) == value or (np.isnan(got) and np.isnan(value)), key
        else:
            assert got == value, key


def test_make_vec_builds_the_native_env_from_the_id():
    venv = _vec(3, reward_mode="expected_score")
    assert isinstance(venv.unwrapped, AutoBiddingVectorEnv)
    assert venv.num_envs == 3
    assert venv.observation_space.shape == (3, len(venv.unwrapped.feature_names))
    assert venv.action_space.shape == (3, 1)
    assert venv.unwrapped.max_episode_steps == 48  # the id's registration
    assert all(e.reward_mode == "expected_score" for e in venv.unwrapped.envs)
    assert all(e.opportunities_per_day == 50_000 for e in venv.unwrapped.envs)  # Lite's kwargs
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP


@pytest.mark.parametrize("n", [1, 4])
def test_env_i_plays_the_single_env_day_of_seed_s_plus_i(n):
    venv = _vec(n, **SMALL)
    singles = [gym.make(LITE, **SMALL) for _ in range(n)]
    obs, info = venv.reset(seed=30)
    for i, env in enumerate(singles):
        o, inf = env.reset(seed=30 + i)
        np.testing.assert_array_equal(obs[i], o)
        _same_info(info, i, inf)
    done = np.zeros(n, bool)
    ended_early = False
    for step in range(48):
        a = _actions(step, n)
        obs, rew, term, trunc, info = venv.step(a)
        for i, env in enumerate(singles):
            if done[i]:
                continue
            o, r, te, tr, inf = env.step(a[i])
            np.testing.assert_array_equal(obs[i], o)
            assert rew[i] == r and term[i] == te and trunc[i] == tr
            _same_info(info, i, inf)
            if te or tr:
                done[i] = True
                ended_early |= inf["tick"] < 48
        if done.all():
            break
    assert done.all()
    assert ended_early or n == 1  # the over-bidding env 1 ran out of budget


def test_play_ticks_equals_ticks_played_one_day_at_a_time():
    a = AutoBiddingVectorEnv(3, **SMALL)
    b = AutoBiddingVectorEnv(3, **SMALL)
    a.reset(seed=5)
    b.reset(seed=5)
    for step in range(20):
        acts = _actions(step, 3)
        alphas_a = [e.begin_step(x) for e, x in zip(a.envs, acts)]
        alphas_b = [e.begin_step(x) for e, x in zip(b.envs, acts)]
        stats_a = play_ticks([e.day for e in a.envs], alphas_a)
        stats_b = [e.day.play_tick(al) for e, al in zip(b.envs, alphas_b)]
        for ea, eb, sa, sb, al in zip(a.envs, b.envs, stats_a, stats_b, alphas_a):
            for field in sa.__dataclass_fields__:
                np.testing.assert_array_equal(getattr(sa, field), getattr(sb, field))
            np.testing.assert_array_equal(ea.day.obs_all, eb.day.obs_all)
            np.testing.assert_array_equal(ea.day.exhausted, eb.day.exhausted)
            ea.finish_step(al, sa)
            eb.finish_step(al, sb)
        if any(e._done for e in a.envs):
            break


def test_next_step_autoreset_starts_the_next_day_with_reward_zero():
    venv = _vec(2, **SMALL)
    single = gym.make(LITE, **SMALL)
    venv.reset(seed=3)
    single.reset(seed=4)
    a = np.full((2, 1), 1.0, np.float32)  # both overspend: days end early
    while True:
        _, _, term, trunc, _ = venv.step(a)
        _, _, te, tr, _ = single.step(a[1])
        assert term[1] == te
        if te or tr:
            break
    obs, rew, term, trunc, info = venv.step(a)  # the reset step of env 1
    o, inf = single.reset()  # unseeded: the env's own generator goes on
    np.testing.assert_array_equal(obs[1], o)
    assert rew[1] == 0.0 and not term[1] and not trunc[1]
    assert info["tick"][1] == 0


def test_same_step_autoreset_puts_the_last_observation_in_the_info():
    venv = _vec(2, autoreset_mode="SameStep", **SMALL)
    single = gym.make(LITE, **SMALL)
    venv.reset(seed=8)
    single.reset(seed=8)
    a = np.full((2, 1), 1.0, np.float32)
    while True:
        obs, rew, term, trunc, info = venv.step(a)
        o, r, te, tr, inf = single.step(a[0])
        assert rew[0] == r
        if te or tr:
            break
    assert term[0] and info["_final_obs"][0]
    np.testing.assert_array_equal(info["final_obs"][0], o)
    assert info["final_info"]["score"][0] == inf["score"]
    np.testing.assert_array_equal(obs[0], single.reset()[0])
    assert info["tick"][0] == 0


def test_reset_mask_and_truncation():
    venv = AutoBiddingVectorEnv(3, max_episode_steps=5, **SMALL)
    venv.reset(seed=0)
    a = np.zeros((3, 1), np.float32)
    for _ in range(4):
        _, _, term, trunc, _ = venv.step(a)
        assert not trunc.any()
    _, _, term, trunc, info = venv.step(a)
    assert trunc.all() and not term.any()  # the step limit, not the day, ended it
    ticks_before = [e.tick for e in venv.envs]
    obs, info = venv.reset(seed=[11, 12, 13], options={"reset_mask": np.array([0, 1, 0], bool)})
    assert [e.tick for e in venv.envs] == [ticks_before[0], 0, ticks_before[2]]
    assert list(info["_tick"]) == [False, True, False]
    single = gym.make(LITE, **SMALL)
    np.testing.assert_array_equal(obs[1], single.reset(seed=12)[0])


def test_reset_options_set_every_env_campaign():
    venv = AutoBiddingVectorEnv(2, **SMALL)
    _, info = venv.reset(seed=1, options={"budget": 321.0, "constraint": "cpa",
                                          "target_cpa": 40.0})
    assert list(info["budget"]) == [321.0, 321.0]
    assert list(info["target"]) == [40.0, 40.0]


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_envs=0), "num_envs"),
    (dict(num_envs=2, autoreset_mode="Sometimes"), "autoreset_mode"),
    (dict(num_envs=2, max_episode_steps=0), "max_episode_steps"),
])
def test_bad_arguments_are_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoBiddingVectorEnv(**kwargs, **SMALL)


def test_bad_steps_are_refused():
    venv = AutoBiddingVectorEnv(2, **SMALL)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros((2, 1)))
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2, 1\)"):
        venv.step(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="finite"):
        venv.step(np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="seed"):
        venv.reset(seed=[1, 2, 3])


def test_disabled_autoreset_asks_for_a_masked_reset():
    venv = AutoBiddingVectorEnv(2, autoreset_mode="Disabled", **SMALL)
    venv.reset(seed=0)
    a = np.full((2, 1), 1.0, np.float32)
    for _ in range(48):
        _, _, term, trunc, _ = venv.step(a)
        if (term | trunc).any():
            break
    with pytest.raises(RuntimeError, match="reset_mask"):
        venv.step(a)
    venv.reset(options={"reset_mask": term | trunc})
    venv.step(np.zeros((2, 1), np.float32))  # goes on


def test_render_returns_one_frame_per_env():
    venv = AutoBiddingVectorEnv(2, render_mode="ansi", **SMALL)
    venv.reset(seed=0)
    venv.step(np.zeros((2, 1), np.float32))
    frames = venv.render()
    assert len(frames) == 2 and all(f.count("\n") == 2 for f in frames)  # header + 1 tick


def test_play_ticks_groups_days_by_layout_and_hands_back_withdrawn_bids():
    # Days 0 and 2 clear together (same mechanism), day 1 alone: a group whose days are not
    # adjacent in the batch, so its bids are gathered and the in-place withdrawals copied
    # back. Every day's stats, state and the bids its recording hook sees equal the day
    # played alone; competitors run out of budget mid-tick, so withdrawals happen.
    from bidenv.env import AutoBiddingEnv

    mechanisms = ["gsp", "first_price", "gsp"]
    make = lambda m: AutoBiddingEnv(mechanism=m, record=True, **SMALL)  # noqa: E731
    batched, alone = [make(m) for m in mechanisms], [make(m) for m in mechanisms]
    for i, (a, b) in enumerate(zip(batched, alone)):
        a.reset(seed=40 + i)
        b.reset(seed=40 + i)
    withdrawn = 0
    for _ in range(48):
        acts = np.zeros((3, 1), np.float32)
        live = [i for i in range(3) if not batched[i]._done]
        if not live:
            break
        alphas_a = [batched[i].begin_step(acts[i]) for i in live]
        alphas_b = [alone[i].begin_step(acts[i]) for i in live]
        stats_a = play_ticks([batched[i].day for i in live], alphas_a,
                             [batched[i]._auction_hook() for i in live])
        for i, al_a, al_b, sa in zip(live, alphas_a, alphas_b, stats_a):
            sb = alone[i].day.play_tick(al_b, alone[i]._auction_hook())
            for field in sa.__dataclass_fields__:
                np.testing.assert_array_equal(getattr(sa, field), getattr(sb, field))
            np.testing.assert_array_equal(batched[i].day.exhausted, alone[i].day.exhausted)
            np.testing.assert_array_equal(batched[i].day.obs_all, alone[i].day.obs_all)
            ra, rb = batched[i].recording[-1], alone[i].recording[-1]
            np.testing.assert_array_equal(ra["rival_bids"], rb["rival_bids"])
            if mechanisms[i] == "gsp":  # the group whose bids were gathered
                withdrawn += int(batched[i].day.exhausted[1:].sum())
            batched[i].finish_step(al_a, sa)
            alone[i].finish_step(al_b, sb)
    assert withdrawn > 0
