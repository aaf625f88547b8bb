"""Scale and reliability: an interrupted run saves a checkpoint and resumes; a checkpoint is complete or
absent; a NaN/Inf loss applies no update; pickles and model code are not run unasked; bf16 on the CPU;
sharded training refused where the method cannot work."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch
from transformers import TrainerCallback

from conftest import ToyDataset, shared_data_dir, tiny_model, with_own_code
from smart_tune import ConfigError, SmartTrainer, symmetric_kl
from smart_tune.checkpoints import CHECKPOINT_COMPLETE, is_complete_checkpoint, last_complete_checkpoint
from smart_tune.cli import main
from smart_tune.errors import CheckpointError, Interrupted, NonFiniteLoss, SmartTuneError
from smart_tune.interrupt import StopOnSignal
from smart_tune.results import write_json_atomic
from smart_tune.run import load_model_and_tokenizer
from smart_tune.sharding import check_sharding
from smart_tune.tasks import get_task
from smart_tune.trainer import TEACHER_STATE, TEACHER_WEIGHTS
from test_trainer import logged, max_weight_diff, smart_args

GLUE = str(shared_data_dir() / "glue")


def params_of(model):
    return [p.detach().clone() for p in model.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# --------------------------------------------------------------------------------------------------
# 1. SIGTERM / Ctrl-C: a checkpoint at the end of the step, one line, exit 128 + signal; --resume goes on.


def test_sigterm_during_train_saves_a_checkpoint_and_resume_finishes(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "--task",
        "rte",
        "--data-dir",
        GLUE,
        "--model",
        tiny_model_dir,
        "--output-dir",
        str(out),
        "--max-train-samples",
        "64",
        "--per-device-train-batch-size",
        "8",
        "--max-steps",
        "200",
        "--eval-strategy",
        "steps",
        "--eval-steps",
        "1000",
        "--save-strategy",
        "steps",
        "--save-steps",
        "1000",
        "--logging-steps",
        "1",
        "--disable-tqdm",
        "true",
    ]
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(stdout, "w") as so, open(stderr, "w") as se:
        proc = subprocess.Popen(
            [sys.executable, "-m", "smart_tune", *args],
            stdout=so,
            stderr=se,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.time() + 300
            while "'loss'" not in stdout.read_text() and proc.poll() is None and time.time() < deadline:
                time.sleep(0.1)  # the first logged step: training has begun
            assert proc.poll() is None, stderr.read_text()[-3000:]
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    err = stderr.read_text()
    assert code == 143, err[-3000:]
    assert "Traceback" not in err
    assert "SIGTERM received; saving a checkpoint at step" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: interrupted by SIGTERM at step "), last
    folder = Path(re.search(r"checkpoint saved in (\S+);", last).group(1))
    assert "--resume" in last and folder.parent == out
    step = int(folder.name.split("-")[1])
    assert 1 <= step < 200, "the signal should land during training"
    assert is_complete_checkpoint(folder)
    assert (folder / TEACHER_WEIGHTS).is_file() and (folder / TEACHER_STATE).is_file()
    assert not (out / "results.json").exists()

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert main([*args, "--resume"]) == 0
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers  # restored
    results = json.loads((out / "results.json").read_text())
    assert results["global_steps"] == 200 and results["resumed_at_step"] == step
    # the history holds each step once: the checkpoint's steps, then the resumed run's from step + 1
    assert [h["step"] for h in results["log_history"] if "loss" in h] == list(range(1, 201))
    capsys.readouterr()


class SignalAt(TrainerCallback):
    """Sends signals to this process at the end of a given optimizer step."""

    def __init__(self, step, signals):
        self.step, self.signals = step, signals

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            for sig in self.signals:
                os.kill(os.getpid(), sig)


def test_sigterm_to_a_compare_sweep_reaches_its_run(tmp_path):
    """lanes.py and schedulers signal compare's process only; its run must get the SIGTERM (to save a
    checkpoint) rather than die with compare. Here the 'run' is a child that exits 43 on SIGTERM."""
    from smart_tune.sweep import wait_passing_sigterm

    ready = tmp_path / "ready"
    code = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(43))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 30
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.05)
    previous = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    assert wait_passing_sigterm(child) == (43, True)
    assert signal.getsignal(signal.SIGTERM) == previous  # restored
    quiet = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_passing_sigterm(quiet) == (0, False)


def test_ctrl_c_saves_and_stops_at_the_end_of_the_step(tmp_out):
    trainer = SmartTrainer(
        model=tiny_model(), args=smart_args(tmp_out, max_steps=8), train_dataset=ToyDataset()
    )
    trainer.add_callback(SignalAt(2, [signal.SIGINT]))
    stop = StopOnSignal()
    trainer.add_callback(stop)
    before = signal.getsignal(signal.SIGINT)
    with stop:
        trainer.train()
    assert signal.getsignal(signal.SIGINT) is before
    assert stop.signum == signal.SIGINT and trainer.state.global_step == 2 and stop.saved_step == 2
    error = stop.interrupted(tmp_out, trainer.state)
    assert error.exit_code == 130
    assert str(error).startswith("interrupted by SIGINT at step 2 of 8; checkpoint saved in ")
    assert is_complete_checkpoint(os.path.join(tmp_out, "checkpoint-2"))


def test_second_signal_stops_at_once(tmp_out):
    trainer = SmartTrainer(
        model=tiny_model(), args=smart_args(tmp_out, max_steps=8), train_dataset=ToyDataset()
    )
    trainer.add_callback(SignalAt(2, [signal.SIGTERM, signal.SIGTERM]))
    stop = StopOnSignal()
    trainer.add_callback(stop)
    with stop, pytest.raises(Interrupted):
        trainer.train()
    error = stop.interrupted(tmp_out, trainer.state, at_once=True)
    assert error.exit_code == 143 and "no checkpoint was saved" in str(error)
    assert last_complete_checkpoint(tmp_out) is None


# --------------------------------------------------------------------------------------------------
# 2. Checkpoints: complete (marked) or absent; resume takes the newest complete one.


def fail_on_second(function, path_ends_with=""):
    """``function`` that, the second time it writes a path ending so, writes a few bytes and fails as a
    full disk would."""
    calls = []

    def failing(obj, path, *args, **kwargs):
        if str(path).endswith(path_ends_with):
            calls.append(path)
            if len(calls) == 2:
                Path(path).write_bytes(b"\x00" * 16)
                raise OSError(28, "No space left on device")
        return function(obj, path, *args, **kwargs)

    return failing


@pytest.mark.parametrize("failing", ["teacher", "optimizer"])
def test_failed_checkpoint_save_keeps_the_previous_one_and_resume_matches(tmp_out, monkeypatch, failing):
    kw = dict(max_steps=9, save_strategy="steps", save_steps=3, save_total_limit=1)
    full = SmartTrainer(
        model=tiny_model(dropout=0.1), args=smart_args(tmp_out + "_full", **kw), train_dataset=ToyDataset()
    )
    full.train()

    if failing == "teacher":
        monkeypatch.setattr(safetensors.torch, "save_file", fail_on_second(safetensors.torch.save_file))
    else:
        monkeypatch.setattr(torch, "save", fail_on_second(torch.save, "optimizer.pt"))
    crashed = SmartTrainer(
        model=tiny_model(dropout=0.1), args=smart_args(tmp_out, **kw), train_dataset=ToyDataset()
    )
    with pytest.raises(CheckpointError, match="No space left on device") as info:
        crashed.train()
    monkeypatch.undo()
    first = os.path.join(tmp_out, "checkpoint-3")
    assert "checkpoint-6" in str(info.value) and f"newest complete checkpoint is {first}" in str(info.value)
    assert not os.path.exists(os.path.join(tmp_out, "checkpoint-6"))  # the partial folder is gone
    assert is_complete_checkpoint(first)  # and save_total_limit=1 did not rotate the old one away
    # A later save cut short by a kill leaves a folder the Trainer's own choice would take.
    shutil.copytree(first, os.path.join(tmp_out, "checkpoint-8"))
    os.unlink(os.path.join(tmp_out, "checkpoint-8", CHECKPOINT_COMPLETE))
    assert last_complete_checkpoint(tmp_out) == first

    resumed = SmartTrainer(
        model=tiny_model(dropout=0.1, seed=5), args=smart_args(tmp_out, **kw), train_dataset=ToyDataset()
    )
    with pytest.warns(RuntimeWarning, match="checkpoint-8: its save was cut short"):
        resumed.train(resume_from_checkpoint=True)  # removed: it would mislead save_total_limit
    assert resumed.state.global_step == 9 and resumed.teacher.optimizer_steps == 9
    assert max_weight_diff(full, resumed) <= 1e-6
    for a, b in zip(full.teacher.model.parameters(), resumed.teacher.model.parameters()):
        assert (a - b).abs().max() <= 1e-6
    assert is_complete_checkpoint(os.path.join(tmp_out, "checkpoint-9"))


def test_resume_without_a_complete_checkpoint_is_refused(tmp_out, tiny_model_dir, capsys):
    os.makedirs(os.path.join(tmp_out, "checkpoint-4"))
    Path(tmp_out, "checkpoint-4", "model.safetensors").write_bytes(b"\x00" * 16)
    trainer = SmartTrainer(model=tiny_model(), args=smart_args(tmp_out), train_dataset=ToyDataset())
    with pytest.raises(ConfigError, match=r"no complete checkpoint .*checkpoint-4: saving was cut short"):
        trainer.train(resume_from_checkpoint=True)
    code = main(
        ["train", "--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir, "--output-dir", tmp_out]
        + ["--resume"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --resume: no complete checkpoint") and "\n" not in err


def test_sweep_resumes_only_a_complete_checkpoint(tmp_path, monkeypatch):
    from smart_tune import sweep

    commands = []

    class FailedRun:  # records the command, exits 1 at once
        def __init__(self, cmd, **kw):
            commands.append(cmd)

        def wait(self):
            return 1

    monkeypatch.setattr(sweep.subprocess, "Popen", FailedRun)
    run_dir = tmp_path / "rte" / "vanilla" / "seed-1"
    (run_dir / "checkpoint-2").mkdir(parents=True)  # a save cut short by a kill: start over
    sweep.run_sweep(tmp_path, ["rte"], ["vanilla"], [1], {}, echo=lambda *a: None)
    assert "--overwrite-output-dir" in commands[-1] and "--resume" not in commands[-1]
    (run_dir / "checkpoint-2" / CHECKPOINT_COMPLETE).write_text("{}")  # complete, but the model only
    lines = []
    sweep.run_sweep(tmp_path, ["rte"], ["vanilla"], [1], {}, echo=lines.append)
    assert "--overwrite-output-dir" in commands[-1] and "--resume" not in commands[-1]
    assert any("holds the model only" in line for line in lines), lines
    for state in ("optimizer.pt", "scheduler.pt"):  # with what training continues from: resumed
        (run_dir / "checkpoint-2" / state).write_bytes(b"")
    sweep.run_sweep(tmp_path, ["rte"], ["vanilla"], [1], {}, echo=lambda *a: None)
    assert "--resume" in commands[-1] and "--overwrite-output-dir" not in commands[-1]


def test_failed_results_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_json_atomic(path, {"old": 1})
    with pytest.raises(TypeError):  # fails half-way through the dump
        write_json_atomic(path, {"new": 1, "bad": {(1, 2): 3}})
    assert json.loads(path.read_text()) == {"old": 1}

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_json_atomic(path, {"new": 2})
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temp file left


# --------------------------------------------------------------------------------------------------
# 3. Non-finite loss: the step applies no update, is counted and warned once; too many in a row stop.


def nan_loss_at(trainer, bad_calls):
    """Make the training loss NaN at the given micro-batches (0-based calls of compute_loss)."""
    original = trainer.compute_loss
    calls = []

    def compute_loss(model, inputs, return_outputs=False, num_items_in_batch=None):
        out = original(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            calls.append(None)
            if len(calls) - 1 in bad_calls:
                return (out[0] * math.nan, out[1]) if return_outputs else out * math.nan
        return out

    trainer.compute_loss = compute_loss


class Snapshots(TrainerCallback):
    """The weights before and after each optimizer step (1-based)."""

    def __init__(self, model):
        self.model, self.before, self.after = model, {}, {}

    def on_step_begin(self, args, state, control, **kwargs):
        self.before[state.global_step + 1] = params_of(self.model)

    def on_step_end(self, args, state, control, **kwargs):
        self.after[state.global_step] = params_of(self.model)


@pytest.mark.parametrize("method, accumulation", [("smart", 1), ("vanilla", 2)])
def test_nonfinite_loss_step_applies_no_update(tmp_out, method, accumulation):
    trainer = SmartTrainer(
        model=tiny_model(dropout=0.1),
        args=smart_args(tmp_out, smart_method=method, gradient_accumulation_steps=accumulation),
        train_dataset=ToyDataset(n=48),
    )
    # step 3 (1-based): its only micro-batch, or the second of its two
    nan_loss_at(trainer, {2} if accumulation == 1 else {5})
    snapshots = Snapshots(trainer.model)
    trainer.add_callback(snapshots)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train()
    assert trainer.state.global_step == 6
    for step in range(1, 7):
        unchanged = same(snapshots.before[step], snapshots.after[step])
        assert unchanged == (step == 3), step
    # AdamW took 5 steps, not 6: no moment update, no bias-correction count for the skipped one
    adam_steps = {int(s["step"]) for s in trainer.optimizer.state.values()}
    assert adam_steps == {5}
    assert logged(trainer, "smart_skipped_steps") == [0, 0, 1, 1, 1, 1]
    assert all(math.isfinite(v) for v in logged(trainer, "loss"))
    assert len([w for w in caught if "skipped without an update" in str(w.message)]) == 1
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_nonfinite_gradient_with_a_finite_loss_applies_no_update(tmp_out):
    """NaN in one weight's gradient while the loss is finite (e.g. an overflow inside the backward):
    the step is dropped just the same, and no NaN reaches the weights or AdamW's moments."""
    trainer = SmartTrainer(
        model=tiny_model(dropout=0.1), args=smart_args(tmp_out), train_dataset=ToyDataset(n=48)
    )
    backward_calls = []

    def poison(grad):
        backward_calls.append(None)
        return grad * math.nan if len(backward_calls) == 4 else grad  # the 4th optimizer step

    trainer.model.classifier.weight.register_hook(poison)
    snapshots = Snapshots(trainer.model)
    trainer.add_callback(snapshots)
    with pytest.warns(RuntimeWarning, match="gradients were NaN or Inf at step 4"):
        trainer.train()
    for step in range(1, 7):
        assert same(snapshots.before[step], snapshots.after[step]) == (step == 4), step
    assert all(math.isfinite(v) for v in logged(trainer, "loss"))
    assert logged(trainer, "smart_skipped_steps")[-1] == 1
    assert all(torch.isfinite(t).all() for s in trainer.optimizer.state.values() for t in s.values())


