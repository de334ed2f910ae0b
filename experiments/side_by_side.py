"""Side-by-side timing of whole processes: run commands alternately and compare their costs.

:func:`side_by_side` runs each command as a child process, alternating them (A, B, A, B, ...;
with more commands, A, B, C, A, B, C, ...), so slow drifts of a shared machine fall on all of
them alike. For every run it records the wall time, the child's CPU time (user + system) and its
peak resident memory, both read from the child's own resource usage (``os.wait4``, by a small
launcher process so that this process's memory does not leak into the child's figure), and the
exit code; a command that fails raises :class:`CommandFailed` naming it, with the tail of its
stderr.
Lines of the child's stdout holding ``KEY=VALUE`` tokens with an upper-case key (for example
``LOOP_CPU_S=0.97``) are parsed into the run's ``metrics``, so a command can report the time of
its own inner loop next to the whole-process figures.

:func:`summarise` gives per command the medians of CPU time, wall time, peak memory and of every
numeric metric, and for each pair of commands the ratio of those medians.

Command line (the measurement in ``docs/side_by_side.md``)::

    python -m experiments.side_by_side --pairs 3 --bidenv-day bidenv -- \\
        "auctionnet=/tmp/anchor/venv/bin/python /tmp/anchor/run_auctionnet_episode.py"

``NAME=COMMAND`` arguments are split like a shell would (``shlex``) and are not run through a
shell. ``--bidenv-day NAME [KEY=VALUE ...]`` adds this interpreter playing one default bidenv day
(:data:`BIDENV_DAY`) with the given environment variables. It prints a table and the JSON of
:func:`summarise` (``--json PATH`` also writes it, with every run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from statistics import median

__all__ = ["BIDENV_DAY", "CommandFailed", "bidenv_day_command", "main", "side_by_side",
           "summarise"]

BIDENV_DAY = """\
import sys, time, numpy as np, gymnasium as gym, bidenv
env = gym.make("bidenv/AutoBidding-v0")
t = time.process_time(); env.reset(seed=0); reset_cpu = time.process_time() - t
a = np.zeros(1, np.float32); n = ticks = 0; done = False
c, w = time.process_time(), time.perf_counter()
while not done:
    _, _, term, trunc, info = env.step(a)
    n += int(info["opportunities"]); ticks += 1; done = term or trunc
c, w = time.process_time() - c, time.perf_counter() - w
backend = sys.modules["bidenv.auction"].BACKEND; torch_imported = "torch" in sys.modules
print(f"TICKS={ticks} OPPORTUNITIES={n} RESET_CPU_S={reset_cpu:.3f} BACKEND={backend}")
print(f"LOOP_OPP_PER_S={n / c:.0f} TORCH_IMPORTED={torch_imported}")
print(f"LOOP_CPU_S={c:.3f}")
print(f"LOOP_WALL_S={w:.3f}")
"""
"""One default day of ``bidenv/AutoBidding-v0`` (reset(seed=0), a constant action until the day
ends), printing the episode loop's CPU and wall time (reset excluded) as ``LOOP_CPU_S`` and
``LOOP_WALL_S``. It imports numpy, gymnasium and bidenv only (no torch)."""

_METRIC = re.compile(r"(?<![\w=])([A-Z][A-Z0-9_]*)=(\S+)")
_STDERR_TAIL = 2000
# ru_maxrss is in kilobytes on Linux and in bytes on macOS.
_RSS_UNIT_MB = 1 / 1024**2 if sys.platform == "darwin" else 1 / 1024


class CommandFailed(RuntimeError):
    """A command of :func:`side_by_side` could not start or exited with a non-zero code."""

    def __init__(self, name: str, argv: Sequence[str], returncode: int | None, stderr: str,
                 what: str | None = None):
        self.name, self.argv, self.returncode, self.stderr = name, list(argv), returncode, stderr
        what = what or ("could not start" if returncode is None
                        else f"exited with code {returncode}")
        super().__init__(f"command {name!r} {what}: {shlex.join(self.argv)}\n"
                         f"--- tail of its stderr ---\n{stderr[-_STDERR_TAIL:]}")


def bidenv_day_command(python: str | None = None, env: Mapping[str, str] | None = None
                       ) -> list[str]:
    """The argv that plays :data:`BIDENV_DAY` with ``python`` (default: this interpreter),
    through ``env KEY=VALUE ...`` when ``env`` is given."""
    argv = [python or sys.executable, "-c", BIDENV_DAY]
    return ["env", *(f"{k}={v}" for k, v in env.items()), *argv] if env else argv


def _check_commands(commands) -> dict[str, list[str]]:
    if not isinstance(commands, Mapping) or not commands:
        raise ValueError("commands must be a non-empty mapping of name -> argv list, "
                         f"got {commands!r}")
    checked = {}
    for name, argv in commands.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"commands: every name must be a non-empty string, got {name!r}")
        if (isinstance(argv, str | bytes) or not isinstance(argv, Sequence) or not argv
                or not all(isinstance(a, str) for a in argv)):
            raise ValueError(f"commands[{name!r}] must be a non-empty list of strings "
                             f"(an argv, not a shell string), got {argv!r}")
        checked[name] = list(argv)
    return checked


def _parse_metrics(stdout: str) -> dict[str, float | str]:
    metrics: dict[str, float | str] = {}
    for key, value in _METRIC.findall(stdout):
        try:
            metrics[key] = float(value)
        except ValueError:
            metrics[key] = value
    return metrics


# Linux records a process's memory high-water mark at exec into the ru_maxrss it reports, so a
# command started straight from this (possibly large) process would report at least this
# process's peak. Each command is therefore started by a small launcher interpreter, which waits
# on it with os.wait4 and sends back the command's own resource usage on a pipe.
_LAUNCHER = r"""
import json, os, subprocess, sys, time
argv, timeout, fd = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
report = {}
start = time.perf_counter()
try:
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
except OSError as exc:
    report["error"] = f"{type(exc).__name__}: {exc}"
