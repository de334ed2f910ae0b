"""``--threads``: every command that trains or evaluates pins torch / OpenMP / BLAS threads, in
the parent and in the pool's workers, and says so on stdout (stderr stays one line for a refused
command)."""

from __future__ import annotations

import os

import pytest

from experiments import threads
from experiments.cli import THREADED_COMMANDS, _default_workers, _set_up_threads, build_parser, main
from experiments.pool import map_ordered, pool_size

torch = pytest.importorskip("torch")

# The least arguments each command's parser accepts.
REQUIRED = {
    "quickstart": [],
    "simulate-budget": ["--out", "o"],
    "evaluate": ["--agents", "truthful", "--out", "o"],
    "train": ["bc", "--out", "o"],
    "benchmark": ["--out", "o"],
    "collect": ["--episodes", "1", "--out", "o.parquet"],
    "steer": ["--agent", "dt:run", "--out", "o"],
    "scale": ["--data", "d.parquet", "--out", "o"],
    "market": ["--agents", "truthful", "--out", "o"],
    "selfplay": ["--out", "o"],
}
N = min(2, threads.max_threads())


@pytest.fixture(autouse=True)
def _back_to_one_thread():
    yield
    threads.pin_threads(1)


def _blas_threads():
    """Threads of the BLAS libraries loaded here (one value when they all agree)."""
    from threadpoolctl import threadpool_info

    counts = {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}
    return counts.pop() if len(counts) == 1 else counts


def _probe(_):
    return (torch.get_num_threads(), _blas_threads(),
            {name: os.environ.get(name) for name in threads.THREAD_VARIABLES}), os.getpid()


def test_every_command_that_trains_or_evaluates_takes_threads():
    assert set(REQUIRED) == set(THREADED_COMMANDS)
    parser = build_parser()
    for command, args in REQUIRED.items():
        assert parser.parse_args([command, *args]).threads == 1, command
        assert parser.parse_args([command, *args, "--threads", str(N)]).threads == N, command


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "many", str(threads.max_threads() + 1)])
@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_a_bad_thread_count_is_refused_naming_the_option(command, bad, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, *REQUIRED[command], "--threads", bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--threads" in err and f"[1, {threads.max_threads()}]" in err and repr(bad) in err
    with pytest.raises(ValueError, match=r"--threads must be an integer in \[1, "):
        threads.check_threads(0)


def test_set_up_pins_the_parent_and_the_workers(capsys):
    args = build_parser().parse_args(["evaluate", *REQUIRED["evaluate"], "--workers", "2",
                                      "--threads", str(N)])
    _set_up_threads(args)
    assert capsys.readouterr().out == (
        f"threads: torch {N}, BLAS {N} per process, up to 2 worker processes "
        "(--threads to change)\n")
    assert threads.pinned_threads() == N
    parent, pid = _probe(None)
    assert parent[0] == N
    assert parent[1] == N  # numpy's already-loaded BLAS
    assert parent[2] == {name: str(N) for name in threads.THREAD_VARIABLES}
    workers = map_ordered(_probe, range(4), 2)
    assert [w[0] for w in workers] == [parent] * 4
    if pool_size(2, 4) > 1:
        assert pid not in {w[1] for w in workers}  # they ran in the workers

    threads.pin_threads(1)  # and back: workers started now get one thread
    assert map_ordered(_probe, range(2), 2)[0][0][0] == 1


def test_quickstart_logs_its_default_workers(capsys):
    from experiments.quickstart import default_workers

    args = build_parser().parse_args(["quickstart"])
    _default_workers(args, None)
    assert args.workers == default_workers()
    _set_up_threads(args)
    processes = ("1 process" if args.workers == 1
                 else f"up to {args.workers} worker processes")
    assert capsys.readouterr().out == (
        f"threads: torch 1, BLAS 1 per process, {processes} (--threads to change)\n")


def test_a_command_logs_its_threads(tmp_path, capsys):
    assert main(["evaluate", "--agents", "truthful", "--episodes", "1", "--scenarios", "smoke",
                 "--env", "bidenv/AutoBiddingLite-v0", "--threads", str(N),
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"threads: torch {N}, BLAS {N} per process, 1 process ")
    assert torch.get_num_threads() == N
