"""experiments.side_by_side: commands alternate, each child's own CPU time, memory and printed
metrics are measured, failures name the command, bad input names the parameter."""

import json
import sys

import pytest

from experiments.side_by_side import CommandFailed, main, side_by_side, summarise


def _burn(seconds: float, extra: str = "") -> list[str]:
    """A child that burns about ``seconds`` of CPU, then prints its own measurement."""
    return [sys.executable, "-c",
            "import time\n"
            f"{extra}"  # before the clock starts: the loop's CPU time is the burn alone
            "t = time.process_time()\n"
            f"while time.process_time() - t < {seconds}: pass\n"
            "print(f'LOOP_CPU_S={time.process_time() - t:.4f} KIND=burn')"]


def test_runs_alternate_and_cpu_is_measured_per_child():
    commands = {"slow": _burn(0.2), "fast": _burn(0.05, "x = b'x' * (60 * 2**20)\n")}
    runs = side_by_side(commands, pairs=2)
    assert [r["name"] for r in runs] == ["slow", "fast", "slow", "fast"]
    assert [r["round"] for r in runs] == [0, 0, 1, 1]
    assert [r["index"] for r in runs] == [0, 1, 2, 3]
    for r in runs:
        assert r["returncode"] == 0 and r["wall_s"] > 0
        assert r["cpu_s"] == pytest.approx(r["user_s"] + r["sys_s"])
        assert r["metrics"]["KIND"] == "burn"
    slow = [r for r in runs if r["name"] == "slow"]
    fast = [r for r in runs if r["name"] == "fast"]
    # Each run's CPU time is that child's: its burn plus the interpreter's start (no upper
    # bound: a busy machine slows the start, not the burn's CPU count).
    for r in slow:
        assert r["cpu_s"] >= 0.19 and r["metrics"]["LOOP_CPU_S"] >= 0.2
    for r in fast:
        assert r["cpu_s"] >= 0.04
    assert min(r["cpu_s"] for r in slow) > min(r["cpu_s"] for r in fast)
    # Peak memory is the child's own: the fast one holds 60 MB more.
    assert min(r["peak_rss_mb"] for r in fast) > max(r["peak_rss_mb"] for r in slow) + 40

    summary = summarise(runs)
    s, f = summary["commands"]["slow"], summary["commands"]["fast"]
    assert s["runs"] == f["runs"] == 2
    assert s["metrics"]["LOOP_CPU_S"] >= 0.2 and "KIND" not in s["metrics"]
    ratio = summary["ratios"]["slow/fast"]
    assert ratio["cpu_s"] == pytest.approx(s["cpu_s"] / f["cpu_s"]) and ratio["cpu_s"] > 1
    assert ratio["LOOP_CPU_S"] == pytest.approx(s["metrics"]["LOOP_CPU_S"]
                                                / f["metrics"]["LOOP_CPU_S"])
    assert ratio["LOOP_CPU_S"] > 2
    assert ratio["peak_rss_mb"] < 1 and ratio["wall_s"] > 0
    assert list(summary["ratios"]) == ["slow/fast"]


def test_failing_command_is_named_with_its_stderr():
    bad = [sys.executable, "-c", "import sys; sys.stderr.write('boom: no model file'); sys.exit(3)"]
    with pytest.raises(CommandFailed, match=r"'broken' exited with code 3(.|\n)*no model file") \
            as info:
        side_by_side({"ok": [sys.executable, "-c", "pass"], "broken": bad}, pairs=1)
    assert info.value.name == "broken" and info.value.returncode == 3
    with pytest.raises(CommandFailed, match="'missing' could not start"):
        side_by_side({"missing": ["/nonexistent/program"]}, pairs=1)
    with pytest.raises(CommandFailed, match="'sleepy' timed out"):
        side_by_side({"sleepy": [sys.executable, "-c", "import time; time.sleep(5)"]},
                     pairs=1, timeout=0.3)


@pytest.mark.parametrize(("kwargs", "param"), [
    (dict(pairs=0), "pairs"), (dict(pairs=-1), "pairs"), (dict(pairs=1.5), "pairs"),
    (dict(pairs=True), "pairs"), (dict(commands={}), "commands"),
    (dict(commands=[]), "commands"), (dict(commands={"a": []}), "commands"),
    (dict(commands={"a": "python -c pass"}), "commands"), (dict(timeout=0), "timeout"),
])
def test_bad_input_names_the_parameter(kwargs, param):
    args = {"commands": {"a": [sys.executable, "-c", "pass"]}, "pairs": 1, **kwargs}
    with pytest.raises(ValueError, match=param):
        side_by_side(**args)
    with pytest.raises(ValueError, match="runs"):
        summarise([])


def test_command_line_prints_table_and_json(tmp_path, capsys):
    out = tmp_path / "s.json"
    cmd = f"{sys.executable} -c \"print('LOOP_CPU_S=0.5')\""
    assert main(["--pairs", "1", "--json", str(out), "--", f"a={cmd}", f"b={cmd}"]) == 0
    printed = capsys.readouterr().out
    assert "ratio a/b: cpu" in printed and "loop cpu 1.00x" in printed
    saved = json.loads(out.read_text())
    assert [r["name"] for r in saved["runs"]] == ["a", "b"]
    assert saved["commands"]["a"]["metrics"]["LOOP_CPU_S"] == 0.5
    with pytest.raises(SystemExit):
        main(["--", "no-equals-sign"])
    assert "NAME=COMMAND" in capsys.readouterr().err
