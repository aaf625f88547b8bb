"""SMART as a drop-in for the Hugging Face Trainer: ``SmartTrainer`` (its arguments: :mod:`smart_tune.config`).

One training step is Algorithm 1's inner iteration, computed by :class:`~smart_tune.objective.SmartObjective`
(``objective.py`` reads top to bottom as the algorithm); ``compute_loss`` wires it into the Trainer:

    1. prepare: x = E(input_ids) as inputs_embeds, the RNG state for shared dropout     SmartObjective.prepare
    2. the clean forward f(x; θ) and task loss L: the plain Trainer's own code path    Trainer.compute_loss
    3. L + λ_s · R_s + μ · D_Breg                                                        SmartObjective.__call__
    4. one optimizer step (the Trainer's); a NaN/Inf step applies no update             guard.NonfiniteStepGuard
    5. θ̃ ← (1 − β) θ + β θ̃ every S optimizer steps that updated θ                        (a callback)

``smart_method="r3f"`` replaces R_s by one random perturbation and has no teacher;
``smart_method="vanilla"`` is the plain Trainer, untouched. The rest of this module is what the Trainer
lacks for SMART: the mean teacher saved and restored with every checkpoint, checkpoints that are
complete or absent, the same batches for every method, and the terms logged beside the loss.
"""

from __future__ import annotations

import os
import pickle
import warnings
from typing import Any

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_pt_utils import LengthGroupedSampler

from .checkpoints import (  # noqa: F401  (TEACHER_*: importable from here too)
    TEACHER_STATE,
    TEACHER_WEIGHTS,
    checkpoint_step,
    complete_or_absent,
    load_resume_state,
    load_teacher,
    newest_resumable,
    resumed_step,
    save_resume_state,
    save_teacher,
)
from .config import (  # noqa: F401  (SmartTrainingArguments and METHODS: importable from here too)
    METHODS,
    SmartTrainingArguments,
    build_objective,
    build_teacher,
    check_world_size,
)
from .errors import CheckpointError, ConfigError
from .guard import NonfiniteStepGuard, reduce_over_processes
from .multitask_data import MultiTaskDataset
from .objective import TermMeans
from .passes import check_accepts_inputs_embeds
from .sharding import check_sharding
from .teacher import MeanTeacher


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


def seeded(sampler, args):
    """``sampler``, or a :class:`SeededLengthGroupedSampler` in place of the Trainer's length-grouped one:
    the same batches for every method with one seed."""
    if type(sampler) is LengthGroupedSampler:
        seed = args.data_seed if args.data_seed is not None else args.seed
        return SeededLengthGroupedSampler(sampler.batch_size, lengths=sampler.lengths, seed=seed)
    return sampler


def loss_is_batch_mean(model: torch.nn.Module) -> bool:
    """True when the model's own loss is a mean over the batch that ignores ``num_items_in_batch``: every
    ``*ForSequenceClassification`` head of transformers (CrossEntropy/MSE/BCE with mean reduction), unless
    the model says otherwise with an ``accepts_loss_kwargs`` attribute."""
    if getattr(model, "accepts_loss_kwargs", None) is not None:
        return not model.accepts_loss_kwargs
    return type(model).__name__.endswith("ForSequenceClassification")


