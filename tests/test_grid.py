"""Equal tuning budgets: grids per method, expanded into variants, each method's point chosen on the
held-out part of train, and only the chosen runs reported."""

import json

import pytest

from conftest import shared_data_dir
from smart_tune.cli import main
from smart_tune.errors import ConfigError
from smart_tune.grid import expand, normalise_grids, parse_grid_spec, select
from smart_tune.options import TRAINING_FIELDS

GLUE = str(shared_data_dir() / "glue")


def test_grid_specs_parse_per_method_and_for_all():
    assert parse_grid_spec("smart:smart_lambda=1,3;lr=2e-5") == (
        "smart",
        {"smart_lambda": [1, 3], "learning_rate": [2e-5]},
    )
    assert parse_grid_spec("learning-rate=2e-5,5e-5") == ("*", {"learning_rate": [2e-5, 5e-5]})
    grids = normalise_grids(["lr=2e-5,5e-5", "vanilla:epochs=3,6", "smart:smart_lambda=1,3"])
    assert grids == {
        "*": {"learning_rate": [2e-5, 5e-5]},
        "vanilla": {"num_train_epochs": [3, 6]},
        "smart": {"smart_lambda": [1, 3]},
    }
    assert normalise_grids({"smart": {"smart-lambda": [1, 3]}}) == {"smart": {"smart_lambda": [1, 3]}}
    for bad in ("smart:", "smart:lambda", "x=", ""):
        with pytest.raises(ConfigError):
            parse_grid_spec(bad)


def test_expand_gives_every_method_its_points_and_refuses_unequal_budgets():
    grids = normalise_grids(["lr=2e-5,5e-5", "vanilla:epochs=3,6", "smart:smart_lambda=1,3"])
    methods, variants, index = expand(["vanilla", "smart"], grids, {}, TRAINING_FIELDS)
    assert len(methods) == 8 and [p["name"] for p in index["vanilla"]][0] == "vanilla@lr=2e-05,epochs=3"
    assert variants["smart@lr=5e-05,lambda=3"] == {
        "method": "smart",
        "learning_rate": 5e-5,
        "smart_lambda": 3,
    }
    with pytest.raises(ConfigError, match="equal tuning budgets"):
        expand(["vanilla", "smart"], normalise_grids(["smart:smart_lambda=1,3"]), {}, TRAINING_FIELDS)
    with pytest.raises(ConfigError, match="unknown setting"):
        expand(["smart"], normalise_grids(["smart:no_such_knob=1"]), {}, TRAINING_FIELDS)
    with pytest.raises(ConfigError, match="not compared"):
        expand(["smart"], normalise_grids(["r3f:smart_lambda=1"]), {}, TRAINING_FIELDS)
    # A variant's own options stay under its grid.
    _, variants, _ = expand(
        ["fast"], normalise_grids(["lr=1e-5"]), {"fast": {"smart_mu": 0}}, TRAINING_FIELDS
    )
    assert variants["fast@lr=1e-05"] == {"method": "smart", "smart_mu": 0, "learning_rate": 1e-5}


def run(method, seed, dev, held):
    return {"task": "rte", "method": method, "seed": seed, "main_metric": "accuracy",
            "metrics": {"accuracy": dev, "accuracy_holdout": held}}  # fmt: skip


def test_select_keeps_the_best_point_on_the_holdout_not_on_dev():
    index = {"smart": [{"name": "smart@lambda=1", "settings": {"smart_lambda": 1}},
                       {"name": "smart@lambda=3", "settings": {"smart_lambda": 3}}]}  # fmt: skip
    results = [
        run("smart@lambda=1", 1, dev=0.70, held=0.60),
        run("smart@lambda=1", 2, dev=0.70, held=0.60),
        run("smart@lambda=3", 1, dev=0.50, held=0.65),  # worse on dev, better where it is chosen
        run("smart@lambda=3", 2, dev=0.50, held=0.64),
        run("smart@lambda=3", 3, dev=0.50, held=0.10),  # a seed the other point lacks: not compared
        run("vanilla", 1, dev=0.6, held=0.6),
    ]
    kept, choices = select(results, index, lambda r: r["task"])
    chosen = [r for r in kept if r["method"] == "smart"]
    assert {r["seed"] for r in chosen} == {1, 2, 3} and {r["grid_point"] for r in chosen} == {
        "smart@lambda=3"
    }
    assert any(r["method"] == "vanilla" for r in kept)
    c = choices["rte"]["smart"]
    assert c["chosen"] == "smart@lambda=3" and c["selected_on"] == "train-holdout" and c["seeds"] == [1, 2]
    assert [round(row["selection_score"], 3) for row in c["grid"]] == [0.6, 0.645]


