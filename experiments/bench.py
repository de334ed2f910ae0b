"""``bidenv bench``: how fast the simulator runs, against the bare auction kernel.

Prints opportunities per second for (a) the bare vectorised K-slot GSP kernel
(:func:`bidenv.auction.run_auction` on pre-drawn float32 bids, nothing else), (b) traffic
generation alone, and (c) a full environment day (traffic, competitors' bids, auctions with
budgets, outcomes, observations) driven by a budget-pacing bidder, all measured in the same
process, with their ratio and the peak memory a day allocates (tracemalloc, which numpy
reports its arrays to).

The kernel figure is always the bare *numpy* backend (the yardstick of the issue's goal: a
full day at least as fast as that kernel alone); the day runs with the auction backend in use
(:data:`bidenv.auction.BACKEND`), which is printed, and when that is not numpy the same kernel
is also timed under it. Kernel and day repetitions alternate (kernel, day, kernel, day, ...) so
that a shared machine's load shifts both alike, and every figure is the median of the
repetitions.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
import tracemalloc

import gymnasium as gym
import numpy as np

import bidenv  # noqa: F401  (registers the environments)
from bidenv import auction
from bidenv.auction import run_auction, use_backend
from bidenv.competitors import HeuristicBidder


def kernel_bids(n: int, k: int, seed: int) -> np.ndarray:
    """The kernel benchmark's (n, k) float32 bids."""
    rng = np.random.default_rng(seed)
    return (0.05 * rng.lognormal(0.0, 0.8, size=(n, k))).astype(np.float32)


def time_kernel(bids: np.ndarray, n_slots: int, rng: np.random.Generator,
                backend: str = "numpy") -> float:
    """Seconds of one bare GSP kernel call on ``bids`` under ``backend``."""
    with use_backend(backend):
        start = time.perf_counter()
        run_auction(bids, n_slots=n_slots, rng=rng, reserve=0.01, mechanism="gsp")
        return time.perf_counter() - start


def first_call_seconds() -> float:
    """Seconds of the process's first auction calls (float32 and float64 bids) under the
    active backend: for numba, loading the cached kernel or compiling it; 0-ish for numpy."""
    bids = np.ones((4, 3), np.float32)
    start = time.perf_counter()
    for dtype in (np.float32, np.float64):
        run_auction(bids.astype(dtype), n_slots=1, rng=np.random.default_rng(0))
    return time.perf_counter() - start


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


def time_env_day(env, seed: int) -> tuple[float, int, int]:
    """(opportunities/second, opportunities, ticks) of one full environment day."""
    start = time.perf_counter()
    total, ticks = run_env_day(env, seed)
    return total / (time.perf_counter() - start), total, ticks


def bench_interleaved(n: int, k: int, n_slots: int, traffic: str, repeats: int,
                      seed: int) -> dict:
    """Kernel and day repetitions alternated; medians of each.

    Returns ``kernel`` (numpy backend), ``kernel_active`` (the active backend, None when
    that is numpy), ``env`` (opportunities/second), and the last day's ``total``/``ticks``.
    """
    backend = auction.BACKEND
    bids, rng = kernel_bids(n, k, seed), np.random.default_rng(seed)
    env = _make_env(n, k, n_slots, traffic)
    time_kernel(bids[:64], n_slots, rng, "numpy")
    time_kernel(bids[:64], n_slots, rng, backend)
    kernel, active, days = [], [], []
    for i in range(repeats):
        kernel.append(time_kernel(bids, n_slots, rng, "numpy"))
        days.append(time_env_day(env, seed + i))
        if backend != "numpy":
            active.append(time_kernel(bids, n_slots, rng, backend))
    return {"kernel": n / statistics.median(kernel),
            "kernel_active": n / statistics.median(active) if active else None,
            "env": statistics.median(d[0] for d in days),
            "total": days[-1][1], "ticks": days[-1][2]}


