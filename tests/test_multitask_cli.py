"""`smart-tune multitask` (issue 21): one encoder on several tasks, a model the other commands use, one-line
errors that write nothing, and two processes that score each dev set once."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_data_dir
from smart_tune.cli import main
from smart_tune.multitask import is_multitask_dir
from test_distributed import ENV, torchrun

GLUE = str(shared_data_dir() / "glue")
SHORT = ["--max-train-samples", "24", "--batch-size", "8", "--disable-tqdm", "true", "--logging-steps", "1"]


def multitask(out, model, *extra):
    args = [
        "multitask",
        "--tasks",
        "rte,stsb",
        "--data-dir",
        GLUE,
        "--model",
        model,
        "--output-dir",
        str(out),
    ]
    return main([*args, *SHORT, *extra])


@pytest.fixture(scope="module")
def mt_run(tiny_model_dir, tmp_path_factory):
    """A multi-task run (a classification and a regression task) with a held-out part per task."""
    out = tmp_path_factory.mktemp("mt") / "run"
    assert multitask(out, tiny_model_dir, "--epochs", "2", "--validation-from-train", "0.25") == 0
    return out, json.loads((out / "results.json").read_text())


def test_multitask_writes_each_task_and_selects_on_the_held_out_mean(mt_run):
    out, results = mt_run
    assert is_multitask_dir(out)
    assert results["task"] == "rte+stsb" and results["main_metric"] == "mean_main"
    assert results["selected_on"] == "train-holdout" and results["holdout_examples"] == 12
    tasks = results["tasks"]
    assert set(tasks) == {"rte", "stsb"}
    assert tasks["rte"]["num_examples"] == 277 and tasks["stsb"]["num_examples"] == 1500  # whole dev sets
    assert tasks["rte"]["num_train_examples"] == 18  # --max-train-samples 24 per task, 6 held out
    mean = (tasks["rte"]["metrics"]["accuracy"] + tasks["stsb"]["metrics"]["pearson"]) / 2
    assert results["metrics"]["mean_main"] == pytest.approx(mean)
    held = (tasks["rte"]["metrics_holdout"]["accuracy"] + tasks["stsb"]["metrics_holdout"]["pearson"]) / 2
    assert results["metrics"]["mean_main_holdout"] == pytest.approx(held)
    # The kept epoch is the best by the held-out mean (the Trainer's record of it).
    logged = {e["step"]: e["eval_mean_main"] for e in results["log_history"] if "eval_mean_main" in e}
    assert results["best_step"] == max(logged, key=logged.get)
    assert results["arguments"]["training"]["metric_for_best_model"] == "eval_mean_main"


@pytest.mark.parametrize("task,metric", [("rte", "accuracy"), ("stsb", "pearson")])
def test_evaluate_and_train_use_a_task_of_the_multitask_model(mt_run, task, metric, tmp_path, capsys):
    out, results = mt_run
    assert main(["evaluate", "--model-dir", str(out), "--task", task, "--data-dir", GLUE]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["metrics"][metric] == pytest.approx(results["tasks"][task]["metrics"][metric], abs=1e-6)
    fine = tmp_path / f"{task}-from-mt"
    args = ["train", "--task", task, "--data-dir", GLUE, "--model", str(out), "--output-dir", str(fine)]
    assert main([*args, "--max-train-samples", "16", "--max-steps", "2", "--disable-tqdm", "true"]) == 0
    assert json.loads((fine / "results.json").read_text())["global_steps"] == 2


def test_a_task_the_model_lacks_is_refused_by_evaluate_and_gets_a_new_head_in_train(mt_run, tmp_path, capsys):
    out, _ = mt_run
    assert main(["evaluate", "--model-dir", str(out), "--task", "mrpc", "--data-dir", GLUE]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the multi-task model") and "not for mrpc" in err and "\n" not in err
    fine = tmp_path / "mrpc"
    args = ["train", "--task", "mrpc", "--data-dir", GLUE, "--model", str(out), "--output-dir", str(fine)]
    assert main([*args, "--max-train-samples", "16", "--max-steps", "1", "--disable-tqdm", "true"]) == 0


def test_evaluating_every_few_steps_keeps_the_best_evaluated_step(tiny_model_dir, tmp_path):
    """--eval-strategy steps: each evaluated step is saved, so the model kept is the best one by the mean
    of the tasks' main metrics, in its checkpoint (not the last step, while results.json names the best)."""
    out = tmp_path / "run"
    steps = ["--max-steps", "4", "--eval-strategy", "steps", "--eval-steps", "2", "--keep-checkpoints"]
    assert multitask(out, tiny_model_dir, *steps) == 0
    results = json.loads((out / "results.json").read_text())
    logged = {e["step"]: e["eval_mean_main"] for e in results["log_history"] if "eval_mean_main" in e}
    assert sorted(logged) == [2, 4]
    best = max(logged, key=logged.get)
    assert results["best_step"] == best
    assert results["best_checkpoint"] == str(out / f"checkpoint-{best}")
    assert (out / f"checkpoint-{best}").is_dir()
    assert results["metrics"]["mean_main"] == pytest.approx(logged[best], abs=1e-6)


