"""`bidenv simulate-budget` with the analyst's campaign profile and retrieval modes.

The spec's ``cold_start`` / ``marketing_style`` / ``popularity`` (the analyst's own campaign)
and ``retrieval``
(``cascade``, ``generative`` or both, compared on the same days): defaults leave every output
as it was; ``--retrieval cascade,generative`` plays the same sweep under both modes.
"""

import json

import pandas as pd
import pytest

from experiments.analysis import BudgetSpec, load_spec, parse_spec, simulate_budget, simulate_day
from experiments.cli import main
from experiments.simulate_budget import COMPARISON_FIGURE, output_files

LITE = "bidenv/AutoBiddingLite-v0"
# A tiny sweep on the Lite environment (a tenth of the day's opportunities; budgets are per
# reference day and scaled down by the env), as tests/test_analysis.py's CLI test does.
SWEEP = ["--env", LITE, "--budgets", "200,400", "--days", "2", "--strategies", "pid_cpa",
         "--seed", "3"]
TABLES = ("budget_simulation.csv", "days.csv", "recommendation.csv", "spec.json")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same sweep: plain, with the new options at their defaults, and both modes."""
    root = tmp_path_factory.mktemp("retrieval")
    out = {name: root / name for name in ("plain", "defaults", "both")}
    assert main(["simulate-budget", *SWEEP, "--out", str(out["plain"])]) == 0
    spec = root / "spec.json"
    spec.write_text(json.dumps({"budgets": [200, 400], "cold_start": False,
                                "marketing_style": False, "retrieval": "cascade"}))
    assert main(["simulate-budget", "--spec", str(spec), *SWEEP[2:], "--env", LITE,
                 "--retrieval", "cascade", "--out", str(out["defaults"])]) == 0
    assert main(["simulate-budget", *SWEEP, "--retrieval", "cascade,generative", "--report",
                 "--out", str(out["both"])]) == 0
    return out


def test_defaults_leave_every_table_identical(runs):
    for name in TABLES:
        assert (runs["plain"] / name).read_bytes() == (runs["defaults"] / name).read_bytes(), name
    written = json.loads((runs["plain"] / "spec.json").read_text())
    assert not {"cold_start", "marketing_style", "retrieval"} & set(written)
    assert parse_spec(budgets=[1]) == parse_spec(budgets=[1], cold_start=False,
                                                 marketing_style=False, retrieval="cascade")
    assert "retrieval" not in pd.read_csv(runs["plain"] / "budget_simulation.csv")


def test_both_modes_on_the_same_days(runs):
    both = runs["both"]
    for name in output_files("cpa", ("cascade", "generative")):
        assert (both / name).stat().st_size > 0, name
    assert (both / COMPARISON_FIGURE).read_bytes().startswith(b"\x89PNG")
    frame = pd.read_csv(both / "budget_simulation.csv")
    plain = pd.read_csv(runs["plain"] / "budget_simulation.csv")
    assert list(frame["retrieval"]) == ["cascade"] * 2 + ["generative"] * 2
    cascade = frame[frame["retrieval"] == "cascade"].drop(columns="retrieval")
    pd.testing.assert_frame_equal(cascade.reset_index(drop=True), plain)
    generative = frame[frame["retrieval"] == "generative"].reset_index(drop=True)
    assert not generative["spend"].equals(plain["spend"])
    assert not generative["conversions"].equals(plain["conversions"])
    days = pd.read_csv(both / "days.csv")
    assert (days.groupby("retrieval")["seed"].apply(list).map(tuple).nunique()) == 1
    advice = pd.read_csv(both / "recommendation.csv")
    assert list(advice["retrieval"]) == ["cascade", "generative"]
    plain_advice = pd.read_csv(runs["plain"] / "recommendation.csv")
    assert advice["message"][0] == plain_advice["message"][0].replace(
        "pid_cpa at", "pid_cpa under cascade retrieval at")
    assert "under generative retrieval" in advice["message"][1]
    spec = json.loads((both / "spec.json").read_text())
    assert spec["retrieval"] == ["cascade", "generative"]
    assert load_spec(both / "spec.json").retrieval == ("cascade", "generative")
    report = (both / "report.html").read_text()
    assert f'alt="{COMPARISON_FIGURE[:-4]}"' in report and "generative retrieval" in report


@pytest.mark.parametrize("value", ["vector", "cascade,cascade", "cascade,", ""])
def test_bad_retrieval_refused_in_one_line(tmp_path, value):
    with pytest.raises(SystemExit) as info:
        main(["simulate-budget", *SWEEP, "--retrieval", value, "--out", str(tmp_path)])
    message = str(info.value)
    assert "--retrieval" in message and "\n" not in message
    assert not list(tmp_path.iterdir())


def test_spec_fields_validated():
    with pytest.raises(ValueError, match="spec field 'retrieval'"):
        parse_spec(budgets=[1], retrieval=["cascade", "vector"])
    with pytest.raises(ValueError, match="spec field 'cold_start' must be true or false"):
        parse_spec(budgets=[1], cold_start="yes")
    spec = parse_spec({"budgets": [1], "retrieval": "generative,cascade",
                       "marketing_style": True})
    assert spec.retrieval == ("generative", "cascade") and spec.marketing_style
    assert parse_spec(spec.to_dict()) == spec
    assert BudgetSpec().retrieval_modes == ("cascade",)


def test_campaign_profile_reaches_the_simulated_campaign():
    kwargs = dict(budget=300, target=100, seed=5, env_id=LITE)
    plain = simulate_day("pid_cpa", **kwargs)
    assert simulate_day("pid_cpa", cold_start=False, marketing_style=False, **kwargs) == plain
    for flag in ("cold_start", "marketing_style"):
        day = simulate_day("pid_cpa", **{flag: True}, **kwargs)
        assert day["conversions"] != plain["conversions"], flag


def test_profile_flags():
    from experiments.cli import build_parser
    from experiments.simulate_budget import fields_from_args

    parser = build_parser()
    base = ["simulate-budget", "--budgets", "100", "--out", "x"]
    fields = fields_from_args(parser.parse_args(base))
    assert fields["cold_start"] is None and fields["marketing_style"] is None  # spec decides
    assert "retrieval" not in fields
    fields = fields_from_args(parser.parse_args([*base, "--cold-start", "--marketing-style",
                                                 "--retrieval", "generative"]))
    spec = parse_spec({"budgets": [100], "cold_start": False}, **fields)
    assert spec.cold_start and spec.marketing_style and spec.retrieval == "generative"
    assert spec.to_dict()["retrieval"] == "generative" and spec.to_dict()["cold_start"] is True


def test_popularity_spec_field():
    assert parse_spec(budgets=[1]) == parse_spec(budgets=[1], popularity=0.5)
    assert "popularity" not in parse_spec(budgets=[1], popularity=0.5).to_dict()
    spec = parse_spec({"budgets": [1], "popularity": 0.2})
    assert spec.popularity == 0.2 and spec.to_dict()["popularity"] == 0.2
    assert parse_spec(spec.to_dict()) == spec
    for bad in (1.5, -1, True, "big"):
        with pytest.raises(ValueError, match=r"spec field 'popularity' must be a number in "
                                             r"\[0, 1\]"):
            parse_spec(budgets=[1], popularity=bad)


def test_popularity_reaches_the_simulated_campaign():
    kwargs = dict(budget=300, target=100, seed=5, env_id=LITE)
    plain = simulate_day("pid_cpa", **kwargs)
    assert simulate_day("pid_cpa", popularity=0.5, **kwargs) == plain
    small = simulate_day("pid_cpa", popularity=0.1, **kwargs)
    big = simulate_day("pid_cpa", popularity=0.9, **kwargs)
    assert small["conversions"] != plain["conversions"] != big["conversions"]
    sweep = dict(budgets=[300], target=100, strategies=["pid_cpa"], days=1, seed=5,
                 env_id=LITE, progress=False)
    frame = simulate_budget(**sweep)
    pd.testing.assert_frame_equal(simulate_budget(**sweep, popularity=0.5), frame)
    ranked = simulate_budget(**sweep, popularity=0.1)
    assert ranked.attrs["spec"]["popularity"] == 0.1
    assert ranked["conversions"].iloc[0] == pytest.approx(small["conversions"])


def test_popularity_flag_and_spec_file(tmp_path):
    out = tmp_path / "flag"
    assert main(["simulate-budget", *SWEEP, "--budgets", "300", "--days", "1",
                 "--popularity", "0.2", "--out", str(out)]) == 0
    written = json.loads((out / "spec.json").read_text())
    assert written["popularity"] == 0.2
    assert load_spec(out / "spec.json").popularity == 0.2
    yaml_spec = tmp_path / "campaign.yaml"
    yaml_spec.write_text("budgets: [300]\npopularity: 0.2  # a smallish account\n")
    assert load_spec(yaml_spec).popularity == 0.2
    from experiments.cli import build_parser
    from experiments.simulate_budget import fields_from_args

    parser = build_parser()
    base = ["simulate-budget", "--budgets", "100", "--out", "x"]
    assert fields_from_args(parser.parse_args(base))["popularity"] is None  # spec decides
    fields = fields_from_args(parser.parse_args([*base, "--popularity", "0.9"]))
    assert parse_spec({"budgets": [100], "popularity": 0.2}, **fields).popularity == 0.9


@pytest.mark.parametrize("value", ["1.5", "-0.2", "nan"])
def test_bad_popularity_refused_in_one_line(tmp_path, value):
    with pytest.raises(SystemExit) as info:
        main(["simulate-budget", *SWEEP, "--popularity", value, "--out", str(tmp_path)])
    message = str(info.value)
    assert "--popularity must be a number in [0, 1]" in message and "\n" not in message
    assert not list(tmp_path.iterdir())
    spec = tmp_path.parent / f"bad_{tmp_path.name}.json"
    spec.write_text(json.dumps({"budgets": [300], "popularity": 1.5}))
    with pytest.raises(SystemExit, match=r"spec field 'popularity' must be a number in "
                                         r"\[0, 1\]"):
        main(["simulate-budget", "--spec", str(spec), "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())