def bench_vector(n_envs: int, steps: int, repeats: int, seed: int, k: int = 48,
                 env_id: str = "bidenv/AutoBiddingLite-v0") -> dict:
    """Env steps per CPU second on one core: a single env, SB3-style ``sync`` vectorisation
    (Gymnasium's ``SyncVectorEnv``: one env after another) and the native vector env, each
    playing ``steps`` env steps (``steps // n_envs`` batched steps) per repetition, the three
    alternated; medians. Actions are 0 (alpha = 1); a day that ends is reset (NextStep)."""
    kwargs = {} if k == 48 else {"n_competitors": k - 1}
    single = gym.make(env_id, **kwargs)
    vectors = {mode: gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode, **kwargs)
               for mode in ("sync", "vector_entry_point")}
    single.reset(seed=seed)
    for venv in vectors.values():
        venv.reset(seed=seed)
    one, batch = np.zeros(1, np.float32), np.zeros((n_envs, 1), np.float32)

    def run_single():
        start = time.process_time()
        for _ in range(steps):
            _, _, terminated, truncated, _ = single.step(one)
            if terminated or truncated:
                single.reset()
        return steps / (time.process_time() - start)

    def run_vector(venv):
        start = time.process_time()
        for _ in range(max(1, steps // n_envs)):
            venv.step(batch)
        return max(1, steps // n_envs) * n_envs / (time.process_time() - start)

    rates = {"single": [], "sync": [], "native": []}
    for _ in range(repeats):
        rates["single"].append(run_single())
        rates["sync"].append(run_vector(vectors["sync"]))
        rates["native"].append(run_vector(vectors["vector_entry_point"]))
    for venv in vectors.values():
        venv.close()
    med = {name: statistics.median(r) for name, r in rates.items()}
    return {"env_id": env_id, "n_envs": n_envs, "single_steps_per_cpu_s": med["single"],
            "sync_steps_per_cpu_s": med["sync"], "native_steps_per_cpu_s": med["native"],
            "native_over_single": med["native"] / med["single"],
            "sync_over_single": med["sync"] / med["single"]}


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
              repeats: int = 3, seed: int = 0, vector_envs: int = 16, vector_steps: int = 480,
              out=None) -> dict:
    """Run all benchmarks, print a table and return the figures."""
    backend = auction.BACKEND
    first_call = first_call_seconds()
    gen = bench_traffic(n, k, traffic, seed)
    timed = bench_interleaved(n, k, n_slots, traffic, repeats, seed)
    kernel, env_rate = timed["kernel"], timed["env"]
    total, ticks = timed["total"], timed["ticks"]
    peak = peak_memory_mb(n, k, n_slots, traffic, seed)
    vector = bench_vector(vector_envs, vector_steps, repeats, seed, k=k)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "opportunities": n, "advertisers": k, "slots": n_slots, "traffic": traffic,
        "kernel_opps_per_s": kernel, "traffic_opps_per_s": gen, "env_opps_per_s": env_rate,
        "env_over_kernel": env_rate / kernel, "env_day_opportunities": total,
        "env_day_ticks": ticks, "env_day_seconds": total / env_rate,
        "peak_day_memory_mb": peak, "process_max_rss_mb": rss,
        "auction_backend": backend, "kernel_backend": "numpy",
        "kernel_active_backend_opps_per_s": timed["kernel_active"],
        "first_auction_call_seconds": first_call,
        "vector": vector,
        "repeats": repeats, "statistic": "median, kernel and day runs interleaved",
        "python": platform.python_version(), "numpy": np.__version__,
        "machine": platform.machine(),
    }
    print(f"bidenv bench: {n:,} opportunities, {k} advertisers, {n_slots} slots, "
          f"{traffic} traffic (median of {repeats}, kernel and day runs interleaved)")
    print(f"  auction backend              {backend} (first call {first_call:.2f} s)")
    print(f"  (a) bare {n_slots}-slot GSP kernel   {kernel:>12,.0f} opportunities/s (numpy)")
    if timed["kernel_active"] is not None:
        print(f"      same kernel, {backend:<12}{timed['kernel_active']:>12,.0f} opportunities/s")
    print(f"      traffic generation only  {gen:>12,.0f} opportunities/s")
    print(f"  (b) full environment day     {env_rate:>12,.0f} opportunities/s "
          f"({total:,} opportunities, {ticks} ticks, {total / env_rate:.2f} s)")
    print(f"  ratio env / kernel           {env_rate / kernel:>12.2f}")
    print(f"  peak memory of a day         {peak:>12.1f} MB (tracemalloc); "
          f"process max RSS {rss:.0f} MB")
    print(f"  (c) {vector['env_id']} env steps per CPU second (one core), "
          f"{vector_envs} envs, {vector_steps} steps per run")
    print(f"      single env               {vector['single_steps_per_cpu_s']:>12,.0f}")
    print(f"      gym sync vector env      {vector['sync_steps_per_cpu_s']:>12,.0f} "
          f"({vector['sync_over_single']:.2f}x)")
    print(f"      native vector env        {vector['native_steps_per_cpu_s']:>12,.0f} "
          f"({vector['native_over_single']:.2f}x)")
    if out is not None:
        from pathlib import Path

        from experiments.io import atomic_write_json

        path = atomic_write_json(Path(out) / "bench.json", result)
        print(f"wrote {path}")
    return result
