"""SMART as a drop-in for the Hugging Face Trainer: ``SmartTrainer`` (its arguments: :mod:`smart_tune.config`).

One training step is Algorithm 1's inner iteration, computed by :class:`~smart_tune.objective.SmartObjective`
(``objective.py`` reads top to bottom as the algorithm); ``compute_loss`` wires it into the Trainer:

    1. prepare: x = E(input_ids) as inputs_embeds, the RNG state for shared dropout     SmartObjective.prepare
    2. the clean forward f(x; θ) and task loss L: the plain Trainer's own code path    Trainer.compute_loss
    3. L + λ_s · R_s + μ · D_Breg                                                        SmartObjective.__call__
    4. one optimizer step (the Trainer's); a NaN/Inf step applies no update             guard.NonfiniteStepGuard
    5. θ̃ ← (1 − β) θ + β θ̃ every S optimizer steps                                       (a callback)

``smart_method="r3f"`` replaces R_s by one random perturbation and has no teacher;
``smart_method="vanilla"`` is the plain Trainer, untouched. The rest of this module is what the Trainer
lacks for SMART: the mean teacher saved and restored with every checkpoint, checkpoints that are
complete or absent, the same batches for every method, and the terms logged beside the loss.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import warnings
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from .checkpoints import (
    checkpoint_step,
    commit_marker,
    is_complete_checkpoint,
    last_complete_checkpoint,
    no_complete_checkpoint_message,
    prepare_marker,
)
from .config import (  # noqa: F401  (SmartTrainingArguments and METHODS: importable from here too)
    METHODS,
    SmartTrainingArguments,
    build_objective,
    launched_processes,
)
from .errors import CheckpointError, ConfigError, SmartTuneError, first_line
from .guard import NonfiniteStepGuard, reduce_over_processes
from .passes import check_accepts_inputs_embeds
from .sharding import check_sharding
from .teacher import MeanTeacher, beta_for_horizon

TEACHER_WEIGHTS = "smart_teacher.safetensors"
TEACHER_STATE = "smart_teacher_state.json"
# The per-step terms SmartTrainer records and logs as means (see SmartTrainer's docstring).
LOGGED_TERMS = ("smart_task_loss", "smart_adv_loss", "smart_breg_loss", "smart_delta_linf")


class SeededLengthGroupedSampler(LengthGroupedSampler):
    """transformers' ``LengthGroupedSampler`` with its own generator, reseeded to ``seed + epoch`` each epoch.

    The stock sampler shuffles with torch's global RNG, which SMART and R3F consume (noise, dropout of
    the extra passes) and plain fine-tuning does not: with one seed the methods would see different
    batches from epoch 2 on, and a paired comparison would compare different data orders. Here the
    order depends on the seed and the epoch only (the Trainer calls :meth:`set_epoch` before each
    epoch, also when it resumes), so every method, and a resumed run, sees the same batches.
    """

    def __init__(self, *args, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return super().__iter__()


def loss_is_batch_mean(model: torch.nn.Module) -> bool:
    """True when the model's own loss is a mean over the batch that ignores ``num_items_in_batch``: every
    ``*ForSequenceClassification`` head of transformers (CrossEntropy/MSE/BCE with mean reduction), unless
    the model says otherwise with an ``accepts_loss_kwargs`` attribute."""
    if getattr(model, "accepts_loss_kwargs", None) is not None:
        return not model.accepts_loss_kwargs
    return type(model).__name__.endswith("ForSequenceClassification")


class _TeacherCallback(TrainerCallback):
    """Creates the teacher when training starts (after any checkpoint is loaded) and moves it once per
    optimizer step: ``on_step_end`` fires once per optimizer step, whatever the gradient accumulation."""

    def __init__(self, trainer: SmartTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._start_teacher(state.max_steps)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.trainer.objective.step_teacher(self.trainer.accelerator.unwrap_model(model))


class SmartTrainer(Trainer):
    """``transformers.Trainer`` that trains with SMART, R3F or plain fine-tuning (``args.smart_method``).

    Takes every argument the Trainer takes; ``args`` must be :class:`SmartTrainingArguments`. Logs, beside
    the Trainer's ``loss``: ``smart_task_loss`` (L), ``smart_adv_loss`` (R_s, unweighted),
    ``smart_breg_loss`` (D_Breg, unweighted), ``smart_delta_linf`` (max ‖x̃ − x‖_∞), ``smart_nonfinite``
    (steps whose term was dropped as non-finite, cumulative) and ``smart_teacher_beta``; for every
    method, ``smart_skipped_steps`` (optimizer steps skipped because the total loss was NaN/Inf).

    Reliability, for every method: a step whose loss is NaN/Inf applies no update
    (:class:`~smart_tune.guard.NonfiniteStepGuard`); checkpoints are marked complete only once fully
    written, and ``train(resume_from_checkpoint=True)`` resumes from the newest complete one (see
    :meth:`_save_checkpoint`); FSDP and DeepSpeed ZeRO-3 are refused for SMART and R3F
    (:func:`check_sharding`).
    """

    def __init__(self, *args, **kwargs):
        # Sharding is refused before the Trainer sets it up (which may need a process group) and again
        # after, for FSDP or DeepSpeed configured through ``accelerate launch`` rather than the arguments.
        check_sharding(kwargs.get("args", args[1] if len(args) > 1 else None))
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, SmartTrainingArguments):
            raise ConfigError("SmartTrainer needs SmartTrainingArguments")
        check_sharding(self.args, self.accelerator)
        if launched_processes() > 1 and self.args.world_size != launched_processes():
            raise ConfigError(
                f"launched as {launched_processes()} processes, but the Trainer set up "
                f"{self.args.world_size}: each would train alone on all the data (parallel mode "
                f"{self.args.parallel_mode.value}); to train on CPUs pass --use-cpu, else check the "
                "launcher's device options"
            )
        if loss_is_batch_mean(self.accelerator.unwrap_model(self.model)):
            # The Trainer takes any model whose forward has **kwargs to normalise its loss by
            # num_items_in_batch (summed over processes and accumulated micro-batches): it then skips the
            # division by the accumulation steps and multiplies the loss by the number of processes.
            # Sequence-classification heads ignore num_items_in_batch and return a batch mean, so that
            # would sum the gradients of accumulated micro-batches and scale them by the world size.
            self.model_accepts_loss_kwargs = False
        self.objective = build_objective(self.args)
        self._resume_dir: str | None = None
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self.nonfinite_count = 0
        self._warned_nonfinite = False
        self.resumed_at_step = 0  # the checkpoint step the last train() call started from
        self.guard = NonfiniteStepGuard(self.args.smart_max_nonfinite_steps, self._grad_scaler_enabled)
        self.add_callback(self.guard)
        if self.args.smart_method != "vanilla":
            check_accepts_inputs_embeds(self.accelerator.unwrap_model(self.model))
            self.add_callback(_TeacherCallback(self))

    @property
    def teacher(self) -> MeanTeacher | None:
        return self.objective.teacher

    @property
    def regularizer(self):
        """R_s (or R3F's term): the objective's, replaceable (``trainer.regularizer = ...``)."""
        return self.objective.regularizer

    @regularizer.setter
    def regularizer(self, value) -> None:
        self.objective.regularizer = value

    @property
    def skipped_steps(self) -> int:
        """Optimizer steps skipped because the loss or its gradients were NaN/Inf (all methods)."""
        return self.guard.skipped_steps

    def _get_train_sampler(self, train_dataset=None):
        """The Trainer's sampler, except that length-grouped batches are shuffled by a generator of their
        own (:class:`SeededLengthGroupedSampler`): the same batches for every method with one seed.
        Random sampling needs nothing: accelerate's seedable sampler already seeds it by seed and epoch."""
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return SeededLengthGroupedSampler(sampler.batch_size, lengths=sampler.lengths, seed=seed)
        return sampler

    # ---------------------------------------------------------------------------------------------
    # The training step: the objective around the Trainer's own clean pass.

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.args.smart_method == "vanilla" or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # Extra passes run on the unwrapped module: they need no gradient synchronisation of their own.
        net = self.accelerator.unwrap_model(model)
        regularize = self.state.global_step % self.args.smart_adv_every == 0
        prepared = self.objective.prepare(net, inputs, self.args.device, regularize)
        task_loss, outputs = super().compute_loss(model, prepared.inputs, True, num_items_in_batch)
        terms = self.objective(
            net,
            inputs,
            task_loss,
            outputs["logits"],
            prepared,
            loss_scale=self._inner_loss_scale(),
            term_scale=self._extra_term_scale(num_items_in_batch),
        )
        self._record("smart_task_loss", terms.task)
        for name, value in (
            ("smart_delta_linf", terms.delta_linf),
            ("smart_adv_loss", terms.adversarial),
            ("smart_breg_loss", terms.bregman),
        ):
            if value is not None:
                self._record(name, value)
        for term in terms.dropped:
            self._skip_nonfinite(term)
        return (terms.total, outputs) if return_outputs else terms.total

    def _extra_term_scale(self, num_items_in_batch) -> float:
        """Scale for R_s and D_Breg (batch means) so that they accumulate like the task loss: when the
        Trainer will not divide the loss by the accumulation steps (the task loss is already normalised
        over the whole accumulated batch), divide the extra terms here instead."""
        if self.loss_is_scaled_for_ga is not None:
            scaled = self.loss_is_scaled_for_ga
        else:
            scaled = (
                self.model_accepts_loss_kwargs and num_items_in_batch is not None
            ) or self.compute_loss_func is not None
        steps = getattr(self, "current_gradient_accumulation_steps", 1) or 1
        return 1.0 / steps if scaled else 1.0

    def _inner_loss_scale(self) -> float:
        """Scale of the inner (ascent) loss: the fp16 grad scaler's, so that the gradient does not underflow."""
        return float(self.accelerator.scaler.get_scale()) if self._grad_scaler_enabled() else 1.0

    def _grad_scaler_enabled(self) -> bool:
        scaler = getattr(self.accelerator, "scaler", None)
        return scaler is not None and scaler.is_enabled()

    def _skip_nonfinite(self, term: str) -> None:
        self.nonfinite_count += 1
        if not self._warned_nonfinite:
            warnings.warn(
                f"smart-tune: non-finite {term} at step {self.state.global_step}; that step goes on without "
                "the term (counted in smart_nonfinite; warned once)",
                RuntimeWarning,
                stacklevel=2,
            )
            self._warned_nonfinite = True

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step (forward, backward); a NaN/Inf loss is reported to the guard, which drops
        the whole update at the optimizer step."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.guard.note_loss(loss)
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        # The Trainer computes the gradient norm of every optimizer step (clipping, or an ∞-norm) just
        # before on_pre_optimizer_step: the guard keeps it, so that its NaN/Inf check needs no second pass.
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        self.guard.note_grad_norm(grad_norm)
        return grad_norm

    def nonfinite_total(self) -> int:
        """Terms dropped as non-finite (``smart_nonfinite``), summed over all processes. A collective
        under several processes: call it on every rank."""
        return int(
            reduce_over_processes([float(self.nonfinite_count)], self.args.world_size, self.args.device)[0]
        )

    # ---------------------------------------------------------------------------------------------
    # The mean teacher's life cycle: created at train begin, saved and restored with checkpoints.

    def _start_teacher(self, max_steps: int) -> None:
        if not self.args.smart_uses_teacher:
            self.objective.teacher = None
            return
        beta, beta_warmup = self.args.smart_beta, self.args.smart_beta_warmup
        if self.args.smart_teacher_horizon > 0:
            # β from the run's length rather than fixed: see teacher.beta_for_horizon.
            beta = beta_for_horizon(
                self.args.smart_teacher_horizon, max_steps // self.args.smart_teacher_every
            )
            beta_warmup = min(beta_warmup, beta)
        self.objective.teacher = MeanTeacher(
            self.accelerator.unwrap_model(self.model),
            beta=beta,
            beta_warmup=beta_warmup,
            warmup_steps=math.ceil(self.args.smart_beta_warmup_ratio * max_steps),
            update_every=self.args.smart_teacher_every,
            dropout=self.args.smart_teacher_dropout,
        )
        if self._resume_dir is not None:
            self._load_teacher(self._resume_dir)

    def _load_teacher(self, checkpoint: str) -> None:
        weights = os.path.join(checkpoint, TEACHER_WEIGHTS)
        if not os.path.isfile(weights):
            warnings.warn(
                f"smart-tune: {checkpoint} holds no mean teacher; it restarts from the checkpoint's weights",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        with open(os.path.join(checkpoint, TEACHER_STATE)) as f:
            clock = json.load(f)
        self.teacher.load_state_dict({"model": load_file(weights, device=str(self.args.device)), **clock})

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        self._resume_dir = resume_from_checkpoint
        return super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _save_teacher(self, folder: str) -> None:
        """Write the teacher into a checkpoint folder (called by :meth:`_save_checkpoint`)."""
        if self.teacher is None or not self.args.should_save:
            return
        os.makedirs(folder, exist_ok=True)
        state = self.teacher.state_dict()
        # safetensors refuses tensors that share memory (tied weights): save contiguous copies.
        tensors = {k: v.detach().contiguous().clone() for k, v in state.pop("model").items()}
        save_file(tensors, os.path.join(folder, TEACHER_WEIGHTS))
        with open(os.path.join(folder, TEACHER_STATE), "w") as f:
            json.dump(state, f)

    # ---------------------------------------------------------------------------------------------
    # Checkpoints: complete or absent, and resume from the newest complete one.

    def train(self, resume_from_checkpoint=None, trial=None, **kwargs):
        """``Trainer.train``, except that ``resume_from_checkpoint=True`` takes the newest *complete*
        checkpoint of ``args.output_dir``: the Trainer's choice, the highest ``checkpoint-N``, may be a
        folder whose save was cut short (a kill, a crash, a full disk) and cannot be resumed.
        A path is used as given. A checkpoint file holding a pickled object other than tensors (which
        could run code; the Trainer loads them with ``torch.load(weights_only=True)``) is refused with a
        :class:`CheckpointError`."""
        if isinstance(resume_from_checkpoint, bool) and resume_from_checkpoint:
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ConfigError(no_complete_checkpoint_message(self.args.output_dir))
            if self.args.should_save:
                self._remove_cut_short_after(resume_from_checkpoint)
        # Where this call starts: its run time covers only the steps after it (results.json says so).
        self.resumed_at_step = (
            checkpoint_step(os.path.basename(os.path.normpath(resume_from_checkpoint))) or 0
            if isinstance(resume_from_checkpoint, str)
            else 0
        )
        try:
            return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)
        except pickle.UnpicklingError:
            if resume_from_checkpoint is None:
                raise
            raise CheckpointError(
                f"cannot resume from {resume_from_checkpoint}: a file in it holds pickled objects other "
                "than tensors, which could run code; refused"
            ) from None

    def _remove_cut_short_after(self, checkpoint: str) -> None:
        """Remove the unfinished ``checkpoint-N`` folders later than the one resumed from.

        They cannot be resumed, the resumed run writes those steps again, and they would mislead the
        Trainer's rotation (``save_total_limit``), which keeps the highest N and may delete the new
        checkpoints instead.
        """
        start = checkpoint_step(os.path.basename(checkpoint)) or 0
        for name in sorted(os.listdir(self.args.output_dir)):
            step = checkpoint_step(name)
            path = os.path.join(self.args.output_dir, name)
            if step is not None and step > start and os.path.isdir(path) and not is_complete_checkpoint(path):
                warnings.warn(
                    f"smart-tune: removing {path}: its save was cut short", RuntimeWarning, stacklevel=3
                )
                shutil.rmtree(path, ignore_errors=True)

    def _save_checkpoint(self, model, trial):
        """Write ``checkpoint-N`` so that it ends complete (marked) or absent, never half-written.

        The Trainer writes the folder in place, file by file. Here the completion marker is prepared
        first (an older folder of that name loses its marker), then the teacher and the Trainer's files
        are written, flushed to disk, and the marker is renamed into place last (a rename needs no free
        space). If a write fails, the partial folder is removed and a :class:`CheckpointError` says so;
        older checkpoints stay as they were. The marker is prepared before the Trainer's save because
        that save ends by rotating old checkpoints (``save_total_limit``).
        """
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        writes = self.args.should_save  # the process that writes the model and the marker
        try:
            pending = prepare_marker(folder, self.state.global_step) if writes else None
            self._save_teacher(folder)
            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()  # every process's shards are written
            if pending is not None:
                commit_marker(folder, pending)
        except BaseException as exc:
            if writes:
                shutil.rmtree(folder, ignore_errors=True)
            if not isinstance(exc, Exception) or isinstance(exc, SmartTuneError):
                raise  # Ctrl-C, a second signal: stop as asked, the folder gone
            previous = last_complete_checkpoint(self._get_output_dir(trial=trial))
            kept = f"the newest complete checkpoint is {previous}" if previous else "none is complete yet"
            raise CheckpointError(
                f"could not save {folder}: {first_line(exc)}; the partial folder was removed and {kept}"
            ) from exc

    # ---------------------------------------------------------------------------------------------
    # Logging: each term's mean since the last log, beside the Trainer's own loss.

    def _record(self, name: str, value) -> None:
        value = float(value.detach()) if torch.is_tensor(value) else float(value)
        self._sums[name] = self._sums.get(name, 0.0) + value
        self._counts[name] = self._counts.get(name, 0) + 1

    def _mean_over_processes(self) -> dict[str, float]:
        """The recorded terms' means since the last log, over the steps and, under several processes,
        over all ranks (the Trainer logs on every rank at the same step, so this collective is safe)."""
        names = LOGGED_TERMS  # the same on every rank, even when a term was skipped on one of them
        totals = reduce_over_processes(
            [self._sums.get(n, 0.0) for n in names] + [float(self._counts.get(n, 0)) for n in names],
            self.args.world_size,
            self.args.device,
        )
        sums, counts = totals[: len(names)], totals[len(names) :]
        return {n: total / count for n, total, count in zip(names, sums, counts) if count > 0}

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs:
            logs["smart_skipped_steps"] = self.skipped_steps
        if "loss" in logs and self.args.smart_method != "vanilla":
            for name, mean in self._mean_over_processes().items():
                logs[name] = mean
            self._sums.clear()
            self._counts.clear()
            logs["smart_nonfinite"] = self.nonfinite_total()
            if self.teacher is not None:
                logs["smart_teacher_beta"] = self.teacher.beta_at(max(self.teacher.optimizer_steps, 1))
        super().log(logs, *args, **kwargs)