def copy_of(out, tmp_path):
    """A copy of a multi-task run's folder (the module's run stays as it is)."""
    import shutil

    return shutil.copytree(out, tmp_path / "copy")


@pytest.mark.parametrize("tasks", [[{"num_labels": 2}], 5, "rte,stsb"], ids=["no-name", "number", "text"])
def test_a_damaged_task_list_is_refused_in_one_line(mt_run, tasks, tmp_path, capsys):
    folder = copy_of(mt_run[0], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "smart_tune_tasks": tasks}))
    for command in ("evaluate", "predict"):
        assert main([command, "--model-dir", str(folder), "--task", "rte", "--data-dir", GLUE]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "smart_tune_tasks" in err and "\n" not in err, err
    assert not (folder / "predictions").exists()


def test_a_damaged_results_json_beside_a_multitask_model_does_not_stop_evaluate(mt_run, tmp_path, capsys):
    folder = copy_of(mt_run[0], tmp_path)
    (folder / "results.json").write_text(json.dumps({"task": "rte+stsb", "tasks": 5}))
    assert main(["evaluate", "--model-dir", str(folder), "--task", "rte", "--data-dir", GLUE]) == 0
    assert json.loads(capsys.readouterr().out)["num_examples"] == 277


def test_a_task_head_of_another_size_is_refused_not_replaced_by_a_fresh_one(tiny_model_dir, tmp_path, capsys):
    """A multi-task model built in Python whose rte head has 3 outputs: scoring RTE with it would load
    the encoder with a fresh, untrained 2-label head; evaluate and predict refuse it instead."""
    from transformers import AutoConfig, AutoTokenizer

    from smart_tune.multitask import MultiTaskModel, TaskHead

    folder = tmp_path / "mt"
    heads = [TaskHead("rte", 3, id2label={0: "a", 1: "b", 2: "c"}), TaskHead("stsb", 1, "regression")]
    MultiTaskModel(AutoConfig.from_pretrained(tiny_model_dir), heads).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    for command in ("evaluate", "predict"):
        assert main([command, "--model-dir", str(folder), "--task", "rte", "--data-dir", GLUE]) == 2
        err = capsys.readouterr().err.strip()
        assert "has a rte head for 3 labels (a, b, c), task rte needs 2 labels" in err and "\n" not in err, (
            err
        )
    assert not (folder / "predictions").exists()


@pytest.mark.parametrize(
    "tasks,message",
    [
        ("rte,nope", "unknown task 'nope'"),
        ("rte,RTE", "--tasks lists rte twice"),
        ("anli,anli_r1", "--tasks lists anli and anli_r1, whose training data overlap"),
        ("anli_r2,mrpc,anli", "--tasks lists anli_r2 and anli, whose training data overlap"),
        ("rte", "two tasks or more"),
    ],
)
def test_bad_task_lists_get_one_line_and_write_nothing(tasks, message, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "multitask",
        "--tasks",
        tasks,
        "--data-dir",
        GLUE,
        "--model",
        tiny_model_dir,
        "--output-dir",
        str(out),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not out.exists()


def test_task_sampling_is_checked(tiny_model_dir, tmp_path, capsys):
    args = ["multitask", "--tasks", "rte,stsb", "--data-dir", GLUE, "--model", tiny_model_dir]
    assert main([*args, "--output-dir", str(tmp_path / "r"), "--task-sampling", "temperature:0"]) == 2
    assert "task sampling must be proportional, uniform or temperature:T" in capsys.readouterr().err


def test_two_processes_score_each_dev_set_once(tiny_model_dir_no_dropout, tmp_path):
    out = tmp_path / "two"
    cmd = torchrun(2, "-m", "smart_tune", "multitask", "--tasks", "rte,stsb", "--data-dir", GLUE)
    cmd += ["--model", tiny_model_dir_no_dropout, "--output-dir", str(out), *SHORT, "--max-steps", "2"]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("finished") == 1  # rank 0 alone reports
    results = json.loads((out / "results.json").read_text())
    assert results["tasks"]["rte"]["num_examples"] == 277 and results["tasks"]["stsb"]["num_examples"] == 1500
    # One entry per dev set and evaluation (each ends with one mean): none per process.
    evaluations = [e for e in results["log_history"] if "eval_mean_main" in e]
    for name in ("rte_dev", "stsb_dev"):
        assert len([e for e in results["log_history"] if f"eval_{name}_loss" in e]) == len(evaluations)
    # Scored over the whole dev set: a fresh single process gives the same score.
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "smart_tune",
            "evaluate",
            "--model-dir",
            str(out),
            "--task",
            "stsb",
            "--data-dir",
            GLUE,
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    pearson = json.loads(single.stdout)["metrics"]["pearson"]
    assert pearson == pytest.approx(results["tasks"]["stsb"]["metrics"]["pearson"], abs=1e-6)


def test_multitask_resume_is_refused_with_other_settings_and_allowed_with_its_own(
    tiny_model_dir, tmp_path, capsys
):
    out = tmp_path / "run"
    saves = ["--max-steps", "4", "--save-steps", "2", "--keep-checkpoints"]
    assert multitask(out, tiny_model_dir, *saves) == 0
    recorded = json.loads((out / "run_config.json").read_text())
    assert recorded["tasks"] == "rte,stsb" and "resume" not in recorded
    resolved = json.loads((out / "run_config.resolved.json").read_text())
    assert resolved["tasks"] == "rte,stsb" and resolved["task_sampling"] == "proportional"
    (out / "results.json").unlink()  # as if stopped after its last save
    capsys.readouterr()
    assert multitask(out, tiny_model_dir, *saves, "--task-sampling", "uniform", "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not resumed" in err and "task_sampling" in err, err
    assert not (out / "results.json").exists()
    assert multitask(out, tiny_model_dir, *saves, "--resume") == 0
    assert json.loads((out / "results.json").read_text())["resumed_at_step"] == 4


def test_a_refused_multitask_resume_names_the_multitask_command_to_resume_it(tmp_path):
    """The refusal names the command that gives the run its settings again: a multi-task run's
    run_config.json holds --tasks, which `smart-tune train` refuses."""
    from smart_tune.checkpoints import CHECKPOINT_COMPLETE
    from smart_tune.errors import ConfigError
    from smart_tune.run import check_resume
    from smart_tune.run_record import write_run_record

    out = tmp_path / "run"
    (out / "checkpoint-4").mkdir(parents=True)
    for name in (CHECKPOINT_COMPLETE, "optimizer.pt", "scheduler.pt"):
        (out / "checkpoint-4" / name).write_text("{}")
    started = {"tasks": "rte,stsb", "data_dir": GLUE, "output_dir": str(out)}
    write_run_record(out, started)
    with pytest.raises(ConfigError) as refused:
        check_resume(out, {**started, "task_sampling": "uniform"})
    assert f"smart-tune multitask --config {out / 'run_config.json'} --resume" in str(refused.value)
    with pytest.raises(ConfigError) as refused:  # train --resume given a multi-task run's folder
        check_resume(out, {"task": "rte", "data_dir": GLUE, "output_dir": str(out)})
    assert f"smart-tune multitask --config {out / 'run_config.json'} --resume" in str(refused.value)


def test_multitask_refuses_to_train_on_a_dev_set_it_scores(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert multitask(out, tiny_model_dir, "--train-split", "dev", "--max-steps", "1") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --train-split dev is rte's dev split, which it scores"), err
    assert "\n" not in err and "Traceback" not in err
    assert not out.exists()


def mnli_folder(root):
    """A data folder with a small MNLI (train, dev_matched, dev_mismatched in GLUE's layout) and RTE."""
    import os

    header = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tlabel1\tgold_label\n"
    labels = ("entailment", "neutral", "contradiction")
    (root / "MNLI").mkdir(parents=True)
    for split, n in (("train", 24), ("dev_matched", 9), ("dev_mismatched", 6)):
        rows = [
            f"{i}\t{i}\t{i}e\tfiction\tpremise {split} {i}\thypothesis {i % 5}\t{labels[i % 3]}\t{labels[i % 3]}\n"
            for i in range(n)
        ]
        (root / "MNLI" / f"{split}.tsv").write_text(header + "".join(rows))
    os.symlink(Path(GLUE) / "RTE", root / "RTE")
    return root


def test_multitask_scores_both_of_mnlis_dev_sets_and_selects_on_the_matched_one(
    tiny_model_dir, tmp_path, capsys
):
    """As train does for MNLI: the matched dev set is scored each epoch and makes the mean that selects;
    the mismatched one is scored by the kept model at the end and reported beside it."""
    data = mnli_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = ["multitask", "--tasks", "mnli,rte", "--data-dir", str(data), "--model", tiny_model_dir]
    assert main([*args, "--output-dir", str(out), *SHORT, "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    mnli = results["tasks"]["mnli"]
    assert mnli["num_examples"] == 9 and mnli["dev_mismatched_examples"] == 6
    assert set(mnli["metrics_dev_mismatched"]) == {"accuracy"}
    assert results["num_examples_by_split"]["mnli_dev_mismatched"] == 6
    assert results["num_examples"] == 9 + 277  # the dev sets that select: MNLI's matched and RTE's
    mean = (mnli["metrics"]["accuracy"] + results["tasks"]["rte"]["metrics"]["accuracy"]) / 2
    assert results["metrics"]["mean_main"] == pytest.approx(mean)
    # The mismatched set scored once, by the kept model; the matched set each epoch (twice) and not
    # again: its score is the kept epoch's, from the log, and so is the mean (one entry per epoch).
    history = results["log_history"]
    logged = [{k for k in e if k.endswith("_loss")} for e in history]
    assert sum("eval_mnli_dev_mismatched_loss" in e for e in logged) == 1
    assert sum("eval_mnli_dev_loss" in e for e in logged) == 2
    means = {e["step"]: e["eval_mean_main"] for e in history if "eval_mean_main" in e}
    assert len(means) == sum("eval_mean_main" in e for e in history) == 2
    assert results["metrics"]["mean_main"] == means[results["best_step"]]
    kept = [e for e in history if e.get("step") == results["best_step"] and "eval_mnli_dev_accuracy" in e]
    assert [e["eval_mnli_dev_accuracy"] for e in kept] == [mnli["metrics"]["accuracy"]]
    assert "on 6 dev_mismatched examples" in printed, printed
    # The kept model's score of the mismatched set, as evaluate gives it.
    evaluate = ["evaluate", "--model-dir", str(out), "--task", "mnli", "--data-dir", str(data)]
    assert main([*evaluate, "--split", "dev_mismatched"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["metrics"]["accuracy"] == pytest.approx(
        mnli["metrics_dev_mismatched"]["accuracy"], abs=1e-6
    )


class LoggedTrainer:
    """What multitask's score reads of a trainer: the state, the sets scored each epoch and evaluate
    (which records the sets it is given and answers ``values``)."""

    def __init__(self, history, values, global_step=8, best=4):
        from types import SimpleNamespace

        checkpoint = f"out/checkpoint-{best}"
        self.state = SimpleNamespace(
            log_history=history,
            global_step=global_step,
            best_global_step=best,
            best_model_checkpoint=checkpoint,
        )
        self.eval_dataset = {"mnli_dev": None, "rte_dev": None}
        self.values, self.calls = values, []

    def evaluate(self, sets, metric_key_prefix="eval"):
        self.calls.append(sorted(sets))
        return self.values


def scored_by(trainer, keep_best=True):
    from types import SimpleNamespace

    from smart_tune.multitask_run import score
    from smart_tune.run import PreparedRun
    from smart_tune.tasks import get_task

    encoded = {"train": [0] * 24, "mnli_dev": [0] * 9, "mnli_dev_mismatched": [0] * 6, "rte_dev": [0] * 4}
    args = SimpleNamespace(load_best_model_at_end=keep_best)
    tasks = [get_task("mnli"), get_task("rte")]
    return score(PreparedRun(None, args, Path("out"), tasks, {}, encoded, [], {}, "m", trainer))


def epoch(step, mnli, rte):
    return [
        {"eval_mnli_dev_accuracy": mnli, "eval_mnli_dev_loss": 1.0, "epoch": step / 4, "step": step},
        {"eval_rte_dev_accuracy": rte, "eval_rte_dev_loss": 1.0, "epoch": step / 4, "step": step},
        {"eval_mean_main": (mnli + rte) / 2, "epoch": step / 4, "step": step},
    ]


def test_the_final_scores_are_the_kept_epochs_logged_ones_by_exact_name():
    """The sets scored each epoch are read from the kept epoch's log entries (no second evaluation, which
    would log a second eval_mean_main for that epoch); MNLI's mismatched set, scored only now, is the
    one evaluated. A set's metrics are its task's by exact name: mnli_dev takes neither
    mnli_dev_mismatched's keys nor the Trainer's other outputs."""
    history = [*epoch(4, 0.5, 0.7), *epoch(8, 0.4, 0.6), {"train_runtime": 1.0, "epoch": 2.0, "step": 8}]
    mismatched = {"eval_mnli_dev_mismatched_accuracy": 0.3, "eval_mnli_dev_mismatched_loss": 1.1}
    trainer = LoggedTrainer(history, mismatched)
    scores = scored_by(trainer)
    assert trainer.calls == [["mnli_dev_mismatched"]]
    expected = {"mnli_dev_accuracy": 0.5, "rte_dev_accuracy": 0.7, "mnli_dev_mismatched_accuracy": 0.3}
    assert scores.metrics == {**expected, "mean_main": pytest.approx(0.6)}
    assert scores.num_examples == {"mnli_dev": 9, "mnli_dev_mismatched": 6, "rte_dev": 4}
    # load_best_model_at_end off: the last epoch's entries.
    assert scored_by(LoggedTrainer(history, mismatched), keep_best=False).metrics["rte_dev_accuracy"] == 0.6
    # The kept model not evaluated in training (the last step, 9, was not): every set is scored now.
    values = {
        "eval_mnli_dev_accuracy": 0.9,
        "eval_mnli_dev_model_preparation_time": 0.01,
        **mismatched,
        "eval_rte_dev_accuracy": 0.8,
    }
    trainer = LoggedTrainer(history, values, global_step=9)
    scores = scored_by(trainer, keep_best=False)
    assert trainer.calls == [["mnli_dev", "mnli_dev_mismatched", "rte_dev"]]
    assert scores.metrics == {
        "mnli_dev_accuracy": 0.9,
        "mnli_dev_mismatched_accuracy": 0.3,
        "rte_dev_accuracy": 0.8,
        "mean_main": pytest.approx(0.85),
    }
