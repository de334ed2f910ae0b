"""The shared worker pool: capped size, pinned threads, and no worker outliving its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pool_helpers import descendants, stop_on_a_running_pool, wait_until_gone

from experiments.pool import map_ordered, pool_size

ROOT = Path(__file__).resolve().parent.parent


def _square(x):
    return x * x, os.environ.get("OMP_NUM_THREADS")


def test_pool_size_is_capped_by_jobs_and_cpus():
    assert pool_size(64, 1) == 1
    assert pool_size(64, 1000) == (os.cpu_count() or 1)
    assert pool_size(2, 0) == 1
    with pytest.raises(ValueError, match="workers"):
        pool_size(0, 5)


def test_map_ordered_matches_serial_and_pins_threads():
    got = map_ordered(_square, range(7), 2)
    assert [g[0] for g in got] == [x * x for x in range(7)]
    if pool_size(2, 7) > 1:
        assert {g[1] for g in got} == {"1"}  # BLAS/OpenMP pinned in the workers
    seen = []
    map_ordered(_square, [3, 1], 1, on_result=lambda task, result: seen.append(task))
    assert seen == [3, 1]


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="needs Linux /proc and two CPUs")
def test_an_error_in_the_parent_cancels_queued_tasks_and_stops_workers(tmp_path):
    """Leaving the pool by an exception (Ctrl-C is one) must not first run every queued task:
    the executor's default would run tasks 3..6 and wait minutes for the 60 s sleepers."""
    started = stop_on_a_running_pool(tmp_path)
    assert wait_until_gone(set(started.values()), 10) == []


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="needs Linux /proc and two CPUs")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("command", ["evaluate", "collect"])
def test_no_worker_outlives_a_killed_command(tmp_path, sig, command):
    if command == "evaluate":
        args = ["evaluate", "--agents", "truthful,pid_budget", "--episodes", "20",
                "--out", str(tmp_path / "out")]
    else:
        args = ["collect", "--episodes", "200", "--out", str(tmp_path / "d.parquet")]
    cmd = [sys.executable, "-m", "experiments.cli", *args, "--workers", "2", "--env",
           "bidenv/AutoBiddingLite-v0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        workers = descendants(proc.pid, recursive=False)
    assert len(workers) >= 2, "the command did not start its workers"
    os.kill(proc.pid, sig)
    # Generous: a signal waits for the running C call to return (on a fresh clone that can
    # be numba compiling the auction kernel, slow on a loaded machine).
    proc.wait(timeout=90)
    assert wait_until_gone(workers, 20) == []
