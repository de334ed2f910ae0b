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
