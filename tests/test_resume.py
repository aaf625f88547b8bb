"""A run stopped by SIGTERM and resumed equals the same run left alone: the same batches, the same RNG
streams, the same mean teacher, optimizer and schedule, the same best-epoch selection on a held-out
part, and the same logged history. Tiny BERTs from configs, length-grouped batches, dropout on."""

import os
import signal

import numpy as np
import pytest
from transformers import TrainerCallback

from conftest import tiny_model
from smart_tune import SmartTrainer, SmartTrainingArguments
from smart_tune.interrupt import StopOnSignal
from test_reliability import SignalAt
from test_sampling import LengthToyDataset, collate

TIMING = ("_runtime", "_per_second")  # logged keys that end so are timings


def accuracy(prediction):
    return {"accuracy": float((np.argmax(prediction.predictions, -1) == prediction.label_ids).mean())}


class Recording(SmartTrainer):
    """Notes the input ids of every training batch."""

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen.append(tuple(map(tuple, inputs["input_ids"].tolist())))
        return super().training_step(model, inputs, num_items_in_batch)


class CountsSkips(TrainerCallback):
    """At step 3, counts a skipped step and two dropped terms, as a NaN/Inf there would: the logged
    cumulative counts must carry over a resume."""

    def __init__(self, trainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 3:
            self.trainer.guard.skipped_steps += 1
            self.trainer.objective.dropped_count += 2


def run(out, method, stop_at=None, resume=False, seed=0, **kw):
    """A run of 3 epochs of 6 steps that keeps the best epoch on a held-out part (as
    ``--validation-from-train`` does); SIGTERM at the end of step ``stop_at``, or resumed."""
    smart = dict(smart_epsilon=1e-2, smart_teacher_horizon=0.5) if method == "smart" else {}
    args = SmartTrainingArguments(
        output_dir=out,
        num_train_epochs=3,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        learning_rate=1e-3,
        warmup_steps=0.1,
        seed=7,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        logging_steps=kw.pop("logging_steps", 1),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=kw.pop("save_total_limit", 2),
        load_best_model_at_end=True,
        metric_for_best_model="eval_holdout_accuracy",
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        smart_method=method,
        **smart,
        **kw,
    )
    trainer = Recording(
        model=tiny_model("bert", dropout=0.1, seed=seed),
        args=args,
        train_dataset=LengthToyDataset(24),
        eval_dataset={"holdout": LengthToyDataset(10), "dev": LengthToyDataset(12)},
        data_collator=collate,
        compute_metrics=accuracy,
    )
    trainer.seen = []
    trainer.add_callback(CountsSkips(trainer))
    if stop_at is not None:
        trainer.add_callback(SignalAt(stop_at, [signal.SIGTERM]))  # before the stop: seen this step
    stop = StopOnSignal()
    trainer.add_callback(stop)
    with stop:
        trainer.output = trainer.train(resume_from_checkpoint=True if resume else None)
    trainer.stop = stop
    return trainer


def history(trainer):
    return [{k: v for k, v in h.items() if not k.endswith(TIMING)} for h in trainer.state.log_history]


def assert_same_history(a, b):
    ha, hb = history(a), history(b)
    assert [sorted(h) for h in ha] == [sorted(h) for h in hb]
    for x, y in zip(ha, hb):
        for key in x:
            if isinstance(x[key], float):
                assert x[key] == pytest.approx(y[key], abs=1e-6), (x["step"], key)
            else:
                assert x[key] == y[key], (x["step"], key)


@pytest.mark.parametrize("method", ["vanilla", "smart"])
@pytest.mark.parametrize(
    "stop_at,logging_steps,limit",
    [
        (8, 1, 2),  # mid-epoch 2
        (9, 4, 2),  # mid-epoch 2, between two logs
        (6, 4, 2),  # the last step of epoch 1: after its evaluation
        (8, 1, 1),  # save_total_limit=1: the Trainer's end-of-training clean-up keeps the checkpoint
    ],
)
def test_a_run_stopped_by_sigterm_and_resumed_equals_one_left_alone(
    tmp_path, method, stop_at, logging_steps, limit
):
    kw = dict(logging_steps=logging_steps, save_total_limit=limit)
    full = run(str(tmp_path / "full"), method, **kw)
    out = str(tmp_path / "cut")
    cut = run(out, method, stop_at=stop_at, **kw)
    assert cut.stop.signum == signal.SIGTERM and cut.state.global_step == stop_at
    assert cut.stop.saved_step == stop_at and os.path.isdir(os.path.join(out, f"checkpoint-{stop_at}"))
    resumed = run(
        out, method, resume=True, seed=5, **kw
    )  # another init: everything comes from the checkpoint

    assert resumed.state.global_step == full.state.global_step == 18
    # the same batches, in the same order: those consumed before the stop are skipped exactly
    assert cut.seen + resumed.seen == full.seen
    # the same weights (the best epoch's, loaded at the end) and the same selection
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        assert (p - q).abs().max().item() <= 1e-6
    assert resumed.state.best_metric == full.state.best_metric
    assert resumed.state.best_global_step == full.state.best_global_step
    assert os.path.basename(resumed.state.best_model_checkpoint) == os.path.basename(
        full.state.best_model_checkpoint
    )
    assert os.path.isdir(resumed.state.best_model_checkpoint)  # save_total_limit kept it
    assert_same_history(full, resumed)
    assert resumed.output.training_loss == pytest.approx(full.output.training_loss, abs=1e-6)  # results.json
    assert resumed.skipped_steps == full.skipped_steps == 1
    assert resumed.nonfinite_total() == full.nonfinite_total() == 2
    if method == "smart":
        assert resumed.teacher.optimizer_steps == full.teacher.optimizer_steps == 18
        assert resumed.teacher.beta == full.teacher.beta and resumed.teacher.beta < 0.999  # horizon's β
        for p, q in zip(full.teacher.model.parameters(), resumed.teacher.model.parameters()):
            assert (p - q).abs().max().item() <= 1e-6


# --------------------------------------------------------------------------------------------------
# The command line: results.json of a run stopped by SIGTERM and resumed with --resume.


def train_rte(model_dir: str) -> list[str]:
    """The start of ``smart-tune train`` on the shared RTE files with a tiny model; each test adds its own."""
    from conftest import shared_data_dir

    return ["train", "--task", "rte", "--data-dir", str(shared_data_dir() / "glue"), "--model", model_dir]


def cli_run(tiny_model_dir, out, method, signal_after=None):
    from smart_tune import run as run_module
    from smart_tune.cli import main
    from smart_tune.errors import Interrupted

    args = train_rte(tiny_model_dir)
    args += ["--output-dir", str(out), "--method", method, "--max-train-samples", "48"]
    args += [
        "--validation-from-train",
        "0.25",
        "--num-train-epochs",
        "2",
        "--per-device-train-batch-size",
        "8",
    ]
    args += ["--logging-steps", "3", "--disable-tqdm", "true", "--seed", "3", "--no-save-model"]
    if method == "smart":
        args += ["--smart-teacher-horizon", "0.5"]
    start_line = run_module.start_line

    class SignalAfter(TrainerCallback):  # added after the stop: seen at the end of the next step
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == signal_after:
                os.kill(os.getpid(), signal.SIGTERM)

    def with_signal(*a):
        return SignalAfter() if signal_after is not None else start_line(*a)

    run_module.start_line = with_signal
    try:
        code = main(args)
    finally:
        run_module.start_line = start_line
    if signal_after is not None:
        assert code == Interrupted(".", signal.SIGTERM).exit_code
        return main([*args, "--resume"])
    return code


@pytest.mark.parametrize("method", ["vanilla", "smart"])
def test_results_of_a_resumed_cli_run_equal_those_of_one_left_alone(tiny_model_dir, tmp_path, method, capsys):
    import json

    assert cli_run(tiny_model_dir, tmp_path / "full", method) == 0
    assert cli_run(tiny_model_dir, tmp_path / "cut", method, signal_after=6) == 0  # stops at 7 of 10
    capsys.readouterr()
    full, cut = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("full", "cut"))
    assert cut["resumed_at_step"] == 7 and full["global_steps"] == cut["global_steps"] == 10
    for key in (
        "metrics",
        "best_step",
        "best_epoch",
        "selected_on",
        "smart_nonfinite",
        "smart_skipped_steps",
    ):
        assert cut[key] == full[key], key
    assert cut["train_loss"] == pytest.approx(full["train_loss"], abs=1e-6)
    strip = [
        [{k: v for k, v in h.items() if not k.endswith(TIMING)} for h in r["log_history"]]
        for r in (full, cut)
    ]
    assert [sorted(h) for h in strip[0]] == [sorted(h) for h in strip[1]]
    for a, b in zip(*strip):
        assert a == pytest.approx(b, abs=1e-6)


