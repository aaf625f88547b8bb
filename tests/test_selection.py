"""Selection without peeking: --validation-from-train holds out part of train for every choice, and dev
is only scored and reported."""

import json

import datasets
import numpy as np
import pytest

from conftest import shared_data_dir
from smart_tune.cli import main
from smart_tune.data import holdout_split
from smart_tune.errors import ConfigError, DataError
from smart_tune.report import kept_epoch, last_epoch_metrics
from smart_tune.trainer import SmartTrainer

GLUE = str(shared_data_dir() / "glue")


def labelled(labels):
    return datasets.Dataset.from_dict({"idx": list(range(len(labels))), "label": labels})


def test_holdout_is_stratified_seeded_and_disjoint():
    ds = labelled([0] * 60 + [1] * 30 + [2] * 10)
    train, held = holdout_split(ds, 0.1, seed=4)
    assert sorted(held["label"]) == [0] * 6 + [1] * 3 + [2]  # each class gives its share
    assert set(train["idx"]).isdisjoint(held["idx"]) and len(train) + len(held) == 100
    assert held["idx"] == holdout_split(ds, 0.1, seed=4)[1]["idx"]  # one seed, one held-out part
    assert held["idx"] != holdout_split(ds, 0.1, seed=5)[1]["idx"]
    assert train["idx"] == sorted(train["idx"])  # original order kept


def test_holdout_of_a_regression_set_is_random_and_leaves_each_class_a_row():
    reg = labelled(list(np.linspace(0, 5, 50)))
    _, held = holdout_split(reg, 0.2, seed=1)
    assert len(held) == 10
    tiny = labelled([0, 0, 1])
    train, held = holdout_split(tiny, 0.5, seed=0)
    assert held["label"] == [0] and sorted(train["label"]) == [0, 1]
    with pytest.raises(DataError):
        holdout_split(labelled([0, 1]), 0.5, seed=0)
    with pytest.raises(ConfigError):
        holdout_split(tiny, 1.0, seed=0)


def test_train_selects_on_the_holdout_and_reports_dev(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir, "--method", "vanilla"]
    args += ["--max-train-samples", "64", "--epochs", "2", "--batch-size", "16", "--disable-tqdm", "true"]
    assert main([*args, "--validation-from-train", "0.25", "--output-dir", str(out), "--no-save-model"]) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["selected_on"] == "train-holdout" and r["holdout_examples"] == 16
    assert r["num_train_examples"] == 48 and r["num_examples"] == 277  # dev is scored in full
    assert r["arguments"]["training"]["metric_for_best_model"] == "eval_holdout_accuracy"
    assert set(r["metrics"]) == {"accuracy", "accuracy_holdout"}
    evals = [e for e in r["log_history"] if "eval_holdout_accuracy" in e]
    assert len(evals) == 2  # every epoch
    assert any("eval_dev_accuracy" in e for e in r["log_history"])
    last = last_epoch_metrics(r)
    assert set(last) == {"last_epoch_accuracy", "last_epoch_accuracy_holdout"}
    # The kept model's held-out score is the best epoch's: the held-out part picked it.
    assert r["metrics"]["accuracy_holdout"] == pytest.approx(max(e["eval_holdout_accuracy"] for e in evals))
    # The summary counts each score's own examples: dev in full, the held-out part of train apart.
    summary = capsys.readouterr().out
    assert "on 277 dev examples" in summary and "on 16 holdout examples" in summary

    plain = tmp_path / "plain"
    assert main([*args, "--output-dir", str(plain), "--no-save-model"]) == 0
    p = json.loads((plain / "results.json").read_text())
    assert p["selected_on"] == "dev" and p["holdout_examples"] == 0 and p["num_train_examples"] == 64


