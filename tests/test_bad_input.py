"""Bad input fails fast, in one short line naming the parameter or flag.

* a YAML alias bomb ("billion laughs") as a campaign spec: refused before anything expands
  or quotes it (the message used to embed ``repr`` of the expanded value: hundreds of MB);
* ``bidenv train --resume``: honest about the steps trained, and refused on other data,
  config or seed;
* campaigns whose float32 bids would overflow (and then silently win nothing): refused on
  construction and at ``env.reset``;
* a writer killed mid-write: its hidden temporary file is removed by the next write.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest

import bidenv  # noqa: F401  (registers the envs)
from bidenv.campaign import MAX_MONEY, MIN_TARGET, Campaign
from bidenv.io import STALE_AFTER_S, atomic_path
from bidenv.validation import check_size, short_repr

LITE = "bidenv/AutoBiddingLite-v0"
#: Longest message a bad input may produce.
SHORT = 500


def _one_short_line(text: str) -> str:
    text = str(text)
    assert "\n" not in text.strip() and len(text) < SHORT, text[:SHORT]
    return text


def _run_cli(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "experiments.cli", *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def _cli_error(res) -> str:
    assert res.returncode != 0, res.stdout[-600:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr[-2000:]
    return _one_short_line(lines[0])


# --------------------------------------------------------------------------------------------
# 1. YAML alias bomb, huge values in messages
# --------------------------------------------------------------------------------------------
def _bomb(levels: int = 9, width: int = 9, indent: str = "  ") -> str:
    """A "billion laughs" YAML mapping: ``width ** levels`` strings from ~350 bytes."""
    lines = [f'{indent}a: &a [{",".join(["x"] * width)}]']
    names = "abcdefghijklmnopqrstuvwxyz"
    for prev, name in zip(names[:levels - 1], names[1:levels]):
        lines.append(f"{indent}{name}: &{name} [{','.join([f'*{prev}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_spec_is_refused_in_one_short_line(tmp_path):
    pytest.importorskip("yaml")
    spec = tmp_path / "bomb.yaml"
    spec.write_text("budgets:\n" + _bomb() + "days: 1\n")
    assert len(spec.read_bytes()) < 400
    from experiments.analysis import load_spec

    start = time.perf_counter()
    with pytest.raises(ValueError) as exc:
        load_spec(spec)
    message = _one_short_line(exc.value)
    assert "'budgets'" in message and "too big" in message and "bomb.yaml" in message
    assert time.perf_counter() - start < 5
    # The command line: one line on stderr, no traceback, nothing written.
    message = _cli_error(_run_cli("simulate-budget", "--spec", spec, "--out", tmp_path / "out"))
    assert message.startswith("bidenv simulate-budget: spec file bomb.yaml: field 'budgets'")
    assert not (tmp_path / "out" / "budget_simulation.csv").exists()


def test_yaml_bomb_at_the_top_level_and_deep_nesting_are_refused(tmp_path):
    pytest.importorskip("yaml")
    from experiments.analysis import load_spec

    top = tmp_path / "top.yaml"
    top.write_text(_bomb(indent=""))
    with pytest.raises(ValueError, match="too big") as exc:
        load_spec(top)
    _one_short_line(exc.value)
    deep = tmp_path / "deep.json"
    deep.write_text('{"budgets": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="nested") as exc:
        load_spec(deep)
    _one_short_line(exc.value)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"budgets": [1000] * 300_000}))
    with pytest.raises(ValueError, match="bytes") as exc:
        load_spec(big)
    _one_short_line(exc.value)


@pytest.mark.parametrize("field, value", [
    ("budgets", {"a": [[0.5] * 1000] * 1000}),     # a mapping where a list belongs
    ("budgets", [[1.0] * 5000]),                    # a huge list as one budget
    ("constraint", ["cpa"] * 5000),                 # an unhashable constraint
    ("strategies", "x" * 100_000),                  # one huge string
    ("env_id", ["bidenv/AutoBidding-v0"]),          # unhashable env id
    ("traffic", {"feed": [1] * 3000}),
])
def test_spec_messages_quote_a_short_excerpt_and_name_the_field(field, value):
    from experiments.analysis import parse_spec

    spec = {"budgets": [1000.0], "strategies": ["pid_cpa"], field: value}
    with pytest.raises(ValueError) as exc:
        parse_spec(spec)
    assert field in _one_short_line(exc.value)


def test_short_repr_and_check_size_are_bounded():
    bomb = ["x"] * 9
    for _ in range(8):
        bomb = [bomb] * 9  # 9**9 strings, shared
    start = time.perf_counter()
    assert len(short_repr(bomb)) <= 80 and len(short_repr("y" * 10**7, 30)) <= 30
    with pytest.raises(ValueError, match=r"^spec: field 'budgets' is too big"):
        check_size({"days": 1, "budgets": bomb}, "spec")
    assert time.perf_counter() - start < 2
    check_size({"budgets": list(range(200)), "traffic": {"feed": 0.7, "search": 0.3}}, "spec")


@pytest.mark.parametrize("spec", [
    {"budget": [1.0] * 100_000, "target_cpa": 50.0},
    {"budget": 100.0, "target_cpa": 50.0, "category": list(range(100_000))},
    {"budget": 100.0, "constraint": "c" * 100_000},
    {"budget": 100.0, "target_cpa": 50.0, **{f"k{i}": 1 for i in range(10_000)}},
])
def test_campaign_messages_are_short(spec):
    with pytest.raises(ValueError) as exc:
        Campaign.coerce(spec)
    _one_short_line(exc.value)


# --------------------------------------------------------------------------------------------
# 2. bidenv train --resume
# --------------------------------------------------------------------------------------------
TINY_SET = ["--set", "hidden=[8,8]", "--set", "batch_size=16"]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    from bidenv.offline import save_dataset
    from experiments.collect import collect

    root = tmp_path_factory.mktemp("data")
    save_dataset(collect(episodes=2, seed=0, progress=False), root / "a.parquet")
    save_dataset(collect(episodes=2, seed=7, progress=False), root / "b.parquet")
    shutil.copy(root / "a.parquet", root / "a_copy.parquet")
    return root


def _train(datasets, out, *extra, data="a.parquet", steps=4):
    from experiments.cli import main

    return main(["train", "bc", "--data", str(datasets / data), "--out", str(out),
                 "--steps", str(steps), *TINY_SET, *map(str, extra)])


def _refused(datasets, out, *extra, **kw) -> str:
    with pytest.raises(SystemExit) as exc:
        _train(datasets, out, *extra, **kw)
    message = _one_short_line(exc.value.code)
    assert message.startswith("bidenv train: resume: ")
    return message


def test_resume_reports_the_steps_really_trained(datasets, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(datasets, out) == 0
    assert "trained bc for 4 steps" in capsys.readouterr().out
    # --steps is the total: a checkpoint at or past it has nothing to train.
    for steps in (2, 4):
        message = _refused(datasets, out, "--resume", steps=steps)
        assert f"already at step 4 >= --steps {steps}; nothing to train" in message
    assert json.loads((out / "train.json").read_text())["trained_steps"] == 4
    # Up to a larger total: the steps trained now are counted, not the target.
    assert _train(datasets, out, "--resume", steps=6) == 0
    assert "trained bc for 2 more steps (resumed at step 4, now at step 6)" in (
        capsys.readouterr().out)
    info = json.loads((out / "train.json").read_text())
    assert (info["start_step"], info["trained_steps"], info["steps"]) == (4, 2, 6)
    # Killed after the last checkpoint, before the final model: a resume only writes it.
    (out / "config.json").unlink()
    assert _train(datasets, out, "--resume", steps=6) == 0
    assert "trained bc for 0 more steps" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["step"] == 6
    # The checkpoint stays loadable without pickle.
    import torch

    torch.load(out / "checkpoint" / "weights.pt", weights_only=True)


def test_resume_refuses_other_data_config_or_seed(datasets, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(datasets, out, steps=2) == 0
    message = _refused(datasets, out, "--resume", data="b.parquet")
    assert "--data (checkpoint: 2 episodes" in message and "--set" not in message
    message = _refused(datasets, out, "--resume", "--set", "lr=0.001")
    assert "--set (lr 0.0003 -> 0.001)" in message and "--data" not in message
    message = _refused(datasets, out, "--resume", "--seed", "1")
    assert "--seed (0 -> 1)" in message
    message = _refused(datasets, out, "--resume", "--seed", "1", "--set", "lr=0.001",
                       data="b.parquet")
    assert "--data" in message and "--set" in message and "--seed" in message
    assert json.loads((out / "config.json").read_text())["step"] == 2  # nothing overwritten
    # The same rows under another file name are the same data.
    assert _train(datasets, out, "--resume", data="a_copy.parquet", steps=3) == 0
    assert "1 more steps" in capsys.readouterr().out


def test_train_help_documents_resume_and_steps():
    from experiments.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["train"]
    text = " ".join(sub.format_help().split())
    assert "the step to train up to" in text and "already reached --steps" in text


# --------------------------------------------------------------------------------------------
# 3. float32 overflow of bids
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, field", [
    (dict(budget=4000.0, target_cpa=3e38), "target_cpa"),
    (dict(budget=4000.0, constraint="budget", target_cpa=1e31), "target_cpa"),
    (dict(budget=1e39, target_cpa=50.0), "budget"),
    (dict(budget=4000.0, constraint="roi", target_roi=1e-37), "target_roi"),
    (dict(budget=4000.0, constraint="roi", target_roi=1e31), "target_roi"),
    (dict(budget=4000.0, target_cpa=1e-31), "target_cpa"),
])
def test_campaigns_that_overflow_float32_bids_are_refused(kwargs, field):
    with pytest.raises(ValueError) as exc:
        Campaign(**kwargs)
    message = _one_short_line(exc.value)
    assert message.startswith(f"{field} must be a number in ") and "float32" in message
    assert "1e+30]" in message
    with pytest.raises(ValueError, match=f"^{field} must be a number in "):
        gym.make(LITE, campaign=kwargs)
    env = gym.make(LITE)
    with pytest.raises(ValueError, match=f"^{field} must be a number in "):
        env.reset(seed=0, options=kwargs)


def test_campaigns_at_the_bounds_keep_bidding():
    env = gym.make(LITE)
    for options in (dict(budget=MAX_MONEY, constraint="cpa", target_cpa=MAX_MONEY),
                    dict(budget=4000.0, constraint="roi", target_roi=MIN_TARGET)):
        env.reset(seed=0, options=options)
        for _ in range(3):
            _, _, _, _, info = env.step(np.ones(1, np.float32))  # alpha = max_alpha
        assert info["total_cost"] > 0, options  # the bids were finite: they won slots


# --------------------------------------------------------------------------------------------
# 4. A writer killed mid-write
# --------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    from experiments.io import atomic_write_text

    dead = _dead_pid()
    stale = tmp_path / f".result.csv.tmp-{dead}-abc123.tmp"
    live = tmp_path / f".result.csv.tmp-{os.getppid()}-def456.tmp"
    old = tmp_path / f".result.csv.tmp-{os.getppid()}-old789.tmp"
    other = tmp_path / f".other.csv.tmp-{dead}-ghi000.tmp"  # another target: not ours
    for p in (stale, live, old, other):
        p.write_text("half")
    os.utime(old, (time.time() - STALE_AFTER_S - 60,) * 2)
    atomic_write_text(tmp_path / "result.csv", "a,b\n")
    assert (tmp_path / "result.csv").read_text() == "a,b\n"
    assert not stale.exists() and not old.exists()
    assert live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["result.csv", live.name, other.name])


def test_rerun_after_sigkill_mid_write_leaves_a_clean_folder(tmp_path):
    target = tmp_path / "weights.pt"
    script = textwrap.dedent(f"""
        import os, signal
        from bidenv.io import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"half a checkpoint")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert res.returncode == -signal.SIGKILL
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".weights.pt.tmp-"), left
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pt"]
    assert target.read_bytes() == b"whole"


def test_train_pins_threads_before_training(datasets, tmp_path, monkeypatch):
    """bidenv train runs with one BLAS/OpenMP/torch thread (set before torch is used)."""
    import experiments.threads

    calls = []
    monkeypatch.setattr(experiments.threads, "pin_threads", lambda n: calls.append(n) or n)
    assert _train(datasets, tmp_path / "run", steps=1) == 0
    assert calls == [1]
