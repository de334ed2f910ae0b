"""``bidenv bench``: how fast the simulator runs, against the bare auction kernel.

Prints opportunities per second for (a) the bare vectorised K-slot GSP kernel
(:func:`bidenv.auction.run_auction` on pre-drawn float32 bids, nothing else), (b) traffic
generation alone, and (c) a full environment day (traffic, competitors' bids, auctions with
budgets, outcomes, observations) driven by a budget-pacing bidder, all measured in the same
process, with their ratio and the peak memory a day allocates (tracemalloc, which numpy
reports its arrays to).
"""

from __future__ import annotations

import platform
import resource
import time
import tracemalloc

import gymnasium as gym
import numpy as np

import bidenv  # noqa: F401  (registers the environments)
from bidenv.auction import run_auction
from bidenv.competitors import HeuristicBidder


def bench_kernel(n: int, k: int, n_slots: int, repeats: int, seed: int) -> float:
    """Best-of-``repeats`` opportunities/second of the bare GSP kernel on (n, k) bids."""
    rng = np.random.default_rng(seed)
    bids = (0.05 * rng.lognormal(0.0, 0.8, size=(n, k))).astype(np.float32)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run_auction(bids, n_slots=n_slots, rng=rng, reserve=0.01, mechanism="gsp")
        best = min(best, time.perf_counter() - start)
    return n / best


def _make_env(n: int, k: int, n_slots: int, traffic: str):
    exposure = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)[:n_slots] if n_slots <= 8 else None
    if exposure is None:
        exposure = tuple(np.linspace(1.0, 0.1, n_slots))
    return gym.make("bidenv/AutoBidding-v0", opportunities_per_day=n, n_competitors=k - 1,
                    n_slots=n_slots, slot_exposure=exposure, traffic=traffic,
                    campaign={"budget": 4000.0 * n / 500_000, "constraint": "cpa",
                              "target_cpa": 60.0})


class _CountingPacer(HeuristicBidder):
    """The competitors' budget-pacing bidder, counting the opportunities and ticks it bids on."""

    def __init__(self, env):
        super().__init__("pacing")
        self.base, self.opportunities, self.ticks = env.unwrapped, 0, 0

    def act(self, obs):
        self.opportunities += self.base.batch.n  # the tick about to be played
        self.ticks += 1
        return super().act(obs)


def run_env_day(env, seed: int) -> tuple[int, int]:
    """Play one day with a pacing bidder; returns (opportunities, ticks)."""
    from agents import run_episode

    agent = _CountingPacer(env)
    run_episode(env, agent, seed=seed)
    return agent.opportunities, agent.ticks


def bench_env(n: int, k: int, n_slots: int, traffic: str, repeats: int, seed: int):
    """Best-of-``repeats`` opportunities/second of full environment days."""
    env = _make_env(n, k, n_slots, traffic)
    best, total, ticks = 0.0, 0, 0
    for i in range(repeats):
        start = time.perf_counter()
        total, ticks = run_env_day(env, seed + i)
        best = max(best, total / (time.perf_counter() - start))
    return best, total, ticks


def bench_traffic(n: int, k: int, traffic: str, seed: int) -> float:
    """Opportunities/second of drawing one day of traffic for k advertisers."""
    env = _make_env(n, k, 3, traffic)
    env.reset(seed=seed)
    source, rng = env.unwrapped.traffic, np.random.default_rng(seed)
    start, total = time.perf_counter(), 0
    for tick in range(env.unwrapped.n_ticks):
        total += source.sample(tick, rng).n
    return total / (time.perf_counter() - start)


def peak_memory_mb(n: int, k: int, n_slots: int, traffic: str, seed: int) -> float:
    """Peak memory (MB) allocated while making and playing one day."""
    tracemalloc.start()
    env = _make_env(n, k, n_slots, traffic)
    run_env_day(env, seed)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def run_bench(*, n: int = 500_000, k: int = 48, n_slots: int = 3, traffic: str = "mixed",
              repeats: int = 3, seed: int = 0, out=None) -> dict:
    """Run all benchmarks, print a table and return the figures."""
    kernel = bench_kernel(n, k, n_slots, repeats, seed)
    gen = bench_traffic(n, k, traffic, seed)
    env_rate, total, ticks = bench_env(n, k, n_slots, traffic, repeats, seed)
    peak = peak_memory_mb(n, k, n_slots, traffic, seed)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "opportunities": n, "advertisers": k, "slots": n_slots, "traffic": traffic,
        "kernel_opps_per_s": kernel, "traffic_opps_per_s": gen, "env_opps_per_s": env_rate,
        "env_over_kernel": env_rate / kernel, "env_day_opportunities": total,
        "env_day_ticks": ticks, "env_day_seconds": total / env_rate,
        "peak_day_memory_mb": peak, "process_max_rss_mb": rss,
        "python": platform.python_version(), "numpy": np.__version__,
        "machine": platform.machine(),
    }
    print(f"bidenv bench: {n:,} opportunities, {k} advertisers, {n_slots} slots, "
          f"{traffic} traffic (best of {repeats})")
    print(f"  (a) bare {n_slots}-slot GSP kernel   {kernel:>12,.0f} opportunities/s")
    print(f"      traffic generation only  {gen:>12,.0f} opportunities/s")
    print(f"  (b) full environment day     {env_rate:>12,.0f} opportunities/s "
          f"({total:,} opportunities, {ticks} ticks, {total / env_rate:.2f} s)")
    print(f"  ratio env / kernel           {env_rate / kernel:>12.2f}")
    print(f"  peak memory of a day         {peak:>12.1f} MB (tracemalloc); "
          f"process max RSS {rss:.0f} MB")
    if out is not None:
        from pathlib import Path

        from experiments.io import atomic_write_json

        path = atomic_write_json(Path(out) / "bench.json", result)
        print(f"wrote {path}")
    return result
