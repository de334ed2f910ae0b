"""``bidenv benchmark``: train the RL agents, then evaluate them with the heuristics.

Presets:

* ``smoke``: PPO for a few thousand steps on ``AutoBiddingLite-v0``, evaluated with the
  heuristics on 3 held-out days of the ``smoke`` scenario (a CI-sized check that the whole
  pipeline runs);
* ``full``: PPO, SAC and TD3 on ``AutoBiddingLite-v0``, evaluated with the heuristics on 10
  held-out days of every scenario of the ``default`` preset.

Training uses seed ``S`` (its environments are seeded ``S, S+1, ...`` once and then run on);
evaluation days are ``reset(seed=S + 1_000_000 + i)``, disjoint from anything training reset
to. The outputs are the leaderboard files of ``bidenv evaluate`` plus each agent's run folder
under ``DIR/runs``.
"""

from __future__ import annotations

import time
from pathlib import Path

EVAL_SEED_OFFSET = 1_000_000
HEURISTICS = ["truthful", "pid_budget", "pid_cpa", "online_lp"]
PRESETS = {
    "smoke": {"env_id": "bidenv/AutoBiddingLite-v0", "algos": {"ppo": 2048}, "episodes": 3,
              "scenarios": "smoke"},
    "full": {"env_id": "bidenv/AutoBiddingLite-v0",
             "algos": {"ppo": 100_000, "sac": 30_000, "td3": 30_000}, "episodes": 10,
             "scenarios": "default"},
}


def run_benchmark(*, preset: str = "smoke", seed: int = 0, out, workers: int = 1,
                  progress: bool = True):
    """Train every RL agent of the preset and evaluate all agents; returns the leaderboard."""
    from agents.sb3 import TrainConfig, train
    from experiments.evaluate import run_evaluate
    from experiments.io import atomic_write_json

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {list(PRESETS)}, got {preset!r}")
    spec = PRESETS[preset]
    out = Path(out)
    start = time.perf_counter()
    trained = []
    for algo, steps in spec["algos"].items():
        run_dir = out / "runs" / algo
        print(f"training {algo} for {steps:,} steps on {spec['env_id']} (seed {seed})")
        train(TrainConfig(algo=algo, env_id=spec["env_id"], timesteps=steps, seed=seed),
              run_dir, progress=progress)
        trained.append(f"{algo}:{run_dir}")
    train_seconds = time.perf_counter() - start
    board = run_evaluate(HEURISTICS + trained, episodes=spec["episodes"],
                         seed=seed + EVAL_SEED_OFFSET, scenarios=spec["scenarios"], out=out,
                         env_id=spec["env_id"], workers=workers, progress=progress)
    atomic_write_json(out / "benchmark.json", {
        "preset": preset, "seed": seed, "eval_seed": seed + EVAL_SEED_OFFSET,
        "train_seconds": train_seconds, "total_seconds": time.perf_counter() - start,
        **{k: v for k, v in spec.items()}})
    return board