else:
    while True:
        pid, status, usage = os.wait4(proc.pid, 0 if timeout is None else os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - start > timeout:
            proc.kill()
            report["timed_out"] = True
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    proc.returncode = os.waitstatus_to_exitcode(status)
    report.update(wall_s=time.perf_counter() - start, returncode=proc.returncode,
                  user_s=usage.ru_utime, sys_s=usage.ru_stime, maxrss=usage.ru_maxrss)
with os.fdopen(fd, "w") as out:
    json.dump(report, out)
"""


def _run_once(name: str, argv: list[str], cwd, env, timeout: float | None) -> dict:
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            os.fdopen(read_fd) as report_pipe:
        try:
            launcher = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _LAUNCHER, json.dumps(argv),
                 json.dumps(timeout), str(write_fd)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, pass_fds=(write_fd,),
                env=None if env is None else dict(env))
        finally:
            os.close(write_fd)
        raw = report_pipe.read()  # until the launcher closes the pipe (or dies)
        launcher.wait()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    try:
        report = json.loads(raw)
    except ValueError:  # the launcher itself failed, e.g. a bad cwd
        raise CommandFailed(name, argv, None, stderr + raw) from None
    if "error" in report:
        raise CommandFailed(name, argv, None, stderr + report["error"])
    if report.get("timed_out"):
        raise CommandFailed(name, argv, report["returncode"], stderr,
                            f"timed out after {timeout} s")
    if report["returncode"] != 0:
        raise CommandFailed(name, argv, report["returncode"], stderr)
    return {"wall_s": report["wall_s"], "cpu_s": report["user_s"] + report["sys_s"],
            "user_s": report["user_s"], "sys_s": report["sys_s"],
            "peak_rss_mb": report["maxrss"] * _RSS_UNIT_MB, "returncode": 0,
            "metrics": _parse_metrics(stdout), "stdout_tail": stdout[-_STDERR_TAIL:]}


def side_by_side(commands: dict[str, list[str]], pairs: int = 3, cwd=None, env=None, *,
                 timeout: float | None = None) -> list[dict]:
    """Run every command ``pairs`` times, alternating them, and measure each run.

    Args:
        commands: name -> argv (a list of strings, run without a shell), in the order to
            alternate them.
        pairs: rounds; each round runs every command once, in order.
        cwd: working directory of the children (default: this one).
        env: the children's environment (default: this process's).
        timeout: seconds after which a run is killed and :class:`CommandFailed` raised
            (default: none).

    Returns:
        One dict per run in the order run: ``name``, ``round``, ``index``, ``argv``,
        ``wall_s``, ``cpu_s`` (= ``user_s`` + ``sys_s`` of the child and whatever it waited
        for), ``peak_rss_mb`` (the largest resident set among them), ``returncode``,
        ``metrics`` (the ``KEY=VALUE`` tokens of its stdout) and ``stdout_tail``.

    Raises:
        ValueError: If ``commands`` is empty or malformed, or ``pairs`` is not an int >= 1.
        CommandFailed: If a command cannot start, exits non-zero or times out.
    """
    checked = _check_commands(commands)
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
        raise ValueError(f"pairs must be an int >= 1, got {pairs!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    runs = []
    for round_ in range(pairs):
        for name, argv in checked.items():
            run = _run_once(name, argv, cwd, env, timeout)
            runs.append({"name": name, "round": round_, "index": len(runs), "argv": argv,
                         **run})
    return runs


_FIGURES = ("cpu_s", "wall_s", "peak_rss_mb")


def summarise(runs: Sequence[dict]) -> dict:
    """Medians per command and ratios of medians between commands.

    Returns:
        ``{"commands": {name: {"runs", "cpu_s", "wall_s", "peak_rss_mb", "metrics"}},
        "ratios": {"A/B": {...}}}``: the medians of each command's runs (``metrics``: the
        median of every numeric metric all its runs printed), and for each pair of commands
        A before B (in order of first appearance) the ratio A's median / B's median of the
        three figures and of the metrics both report.
    """
    if not runs:
        raise ValueError("runs must be a non-empty list of side_by_side() results")
    names = list(dict.fromkeys(r["name"] for r in runs))
    commands = {}
    for name in names:
        mine = [r for r in runs if r["name"] == name]
        keys = set.intersection(*(
            {k for k, v in r.get("metrics", {}).items() if isinstance(v, float)} for r in mine))
        commands[name] = {"runs": len(mine),
                          **{f: median(r[f] for r in mine) for f in _FIGURES},
                          "metrics": {k: median(r["metrics"][k] for r in mine)
                                      for k in sorted(keys)}}
    ratios = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ca, cb = commands[a], commands[b]
            pair = {f: _ratio(ca[f], cb[f]) for f in _FIGURES}
            for k in ca["metrics"].keys() & cb["metrics"].keys():
                pair[k] = _ratio(ca["metrics"][k], cb["metrics"][k])
            ratios[f"{a}/{b}"] = dict(sorted(pair.items()))
    return {"commands": commands, "ratios": ratios}


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf") if a else float("nan")


def format_table(summary: dict) -> str:
    """A plain-text table of :func:`summarise`'s medians and ratios."""
    lines = [f"{'command':<16} {'runs':>4} {'cpu s':>9} {'wall s':>9} {'peak MB':>9} "
             f"{'loop cpu s':>10}"]
    for name, c in summary["commands"].items():
        loop = c["metrics"].get("LOOP_CPU_S")
        lines.append(f"{name:<16} {c['runs']:>4} {c['cpu_s']:>9.3f} {c['wall_s']:>9.3f} "
                     f"{c['peak_rss_mb']:>9.1f} {'' if loop is None else f'{loop:.3f}':>10}")
    for pair, r in summary["ratios"].items():
        loop = r.get("LOOP_CPU_S")
        lines.append(f"ratio {pair}: cpu {r['cpu_s']:.2f}x, wall {r['wall_s']:.2f}x, "
                     f"peak memory {r['peak_rss_mb']:.2f}x"
                     + ("" if loop is None else f", loop cpu {loop:.2f}x"))
    return "\n".join(lines)


