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

**Executors.** The pool runs on an executor: :class:`LocalExecutor` (the process pool above,
the default) or :class:`RayExecutor` (Ray tasks on a local Ray instance or a cluster;
``pip install 'bidenv[distributed]'``). :func:`use_executor` sets the one this process's
commands use (``--executor local|ray`` and ``--ray-address``); :func:`map_ordered`,
:func:`worker_pool`, :func:`pool_size` and :func:`in_process` take ``executor=`` to override it.
The contract is the same on both: ``worker_pool(...)`` is a context manager with
``submit(fn, *args) -> concurrent.futures.Future``; every task runs with threads pinned to the
parent's ``--threads`` (a Ray task declares that many CPUs); at most ``workers`` tasks run at
once; leaving the ``with`` block by an exception (Ctrl-C included) cancels the queued tasks and
stops the running ones (Ray: ``ray.cancel(force=True)``); ``map_ordered`` calls ``on_done`` as
each task finishes (completion order: progress bars) and ``on_result`` in task order, and
returns results in task order, so files are identical on either executor.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, as_completed, wait

from bidenv.validation import check_int, first_line
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


def pool_size(workers: int, jobs: int, *, executor=None) -> int:
    """Processes to start (Ray: tasks at once): at most the jobs and, locally, the CPUs; at
    least one."""
    return (executor or current_executor()).pool_size(workers, jobs)


def in_process(workers: int, jobs: int, *, executor=None) -> bool:
    """Whether ``jobs`` tasks run one after another in this process (the local executor with a
    pool of one); on Ray every task is a Ray task."""
    return (executor or current_executor()).in_process(workers, jobs)


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


def worker_pool(workers: int, jobs: int, initializer: Callable[[], None] | None = None, *,
                executor=None):
    """A pool for ``jobs`` tasks with at most ``workers`` at once (see above): a process pool
    locally, a :class:`RayExecutor`'s task pool on Ray; both have ``submit`` and stop at once
    when their ``with`` block raises."""
    return (executor or current_executor()).pool(workers, jobs, initializer)


def map_ordered(fn: Callable, tasks: Iterable, workers: int, *,
                on_result: Callable | None = None, on_done: Callable | None = None,
                executor=None) -> list:
    """``[fn(t) for t in tasks]``, in ``workers`` processes (or Ray tasks) when more than one.

    Calls ``on_done(task)`` as each task finishes (completion order: for progress bars) and
    ``on_result(task, result)`` in task order, as soon as every earlier task has finished; the
    results are returned in task order, identical to a serial run on either executor."""
    executor = executor or current_executor()
    tasks = list(tasks)
    results: list = [None] * len(tasks)
    if executor.in_process(workers, len(tasks)):
        for i, task in enumerate(tasks):
            results[i] = fn(task)
            if on_done is not None:
                on_done(task)
            if on_result is not None:
                on_result(task, results[i])
        return results
    finished = [False] * len(tasks)
    following = 0  # the next task to hand to on_result
    with executor.pool(workers, len(tasks)) as pool:
        futures = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            finished[i] = True
            if on_done is not None:
                on_done(tasks[i])
            while following < len(tasks) and finished[following]:
                if on_result is not None:
                    on_result(tasks[following], results[following])
                following += 1
    return results


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------
class LocalExecutor:
    """Worker processes on this machine (:class:`concurrent.futures.ProcessPoolExecutor`)."""

    kind = "local"

    def pool_size(self, workers: int, jobs: int) -> int:
        workers = check_int("workers", workers, 1)
        return max(1, min(workers, jobs, os.cpu_count() or 1))

    def in_process(self, workers: int, jobs: int) -> bool:
        return self.pool_size(workers, jobs) == 1

    def default_workers(self) -> int:
        return 1

    def pool(self, workers: int, jobs: int, initializer=None) -> ProcessPoolExecutor:
        return _Pool(max_workers=self.pool_size(workers, jobs), initializer=_init_worker,
                     initargs=(os.getpid(), initializer, pinned_threads()))

    def describe(self, workers: int) -> str:
        return f"executor: local, up to {workers} worker process(es)"

    def close(self) -> None:
        pass


MISSING_RAY = "--executor ray needs Ray: pip install 'bidenv[distributed]'"