def test_compare_with_a_grid_runs_every_point_and_reports_the_chosen(tiny_model_dir, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--task", "rte", "--methods", "vanilla,r3f", "--seeds", "1", "--output-dir", str(out)]
    args += ["--data-dir", GLUE, "--model", tiny_model_dir, "--max-train-samples", "40", "--max-steps", "2"]
    args += ["--validation-from-train", "0.25", "--grid", "learning_rate=1e-4,1e-3", "--disable-tqdm", "true"]
    assert main(args) == 0
    assert len(list(out.rglob("results.json"))) == 4
    assert json.loads((out / "grid.json").read_text())["r3f"][1]["name"] == "r3f@lr=0.001"
    choice = json.loads((out / "grid_choice.json").read_text())["rte"]
    assert set(choice) == {"vanilla", "r3f"} and choice["r3f"]["selected_on"] == "train-holdout"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["rte"]["methods"]) == {"vanilla", "r3f"}
    assert "Grid: the setting chosen" in (out / "summary.md").read_text()


def test_grid_file_gathers_the_methods_of_separate_jobs(tmp_path):
    from smart_tune.grid import read_grid, write_grid

    a = {"vanilla": [{"name": "vanilla@lr=1", "settings": {"learning_rate": 1}}]}
    b = {"smart": [{"name": "smart@lr=1", "settings": {"learning_rate": 1}}]}
    write_grid(tmp_path, a)
    write_grid(tmp_path, b)
    write_grid(tmp_path, a)  # the same job again: nothing changes
    assert read_grid(tmp_path) == {**a, **b}
    two = {"smart": b["smart"] + [{"name": "smart@lr=3", "settings": {"learning_rate": 3}}]}
    write_grid(tmp_path / "two", two)
    write_grid(tmp_path / "two", b)  # later seeds run one chosen point: the grid stays whole
    assert read_grid(tmp_path / "two") == two
    with pytest.raises(ConfigError, match="another grid"):
        write_grid(tmp_path, {"smart": [{"name": "smart@lr=2", "settings": {"learning_rate": 2}}]})


TWO_POINTS = {"smart": [{"name": "smart@lr=5e-05", "settings": {"learning_rate": 5e-5}},
                        {"name": "smart@lr=1e-05", "settings": {"learning_rate": 1e-5}}]}  # fmt: skip


def test_a_tie_goes_to_the_first_point_of_the_grid_whatever_order_the_runs_come_in():
    # The report reads runs in path order, where lr=1e-05 comes before lr=5e-05 (the grid's second).
    results = [run("smart@lr=1e-05", 1, dev=0.5, held=0.6), run("smart@lr=5e-05", 1, dev=0.7, held=0.6)]
    for order in (results, results[::-1]):
        c = select(order, TWO_POINTS, lambda r: r["task"])[1]["rte"]["smart"]
        assert c["chosen"] == "smart@lr=5e-05"
        assert [row["name"] for row in c["grid"]] == ["smart@lr=5e-05", "smart@lr=1e-05"]


