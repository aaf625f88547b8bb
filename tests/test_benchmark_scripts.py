"""The study scripts under benchmarks/ that compute something: Study 2's check of issue 4's target."""

import importlib.util
import json
from pathlib import Path

import pytest

from smart_tune.report import summarise

ROOT = Path(__file__).resolve().parents[1]


def load(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(task, method, seed, score, last=None):
    main = "accuracy" if task != "cola" else "matthews_correlation"
    history = [{f"eval_{main}": score if last is None else last, "epoch": 3}, {"train_runtime": 1.0}]
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "metrics": {main: score},
        "main_metric": main,
        "train_runtime_s": 60.0,
        "log_history": history,
    }


def runs(scores):
    """scores: {method: {task: [score per seed]}} -> results for seeds 1, 2, ..."""
    return [
        run(t, m, s, v) for m, tasks in scores.items() for t, vs in tasks.items() for s, v in enumerate(vs, 1)
    ]


target = load("benchmarks/results/study2_headline/target.py")


def test_target_met_only_when_every_clause_is():
    plain = {"rte": [0.50, 0.60, 0.55], "cola": [0.30, 0.20, 0.25]}
    # smart: +2 points on each task and seed (average +2.0, same spread); r3f: +1.
    smart = {t: [v + 0.02 for v in vs] for t, vs in plain.items()}
    r3f = {t: [v + 0.01 for v in vs] for t, vs in plain.items()}
    rows = target.checks(summarise(runs({"vanilla": plain, "smart": smart, "r3f": r3f})), last_epoch=False)
    assert [met for _, _, met in rows] == [True, True, True, True]
    assert rows[0][1] == "+2.00 ± 0.00 over 3 seeds"
    assert rows[1][1] == "cola +2.00, rte +2.00"

    # +3 on rte, -0.5 on cola: the average is (3 - 0.5) / 2 = +1.25, below +1.5, and cola is worse.
    mixed = {"rte": [v + 0.03 for v in plain["rte"]], "cola": [v - 0.005 for v in plain["cola"]]}
    rows = target.checks(summarise(runs({"vanilla": plain, "smart": mixed, "r3f": r3f})), last_epoch=False)
    assert rows[0][2] is False and rows[0][1].startswith("+1.25")
    assert rows[1][2] is False and "cola -0.50" in rows[1][1]
    assert rows[2][2] is True  # +1.25 against r3f's +1

    # a wider spread than plain's fails the last clause though the mean is fine
    wide = {t: [v + 0.02 + d for v, d in zip(vs, (-0.01, 0.03, -0.02))] for t, vs in plain.items()}
    rows = target.checks(summarise(runs({"vanilla": plain, "smart": wide})), last_epoch=False)
    assert rows[3][2] is False and rows[2] == (rows[2][0], "no r3f runs", False)


def test_target_script_writes_its_table_and_refuses_a_summary_without_the_average(tmp_path, capsys):
    plain = {"rte": [0.50, 0.60], "cola": [0.30, 0.20]}
    smart = {t: [v + 0.02 for v in vs] for t, vs in plain.items()}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summarise(runs({"vanilla": plain, "smart": smart}))))
    assert target.main([str(path)]) == 0
    text = (tmp_path / "target.md").read_text()
    assert "## model at the end of training" in text and "Target met: **no**" in text  # no r3f
    path.write_text(json.dumps(summarise(runs({"vanilla": {"rte": [0.5]}, "smart": {"rte": [0.6]}}))))
    assert target.main([str(path)]) == 1
    assert "no 'mean_of_main_metrics'" in capsys.readouterr().err


@pytest.mark.parametrize("last_epoch", [False, True])
def test_target_reads_the_last_epoch_scores_apart_from_the_kept_ones(last_epoch):
    results = [
        run("rte", "vanilla", 1, 0.5, last=0.5),
        run("cola", "vanilla", 1, 0.3, last=0.3),
        run("rte", "smart", 1, 0.6, last=0.4),
        run("cola", "smart", 1, 0.4, last=0.2),
    ]
    rows = target.checks(summarise(results), last_epoch=last_epoch)
    assert rows[0][1] == ("-10.00" if last_epoch else "+10.00") + " ± 0.00 over 1 seeds"


def test_glue_style_average_averages_mrpc_accuracy_with_f1_before_the_tasks():
    def mrpc(method, seed, acc, f1):
        r = run("mrpc", method, seed, acc)
        r["metrics"]["f1"] = f1
        r["log_history"][0]["eval_f1"] = f1
        return r

    results = [mrpc("vanilla", 1, 0.80, 0.90), run("rte", "vanilla", 1, 0.50)]
    results += [mrpc("smart", 1, 0.80, 0.94), run("rte", "smart", 1, 0.52), run("rte", "smart", 2, 0.6)]
    summary = summarise(results)
    assert target.glue_average(summary, "smart", last_epoch=False) == pytest.approx({1: (0.87 + 0.52) / 2})
    assert target.glue_average(summary, "vanilla", last_epoch=True) == pytest.approx({1: (0.85 + 0.50) / 2})
    # main metrics alone: (0 + 2) / 2 = +1.00; GLUE's average also counts F1's +4: (2 + 2) / 2 = +2.00
    assert target.checks(summary, last_epoch=False)[0][1].startswith("+1.00")
    note = target.glue_note(summary, last_epoch=False)
    assert "smart − vanilla +2.00 ± 0.00 over 1 seeds" in note and "r3f" not in note

    # a run whose log lacks F1 at the end is left out of the last-epoch average, not shifted
    results.append(mrpc("vanilla", 2, 0.70, 0.80))
    results.append(run("rte", "vanilla", 2, 0.40))
    del results[0]["log_history"][0]["eval_f1"]
    assert target.glue_average(summarise(results), "vanilla", last_epoch=True) == pytest.approx({2: 0.575})