class RayExecutor:
    """Ray tasks on the Ray instance at ``address`` (``"auto"``: the cluster this machine
    joined with ``ray start``; ``None``: a Ray already started in this process, else a new
    local instance, even if ``ray start`` runs one on this machine). Each task declares
    ``--threads`` CPUs (``num_cpus``) and pins its threads to them; at most ``workers`` tasks
    are in flight (default: the cluster's CPUs / threads).

    A missing Ray raises ``ImportError`` with one line naming the extra; an unreachable
    address raises ``ConnectionError``."""

    kind = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise ImportError(MISSING_RAY) from None
        self._ray = ray
        self.address = address
        self.started = not ray.is_initialized()
        if self.started:
            _check_reachable(address)
            try:
                ray.init(address=address or "local", num_cpus=num_cpus, include_dashboard=False,
                         log_to_driver=False, logging_level=logging.ERROR)
            except Exception as exc:  # Ray reports a bad address in several ways
                where = address or "a new local instance"
                first = first_line(exc)
                raise ConnectionError(f"cannot start or reach Ray at {where}: {first}"
                                      ) from None
        self._remote = ray.remote(_ray_call)

    def cpus(self) -> int:
        return int(self._ray.cluster_resources().get("CPU", 1))

    def pool_size(self, workers: int, jobs: int) -> int:
        workers = check_int("workers", workers, 1)
        return max(1, min(workers, jobs))

    def in_process(self, workers: int, jobs: int) -> bool:
        return False

    def default_workers(self) -> int:
        return max(1, self.cpus() // pinned_threads())

    def pool(self, workers: int, jobs: int, initializer=None) -> _RayPool:
        return _RayPool(self._remote, self.pool_size(workers, jobs), pinned_threads(),
                        initializer)

    def describe(self, workers: int) -> str:
        where = self.address or ("a local instance" if self.started else "this process's Ray")
        return (f"executor: ray at {where}, {self.cpus()} CPUs, up to {workers} tasks at once "
                f"of {pinned_threads()} CPU(s) each")

    def close(self) -> None:
        if self.started and self._ray.is_initialized():
            self._ray.shutdown()


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """A ``HOST:PORT`` address that does not answer is a one-line ``ConnectionError`` at once
    (Ray itself retries for minutes, logging every attempt)."""
    import socket

    if not address or "://" in address or ":" not in address:
        return  # "auto", "local", ray:// client addresses: Ray's own checks
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"cannot reach Ray at {address}: {exc}") from None


_worker_threads: int | None = None
_worker_initialized: set[str] = set()


def _ray_call(fn: Callable, args: tuple, kwargs: dict, threads: int,
              initializer: Callable[[], None] | None):
    """A Ray task: pin threads (once per worker process and value), run the pool's initializer
    (once per worker process), then ``fn(*args, **kwargs)``."""
    global _worker_threads
    if _worker_threads != threads:
        pin_threads(threads)
        _worker_threads = threads
    if initializer is not None:
        key = f"{getattr(initializer, '__module__', '')}.{getattr(initializer, '__qualname__', '')}"
        if key not in _worker_initialized:
            initializer()
            _worker_initialized.add(key)
    return fn(*args, **kwargs)


class _RayPool:
    """``submit`` returns a :class:`concurrent.futures.Future` of a Ray task; at most ``limit``
    tasks are in flight (the rest wait here, not in Ray's queue, so cancelling them is free).
    Leaving the ``with`` block normally waits for every task; by an exception, cancels the
    waiting tasks and ``ray.cancel``s the running ones."""

    def __init__(self, remote, limit: int, threads: int, initializer=None):
        import ray

        self._ray = ray
        self._remote = remote.options(num_cpus=threads)
        self._limit = limit
        self._threads = threads
        self._initializer = initializer
        self._lock = threading.RLock()
        self._waiting: deque = deque()
        self._running: dict = {}  # ObjectRef -> Future
        self._closed = False

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a closed pool")
            self._waiting.append((future, fn, args, kwargs))
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        with self._lock:
            while self._waiting and len(self._running) < self._limit and not self._closed:
                future, fn, args, kwargs = self._waiting.popleft()
                if not future.set_running_or_notify_cancel():
                    continue
                ref = self._remote.remote(fn, args, kwargs, self._threads, self._initializer)
                self._running[ref] = future
                ref.future().add_done_callback(lambda inner, ref=ref: self._finished(ref, inner))

    def _finished(self, ref, inner: Future) -> None:
        with self._lock:
            future = self._running.pop(ref, None)
        if future is None:  # cancelled
            return
        try:
            result = inner.result()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            future.set_exception(exc)
        else:
            future.set_result(result)
        self._dispatch()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            while True:
                with self._lock:
                    pending = [f for f, *_ in self._waiting] + list(self._running.values())
                if not pending:
                    break
                wait(pending)
            self._closed = True
            return False
        with self._lock:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            running, self._running = dict(self._running), {}
        for future, *_ in waiting:
            future.cancel()
        for ref, future in running.items():
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished meanwhile, or Ray is going away
                pass
            future.set_exception(CancelledError())
        return False


_executor = LocalExecutor()


def current_executor():
    """The executor this process's pools use (:func:`use_executor`; local by default)."""
    return _executor


def use_executor(kind: str = "local", address: str | None = None, **kwargs):
    """Make ``kind`` (``"local"`` or ``"ray"``, at ``address``) this process's executor and
    return it; the previous one is closed (a Ray instance it started is shut down)."""
    global _executor
    from bidenv.validation import check_choice

    check_choice("executor", kind, ("local", "ray"))
    new = RayExecutor(address, **kwargs) if kind == "ray" else LocalExecutor()
    old, _executor = _executor, new
    if old is not new:
        old.close()
    return new
