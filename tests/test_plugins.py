"""A user's own bidder: the README example, ``pkg.module:Class[:checkpoint]`` specs on the
command line, and the shared life-cycle check catching broken agents."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import agents
from agents.base import AgentCheckError

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = '''
import json, numpy as np
from pathlib import Path

class Constant:
    name = "constant"
    def __init__(self, a=0.0):
        self.a = float(a)
    def reset(self, campaign):
        pass
    def act(self, obs):
        return np.array([self.a], np.float32)
    def save(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "a.json").write_text(json.dumps(self.a))
    @classmethod
    def load(cls, path):
        return cls(json.loads((Path(path) / "a.json").read_text()))
'''


def test_the_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- own-bidder:start -->\n```python\n(.*?)```", text, re.S).group(1)
    assert len(block.strip().splitlines()) <= 25
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)  # prints check_agent's summary
    assert agents.check_agent(namespace["ConstantBidder"](0.5))["days"] == 2


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "my_bidders.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_module_class_specs_build_and_load(plugin_module):
    agent = agents.from_spec("my_bidders:Constant", a=0.25)
    assert agent.name == "constant" and agent.act(None)[0] == pytest.approx(0.25)
    agent.save(plugin_module / "ckpt")
    loaded = agents.from_spec(f"my_bidders:Constant:{plugin_module / 'ckpt'}")
    assert loaded.act(None)[0] == pytest.approx(0.25)
    assert agents.check_agent(agent)["saved"] is True
    with pytest.raises(ValueError, match="has no 'Nope'"):
        agents.from_spec("my_bidders:Nope")
    with pytest.raises(ValueError, match="unknown agent 'no_such_module'"):
        agents.from_spec("no_such_module:Constant")


@pytest.mark.slow
def test_the_command_line_evaluates_a_users_bidder(plugin_module, tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{plugin_module}{os.pathsep}{ROOT}")
    out = tmp_path / "eval"
    res = subprocess.run([sys.executable, "-m", "experiments.cli", "evaluate", "--agents",
                          "truthful,my_bidders:Constant", "--episodes", "1", "--scenarios",
                          "smoke", "--env", "bidenv/AutoBiddingLite-v0", "--out", str(out)],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-800:]
    episodes = pd.read_csv(out / "episodes.csv")
    assert set(episodes["agent"]) == {"truthful", "Constant"}
    # a = 0 is the truthful bid: the user's bidder plays exactly the truthful day.
    by = episodes.set_index("agent")
    assert by.loc["Constant", "expected_score"] == pytest.approx(
        by.loc["truthful", "expected_score"], rel=1e-12)


class _Drifting:
    """Keeps state across days: breaks the replay check."""

    name = "drifting"

    def __init__(self):
        self.t = 0

    def reset(self, campaign):
        pass

    def act(self, obs):
        self.t += 1
        return np.array([np.sin(self.t) * 0.5], np.float32)


class _OutOfRange(_Drifting):
    name = "out_of_range"

    def act(self, obs):
        return np.array([3.0], np.float32)


@pytest.mark.parametrize("bad, match", [(_Drifting(), "reset"), (_OutOfRange(), "outside"),
                                        (object(), "no reset")])
def test_check_agent_catches_broken_agents(bad, match):
    with pytest.raises(AgentCheckError, match=match):
        agents.check_agent(bad)