def test_validation_fraction_out_of_range_is_refused(tmp_path, capsys):
    code = main(
        ["train", "--task", "rte", "--validation-from-train", "1.5", "--output-dir", str(tmp_path / "x")]
    )
    assert code == 2 and "--validation-from-train" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_run_that_keeps_its_last_epoch_says_nothing_chose_it(tiny_model_dir, tmp_path):
    """``load_best_model_at_end`` off (Studies 4 and 6 score SNLI test with the last epoch): the Trainer
    still tracks a best step, but the model kept is the last one, and nothing selected it."""
    out = tmp_path / "run"
    args = ["train", "--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir, "--method", "vanilla"]
    args += ["--max-train-samples", "32", "--epochs", "2", "--batch-size", "16", "--disable-tqdm", "true"]
    args += ["--load-best-model-at-end", "false", "--output-dir", str(out), "--no-save-model"]
    assert main(args) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["selected_on"] == "none" and r["best_checkpoint"] is None
    assert r["best_step"] == r["global_steps"] == 4 and r["best_epoch"] == 2.0
    assert kept_epoch(r) == 2.0  # the report's fit table
    last = [e for e in r["log_history"] if "eval_accuracy" in e][-1]
    assert r["metrics"]["accuracy"] == pytest.approx(last["eval_accuracy"])


@pytest.mark.parametrize("keep_best", [True, False])
def test_the_kept_epochs_logged_scores_are_reported_not_scored_again(
    keep_best, tiny_model_dir, tmp_path, monkeypatch, capsys
):
    """--validation-from-train scores the held-out part and dev each epoch (``eval_holdout_*``,
    ``eval_dev_*``). The kept model's scores are those logged at its step (the best epoch on the held-out
    part, or the last with load_best_model_at_end off): read from the log, not a second evaluation after
    training; and they are the saved model's, as evaluate scores it."""
    after = []
    evaluate = SmartTrainer.evaluate

    def counted(self, *args, **kwargs):
        if not self.is_in_train:
            after.append(self.state.global_step)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(SmartTrainer, "evaluate", counted)
    out = tmp_path / "run"
    args = ["train", "--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir, "--method", "vanilla"]
    args += ["--max-train-samples", "64", "--epochs", "2", "--batch-size", "16", "--disable-tqdm", "true"]
    args += ["--validation-from-train", "0.25", "--load-best-model-at-end", str(keep_best).lower()]
    assert main([*args, "--output-dir", str(out)]) == 0
    assert after == []  # no evaluation once training is over
    r = json.loads((out / "results.json").read_text())
    evals = {e["step"]: e for e in r["log_history"] if "eval_holdout_accuracy" in e}
    assert sorted(evals) == [3, 6]  # 48 training pairs in batches of 16, two epochs
    kept = max(evals, key=lambda s: evals[s]["eval_holdout_accuracy"]) if keep_best else 6
    assert r["best_step"] == kept
    dev = next(e for e in r["log_history"] if e.get("step") == kept and "eval_dev_accuracy" in e)
    assert r["metrics"] == {
        "accuracy": dev["eval_dev_accuracy"],
        "accuracy_holdout": evals[kept]["eval_holdout_accuracy"],
    }
    capsys.readouterr()
    assert main(["evaluate", "--model-dir", str(out), "--task", "rte", "--data-dir", GLUE]) == 0
    scored = json.loads(capsys.readouterr().out)["metrics"]["accuracy"]
    assert scored == pytest.approx(r["metrics"]["accuracy"], abs=1e-9)


def test_a_resumed_run_whose_best_checkpoint_is_gone_names_the_last_step_as_kept():
    """On resume the Trainer drops a best checkpoint that no longer exists (``best_model_checkpoint``
    None) but keeps ``best_global_step``; at the end it then loads nothing and the last model is saved.
    results.json must name that step, as the scores (read at :func:`step_in_memory`) do."""
    from types import SimpleNamespace

    from smart_tune.run import kept_model, step_in_memory

    log = [{"step": 3, "epoch": 1.0, "eval_loss": 0.5}, {"step": 6, "epoch": 2.0, "eval_loss": 0.6}]
    args = SimpleNamespace(load_best_model_at_end=True)
    run = SimpleNamespace(keep_checkpoints=True)
    gone = SimpleNamespace(log_history=log, global_step=6, best_global_step=3, best_model_checkpoint=None)
    assert kept_model(gone, run, args) == {"best_checkpoint": None, "best_step": 6, "best_epoch": 2.0}
    assert step_in_memory(gone, args) == 6
    there = SimpleNamespace(**{**vars(gone), "best_model_checkpoint": "out/checkpoint-3"})
    assert kept_model(there, run, args) == {
        "best_checkpoint": "out/checkpoint-3",
        "best_step": 3,
        "best_epoch": 1.0,
    }
    assert step_in_memory(there, args) == 3