# --------------------------------------------------------------------------------------------------
# `train --resume` checks the settings the run started with (its run_config.json, as compare does) and
# records a resume under another commit of smart-tune.


def test_train_resume_refuses_other_settings_and_records_another_commit(
    tiny_model_dir, tmp_path, capsys, monkeypatch
):
    import json

    from smart_tune import environment
    from smart_tune.cli import main

    out = tmp_path / "run"
    args = train_rte(tiny_model_dir)
    args += ["--method", "vanilla", "--max-train-samples", "32", "--max-steps", "4", "--logging-steps", "1"]
    args += ["--disable-tqdm", "true", "--output-dir", str(out), "--keep-checkpoints"]  # saves at steps 2, 4
    started, fixed = "b" * 40, "c" * 40
    monkeypatch.setattr(environment, "running_source", lambda: {"commit": started, "dirty": False})
    assert main(args) == 0
    recorded = json.loads((out / "run_config.json").read_text())
    assert recorded["method"] == "vanilla" and recorded["output_dir"] == str(out)
    assert "resume" not in recorded and "config" not in recorded  # how it was called, not what it trains
    resolved = json.loads((out / "run_config.resolved.json").read_text())
    assert resolved["learning_rate"] == 2e-5 and resolved["_source"]["commit"] == started
    (out / "results.json").unlink()  # as if stopped after its last save
    capsys.readouterr()

    def snapshot():
        return {str(p.relative_to(out)): p.read_bytes() if p.is_file() else None for p in out.rglob("*")}

    before = snapshot()
    assert main([*args, "--learning-rate", "1e-3", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"error: --resume: {out} not resumed: its options changed"), err
    assert "learning_rate: 2e-05 then, 0.001 now" in err and "--overwrite-output-dir" in err
    assert snapshot() == before  # nothing removed, nothing rewritten

    # The same settings (a default spelled out changes nothing), under a fix committed since: resumed,
    # with a warning naming both commits, and results.json records the one it started at.
    monkeypatch.setattr(environment, "running_source", lambda: {"commit": fixed, "dirty": False})
    assert main([*args, "--weight-decay", "0.01", "--resume"]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "warning" in line]
    assert len(warning) == 1 and started in warning[0] and fixed in warning[0], err
    results = json.loads((out / "results.json").read_text())
    assert results["resumed_at_step"] == 4
    assert results["environment"]["source"] == {"commit": fixed, "dirty": False, "started_at_commit": started}
    assert json.loads((out / "run_config.json").read_text()) == recorded  # still what it started with

    # A folder from before train recorded its options: resumed as before, with a note.
    for name in ("results.json", "run_config.json", "run_config.resolved.json"):
        (out / name).unlink()
    assert main([*args, "--learning-rate", "1e-3", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "no run_config.json" in err and "Traceback" not in err, err
    assert json.loads((out / "results.json").read_text())["resumed_at_step"] == 4

    # A checkpoint that holds the model only (--save-only-model, as gpu_study saves): refused in one
    # line, since resuming it would restart AdamW's moments and the warm-up without a word.
    (out / "results.json").unlink()
    for state in ("optimizer.pt", "scheduler.pt"):
        (out / "checkpoint-4" / state).unlink()
    before = snapshot()
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds the model only" in err and "--overwrite-output-dir" in err, err
    assert snapshot() == before


def test_a_checkpoint_holds_training_state_as_each_engine_saves_it(tmp_path):
    """What the Trainer writes beside the model to continue from: optimizer.pt and scheduler.pt (DDP, one
    process); under FSDP optimizer.bin or optimizer_0/; under DeepSpeed (ZeRO 1 and 2 run SMART) the
    engine's own global_stepN/ folder, which holds the optimizer and, with a DeepSpeed scheduler, the
    schedule (no scheduler.pt then). --save-only-model writes none of them."""
    from smart_tune.checkpoints import holds_training_state

    def checkpoint(name, *files, folders=()):
        folder = tmp_path / name
        folder.mkdir()
        for f in ("model.safetensors", "trainer_state.json", *files):
            (folder / f).write_text("")
        for f in folders:
            (folder / f).mkdir()
            (folder / f / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_text("")
        return folder

    assert holds_training_state(checkpoint("plain", "optimizer.pt", "scheduler.pt", "rng_state.pth"))
    assert holds_training_state(checkpoint("fsdp", "optimizer.bin", "scheduler.pt"))
    assert holds_training_state(checkpoint("fsdp-sharded", "scheduler.pt", folders=["optimizer_0"]))
    assert holds_training_state(checkpoint("deepspeed", "latest", folders=["global_step4"]))
    assert holds_training_state(
        checkpoint("deepspeed-hf-schedule", "latest", "scheduler.pt", folders=["global_step4"])
    )
    assert not holds_training_state(checkpoint("model-only"))
    assert not holds_training_state(checkpoint("no-schedule", "optimizer.pt"))


# --------------------------------------------------------------------------------------------------
# Files and folders are compared on resume by where they lead, not as typed: the same file spelled
# relative, with ./ or absolute is one setting; the same relative path typed from another working
# directory is another.


def own_files_run(tmp_path, model):
    """The options of a run on your own files (as typed, relative to tmp_path/work), and its folder."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    for name in ("x.csv", "dev.csv"):
        (work / "data" / name).write_text("sentence,label\na,0\nb,1\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    options = {"train_file": "data/x.csv", "validation_file": "data/dev.csv", "model": model}
    return work, run_dir, {**options, "seed": 1, "output_dir": str(run_dir)}


@pytest.mark.parametrize(
    "spelled",
    [
        {"train_file": "./data/x.csv"},
        {"train_file": "data/../data/x.csv", "validation_file": "./data//dev.csv"},
        {"model": "../work/m"},  # the model folder from one level up
        "absolute",
    ],
)
def test_a_file_or_folder_spelled_another_way_is_the_same_run(tmp_path, monkeypatch, tiny_model_dir, spelled):
    import shutil

    from smart_tune.run_record import settings_changed, write_run_record

    work, run_dir, options = own_files_run(tmp_path, "m")
    shutil.copytree(tiny_model_dir, work / "m")
    monkeypatch.chdir(work)
    write_run_record(run_dir, options)
    if spelled == "absolute":
        spelled = {k: str(work / options[k]) for k in ("train_file", "validation_file", "model")}
    assert settings_changed(run_dir, {**options, **spelled}) is None
    # Another file is still another run, shown as the paths it led to.
    why = settings_changed(run_dir, {**options, **spelled, "train_file": "data/dev.csv"})
    assert why == (
        "its options changed since it started "
        f"(train_file: {str(work / 'data/x.csv')!r} then, {str(work / 'data/dev.csv')!r} now)"
    )


def test_the_same_relative_path_from_another_working_directory_is_another_run(tmp_path, monkeypatch):
    from smart_tune.run_record import settings_changed, write_run_record

    work, run_dir, options = own_files_run(tmp_path, "org/hub-model")  # no such folder: a hub name
    monkeypatch.chdir(work)
    write_run_record(run_dir, options)
    assert settings_changed(run_dir, options) is None
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    (elsewhere / "data" / "x.csv").write_text("sentence,label\nc,0\nd,1\n")  # another file, same name
    monkeypatch.chdir(elsewhere)
    why = settings_changed(run_dir, options)  # typed alike, read from elsewhere
    assert why is not None and why.startswith("its options changed since it started"), why
    assert f"train_file: {str(work / 'data/x.csv')!r} then, {str(elsewhere / 'data/x.csv')!r} now" in why
    assert f"validation_file: {str(work / 'data/dev.csv')!r} then" in why and "model" not in why
    # A model named on the hub is a name wherever it is typed from; one that is a folder here now is not.
    options = {"task": "rte", "model": options["model"], "output_dir": str(run_dir)}
    monkeypatch.chdir(work)
    write_run_record(run_dir, options)
    monkeypatch.chdir(elsewhere)
    assert settings_changed(run_dir, options) is None
    (elsewhere / "org" / "hub-model").mkdir(parents=True)
    why = settings_changed(run_dir, options)
    assert why is not None and f"model: 'org/hub-model' then, {str(elsewhere / 'org/hub-model')!r} now" in why


def test_a_record_written_before_paths_were_resolved_compares_them_as_typed(tmp_path, monkeypatch):
    import json

    from smart_tune.run_record import PATHS, RESOLVED, settings_changed, write_run_record

    work, run_dir, options = own_files_run(tmp_path, "org/hub-model")
    monkeypatch.chdir(work)
    write_run_record(run_dir, options)
    record = json.loads((run_dir / RESOLVED).read_text())
    del record[PATHS]
    (run_dir / RESOLVED).write_text(json.dumps(record))
    assert settings_changed(run_dir, options) is None  # resumable as before the paths were recorded
    why = settings_changed(run_dir, {**options, "train_file": "./data/x.csv"})
    assert why is not None and "train_file: 'data/x.csv' then, './data/x.csv' now" in why


def test_train_resume_takes_a_data_folder_and_model_spelled_another_way(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    """The command line: a run started with relative paths resumes with them absolute; run from another
    working directory with the same relative paths, it is refused in one line."""
    import os
    import shutil

    from conftest import shared_data_dir
    from smart_tune.cli import main

    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(tiny_model_dir, work / "m")
    os.symlink(shared_data_dir() / "glue", work / "glue")
    out = tmp_path / "run"
    monkeypatch.chdir(work)
    args = ["train", "--task", "rte", "--method", "vanilla", "--max-train-samples", "16", "--max-steps", "2"]
    args += ["--disable-tqdm", "true", "--output-dir", str(out), "--keep-checkpoints", "--no-save-model"]
    assert main([*args, "--data-dir", "glue", "--model", "m"]) == 0
    (out / "results.json").unlink()  # as if stopped after its last save
    assert main([*args, "--data-dir", str(work / "glue"), "--model", "./m/", "--resume"]) == 0
    assert json_of(out / "results.json")["resumed_at_step"] == 2
    (out / "results.json").unlink()
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(work, elsewhere, symlinks=True)
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main([*args, "--data-dir", "glue", "--model", "m", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "its options changed" in err, err
    assert f"model: {str(work / 'm')!r} then, {str(elsewhere / 'm')!r} now" in err, err


def json_of(path):
    import json

    return json.loads(path.read_text())


def test_an_option_given_as_inline_json_is_not_a_path(tmp_path, monkeypatch):
    """--deepspeed, --fsdp-config and --accelerator-config take a file or a JSON object inline
    (TrainingArguments parses a value starting with "{"): one longer than a file name may be made
    Path.exists raise (File name too long), and the run failed as it wrote its record."""
    import json

    from smart_tune.run_record import PATHS, RESOLVED, settings_changed, write_run_record

    inline = json.dumps(
        {"zero_optimization": {"stage": 2}, "gradient_accumulation_steps": "auto"}
        | {f"setting_{i}": "auto" for i in range(20)}
    )
    assert len(inline) > 255 and "/" not in inline
    work, run_dir, options = own_files_run(tmp_path, "org/hub-model")
    monkeypatch.chdir(work)
    options = {**options, "deepspeed": inline, "fsdp_config": "{}"}
    write_run_record(run_dir, options)
    recorded = json.loads((run_dir / RESOLVED).read_text())
    assert "deepspeed" not in recorded[PATHS] and recorded["deepspeed"] == inline
    assert settings_changed(run_dir, options) is None
    assert "deepspeed" in settings_changed(run_dir, {**options, "deepspeed": inline.replace("2", "3")})