def _parse_named(items: Sequence[str]) -> dict[str, list[str]]:
    commands = {}
    for item in items:
        name, sep, command = item.partition("=")
        if not sep or not name or not command.strip():
            raise ValueError(f"expected NAME=COMMAND, got {item!r}")
        if name in commands:
            raise ValueError(f"command name {name!r} given twice")
        commands[name] = shlex.split(command)
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.side_by_side",
        description="Run commands alternately and compare their CPU time, wall time and peak "
                    "memory (medians, ratios of medians).")
    parser.add_argument("commands", nargs="*", metavar="NAME=COMMAND",
                        help="a name and a command line (split like a shell, run without one); "
                             "put them after --")
    parser.add_argument("--pairs", type=int, default=3, help="rounds of runs (default 3)")
    parser.add_argument("--bidenv-day", nargs="+", action="append", default=[],
                        metavar=("NAME", "KEY=VALUE"),
                        help="add a command NAME: this interpreter playing one default bidenv "
                             "day, with the environment variables given (repeatable; these "
                             "run after the NAME=COMMAND ones in each round)")
    parser.add_argument("--cwd", default=None, help="working directory of the commands")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per run")
    parser.add_argument("--json", default=None, help="also write the summary and runs here")
    args = parser.parse_args(argv)
    try:
        commands = _parse_named(args.commands)
        for name, *assignments in args.bidenv_day:
            if name in commands:
                raise ValueError(f"command name {name!r} given twice")
            env = dict(a.split("=", 1) for a in assignments if "=" in a)
            if len(env) != len(assignments):
                raise ValueError(f"--bidenv-day {name}: expected KEY=VALUE, got {assignments}")
            commands[name] = bidenv_day_command(env=env)
        runs = side_by_side(commands, pairs=args.pairs, cwd=args.cwd, timeout=args.timeout)
    except (ValueError, CommandFailed) as exc:
        parser.exit(2, f"error: {exc}\n")
    summary = summarise(runs)
    print(format_table(summary))
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**summary, "runs": runs}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
