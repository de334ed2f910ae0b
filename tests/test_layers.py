"""The layering rules, pinned: a violation fails CI.

* ``bidenv`` (the simulator) imports neither ``agents``, ``experiments`` nor torch, at any
  depth (function-level imports included);
* ``agents`` never imports ``experiments``;
* nothing below the environment imports it: the market's parts (auction, market, traffic,
  campaign, scoring, competitors, features, io, validation, day) never import ``bidenv.env``
  or the modules built on it;
* ``import bidenv`` loads neither torch, pandas nor matplotlib.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Modules of the simulator below the environment (a folder stands for everything in it).
BELOW_ENV = ("auction", "market", "traffic", "campaign", "scoring", "competitors", "features",
             "io", "validation", "day")
#: What they may not import: the env and the modules that build on it.
ABOVE_MARKET = ("bidenv.env", "bidenv.oracle", "bidenv.calibration", "bidenv.offline",
                "bidenv.auctionnet", "bidenv.minari_export", "bidenv.plots")


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, node.module)]
            # ``from bidenv import env`` names the module too
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def violations(files, banned) -> list[str]:
    bad = []
    for f in files:
        for line, name in imports(f):
            if any(name == b or name.startswith(b + ".") for b in banned):
                where = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f
                bad.append(f"{where}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("package, banned", [
    ("bidenv", ("agents", "experiments", "torch")),
    ("agents", ("experiments",)),
])
def test_packages_import_only_downwards(package, banned):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    assert violations(files, banned) == []


def test_nothing_below_the_env_imports_the_env():
    files = []
    for name in BELOW_ENV:
        path = ROOT / "bidenv" / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]
    assert all(f.is_file() for f in files) and len(files) > len(BELOW_ENV)
    assert violations(files, ABOVE_MARKET) == []


def test_the_checker_catches_a_violation(tmp_path):
    """The check is not vacuous: nested and ``from x import y`` forms are caught."""
    bad = tmp_path / "mod.py"
    bad.write_text("def f():\n    from experiments import evaluate\n    import torch.nn\n")
    found = violations([bad], ("experiments", "torch"))
    assert len(found) == 3  # experiments, experiments.evaluate, torch.nn
    ok = tmp_path / "ok.py"  # names that only start like a banned one
    ok.write_text("import torchvision_like\nfrom bidenv.envelope import x\n")
    assert violations([ok], ("torch", "bidenv.env")) == []


def test_import_bidenv_loads_no_heavy_dependency():
    code = ("import sys, bidenv; print(sorted(m for m in ('torch', 'pandas', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