class _TeacherCallback(TrainerCallback):
    """Creates the teacher when training starts (after any checkpoint is loaded) and moves it once per
    optimizer step that updated the student: ``on_step_end`` fires once per optimizer step, whatever the
    gradient accumulation, also after a step that applied no update (see
    :meth:`SmartTrainer.optimizer_step_was_skipped`); such a step moves neither θ̃ nor its clock."""

    def __init__(self, trainer: SmartTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._start_teacher(state.max_steps)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.trainer.optimizer_step_was_skipped():
            self.trainer.objective.step_teacher(self.trainer.accelerator.unwrap_model(model))


class _ResumeCallback(TrainerCallback):
    """Restores, when training starts from a checkpoint, what the Trainer's own checkpoint lacks (see
    :meth:`SmartTrainer._resume_state`). Added after the guard, whose ``on_train_begin`` resets it."""

    def __init__(self, trainer: SmartTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._restore_resume_state()


class SmartTrainer(Trainer):
    """``transformers.Trainer`` that trains with SMART, R3F or plain fine-tuning (``args.smart_method``).

    Takes every argument the Trainer takes; ``args`` must be :class:`SmartTrainingArguments`. Logs, beside
    the Trainer's ``loss``: ``smart_task_loss`` (L), ``smart_adv_loss`` (R_s, unweighted),
    ``smart_breg_loss`` (D_Breg, unweighted), ``smart_delta_linf`` (max ‖x̃ − x‖_∞), ``smart_nonfinite``
    (steps whose term was dropped as non-finite, cumulative) and ``smart_teacher_beta``; for every
    method, ``smart_skipped_steps`` (optimizer steps skipped because the total loss was NaN/Inf).

    For every method: a NaN/Inf step applies no update (guard.py); a checkpoint is complete or absent, and
    ``train(resume_from_checkpoint=True)`` takes the newest complete one (checkpoints.py); FSDP and
    DeepSpeed ZeRO-3 are refused for SMART and R3F (sharding.py)."""

    def __init__(self, *args, **kwargs):
        # Sharding is refused before the Trainer sets it up (which may need a process group) and again
        # after, for FSDP or DeepSpeed configured through ``accelerate launch`` rather than the arguments.
        check_sharding(kwargs.get("args", args[1] if len(args) > 1 else None))
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, SmartTrainingArguments):
            raise ConfigError("SmartTrainer needs SmartTrainingArguments")
        check_sharding(self.args, self.accelerator)
        check_world_size(self.args)
        if loss_is_batch_mean(self.accelerator.unwrap_model(self.model)):
            # The Trainer takes any model whose forward has **kwargs to normalise its loss by
            # num_items_in_batch (summed over processes and accumulated micro-batches): it then skips the
            # division by the accumulation steps and multiplies the loss by the number of processes.
            # Sequence-classification heads ignore num_items_in_batch and return a batch mean, so that
            # would sum the gradients of accumulated micro-batches and scale them by the world size.
            self.model_accepts_loss_kwargs = False
        self.objective = build_objective(self.args)
        self._resume_dir: str | None = None
        self.term_means = TermMeans()  # the terms' means between two logs
        self.resumed_at_step = 0  # the checkpoint step the last train() call started from
        self.guard = NonfiniteStepGuard(self.args.smart_max_nonfinite_steps, self._grad_scaler_enabled)
        self.add_callback(self.guard)
        self.add_callback(_ResumeCallback(self))
        self._loss_sum_resumed = False  # _total_loss_scalar covers the steps before the resumed one
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

    def get_train_dataloader(self):
        """The Trainer's loader; a :class:`~smart_tune.multitask_data.MultiTaskDataset` is refused: its
        examples would be drawn into batches mixing tasks, which a multi-task model refuses only at the
        first step (MultiTaskTrainer deals batches of one task each)."""
        if isinstance(self.train_dataset, MultiTaskDataset):
            raise ConfigError(
                f"{type(self).__name__} batches examples of any task together; train a MultiTaskDataset "
                "with MultiTaskTrainer (smart_tune.multitask_trainer), which deals batches of one task each"
            )
        return super().get_train_dataloader()

    def _get_train_sampler(self, train_dataset=None):
        """The Trainer's sampler; length-grouped batches get a generator of their own (see
        :func:`seeded`). Random sampling is already seeded by seed and epoch (accelerate)."""
        return seeded(super()._get_train_sampler(train_dataset), self.args)

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
        term_scale = self._extra_term_scale(num_items_in_batch)
        terms = self.objective(
            net,
            inputs,
            task_loss,
            outputs["logits"],
            prepared,
            loss_scale=self._inner_loss_scale(),
            term_scale=term_scale,
        )
        # A task loss normalised over the accumulated batch is this micro-batch's share of L: logged as
        # it is, smart_task_loss read L / (accumulation steps). Scaled back, the mean over the
        # micro-batches is L over the whole batch, as the Trainer's own ``loss`` is.
        self.term_means.add(terms, task_scale=1.0 / term_scale)
        return (terms.total, outputs) if return_outputs else terms.total

    def _extra_term_scale(self, num_items_in_batch) -> float:
        """Scale for R_s and D_Breg (batch means) so that they accumulate like the task loss: when the
        Trainer will not divide the loss by the accumulation steps (the task loss is already normalised
        over the whole accumulated batch), divide the extra terms here instead."""
        # The Trainer's own say (transformers >= 5.19; 5.6-5.18 have no such attribute and decide as below).
        declared = getattr(self, "loss_is_scaled_for_ga", None)
        if declared is not None:
            scaled = declared
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

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step (forward, backward); a NaN/Inf loss is reported to the guard, which drops
        the whole update at the optimizer step."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        self.guard.note_loss(loss)
        return loss

    def optimizer_step_was_skipped(self) -> bool:
        """Whether the last optimizer step left the weights as they were: the guard dropped it (NaN/Inf),
        or the optimizer skipped it (the fp16 grad scaler's overflow, DeepSpeed's: accelerate's flag, by
        which the Trainer also holds the learning-rate schedule back). Valid from the optimizer step to
        the next one's ``on_pre_optimizer_step``, so at ``on_step_end``."""
        return self.guard.dropped_last_step or bool(self.accelerator.optimizer_step_was_skipped)

    def _get_grad_norm(self, model, grad_norm=None):
        # The Trainer computes the gradient norm of every optimizer step (clipping, or an ∞-norm) just
        # before on_pre_optimizer_step: the guard keeps it, so that its NaN/Inf check needs no second pass.
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        self.guard.note_grad_norm(grad_norm)
        return grad_norm

    def nonfinite_total(self) -> int:
        """Terms dropped as non-finite (``smart_nonfinite``), summed over all processes. A collective
        under several processes: call it on every rank."""
        dropped = float(self.objective.dropped_count)
        return int(reduce_over_processes([dropped], self.args.world_size, self.args.device)[0])

    # ---------------------------------------------------------------------------------------------
    # The mean teacher's life cycle: created at train begin, saved and restored with checkpoints.

    def _start_teacher(self, max_steps: int) -> None:
        self.objective.teacher = build_teacher(
            self.args, self.accelerator.unwrap_model(self.model), max_steps
        )
        if (
            self.teacher is not None
            and self._resume_dir is not None
            and not load_teacher(self._resume_dir, self.teacher, self.args.device)
        ):
            warnings.warn(
                f"smart-tune: {self._resume_dir} holds no mean teacher; it restarts from the checkpoint's weights",
                RuntimeWarning,
                stacklevel=2,
            )

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        self._resume_dir = resume_from_checkpoint
        return super()._load_from_checkpoint(resume_from_checkpoint, model)

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
            resume_from_checkpoint = newest_resumable(self.args.output_dir, tidy=self.args.should_save)
        # Where this call starts: its run time covers only the steps after it (results.json says so).
        self.resumed_at_step = resumed_step(resume_from_checkpoint)
        self._resume_dir = resume_from_checkpoint if isinstance(resume_from_checkpoint, str) else None
        self._loss_sum_resumed = False
        try:
            output = super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)
            if self._loss_sum_resumed:  # the mean over every step, as log() wrote it (see there)
                output = output._replace(training_loss=output.metrics["train_loss"])
            return output
        except pickle.UnpicklingError:
            if resume_from_checkpoint is None:
                raise
            raise CheckpointError(
                f"cannot resume from {resume_from_checkpoint}: a file in it holds pickled objects other "
                "than tensors, which could run code; refused"
            ) from None

    def _save_checkpoint(self, model, trial):
        """Write ``checkpoint-N`` with the teacher in it, complete (marked) or absent, never half-written
        (see :func:`~smart_tune.checkpoints.complete_or_absent`)."""
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        writes = self.args.should_save  # the process that writes the model and the marker
        with complete_or_absent(folder, self.state.global_step, writes, self.accelerator.wait_for_everyone):
            if self.teacher is not None and writes:
                save_teacher(folder, self.teacher)
            save_resume_state(folder, self.args.process_index, self._resume_state())
            super()._save_checkpoint(model, trial)

    def _resume_state(self) -> dict[str, Any]:
        """What a resumed run needs, beyond the Trainer's checkpoint, to go on as the run left alone and
        log what it would have logged: the losses and SMART terms summed since the last log (a stop
        between two logs), the sum of the logged losses (``train_loss``: the mean over every step), and
        the counts of skipped steps and dropped terms. Per process (the unlogged sums are)."""
        return {
            "global_step": self.state.global_step,
            "unlogged_loss": float(self._tr_loss.item()),
            "last_logged_step": self._globalstep_last_logged,
            "logged_loss_sum": self._total_loss_scalar,
            "term_sums": self.term_means.sums,
            "term_counts": self.term_means.counts,
            "skipped_steps": self.guard.skipped_steps,
            "skipped_in_a_row": self.guard._in_a_row,
            "nonfinite": self.objective.dropped_count,
        }

    def _restore_resume_state(self) -> None:
        """At train begin (after the Trainer reset its loss sums): the resume state of the checkpoint
        resumed from, if it holds one of this step (an older checkpoint: the Trainer's behaviour)."""
        saved = load_resume_state(self._resume_dir, self.args.process_index) if self._resume_dir else None
        if saved is None or saved["global_step"] != self.state.global_step:
            return
        self._tr_loss.fill_(saved["unlogged_loss"])
        self._globalstep_last_logged = saved["last_logged_step"]
        self._total_loss_scalar = saved["logged_loss_sum"]
        self._loss_sum_resumed = True
        self.term_means.sums.update(saved["term_sums"])
        self.term_means.counts.update(saved["term_counts"])
        self.guard.skipped_steps = saved["skipped_steps"]
        self.guard._in_a_row = saved["skipped_in_a_row"]
        self.objective.dropped_count = saved["nonfinite"]

    def _finalize_training(self, trial, num_train_samples, start_time):
        # With save_total_limit=1 the Trainer deletes every checkpoint but the best when training ends,
        # also the one a run stopped early (a signal) saved to be resumed from: not then.
        limit = self.args.save_total_limit
        if limit == 1 and self.state.global_step < self.state.max_steps:
            self.args.save_total_limit = None
        try:
            return super()._finalize_training(trial, num_train_samples, start_time)
        finally:
            self.args.save_total_limit = limit

    # ---------------------------------------------------------------------------------------------
    # Logging: each term's mean since the last log, beside the Trainer's own loss.

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "train_loss" in logs and self._loss_sum_resumed:
            # Resumed, the Trainer divides by the steps of this call only; the sum restored from the
            # checkpoint covers every step since the first.
            logs["train_loss"] = self._total_loss_scalar / max(self.state.global_step, 0.001)
        if "loss" in logs:
            logs["smart_skipped_steps"] = self.skipped_steps
        if "loss" in logs and self.args.smart_method != "vanilla":
            logs.update(
                self.term_means.pop(
                    lambda v: reduce_over_processes(v, self.args.world_size, self.args.device)
                )
            )
            logs["smart_nonfinite"] = self.nonfinite_total()
            if self.teacher is not None:
                logs["smart_teacher_beta"] = self.teacher.beta_at(max(self.teacher.optimizer_steps, 1))
        super().log(logs, *args, **kwargs)
