"""Every trainable (offline) agent through the same life cycle on tiny data:
fit -> act -> save -> load -> act again, resume == uninterrupted, plain-tensor checkpoints,
and a day in the simulator through the evaluation harness."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import agents  # noqa: E402
import bidenv  # noqa: E402, F401
from agents.common import CONFIG_FILE, WEIGHTS_FILE, OfflineAgent, fit  # noqa: E402
from bidenv.offline import save_dataset  # noqa: E402
from experiments.benchmark import OFFLINE_AGENTS  # noqa: E402
from experiments.collect import collect  # noqa: E402

LITE = "bidenv/AutoBiddingLite-v0"
TINY = {"batch_size": 16}
STEPS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("data") / "tiny.parquet"
    save_dataset(collect(episodes=6, seed=0, progress=False), path)
    return path


def small(name):
    return agents.make(name, **TINY)


def test_every_offline_agent_is_registered():
    assert set(OFFLINE_AGENTS) <= set(agents.available())
    for name in OFFLINE_AGENTS:
        assert isinstance(small(name), OfflineAgent)


def observations(n=5):
    env = gym.make(LITE)
    obs, _ = env.reset(seed=11)
    out = [obs]
    for _ in range(n - 1):
        obs, *_ = env.step(np.zeros(1, np.float32))
        out.append(obs)
    return out


def actions_of(agent, obs_list, campaign):
    agent.reset(campaign)
    out = []
    for obs in obs_list:
        a = np.asarray(agent.act(obs))
        assert a.shape == (1,) and a.dtype == np.float32
        assert -1.0 <= float(a[0]) <= 1.0
        out.append(a.copy())
    return np.concatenate(out)


CAMPAIGN = {"budget": 400.0, "constraint": "cpa", "target_cpa": 60.0}


@pytest.mark.parametrize("name", OFFLINE_AGENTS)
def test_fit_act_save_load_resume(name, data, tmp_path):
    obs_list = observations()
    agent = fit(small(name), data, steps=STEPS, seed=3, out=tmp_path / "full",
                checkpoint_every=4, progress=False, log=False)
    first = actions_of(agent, obs_list, CAMPAIGN)
    # Same seed, same result.
    again = fit(small(name), data, steps=STEPS, seed=3, progress=False, log=False)
    np.testing.assert_array_equal(actions_of(again, obs_list, CAMPAIGN), first)
    # Save / load: identical actions, files are plain tensors + JSON.
    loaded = agents.from_spec(f"{name}:{tmp_path / 'full'}")
    np.testing.assert_array_equal(actions_of(loaded, obs_list, CAMPAIGN), first)
    torch.load(tmp_path / "full" / WEIGHTS_FILE, weights_only=True)
    meta = json.loads((tmp_path / "full" / CONFIG_FILE).read_text())
    assert meta["agent"] == name and meta["step"] == STEPS
    # Inference-only copy: no optimiser state, same actions.
    slim = loaded.save(tmp_path / "slim", with_optimizers=False)
    assert not any(k.startswith("optim.") for k in
                   torch.load(slim / WEIGHTS_FILE, weights_only=True))
    assert (slim / WEIGHTS_FILE).stat().st_size < (tmp_path / "full" / WEIGHTS_FILE).stat().st_size
    np.testing.assert_array_equal(
        actions_of(agents.from_spec(f"{name}:{slim}"), obs_list, CAMPAIGN), first)
    # Interrupted at step 8 (checkpoint), resumed to 12: same as uninterrupted.
    part = tmp_path / "part"
    fit(small(name), data, steps=8, seed=3, out=part, checkpoint_every=4, progress=False,
        log=False)
    resumed = fit(small(name), data, steps=STEPS, seed=3, out=part, checkpoint_every=4,
                  resume=True, progress=False, log=False)
    np.testing.assert_array_equal(actions_of(resumed, obs_list, CAMPAIGN), first)


@pytest.mark.parametrize("name", OFFLINE_AGENTS)
def test_a_checkpoint_of_another_agent_is_refused(name, data, tmp_path):
    other = "bc" if name != "bc" else "iql"
    fit(small(other), data, steps=2, seed=0, out=tmp_path, progress=False, log=False)
    with pytest.raises(ValueError, match="holds agent"):
        agents.from_spec(f"{name}:{tmp_path}")


def test_trained_agents_play_a_day_in_the_harness(data, tmp_path):
    from experiments.evaluate import evaluate

    specs = []
    for name in OFFLINE_AGENTS:
        fit(small(name), data, steps=4, seed=0, out=tmp_path / name, progress=False, log=False)
        specs.append(f"{name}:{tmp_path / name}")
    frame, _ = evaluate(specs, episodes=1, seed=5, scenarios="smoke", env_id=LITE,
                        progress=False)
    assert list(frame["agent"]) == list(OFFLINE_AGENTS)
    assert np.all(np.isfinite(frame["expected_score"]))
    assert np.all(frame["expected_score"] <= frame["own_oracle_score"] * 1.02 + 1e-9)
