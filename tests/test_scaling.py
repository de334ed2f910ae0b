"""bidenv scale: copies saved on the way equal shorter runs; the grid is trained and evaluated."""

from __future__ import annotations

import pandas as pd
import pytest
from generative_helpers import TINY, state_equal, tiny_data

from agents.common import fit
from agents.dt import DTAgent
from bidenv.offline import save_dataset
from experiments.cli import main
from experiments.collect import collect
from experiments.scaling import train_checkpoints


def test_the_copy_at_step_k_is_the_model_a_k_step_run_ends_with(tmp_path):
    data = tiny_data(3)
    config = {k: v for k, v in TINY.items() if k != "embed_dim"}
    saved, seconds, params = train_checkpoints("dt", data, steps=[6, 3], width=16,
                                               width_field="embed_dim", seed=2,
                                               out=tmp_path, config=config)
    assert sorted(saved) == [3, 6] and seconds > 0
    short = fit(DTAgent(**TINY), data, steps=3, seed=2, progress=False)
    longer = fit(DTAgent(**TINY), data, steps=6, seed=2, progress=False)
    assert state_equal(DTAgent.load(saved[3]), short)
    assert state_equal(DTAgent.load(saved[6]), longer)
    assert not state_equal(DTAgent.load(saved[3]), longer)  # the comparison can fail
    assert params == sum(p.numel() for p in short.model.parameters())


def test_scale_command_writes_one_row_per_width_and_step(tmp_path, capsys):
    data = tmp_path / "d.parquet"
    save_dataset(collect(episodes=3, seed=0, progress=False), data)
    sets = [x for k, v in TINY.items() if k != "embed_dim" for x in ("--set", f"{k}={v}")]
    out = tmp_path / "scale"
    assert main(["scale", "--agents", "dt", "--data", str(data), "--steps", "2,4",
                 "--widths", "8,16", "--episodes", "1", "--scenarios", "default",
                 *sets, "--out", str(out)]) == 0
    table = pd.read_csv(out / "scaling.csv")
    assert sorted(zip(table["width"], table["steps"])) == [(8, 2), (8, 4), (16, 2), (16, 4)]
    by_width = table.groupby("width")["parameters"].first()
    assert by_width[16] > by_width[8] > 0
    episodes = pd.read_csv(out / "episodes.csv")
    assert (table["days"] == episodes["scenario"].nunique()).all()  # 1 day per scenario
    assert (table["pct_of_yardstick_low"] <= table["pct_of_yardstick"] + 1e-9).all()
    assert episodes.groupby("scenario")["seed"].nunique().max() == 1  # common days
    assert (out / "scaling.png").stat().st_size > 1000
    assert "scaling.csv" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--steps", "0,5"], "steps must be an integer >= 1"),
    (["--widths", "a"], "--steps and --widths must be integers"),
    (["--agents", ""], "agents must name at least one agent"),
])
def test_scale_bad_input_is_one_line(tmp_path, args, message):
    data = tmp_path / "d.parquet"
    save_dataset(collect(episodes=1, seed=0, progress=False), data)
    with pytest.raises(SystemExit, match=message) as err:
        main(["scale", "--data", str(data), *args, "--out", str(tmp_path / "o")])
    assert "\n" not in str(err.value)


def test_scale_needs_a_dataset(tmp_path):
    with pytest.raises(SystemExit, match="--data: no dataset"):
        main(["scale", "--data", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "o")])