def test_too_many_nonfinite_steps_in_a_row_stop_training(tmp_out):
    args = smart_args(tmp_out, max_steps=8, smart_max_nonfinite_steps=2)
    trainer = SmartTrainer(model=tiny_model(), args=args, train_dataset=ToyDataset())
    nan_loss_at(trainer, {1, 3, 5})  # never two in a row: training finishes
    with pytest.warns(RuntimeWarning, match="skipped without an update"):
        trainer.train()
    assert trainer.state.global_step == 8 and trainer.skipped_steps == 3

    trainer = SmartTrainer(
        model=tiny_model(), args=smart_args(tmp_out, max_steps=8), train_dataset=ToyDataset()
    )
    nan_loss_at(trainer, set(range(1, 100)))
    snapshots = Snapshots(trainer.model)
    trainer.add_callback(snapshots)
    with pytest.raises(NonFiniteLoss) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    message = str(info.value)
    assert "5 optimizer steps in a row (steps 2 to 6)" in message
    assert "--learning-rate" in message and "--bf16/--fp16" in message and "\n" not in message
    assert same(params_of(trainer.model), snapshots.after[1])  # nothing moved after step 1
    with pytest.raises(ConfigError, match="smart_max_nonfinite_steps"):
        smart_args(tmp_out, smart_max_nonfinite_steps=0)


