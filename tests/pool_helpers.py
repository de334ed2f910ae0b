"""Shared helpers of the pool tests (test_pool: local processes, test_ray_executor: Ray tasks).

The task functions run in the pool's workers: local workers import this module by name (tests/
is on ``sys.path``); Ray's workers get it by value (the Ray fixture registers it with
``cloudpickle.register_pickle_by_value``).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from experiments.pool import map_ordered


def mark_and_sleep(task):
    """Write this process's pid to ``folder/i``; every task but the first then sleeps 60 s."""
    folder, i = task
    (Path(folder) / f"{i}").write_text(str(os.getpid()))
    if i > 0:
        time.sleep(60)
    return i


class Stop(Exception):
    pass


def stop_on_a_running_pool(folder: Path, **executor) -> dict[int, int]:
    """Run 7 :func:`mark_and_sleep` tasks on 2 workers and raise in ``on_result`` (task 0's)
    once a sleeper has started beside task 0. Checks that the error reached the caller within
    30 s (not after the 60 s sleepers) and that no queued task ran; returns ``{task: pid}`` of
    the tasks that started."""
    tasks = [(str(folder), i) for i in range(7)]

    def stop(task, result):
        while len(list(folder.iterdir())) < 2:  # a sleeper has started beside task 0
            time.sleep(0.05)
        raise Stop

    start = time.monotonic()
    with pytest.raises(Stop):
        map_ordered(mark_and_sleep, tasks, 2, on_result=stop, **executor)
    assert time.monotonic() - start < 30, "the parent waited for the sleepers"
    started = {int(p.name): int(p.read_text()) for p in folder.iterdir()}
    assert set(started) <= {0, 1, 2}, "queued tasks ran after the error"
    return started


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


def wait_until_gone(pids, timeout: float) -> list[int]:
    """Wait up to ``timeout`` s for ``pids`` to exit; SIGKILL and return those still alive (so
    that a failing test leaves nothing behind)."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    return left


def descendants(pid: int, *, recursive: bool = True) -> set[int]:
    """The children of ``pid`` (``recursive``: and theirs, and so on) from Linux /proc."""
    found, todo = set(), [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").iterdir():
            try:
                kids = {int(x) for x in (task / "children").read_text().split()}
            except FileNotFoundError:
                continue
            if recursive:
                todo += list(kids - found)
            found |= kids
    return found
