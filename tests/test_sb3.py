"""Online RL through stable-baselines3: a PPO smoke run trains, saves, loads and evaluates."""

import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from agents.sb3 import SB3Agent, TrainConfig, train  # noqa: E402

LITE = "bidenv/AutoBiddingLite-v0"


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ppo")
    train(TrainConfig(algo="ppo", env_id=LITE, timesteps=512, seed=0, n_envs=2,
                      net_arch=[16, 16]), out, progress=False)
    return out


def test_run_folder_holds_plain_files(ppo_run):
    config = json.loads((ppo_run / "config.json").read_text())
    assert config["algo"] == "ppo" and config["timesteps"] == 512 and config["train_seconds"] > 0
    with zipfile.ZipFile(ppo_run / "model.zip") as zf:
        assert "policy.pth" in zf.namelist()
    assert (ppo_run / "policy.pt").stat().st_size > 0
    assert any((ppo_run / "tb").iterdir())  # TensorBoard event files


def _play(agent, seed=3):
    env = gym.make(LITE)
    obs, _ = env.reset(seed=seed)
    agent.reset({})
    actions = []
    while True:
        a = agent.act(obs)
        assert env.action_space.contains(a)
        actions.append(float(a[0]))
        obs, _, terminated, truncated, info = env.step(a)
        if terminated or truncated:
            return actions, info


def test_load_from_folder_and_zip_gives_the_same_policy(ppo_run):
    a1, info1 = _play(SB3Agent.load(ppo_run))
    a2, info2 = _play(SB3Agent.load(ppo_run / "model.zip"))
    assert a1 == a2 and info1 == info2
    assert len(set(np.round(a1, 6))) > 1  # the policy reacts to the observation


def test_training_is_reproducible(ppo_run, tmp_path):
    train(TrainConfig(algo="ppo", env_id=LITE, timesteps=512, seed=0, n_envs=2,
                      net_arch=[16, 16]), tmp_path, progress=False)
    assert _play(SB3Agent.load(tmp_path))[0] == _play(SB3Agent.load(ppo_run))[0]


def test_harness_loads_ppo_checkpoints(ppo_run):
    import agents
    from experiments.evaluate import evaluate

    assert {"ppo", "sac", "td3"} <= set(agents.available())
    frame, _ = evaluate(f"truthful,ppo:{ppo_run / 'model.zip'}", episodes=1, seed=2,
                        scenarios="smoke", env_id=LITE, progress=False)
    assert list(frame["agent"]) == ["truthful", "ppo"]
    assert (frame["expected_score"] <= frame["own_oracle_score"] * 1.02 + 1e-9).all()


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_off_policy_algorithms_train(algo, tmp_path):
    train(TrainConfig(algo=algo, env_id=LITE, timesteps=96, seed=1, net_arch=[8],
                      algo_kwargs={"learning_starts": 48}), tmp_path, progress=False)
    actions, _ = _play(SB3Agent.load(tmp_path))
    assert all(-1 <= a <= 1 for a in actions)


def test_bad_config_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="algo"):
        TrainConfig(algo="dqn").validate()
    with pytest.raises(ValueError, match="timesteps"):
        TrainConfig(timesteps=0).validate()
    with pytest.raises(ValueError, match="config.json"):
        SB3Agent.load(tmp_path)


def test_training_sees_the_scenarios_campaigns_and_the_expected_reward():
    """SB3 trains on the env's drawn campaigns (ROI included, like the scenarios it is scored
    on) with the noise-free expected-score reward by default."""
    from stable_baselines3.common.env_util import make_vec_env

    config = TrainConfig(algo="ppo", env_id=LITE, seed=0)
    venv = make_vec_env(config.make_env, n_envs=1, seed=0)  # exactly as train() builds it
    kinds = []
    for _ in range(40):
        venv.reset()
        base = venv.envs[0].unwrapped
        kinds.append(base.agent_campaign.constraint)
    assert base.reward_mode == "expected_score"
    roi = kinds.count("roi") / len(kinds)
    assert 0.05 < roi < 0.45, kinds  # the scenarios' ~20% ROI share
    assert kinds.count("cpa") > 0
    # One tick's reward is the increment of the expected score.
    env = config.make_env()
    env.reset(seed=4)
    _, reward, *_, info = env.step(np.zeros(1, np.float32))
    assert reward == pytest.approx(info["expected_score"], abs=1e-12)
    with pytest.raises(ValueError, match="reward_mode"):
        TrainConfig(reward_mode="profit").validate()


def test_native_vector_env_trains_exactly_as_sb3_dummy_vec_env(ppo_run, tmp_path):
    # The fixture trained on the native batched vector env (the default); SB3's own
    # DummyVecEnv steps the same days one env after another, so the weights are identical.
    assert json.loads((ppo_run / "config.json").read_text())["vectorization"] == "native"
    train(TrainConfig(algo="ppo", env_id=LITE, timesteps=512, seed=0, n_envs=2,
                      net_arch=[16, 16], vectorization="dummy"), tmp_path, progress=False)
    import torch

    native = torch.load(ppo_run / "policy.pt", weights_only=True)
    dummy = torch.load(tmp_path / "policy.pt", weights_only=True)
    assert native.keys() == dummy.keys()
    for key in native:
        torch.testing.assert_close(native[key], dummy[key], rtol=0, atol=0)


def test_native_vec_env_hands_sb3_the_terminal_observation():
    import agents.sb3 as sb3

    config = TrainConfig(algo="ppo", env_id=LITE, n_envs=2, seed=4,
                         env_kwargs={"opportunities_per_day": 8_000, "n_competitors": 11})
    venv = config.make_vec_env(2)
    assert isinstance(venv, sb3.NativeVecEnv)
    obs = venv.reset()
    assert obs.shape == (2, venv.observation_space.shape[0])
    single = gym.make(LITE, reward_mode="expected_score", **config.env_kwargs)
    np.testing.assert_array_equal(obs[1], single.reset(seed=5)[0])  # env i: seed + i
    for _ in range(48):
        obs, rewards, dones, infos = venv.step(np.ones((2, 1), np.float32))
        o, r, te, tr, _ = single.step(np.ones(1, np.float32))
        assert rewards.dtype == np.float32 and rewards[1] == np.float32(r)
        if dones[1]:
            break
    assert te and dones[1]
    np.testing.assert_array_equal(infos[1]["terminal_observation"], o)
    assert infos[1]["TimeLimit.truncated"] is (tr and not te)
    np.testing.assert_array_equal(obs[1], single.reset()[0])  # reset in the same step
    assert venv.get_attr("reward_mode") == ["expected_score"] * 2
    with pytest.raises(ValueError, match="SameStep"):
        sb3.NativeVecEnv(gym.make_vec(LITE, num_envs=2, vectorization_mode="vector_entry_point"))


def test_bad_vectorization_is_refused():
    with pytest.raises(ValueError, match="vectorization"):
        TrainConfig(vectorization="subproc").validate()