def test_equal_means_that_differ_in_the_last_bit_are_a_tie_and_go_to_the_first_point():
    # 120/249 and 126/249 against 121/249 and 125/249 on a held-out part of 249 examples: the same mean,
    # yet summed in floating point the second comes out 1e-17 above the first (a tie broken by rounding).
    results = [
        run("smart@lr=5e-05", 1, dev=0.5, held=120 / 249),
        run("smart@lr=5e-05", 2, dev=0.5, held=126 / 249),
        run("smart@lr=1e-05", 1, dev=0.7, held=121 / 249),
        run("smart@lr=1e-05", 2, dev=0.7, held=125 / 249),
    ]
    c = select(results, TWO_POINTS, lambda r: r["task"])[1]["rte"]["smart"]
    assert c["chosen"] == "smart@lr=5e-05"


def test_a_point_whose_held_out_score_is_nan_is_not_chosen():
    # A diverged run scores NaN (Pearson of NaN predictions); max() kept a NaN first point as the best,
    # since no comparison with NaN is true.
    results = [
        run("smart@lr=5e-05", 1, dev=0.1, held=float("nan")),
        run("smart@lr=1e-05", 1, dev=0.7, held=0.6),
    ]
    c = select(results, TWO_POINTS, lambda r: r["task"])[1]["rte"]["smart"]
    assert c["chosen"] == "smart@lr=1e-05"
    nan_only = [run("smart@lr=5e-05", 1, 0.1, float("nan")), run("smart@lr=1e-05", 1, 0.7, float("nan"))]
    assert select(nan_only, TWO_POINTS, lambda r: r["task"])[1]["rte"]["smart"]["chosen"] == "smart@lr=5e-05"


def test_a_grid_with_held_out_scores_on_some_runs_only_is_refused_not_chosen_on_dev():
    # A point's mean of a dev score (0.9) and a held-out one would beat the better held-out point.
    no_holdout = {**run("smart@lr=5e-05", 2, dev=0.9, held=0.0), "metrics": {"accuracy": 0.9}}
    results = [
        run("smart@lr=5e-05", 1, dev=0.9, held=0.50),
        no_holdout,
        run("smart@lr=1e-05", 1, dev=0.1, held=0.60),
        run("smart@lr=1e-05", 2, dev=0.1, held=0.60),
    ]
    with pytest.raises(ConfigError, match="held-out score and some do not"):
        select(results, TWO_POINTS, lambda r: r["task"])
    # Runs without any held-out score are still chosen on dev, and the choice says so.
    dev_only = [{**r, "metrics": {"accuracy": r["metrics"]["accuracy"]}} for r in results]
    c = select(dev_only, TWO_POINTS, lambda r: r["task"])[1]["rte"]["smart"]
    assert c["chosen"] == "smart@lr=5e-05" and c["selected_on"] == "dev"


def test_a_grid_listing_one_value_twice_is_refused():
    # Two spellings of one number give two points of one name: counted twice in the equal budget, and
    # never both finished, so select() would drop the method from the report without a word.
    for spec in ("lr=2e-5,2.0e-5", "epochs=3,3.0", "smart:smart_lambda=1,1"):
        with pytest.raises(ConfigError, match="twice"):
            expand(["smart"], normalise_grids([spec]), {}, TRAINING_FIELDS)
    with pytest.raises(ConfigError, match="twice"):
        expand(["smart"], normalise_grids({"smart": {"learning_rate": [2e-5, 2e-5]}}), {}, TRAINING_FIELDS)


@pytest.mark.parametrize(
    "text", ['{"smart": [', "[1, 2]", '{"smart": [{"name": "smart@lr=1e-05"}]}', '{"smart": 3}']
)
def test_a_damaged_grid_file_is_a_one_line_error(tmp_path, text):
    # report and compare read grid.json as they found it: a cut or hand-edited file stopped them with a
    # JSONDecodeError, AttributeError or KeyError traceback.
    from smart_tune.grid import read_grid, write_grid

    (tmp_path / "grid.json").write_text(text)
    with pytest.raises(ConfigError, match="unreadable .*grid.json"):
        read_grid(tmp_path)
    with pytest.raises(ConfigError, match="unreadable .*grid.json"):
        write_grid(tmp_path, TWO_POINTS)
