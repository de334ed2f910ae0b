"""``bidenv quickstart``: simulate held-out days for the built-in bidders, print a summary."""

from __future__ import annotations

import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import bidenv  # noqa: F401  (registers the environments)
from bidenv.competitors import HeuristicBidder

DEFAULT_CAMPAIGN = {"budget": 4000.0, "constraint": "cpa", "target_cpa": 60.0, "category": 3}


def default_strategies() -> list:
    """The built-in bidders compared by the quickstart."""
    return [
        HeuristicBidder("fixed", 1.0, name="truthful"),
        HeuristicBidder("fixed", 0.8, name="shaded_0.8"),
        HeuristicBidder("pacing", 1.0, name="budget_pacing"),
        HeuristicBidder("constraint", 1.0, name="cpa_control"),
    ]


def run_day(env, agent, seed: int, options: dict | None = None) -> dict:
    """Play one day with ``agent``; returns the final info plus the agent's name and seed."""
    obs, info = env.reset(seed=seed, options=options)
    agent.reset(env.unwrapped.agent_campaign.to_dict())
    while True:
        obs, _, terminated, truncated, info = env.step(agent.act(obs))
        if terminated or truncated:
            break
    return info


def simulate(strategies, *, episodes: int, seed: int, env_id: str, campaign: dict,
             progress: bool = True) -> pd.DataFrame:
    """One row per (strategy, day); day i of every strategy is ``reset(seed=seed + i)``."""
    env = gym.make(env_id, campaign=campaign)
    rows = []
    total = len(strategies) * episodes
    with tqdm(total=total, desc="simulating days", disable=not progress, unit="day") as bar:
        for agent in strategies:
            for i in range(episodes):
                info = run_day(env, agent, seed + i)
                rows.append({
                    "strategy": agent.name, "episode": i, "seed": seed + i,
                    "score": info["score"], "expected_score": info["expected_score"],
                    "conversions": info["total_conversions"], "cost": info["total_cost"],
                    "cpa": info["cpa"], "target_cpa": campaign["target_cpa"],
                    "budget_used": info["total_cost"] / info["budget"],
                })
                bar.update()
    return pd.DataFrame(rows)


def summarise(episodes: pd.DataFrame) -> pd.DataFrame:
    """Mean per strategy, best expected score first."""
    g = episodes.groupby("strategy", sort=False)
    out = g[["score", "expected_score", "conversions", "cost", "budget_used"]].mean()
    out["cpa"] = g["cost"].sum() / g["conversions"].sum().replace(0, np.nan)
    out["cpa_vs_target"] = out["cpa"] / g["target_cpa"].first()
    out["days"] = g.size()
    return out.sort_values("expected_score", ascending=False).reset_index()


def run_quickstart(*, episodes: int = 3, seed: int = 1000, env_id: str = "bidenv/AutoBidding-v0",
                   out=None, progress: bool = True) -> pd.DataFrame:
    """The README's main job: compare the built-in bidders on held-out days."""
    from experiments.io import atomic_write_csv

    start = time.perf_counter()
    campaign = DEFAULT_CAMPAIGN
    print(f"bidenv quickstart: {env_id}, {episodes} day(s) per strategy from seed {seed}; "
          f"campaign: budget {campaign['budget']:g}, target CPA {campaign['target_cpa']:g}")
    frame = simulate(default_strategies(), episodes=episodes, seed=seed, env_id=env_id,
                     campaign=campaign, progress=progress)
    summary = summarise(frame)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(summary.to_string(index=False, float_format=lambda x: f"{x:,.3f}"))
    if out is not None:
        out = Path(out)
        atomic_write_csv(out / "episodes.csv", frame)
        atomic_write_csv(out / "summary.csv", summary)
        print(f"wrote {out / 'summary.csv'} and {out / 'episodes.csv'}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return summary
