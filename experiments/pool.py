"""The one worker pool of every ``--workers`` command.

:func:`worker_pool` returns a ``ProcessPoolExecutor`` that

* starts at most ``min(workers, jobs, CPU count)`` processes (a one-day job with
  ``--workers 64`` starts one worker, not 64 that each import torch);
* pins BLAS, OpenMP and torch in each worker to the parent's ``--threads`` (one by default;
  :func:`experiments.threads.pin_threads`);
* never outlives its parent: on Linux each worker asks the kernel for SIGTERM when the parent
  dies (``prctl(PR_SET_PDEATHSIG)``), so SIGKILL, SIGTERM or Ctrl-C of the command leaves no
  worker running;
* stops at once when the ``with`` block raises (Ctrl-C included): queued tasks are cancelled
  and the workers terminated, instead of the executor's default of finishing every queued
  task first.

:func:`map_ordered` runs a function over tasks, serially for one worker, and returns the
results in task order (identical to a serial run).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor

from bidenv.validation import check_int
from experiments.threads import pin_threads, pinned_threads


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
        except OSError:  # pragma: no cover - no libc.so.6: fall back to the check below
            pass
    if os.getppid() != parent:  # the parent died before the request: go now
        os._exit(1)


def _init_worker(parent: int, extra: Callable[[], None] | None, threads: int) -> None:
    _die_with_parent(parent)
    pin_threads(threads)
    if extra is not None:
        extra()


def pool_size(workers: int, jobs: int) -> int:
    """Processes to start: at most the jobs and the CPUs, at least one."""
    workers = check_int("workers", workers, 1)
    return max(1, min(workers, jobs, os.cpu_count() or 1))


class _Pool(ProcessPoolExecutor):
    """A ``ProcessPoolExecutor`` that, leaving a ``with`` block by an exception, cancels the
    queued tasks and terminates its workers rather than waiting for all of them."""

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return super().__exit__(exc_type, exc, tb)
        processes = list((getattr(self, "_processes", None) or {}).values())
        self.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        return False


def worker_pool(workers: int, jobs: int, initializer: Callable[[], None] | None = None
                ) -> ProcessPoolExecutor:
    """A process pool for ``jobs`` tasks with at most ``workers`` processes (see above)."""
    return _Pool(max_workers=pool_size(workers, jobs), initializer=_init_worker,
                               initargs=(os.getpid(), initializer, pinned_threads()))


def map_ordered(fn: Callable, tasks: Iterable, workers: int, *,
                on_result: Callable | None = None) -> list:
    """``[fn(t) for t in tasks]``, in ``workers`` processes when more than one; calls
    ``on_result(task, result)`` as each result arrives (in task order)."""
    tasks = list(tasks)
    results = []
    if pool_size(workers, len(tasks)) == 1:
        for task in tasks:
            results.append(fn(task))
            if on_result is not None:
                on_result(task, results[-1])
        return results
    with worker_pool(workers, len(tasks)) as pool:
        for task, result in zip(tasks, pool.map(fn, tasks, chunksize=1)):
            results.append(result)
            if on_result is not None:
                on_result(task, result)
    return results
