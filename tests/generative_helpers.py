"""Shared helpers of the generative-bidder tests (test_dt, test_gave, test_gas)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

import bidenv  # noqa: F401  (registers the envs)
from agents.common import fit
from bidenv.offline import Trajectories
from experiments.collect import collect

ENV = "bidenv/AutoBiddingLite-v0"
#: Tiny networks so that every test file stays well under 30 s on one core.
TINY = {"embed_dim": 16, "n_layers": 1, "n_heads": 2, "context": 4, "batch_size": 8,
        "warmup_steps": 2}


def tiny_data(episodes: int = 3) -> Trajectories:
    return Trajectories.from_frame(collect(episodes=episodes, seed=0, progress=False))


def play_day(agent, seed: int = 5, *, with_update: bool = True) -> dict:
    """Play one Lite day; returns obs (T, F), actions (T,), infos and the campaign."""
    env = gym.make(ENV)
    obs, _ = env.reset(seed=seed)
    campaign = env.unwrapped.agent_campaign.to_dict()
    agent.reset(campaign)
    out = {"obs": [], "actions": [], "infos": [], "campaign": campaign}
    while True:
        a = agent.act(obs)
        out["obs"].append(obs)
        out["actions"].append(float(a[0]))
        obs, _, term, trunc, info = env.step(a)
        out["infos"].append(info)
        if with_update:
            agent.update(info, env.unwrapped.last_tick_opportunities())
        if term or trunc:
            break
    out["obs"] = np.array(out["obs"], np.float32)
    out["actions"] = np.array(out["actions"], np.float32)
    return out


def state_equal(a, b) -> bool:
    sa, sb = a.state_tensors(with_optimizers=False), b.state_tensors(with_optimizers=False)
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k][n], sb[k][n]) for k in sa for n in sa[k])


def check_fit_save_load_resume(cls, data, tmp_path, **config):
    """fit / act / save / load (weights only) / resume for one agent class."""
    full = fit(cls(**config), data, steps=6, seed=3, out=tmp_path / "full",
               checkpoint_every=3, progress=False)
    day = play_day(full)
    loaded = cls.load(tmp_path / "full")
    np.testing.assert_array_equal(play_day(loaded)["actions"], day["actions"])
    tensors = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    assert any(k.startswith("net.") for k in tensors)
    # Interrupted after 3 steps, resumed to 6: same weights as the uninterrupted run.
    fit(cls(**config), data, steps=3, seed=3, out=tmp_path / "part", checkpoint_every=3,
        progress=False)
    resumed = fit(cls(**config), data, steps=6, seed=3, out=tmp_path / "part",
                  checkpoint_every=3, resume=True, progress=False)
    assert state_equal(resumed, full)
    # A different seed gives different weights (the comparison above can fail).
    other = fit(cls(**config), data, steps=6, seed=4, progress=False)
    assert not state_equal(other, full)
    return full
