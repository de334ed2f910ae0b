"""Ray as an executor (``--executor ray``): the same pool contract as the local processes.

Identical files on either executor, results in task order but progress in completion order,
threads pinned in Ray's workers, an error or Ctrl-C in the parent cancels the Ray tasks, and a
missing Ray is one line naming the extra. One local Ray instance (2 CPUs) serves the module;
the tests are skipped where Ray is not installed (``pip install 'bidenv[distributed]'``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

import pool_helpers
import pytest
from pool_helpers import descendants, stop_on_a_running_pool, wait_until_gone

from experiments import pool
from experiments.cli import main
from experiments.threads import pin_threads

ROOT = Path(__file__).resolve().parent.parent
LITE = ["--env", "bidenv/AutoBiddingLite-v0"]


@pytest.fixture(scope="module")
def ray_executor():
    ray = pytest.importorskip("ray")
    from ray import cloudpickle

    # Ray's workers cannot import the test modules: ship their task functions by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cloudpickle.register_pickle_by_value(pool_helpers)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield pool.RayExecutor()
    finally:
        pool.use_executor("local")
        ray.shutdown()


# --------------------------------------------------------------------------------------------
# Task functions (run in Ray's workers)
# --------------------------------------------------------------------------------------------
def _square_slowly(x):
    if x == 0:
        time.sleep(1.0)  # the first task finishes last
    return x * x, os.environ.get("OMP_NUM_THREADS"), os.getpid()


def _fail(x):
    if x == 2:
        raise ValueError("task 2 is bad")
    return x


# --------------------------------------------------------------------------------------------
# The pool contract on Ray
# --------------------------------------------------------------------------------------------
def test_map_ordered_on_ray_returns_task_order_and_streams_progress(ray_executor):
    done, taken = [], []
    got = pool.map_ordered(_square_slowly, range(5), 2, executor=ray_executor,
                           on_done=done.append, on_result=lambda t, r: taken.append(t))
    assert [g[0] for g in got] == [x * x for x in range(5)]
    assert taken == [0, 1, 2, 3, 4]  # results handed over in task order...
    assert sorted(done) == [0, 1, 2, 3, 4] and done[0] != 0  # ...progress as tasks finish
    assert {g[1] for g in got} == {"1"}  # threads pinned to the parent's --threads
    assert ray_executor.pool_size(64, 5) == 5 and not ray_executor.in_process(1, 1)
    assert ray_executor.default_workers() == 2


def test_ray_tasks_pin_the_parents_threads_and_declare_them(ray_executor):
    try:
        pin_threads(2)
        got = pool.map_ordered(_square_slowly, [1, 2], 2, executor=ray_executor)
        assert {g[1] for g in got} == {"2"}
        assert ray_executor.default_workers() == 1  # 2 CPUs / 2 threads per task
    finally:
        pin_threads(1)


def test_worker_pool_on_ray_has_the_interface_benchmark_uses(ray_executor):
    with pool.worker_pool(2, 3, executor=ray_executor) as p:
        running = {p.submit(_square_slowly, i): i for i in (3, 4, 5)}
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        assert finished
    assert sorted(f.result()[0] for f in running) == [9, 16, 25]


def test_a_task_error_reaches_the_parent(ray_executor):
    with pytest.raises(ValueError, match="task 2 is bad"):
        pool.map_ordered(_fail, range(4), 2, executor=ray_executor)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux /proc")
def test_an_error_in_the_parent_cancels_the_ray_tasks(ray_executor, tmp_path):
    started = stop_on_a_running_pool(tmp_path, executor=ray_executor)
    sleepers = {pid for i, pid in started.items() if i > 0}
    assert wait_until_gone(sleepers, 20) == [], "a cancelled Ray task is still running"
    # Ray is still usable afterwards.
    assert pool.map_ordered(_fail, [0, 1], 2, executor=ray_executor) == [0, 1]


# --------------------------------------------------------------------------------------------
# Identical files on either executor
# --------------------------------------------------------------------------------------------
def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _run(argv, capsys) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_evaluate_writes_identical_files_on_ray(ray_executor, tmp_path, capsys):
    args = ["evaluate", "--agents", "truthful,pid_budget", "--episodes", "2", "--scenarios",
            "smoke", *LITE]
    _run([*args, "--out", str(tmp_path / "local")], capsys)
    out = _run([*args, "--out", str(tmp_path / "ray"), "--executor", "ray"], capsys)
    assert "executor: ray" in out and "2 CPUs" in out
    local, ray = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert "episodes.csv" in local and local.keys() == ray.keys()
    assert [name for name in local if local[name] != ray[name]] == []
    assert pool.current_executor().kind == "local"  # the command leaves the default behind


def test_collect_and_simulate_budget_write_identical_files_on_ray(ray_executor, tmp_path,
                                                                  capsys):
    for executor in ("local", "ray"):
        _run(["collect", "--episodes", "21", *LITE, "--executor", executor,
              "--out", str(tmp_path / f"{executor}.parquet")], capsys)
        _run(["simulate-budget", "--budgets", "2000,4000", "--days", "2", "--strategies",
              "pid_cpa", *LITE, "--workers", "2", "--executor", executor,
              "--out", str(tmp_path / f"budget-{executor}")], capsys)
    assert (tmp_path / "local.parquet").read_bytes() == (tmp_path / "ray.parquet").read_bytes()
    local, ray = _files(tmp_path / "budget-local"), _files(tmp_path / "budget-ray")
    assert "days.csv" in local and local.keys() == ray.keys()
    assert [name for name in local if local[name] != ray[name]] == []


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs POSIX signals")
def test_ctrl_c_cancels_a_ray_command_and_exits_cleanly(tmp_path):
    """A command that starts its own local Ray instance: SIGINT stops it within seconds with
    one line, exit status 130, and leaves no Ray process behind."""
    pytest.importorskip("ray")
    cmd = [sys.executable, "-m", "experiments.cli", "evaluate", "--agents",
           "truthful,pid_budget", "--episodes", "40", *LITE, "--executor", "ray",
           "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        for line in proc.stdout:  # Ray has started once the executor line is printed
            if line.startswith("executor: ray"):
                break
        time.sleep(2)
        children = descendants(proc.pid)
        assert children, "Ray started no processes"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 130
    assert "bidenv: interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "episodes.csv").exists()
    assert wait_until_gone(children, 20) == [], "a Ray process outlived the command"


def test_a_missing_ray_is_one_line_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    with pytest.raises(ImportError, match=r"bidenv\[distributed\]"):
        pool.RayExecutor()
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--agents", "truthful", "--executor", "ray", "--out", "x"])
    message = str(exc.value.code)
    assert message.count("\n") == 0
    assert message.startswith("bidenv evaluate: --executor ray needs Ray")
    assert "pip install 'bidenv[distributed]'" in message
    assert pool.current_executor().kind == "local"


def test_ray_address_needs_the_ray_executor():
    with pytest.raises(SystemExit, match="--ray-address needs --executor ray"):
        main(["collect", "--episodes", "1", "--ray-address", "auto", "--out", "x.parquet"])


def test_an_address_that_does_not_answer_is_one_line_at_once():
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=r"cannot reach Ray at 127\.0\.0\.1:1"):
        pool._check_reachable("127.0.0.1:1")
    assert time.monotonic() - start < 6
    pool._check_reachable("auto")  # left to Ray


def test_the_batch_commands_take_the_executor_flags():
    from experiments.cli import EXECUTOR_COMMANDS, build_parser

    required = {"evaluate": ["--agents", "truthful", "--out", "x"], "collect": [
        "--episodes", "1", "--out", "x"], "simulate-budget": ["--out", "x"],
        "benchmark": ["--out", "x"]}
    assert set(EXECUTOR_COMMANDS) == set(required)
    parser = build_parser()
    for command, args in required.items():
        parsed = parser.parse_args([command, *args])
        assert (parsed.executor, parsed.ray_address, parsed.workers) == ("local", None, None)
        parsed = parser.parse_args([command, *args, "--executor", "ray", "--ray-address",
                                    "auto", "--workers", "3"])
        assert (parsed.executor, parsed.ray_address, parsed.workers) == ("ray", "auto", 3)
