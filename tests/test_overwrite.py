"""--overwrite-output-dir removes the previous run only once the new one has loaded its data and model and
is about to train: a run that fails before that (no hub, no data, no model) leaves the folder as it was."""

import json

import pytest

from conftest import shared_data_dir
from smart_tune import run as run_module
from smart_tune.cli import main
from smart_tune.trainer import SmartTrainer

GLUE = str(shared_data_dir() / "glue")
FAST = ["--max-train-samples", "32", "--max-steps", "4", "--logging-steps", "1", "--disable-tqdm", "true"]


def previous_run(folder):
    """A finished run's folder as `train` and `predict` leave it, plus a file of the user's own."""
    folder.mkdir()
    (folder / "results.json").write_text('{"earlier": true}')
    (folder / "model.safetensors").write_bytes(b"old weights")
    (folder / "config.json").write_text("{}")
    (folder / "predictions").mkdir()
    (folder / "predictions" / "RTE.tsv").write_text("index\tprediction\n0\tentailment\n")
    (folder / "checkpoint-4").mkdir()
    (folder / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (folder / "notes.txt").write_text("mine")
    return snapshot(folder)


def snapshot(folder):
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", ["offline hub", "missing data", "model that does not load"])
def test_a_run_that_fails_before_training_leaves_the_old_run_whole(
    case, tmp_path, tiny_model_dir, monkeypatch, capsys
):
    out = tmp_path / "run"
    before = previous_run(out)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("GLUE_DIR", raising=False)
    data = {
        "offline hub": [],  # no --data-dir, no $GLUE_DIR: the hub, which is off
        "missing data": ["--data-dir", str(tmp_path / "nowhere")],
        "model that does not load": ["--data-dir", GLUE],
    }[case]
    model = str(tmp_path / "no-model") if case == "model that does not load" else tiny_model_dir
    args = ["train", "--task", "rte", *data, "--model", model, "--output-dir", str(out)]
    code = main([*args, "--overwrite-output-dir", *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    if case == "offline hub":
        assert "--data-dir" in err
    assert snapshot(out) == before


def test_overwrite_replaces_the_old_run_once_data_and_model_are_loaded(tmp_path, tiny_model_dir, monkeypatch):
    out = tmp_path / "run"
    previous_run(out)
    seen = {}
    load_model = run_module.load_model_and_tokenizer

    def load_model_and_see(*args, **kwargs):
        seen["old results when the model loads"] = (out / "results.json").read_text()
        return load_model(*args, **kwargs)

    train = SmartTrainer.train

    def train_and_see(self, *args, **kwargs):
        seen["left when training starts"] = sorted(p.name for p in out.iterdir())
        return train(self, *args, **kwargs)

    monkeypatch.setattr(run_module, "load_model_and_tokenizer", load_model_and_see)
    monkeypatch.setattr(SmartTrainer, "train", train_and_see)
    args = ["train", "--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir]
    assert main([*args, "--output-dir", str(out), "--overwrite-output-dir", *FAST]) == 0

    assert seen["old results when the model loads"] == '{"earlier": true}'
    # The old run gone, the user's file kept, the new run's record of its start written.
    assert seen["left when training starts"] == ["notes.txt", "run_config.json", "run_config.resolved.json"]
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "rte" and results["global_steps"] == 4
    assert (out / "model.safetensors").read_bytes() != b"old weights"
    assert not (out / "predictions").exists() and not list(out.glob("checkpoint-*"))
    assert (out / "notes.txt").read_text() == "mine"


def test_a_run_killed_while_it_writes_its_results_keeps_its_checkpoint(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from smart_tune.checkpoints import CHECKPOINT_COMPLETE

    out = tmp_path / "run"
    (out / "checkpoint-4").mkdir(parents=True)
    (out / "checkpoint-4" / CHECKPOINT_COMPLETE).write_text("{}")
    prepared = SimpleNamespace(
        trainer=SimpleNamespace(is_world_process_zero=lambda: True),
        run=SimpleNamespace(keep_checkpoints=False),
        output_dir=out,
    )

    def killed(*_):
        raise OSError("no space left on device")  # or SIGTERM: the process ends here

    monkeypatch.setattr(run_module, "write_json_atomic", killed)
    with pytest.raises(OSError):
        run_module.write_results(prepared, {"task": "rte"})
    assert (out / "checkpoint-4").is_dir()  # resumable, not a finished run to train again from nothing
    monkeypatch.undo()
    run_module.write_results(prepared, {"task": "rte"})
    assert (out / "results.json").exists() and not (out / "checkpoint-4").exists()


def test_a_failed_run_leaves_a_folder_holding_finished_results(tmp_path):
    from smart_tune.outputs import missing_folders, remove_created

    out = tmp_path / "a" / "run"
    created = missing_folders(out)
    out.mkdir(parents=True)
    (out / "results.json").write_text("{}")  # another process's run in the folder finished meanwhile
    remove_created(created)
    assert (out / "results.json").exists()
