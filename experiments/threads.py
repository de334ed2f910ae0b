"""The one place that pins torch, OpenMP and BLAS threads (``--threads`` of every command that
trains or evaluates, and every worker of :mod:`experiments.pool`).

Small models and simulated days run fastest on one thread per process, and processes side by
side then do not fight over cores: on a busy 2-core machine unpinned torch ran 5-11x slower, and
the traffic generator's small matrix products slow down several-fold when BLAS threads compete.

:func:`pin_threads` sets, in this process:

* ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``MKL_NUM_THREADS`` (read by torch when it is
  imported later, and by numpy in any process started from this one);
* the BLAS numpy has already loaded, through ``threadpoolctl`` (environment variables are read
  only when a library loads, and forked workers inherit the parent's loaded BLAS);
* torch's intra-op threads and, while still allowed, its inter-op threads, when torch is loaded.

The pool's workers call it with the parent's last value (:func:`pinned_threads`).
"""

from __future__ import annotations

import os
import sys

from bidenv.validation import check_int

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_pinned = 1


def max_threads() -> int:
    """The largest ``--threads``: the CPU count (more threads than CPUs only compete)."""
    return max(1, os.cpu_count() or 1)


def check_threads(value) -> int:
    """``value`` as a thread count in ``[1, max_threads()]``, else a one-line ``ValueError``
    naming ``--threads``."""
    return check_int("--threads", value, 1, max_threads())


def _limit_loaded_blas(n: int) -> None:
    """Limit the BLAS libraries already loaded in this process to ``n`` threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")


def pin_threads(n: int = 1) -> int:
    """``n`` torch / OpenMP / BLAS threads in this process and the processes it starts (see the
    module's docstring); returns ``n``."""
    global _pinned
    n = check_threads(n)
    _pinned = n
    for name in THREAD_VARIABLES:
        os.environ[name] = str(n)
    _limit_loaded_blas(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
        try:  # allowed once, before any inter-op work; later calls keep the first value
            torch.set_num_interop_threads(n)
        except RuntimeError:
            pass
    return n


def pinned_threads() -> int:
    """The ``n`` of this process's last :func:`pin_threads` (1 if never called)."""
    return _pinned


def describe(n: int, workers: int | None = None) -> str:
    """The log line of a command's thread settings."""
    processes = "1 process" if not workers or workers == 1 else f"up to {workers} worker processes"
    return f"threads: torch {n}, BLAS {n} per process, {processes} (--threads to change)"
