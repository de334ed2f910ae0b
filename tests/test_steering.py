"""bidenv steer: one checkpoint at several target scales on the same days."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from generative_helpers import TINY, tiny_data

from agents.common import fit
from agents.dt import DTAgent
from experiments.cli import main
from experiments.steering import data_support


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("dt")
    fit(DTAgent(**TINY), tiny_data(4), steps=3, seed=0, out=out, progress=False)
    return out


def test_steer_writes_one_row_per_scale_on_common_days(checkpoint, tmp_path, capsys):
    out = tmp_path / "steer"
    assert main(["steer", "--agent", f"dt:{checkpoint}", "--scales", "0.5,2", "--episodes",
                 "2", "--scenarios", "default,roi", "--workers", "1", "--out", str(out)]) == 0
    table = pd.read_csv(out / "steering.csv")
    assert table["scale"].tolist() == [0.5, 2.0]
    support = data_support(f"dt:{checkpoint}")
    np.testing.assert_allclose(table["target"], table["scale"] * support["base_target"])
    assert (table["days"] == 4).all()  # 2 days x 2 scenarios, the same for every scale
    assert ((table["spend_share"] >= 0) & (table["spend_share"] <= 1 + 1e-9)).all()
    assert (table["pct_of_yardstick_low"] <= table["pct_of_yardstick"]).all()
    assert support["q05"] <= support["q50"] <= support["q95"] and support["days"] == 4
    assert (out / "steering.png").stat().st_size > 1000
    assert "Spearman(scale, spend share)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--scales", "1,x"], "--scales must be numbers"),
    (["--scales", "1,-2"], "scales must be finite numbers > 0"),
])
def test_steer_bad_input_is_one_line(checkpoint, tmp_path, args, message):
    with pytest.raises(SystemExit, match=message) as err:
        main(["steer", "--agent", f"dt:{checkpoint}", *args, "--out", str(tmp_path / "o")])
    assert "\n" not in str(err.value)


def test_steer_refuses_an_agent_without_a_target(tmp_path):
    with pytest.raises(SystemExit, match="not conditioned on a target return"):
        main(["steer", "--agent", "pid_budget", "--out", str(tmp_path / "o")])
