"""What a user sees while a command runs: a start line at once, the Trainer's own progress bars on a
terminal and none in a log; and what a finished run reports: one final evaluation, the saved model's
step and epoch."""

import json
from pathlib import Path

import pytest

from conftest import shared_data_dir
from smart_tune import environment
from smart_tune.cli import main
from smart_tune.trainer import SmartTrainer

GLUE = str(shared_data_dir() / "glue")
SHORT = ["--max-train-samples", "32", "--max-steps", "4", "--logging-steps", "1"]


def train(out, model, *extra):
    args = ["train", "--task", "rte", "--data-dir", GLUE, "--model", model, "--output-dir", str(out)]
    return main([*args, *SHORT, *extra])


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bars_on_a_terminal_only(terminal, tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(environment, "show_progress", lambda: terminal)
    out = tmp_path / "run"
    assert train(out, tiny_model_dir, "--no-save-model") == 0
    screen = capsys.readouterr()
    # The first line comes as training starts, before any step.
    assert screen.out.splitlines()[0].startswith(
        "smart-tune: training rte with smart: 4 steps (2 epochs of 32"
    )
    assert ("4/4 [" in screen.err) is terminal  # the Trainer's tqdm bar, on stderr
    assert ("Loading weights" in screen.err) is False  # model loading stays quiet
    results = json.loads((out / "results.json").read_text())
    assert results["arguments"]["training"]["disable_tqdm"] is not terminal
    # Beside the score, what always answering the most frequent training label gets (the first 32 RTE
    # training pairs: 19 entailment, 13 not_entailment; dev: 146 of 277 entailment).
    assert results["baseline"] == {
        "label": "entailment",
        "metrics": {"accuracy": pytest.approx(146 / 277)},
    }
    assert '(always "entailment": 0.5271)' in screen.out
    assert "in brackets: the score of always answering the most frequent training label" in screen.out

    model_dir = tmp_path / "model"
    assert train(model_dir, tiny_model_dir) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model-dir", str(model_dir), "--task", "rte", "--data-dir", GLUE]) == 0
    screen = capsys.readouterr()
    assert json.loads(screen.out)["num_examples"] == 277  # stdout stays JSON
    assert "smart-tune: scoring 277 rte dev examples" in screen.err
    assert ("5/5 [" in screen.err) is terminal  # 277 examples in batches of 64


def test_disable_tqdm_wins_on_a_terminal(tiny_model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(environment, "show_progress", lambda: True)
    assert train(tmp_path / "run", tiny_model_dir, "--no-save-model", "--disable-tqdm", "true") == 0
    assert "4/4 [" not in capsys.readouterr().err


@pytest.mark.parametrize("keep", [False, True])
def test_one_final_evaluation_and_the_saved_models_epoch(keep, tiny_model_dir, tmp_path, monkeypatch):
    calls = []
    evaluate = SmartTrainer.evaluate

    def counted(self, *args, **kwargs):
        calls.append(self.state.global_step)
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(SmartTrainer, "evaluate", counted)
    out = tmp_path / "run"
    assert (
        train(out, tiny_model_dir, "--disable-tqdm", "true", *(["--keep-checkpoints"] if keep else [])) == 0
    )
    assert calls == [2, 4]  # after each of the 2 epochs; none again after training
    results = json.loads((out / "results.json").read_text())
    logged = [
        e for e in results["log_history"] if e.get("step") == results["best_step"] and "eval_accuracy" in e
    ]
    assert len(logged) == 1 and results["best_step"] in (2, 4)
    assert results["best_epoch"] == logged[0]["epoch"] == results["best_step"] / 2
    assert results["metrics"]["accuracy"] == logged[0]["eval_accuracy"]
    if keep:
        assert Path(results["best_checkpoint"]).name == f"checkpoint-{results['best_step']}"
        assert Path(results["best_checkpoint"]).is_dir()
    else:
        assert results["best_checkpoint"] is None and not list(out.glob("checkpoint-*"))