class TeacherTrace(TrainerCallback):
    """After each optimizer step (added after the trainer's callbacks, so the teacher has moved): the
    teacher's weights and clock, and the student's weights; index 0 is the teacher at train begin."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.teacher, self.clock, self.student = {}, {}, {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.teacher[0], self.clock[0] = params_of(self.trainer.teacher.model), 0

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        self.teacher[step] = params_of(self.trainer.teacher.model)
        self.clock[step] = self.trainer.teacher.optimizer_steps
        self.student[step] = params_of(self.trainer.model)


class OverflowAt(TrainerCallback):
    """What the fp16 grad scaler does at an overflow, at one optimizer step (1-based): the optimizer
    applies no update and says so (accelerate's ``step_was_skipped``, the flag the scaler sets)."""

    def __init__(self, step):
        self.step = step

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        overflow = state.global_step + 1 == self.step
        optimizer._is_overflow = overflow
        if overflow:
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None


@pytest.mark.parametrize("skipped_by", ["guard", "grad scaler"])
def test_a_skipped_step_moves_neither_the_teacher_nor_its_clock(tmp_out, skipped_by):
    """The student did not change at a skipped step: the teacher neither, and its β schedule counts the
    updates only. Every other step is θ̃ ← β θ̃ + (1 − β) θ with the β of the updates counted so far."""
    args = smart_args(tmp_out, smart_beta=0.5, smart_beta_warmup=0.25, smart_beta_warmup_ratio=0.5)
    trainer = SmartTrainer(model=tiny_model(), args=args, train_dataset=ToyDataset(n=48))
    if skipped_by == "guard":
        nan_loss_at(trainer, {1})  # optimizer step 2
    else:
        trainer.add_callback(OverflowAt(2))
    trace = TeacherTrace(trainer)
    trainer.add_callback(trace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    assert trainer.state.global_step == 6 and trainer.teacher.warmup_steps == 3
    assert same(trace.student[1], trace.student[2])  # the step was skipped indeed
    assert [trace.clock[step] for step in range(1, 7)] == [1, 1, 2, 3, 4, 5]
    assert trainer.teacher.num_updates == 5
    assert same(trace.teacher[2], trace.teacher[1])
    betas = {1: 0.25, 3: 0.25, 4: 0.25, 5: 0.5, 6: 0.5}  # warm-up for the first 3 updates, not 3 steps
    for step, beta in betas.items():
        assert trainer.teacher.beta_at(trace.clock[step]) == beta
        previous = trace.teacher[step - 1]
        for t, before, s in zip(trace.teacher[step], previous, trace.student[step]):
            torch.testing.assert_close(t, beta * before + (1 - beta) * s, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------------------
# 4. Trust: no pickle code, no model code without --trust-remote-code.


class RunsCode:
    """A pickled object whose loading would create ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickle_checkpoint_with_code_is_refused(tiny_model_dir, tmp_path, capsys):
    from safetensors.torch import load_file

    marker = tmp_path / "code-ran"
    model_dir = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, model_dir)
    state = load_file(str(model_dir / "model.safetensors"))
    (model_dir / "model.safetensors").unlink()
    state["payload"] = RunsCode(marker)
    torch.save(state, model_dir / "pytorch_model.bin")
    torch.load(model_dir / "pytorch_model.bin", weights_only=False)  # the file really runs code...
    assert marker.exists()
    marker.unlink()

    code = main(["evaluate", "--model-dir", str(model_dir), "--task", "rte", "--data-dir", GLUE])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err.startswith("error: cannot load model") and "objects other than tensors" in err
    assert not marker.exists()  # ...but not here


def test_resume_refuses_a_pickle_with_code(tmp_out, tmp_path):
    marker = tmp_path / "code-ran"
    args = smart_args(tmp_out, max_steps=3, save_strategy="steps", save_steps=3)
    SmartTrainer(model=tiny_model(), args=args, train_dataset=ToyDataset()).train()
    checkpoint = os.path.join(tmp_out, "checkpoint-3")
    torch.save({"state": RunsCode(marker), "param_groups": []}, os.path.join(checkpoint, "optimizer.pt"))
    args = smart_args(tmp_out, max_steps=6, save_strategy="steps", save_steps=3)
    trainer = SmartTrainer(model=tiny_model(), args=args, train_dataset=ToyDataset())
    with pytest.raises(CheckpointError, match="checkpoint-3: a file in it holds pickled objects other than"):
        trainer.train(resume_from_checkpoint=True)
    assert not marker.exists()


def test_model_code_is_not_run_without_trust_remote_code(tiny_model_dir, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    code = f"open({str(marker)!r}, 'w').close()\n"
    model_dir = with_own_code(tiny_model_dir, tmp_path / "custom", code, "Custom")

    code = main(["evaluate", "--model-dir", str(model_dir), "--task", "rte", "--data-dir", GLUE])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: cannot load model") and "\n" not in err, err
    assert "custom code" in err and not marker.exists()
    with pytest.raises(SmartTuneError):  # trusted, the code runs (and this stub then fails)
        load_model_and_tokenizer(str(model_dir), get_task("rte"), trust_remote_code=True)
    assert marker.exists()


# --------------------------------------------------------------------------------------------------
# 5. bf16 autocast on the CPU.


def test_bf16_autocast_on_cpu_trains_with_finite_terms(tmp_out):
    model = tiny_model(dropout=0.1)
    dtypes = []
    model.classifier.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    trainer = SmartTrainer(
        model=model, args=smart_args(tmp_out, bf16=True, max_steps=3), train_dataset=ToyDataset()
    )
    trainer.train()
    assert torch.bfloat16 in dtypes  # autocast did run
    for key in ("smart_task_loss", "smart_adv_loss", "smart_breg_loss"):
        values = logged(trainer, key)
        assert len(values) == 3 and all(math.isfinite(v) for v in values), key
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in trainer.model.parameters())
    logits = torch.randn(4, 3).to(torch.bfloat16)
    assert symmetric_kl(logits, logits.flip(0)).dtype == torch.float32


# --------------------------------------------------------------------------------------------------
# 6. FSDP and DeepSpeed ZeRO-3: refused for SMART and R3F, passed through for vanilla.


def test_sharded_training_is_refused_for_smart_and_r3f(tmp_out, tmp_path, monkeypatch):
    monkeypatch.delenv("FSDP_CPU_RAM_EFFICIENT_LOADING", raising=False)  # set by the FSDP arguments
    for method in ("smart", "r3f"):
        with pytest.raises(ConfigError, match=f"smart_method={method} cannot run under FSDP"):
            SmartTrainer(
                model=tiny_model(),
                args=smart_args(tmp_out, fsdp=True, smart_method=method),
                train_dataset=ToyDataset(),
            )
    # vanilla passes our check; the Trainer itself then wants a process group, which a CPU test lacks
    with pytest.raises(ValueError, match="distributed") as info:
        SmartTrainer(
            model=tiny_model(),
            args=smart_args(tmp_out, fsdp=True, smart_method="vanilla"),
            train_dataset=ToyDataset(),
        )
    assert not isinstance(info.value, ConfigError)

    # DeepSpeed is not installed here: the check reads the configuration the arguments carry.
    args = smart_args(tmp_out)
    args.deepspeed = {"zero_optimization": {"stage": 3}}
    with pytest.raises(ConfigError, match="DeepSpeed ZeRO stage 3"):
        check_sharding(args)
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"zero_optimization": {"stage": 3}}))
    args.deepspeed = str(path)
    with pytest.raises(ConfigError, match="ZeRO stage 3"):
        check_sharding(args)
    args.deepspeed = {"zero_optimization": {"stage": 2}}
    check_sharding(args)  # whole parameters: fine
    # ...or the plugins of an `accelerate launch` configuration
    with pytest.raises(ConfigError, match="FSDP"):
        check_sharding(smart_args(tmp_out), SimpleNamespace(state=SimpleNamespace(fsdp_plugin=object())))
    zero3 = SimpleNamespace(
        state=SimpleNamespace(fsdp_plugin=None, deepspeed_plugin=SimpleNamespace(zero_stage=3))
    )
    with pytest.raises(ConfigError, match="ZeRO stage 3"):
        check_sharding(smart_args(tmp_out), zero3)
    check_sharding(smart_args(tmp_out, smart_method="vanilla"), zero3)
