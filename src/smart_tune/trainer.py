"""SMART as a drop-in for the Hugging Face Trainer: ``SmartTrainingArguments`` and ``SmartTrainer``.

One training step (``SmartTrainer.compute_loss``) reads top to bottom as Algorithm 1's inner iteration:

    1. clean forward f(x; θ), task loss L                          (the plain Trainer's own code path)
    2. R_s: noise, T_x̃ ascent steps, ℓ_s(f(x̃), f(x))               adversarial.AdversarialRegularizer
    3. D_Breg: ℓ_s(f(x; θ), f(x; θ̃)) against the mean teacher      teacher.MeanTeacher
    4. loss = L + λ_s · R_s + μ · D_Breg; one optimizer step (the Trainer's)
    5. after the optimizer step: θ̃ ← (1 − β) θ + β θ̃ every S steps   (a callback)

``smart_method="r3f"`` replaces step 2 by one random perturbation and drops steps 3 and 5;
``smart_method="vanilla"`` is the plain Trainer, untouched.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from .adversarial import (
    DROPOUT_POLICIES,
    NOISE_TYPES,
    PROJECTIONS,
    SCALES,
    AdversarialRegularizer,
    NoiseRegularizer,
    capture_rng_state,
    check_accepts_inputs_embeds,
    position_ids_for,
    word_embeddings,
)
from .checkpoints import (
    _checkpoint_step,
    _commit_marker,
    _first_line,
    _prepare_marker,
    is_complete_checkpoint,
    last_complete_checkpoint,
    no_complete_checkpoint_message,
)
from .divergences import problem_type_of
from .errors import CheckpointError, ConfigError, NonFiniteLoss, SmartTuneError
from .sharding import check_sharding
from .teacher import MeanTeacher, beta_for_horizon

METHODS = ("smart", "r3f", "vanilla")
TEACHER_WEIGHTS = "smart_teacher.safetensors"
TEACHER_STATE = "smart_teacher_state.json"
# The per-step terms SmartTrainer records and logs as means (see SmartTrainer's docstring).
LOGGED_TERMS = ("smart_task_loss", "smart_adv_loss", "smart_breg_loss", "smart_delta_linf")


@dataclass
class SmartTrainingArguments(TrainingArguments):
    """``TrainingArguments`` plus SMART's knobs, with the paper's defaults (§4.1; paper symbol in brackets).

    Study 1 of docs/results.md compared these with shared dropout masks, larger ε and the official
    code's normalisation on RTE, and kept them (tests/test_presets.py ties the two together).
    """

    smart_method: str = field(
        default="smart",
        metadata={
            "help": "smart (R_s + mean-teacher Bregman proximal point), r3f (noise only), vanilla (plain)"
        },
    )
    smart_lambda: float = field(default=1.0, metadata={"help": "[λ_s] weight of R_s (paper: 1, 3 or 5)"})
    smart_epsilon: float = field(
        default=1e-5, metadata={"help": "[ε] ℓ∞ radius of the perturbation ball; R3F: noise size"}
    )
    smart_sigma: float = field(default=1e-5, metadata={"help": "[σ] std of the initial noise of x̃"})
    smart_eta: float = field(default=1e-3, metadata={"help": "[η] ascent step size for x̃"})
    smart_steps: int = field(default=1, metadata={"help": "[T_x̃] ascent steps per training step"})
    smart_mu: float = field(default=1.0, metadata={"help": "[μ] weight of the Bregman proximal term D_Breg"})
    smart_beta: float = field(default=0.999, metadata={"help": "[β] teacher momentum after the warm-up"})
    smart_beta_warmup: float = field(
        default=0.99, metadata={"help": "[β] teacher momentum during the warm-up"}
    )
    smart_beta_warmup_ratio: float = field(
        default=0.1, metadata={"help": "fraction of optimizer steps that use smart_beta_warmup"}
    )
    smart_teacher_horizon: float = field(
        default=0.0,
        metadata={
            "help": "[β from the run length] when > 0, β = 1 − 1/τ with the teacher's time constant τ this "
            "fraction of the run's teacher updates (the warm-up β is capped at it); 0: β as given"
        },
    )
    smart_teacher_every: int = field(
        default=1, metadata={"help": "[S] optimizer steps between teacher updates"}
    )
    smart_adv_every: int = field(
        default=1, metadata={"help": "apply R_s (or R3F's term) every k-th optimizer step only; a cost knob"}
    )
    smart_dropout: str = field(
        default="independent",
        metadata={
            "help": "dropout of the perturbed passes: independent, shared (the clean pass's masks), off"
        },
    )
    smart_teacher_dropout: str = field(
        default="off",
        metadata={
            "help": "dropout of the teacher's pass: off (eval mode, a fixed target), independent, shared"
        },
    )
    smart_scale: str = field(
        default="absolute",
        metadata={"help": "absolute: ε, σ, η as given; relative: multiplied by the mean |word embedding|"},
    )
    smart_projection: str = field(
        default="ball",
        metadata={"help": "ball: the paper's ℓ∞ projection; official: mt-dnn's per-token normalisation"},
    )
    smart_noise_type: str = field(
        default="uniform", metadata={"help": "R3F noise: uniform (fairseq) or normal"}
    )
    smart_max_nonfinite_steps: int = field(
        default=5,
        metadata={
            "help": "optimizer steps in a row whose loss is NaN/Inf (each skipped, no update) before "
            "training stops with an error"
        },
    )

    def __post_init__(self):
        if launched_processes() > 1 and not self.use_cpu and not self.deepspeed and not _has_accelerator():
            # transformers sets up DDP on a machine without GPUs only when use_cpu is set; otherwise
            # every process of `torchrun`/`accelerate launch` would silently train alone on all the data.
            self.use_cpu = True
        super().__post_init__()
        choices = {
            "smart_method": METHODS,
            "smart_dropout": DROPOUT_POLICIES,
            "smart_teacher_dropout": DROPOUT_POLICIES,
            "smart_scale": SCALES,
            "smart_projection": PROJECTIONS,
            "smart_noise_type": NOISE_TYPES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        checks = [
            ("smart_lambda", self.smart_lambda >= 0),
            ("smart_mu", self.smart_mu >= 0),
            ("smart_epsilon", self.smart_epsilon > 0),
            ("smart_sigma", self.smart_sigma >= 0),
            ("smart_eta", self.smart_eta > 0),
            ("smart_steps", self.smart_steps >= 1),
            ("smart_beta", 0 <= self.smart_beta <= 1),
            ("smart_beta_warmup", 0 <= self.smart_beta_warmup <= 1),
            ("smart_beta_warmup_ratio", 0 <= self.smart_beta_warmup_ratio <= 1),
            ("smart_teacher_every", self.smart_teacher_every >= 1),
            ("smart_teacher_horizon", 0 <= self.smart_teacher_horizon < math.inf),
            ("smart_adv_every", self.smart_adv_every >= 1),
            ("smart_max_nonfinite_steps", self.smart_max_nonfinite_steps >= 1),
        ]
        for name, ok in checks:
            if not ok:
                raise ConfigError(f"{name} is out of range: {getattr(self, name)!r}")

    @property
    def smart_uses_regularizer(self) -> bool:
        return self.smart_method in ("smart", "r3f") and self.smart_lambda > 0

    @property
    def smart_uses_teacher(self) -> bool:
        return self.smart_method == "smart" and self.smart_mu > 0


def launched_processes() -> int:
    """How many processes a launcher (``torchrun``, ``accelerate launch``) started: WORLD_SIZE, when
    LOCAL_RANK says this process is one of them (both launchers set both); else 1."""
    if "LOCAL_RANK" not in os.environ:
        return 1
    return int(os.environ.get("WORLD_SIZE", "1"))


def _has_accelerator() -> bool:
    """A GPU or other device for torch (CUDA, XPU, MPS, ...; TPUs through torch_xla)."""
    from transformers.utils import is_torch_xla_available

    if is_torch_xla_available():
        return True
    accelerator = getattr(torch, "accelerator", None)  # torch >= 2.6
    if accelerator is not None:
        return accelerator.is_available()
    return torch.cuda.is_available()


def build_regularizer(args: SmartTrainingArguments) -> AdversarialRegularizer | NoiseRegularizer | None:
    """The R_s (or R3F) object the arguments describe, or None when there is no such term."""
    if not args.smart_uses_regularizer:
        return None
    if args.smart_method == "r3f":
        return NoiseRegularizer(
            args.smart_epsilon, args.smart_noise_type, args.smart_dropout, args.smart_scale
        )
    return AdversarialRegularizer(
        epsilon=args.smart_epsilon,
        sigma=args.smart_sigma,
        eta=args.smart_eta,
        steps=args.smart_steps,
        dropout=args.smart_dropout,
        scale=args.smart_scale,
        projection=args.smart_projection,
    )


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


class _NonfiniteStepGuard(TrainerCallback):
    """Drops the update of an optimizer step whose loss was NaN/Inf, and counts it (see
    ``SmartTrainer.training_step``). ``on_pre_optimizer_step`` comes after gradient clipping and just
    before ``optimizer.step()``; ``on_step_end`` once per optimizer step."""

    def __init__(self, trainer: SmartTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._update_nonfinite = False
        self.trainer._nonfinite_run = 0

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.trainer._update_nonfinite = self.trainer._should_drop_update()
        # Under fp16 the grad scaler finds the NaN/Inf gradients itself and skips its step; taking the
        # gradients away from it would make it fail ("No inf checks were recorded").
        if self.trainer._update_nonfinite and not self.trainer._grad_scaler_enabled():
            self.trainer._drop_update()

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._end_update(state.global_step)


class _TeacherCallback(TrainerCallback):
    """Creates the teacher when training starts (after any checkpoint is loaded) and moves it once per
    optimizer step: ``on_step_end`` fires once per optimizer step, whatever the gradient accumulation."""

    def __init__(self, trainer: SmartTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._start_teacher(state.max_steps)

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer.teacher is not None:
            self.trainer.teacher.step(self.trainer.accelerator.unwrap_model(self.trainer.model))


class SmartTrainer(Trainer):
    """``transformers.Trainer`` that trains with SMART, R3F or plain fine-tuning (``args.smart_method``).

    Takes every argument the Trainer takes; ``args`` must be :class:`SmartTrainingArguments`. Logs, beside
    the Trainer's ``loss``: ``smart_task_loss`` (L), ``smart_adv_loss`` (R_s, unweighted),
    ``smart_breg_loss`` (D_Breg, unweighted), ``smart_delta_linf`` (max ‖x̃ − x‖_∞), ``smart_nonfinite``
    (steps whose term was dropped as non-finite, cumulative) and ``smart_teacher_beta``; for every
    method, ``smart_skipped_steps`` (optimizer steps skipped because the total loss was NaN/Inf).

    Reliability, for every method: a step whose loss is NaN/Inf applies no update (see
    :meth:`training_step`); checkpoints are marked complete only once fully written, and
    ``train(resume_from_checkpoint=True)`` resumes from the newest complete one (see
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
        self.regularizer = build_regularizer(self.args)
        self.teacher: MeanTeacher | None = None
        self._resume_dir: str | None = None
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self.nonfinite_count = 0
        self._warned_nonfinite = False
        self.skipped_steps = 0  # optimizer steps skipped because the loss was NaN/Inf (all methods)
        self._nonfinite_run = 0  # of which in a row, up to now
        self._update_nonfinite = False  # the current optimizer step has seen a non-finite loss
        self._step_grad_norm = None  # the Trainer's gradient norm of the current optimizer step
        self.resumed_at_step = 0  # the checkpoint step the last train() call started from
        self._warned_skipped = False
        self.add_callback(_NonfiniteStepGuard(self))
        if self.args.smart_method != "vanilla":
            check_accepts_inputs_embeds(self.accelerator.unwrap_model(self.model))
            self.add_callback(_TeacherCallback(self))

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
    # The training step.

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.args.smart_method == "vanilla" or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

        # Extra passes run on the unwrapped module: they need no gradient synchronisation of their own.
        net = self.accelerator.unwrap_model(model)
        problem_type = problem_type_of(net.config)
        regularize = self.regularizer is not None and self.state.global_step % self.args.smart_adv_every == 0
        shared = "shared" in (self.args.smart_dropout, self.args.smart_teacher_dropout)
        rng_state = capture_rng_state(self.args.device) if shared else None

        # 1. The clean pass, the plain Trainer's own: f(x; θ) and L. When R_s follows, the clean pass
        #    takes x = E(input_ids) as inputs_embeds and R_s reuses x: one lookup, one (V, H) gradient.
        embeds, clean_inputs = None, inputs
        if regularize and "input_ids" in inputs:
            embeds = word_embeddings(net, inputs["input_ids"])
            clean_inputs = {k: v for k, v in inputs.items() if k != "input_ids"}
            clean_inputs["inputs_embeds"] = embeds
            position_ids = position_ids_for(net, inputs["input_ids"])
            if position_ids is not None and "position_ids" not in inputs:
                clean_inputs["position_ids"] = position_ids
        task_loss, outputs = super().compute_loss(model, clean_inputs, True, num_items_in_batch)
        logits = outputs["logits"]
        loss = task_loss
        self._record("smart_task_loss", task_loss)
        extra_scale = self._extra_term_scale(num_items_in_batch)

        # 2. R_s (or R3F's term) on the word embeddings, every smart_adv_every-th optimizer step.
        if regularize:
            loss_scale = self._inner_loss_scale()
            reg = self.regularizer(net, inputs, logits, problem_type, rng_state, loss_scale, embeds=embeds)
            self._record("smart_delta_linf", reg.delta_linf)
            if reg.nonfinite:
                self._skip_nonfinite("R_s")
            else:
                self._record("smart_adv_loss", reg.loss)
                loss = loss + self.args.smart_lambda * extra_scale * reg.loss

        # 3. D_Breg against the mean teacher θ̃ (no gradient into the teacher).
        if self.teacher is not None:
            breg = self.teacher.divergence(inputs, logits, problem_type, rng_state).mean()
            if torch.isfinite(breg):
                self._record("smart_breg_loss", breg)
                loss = loss + self.args.smart_mu * extra_scale * breg
            else:
                self._skip_nonfinite("D_Breg")

        return (loss, outputs) if return_outputs else loss

    def _extra_term_scale(self, num_items_in_batch) -> float:
        """Scale for R_s and D_Breg (batch means) so that they accumulate like the task loss.

        When the Trainer will not divide the loss by the accumulation steps (the task loss is already
        normalised over the whole accumulated batch), divide the extra terms here instead.
        """
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

    # ---------------------------------------------------------------------------------------------
    # The mean teacher's life cycle: created at train begin, saved and restored with checkpoints.

    def _start_teacher(self, max_steps: int) -> None:
        if not self.args.smart_uses_teacher:
            self.teacher = None
            return
        beta, beta_warmup = self.args.smart_beta, self.args.smart_beta_warmup
        if self.args.smart_teacher_horizon > 0:
            # β from the run's length rather than fixed: see teacher.beta_for_horizon.
            beta = beta_for_horizon(
                self.args.smart_teacher_horizon, max_steps // self.args.smart_teacher_every
            )
            beta_warmup = min(beta_warmup, beta)
        self.teacher = MeanTeacher(
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
            _checkpoint_step(os.path.basename(os.path.normpath(resume_from_checkpoint))) or 0
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
        start = _checkpoint_step(os.path.basename(checkpoint)) or 0
        for name in sorted(os.listdir(self.args.output_dir)):
            step = _checkpoint_step(name)
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
            pending = _prepare_marker(folder, self.state.global_step) if writes else None
            self._save_teacher(folder)
            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()  # every process's shards are written
            if pending is not None:
                _commit_marker(folder, pending)
        except BaseException as exc:
            if writes:
                shutil.rmtree(folder, ignore_errors=True)
            if not isinstance(exc, Exception) or isinstance(exc, SmartTuneError):
                raise  # Ctrl-C, a second signal: stop as asked, the folder gone
            previous = last_complete_checkpoint(self._get_output_dir(trial=trial))
            kept = f"the newest complete checkpoint is {previous}" if previous else "none is complete yet"
            raise CheckpointError(
                f"could not save {folder}: {_first_line(exc)}; the partial folder was removed and {kept}"
            ) from exc

    # ---------------------------------------------------------------------------------------------
    # Non-finite losses: the step is skipped (no update), counted, warned once; too many in a row stop.

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step (forward, backward); notes a NaN/Inf loss so the optimizer step is skipped.

        The backward of a NaN loss fills the gradients with NaN, and an optimizer step on zeroed
        gradients would still move the weights (AdamW's momentum and weight decay). So the whole
        update (every micro-batch under gradient accumulation) is dropped: the gradients are set to
        None just before the optimizer step, which optimizers then leave untouched (no moment, no
        step count, no weight decay). The learning-rate schedule and the step count move on. Under
        fp16 the grad scaler has recorded the overflow already and skips as usual. Not for DeepSpeed,
        whose engine holds the gradients itself.
        """
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not bool(torch.isfinite(loss).all()):
            self._update_nonfinite = True
        return loss

    def _get_grad_norm(self, model, grad_norm=None):
        # The Trainer computes the gradient norm of every optimizer step (clipping, or an ∞-norm) just
        # before on_pre_optimizer_step: keep it, so that the NaN/Inf check needs no second pass.
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        self._step_grad_norm = grad_norm
        return grad_norm

    def _should_drop_update(self) -> bool:
        """Whether this optimizer step must be dropped: a NaN/Inf loss in any micro-batch, or NaN/Inf
        gradients (a finite loss can still have them: their norm is then NaN/Inf). Under several
        processes the decision is taken together (any rank's NaN/Inf drops the step on every rank), so
        that the replicas never part. Under fp16 only the loss is looked at: the grad scaler judges the
        gradients (an overflow of the scaled gradients is its normal calibration, not a failure)."""
        drop = self._update_nonfinite
        grad_norm, self._step_grad_norm = self._step_grad_norm, None
        if not drop and not self._grad_scaler_enabled():
            if grad_norm is None:  # not recorded by this transformers version: take max-norms here
                grads = [
                    p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None
                ]
                norms = torch._foreach_norm(grads, float("inf")) if grads else []
                grad_norm = max((float(n) for n in norms), default=0.0)
            drop = not math.isfinite(float(grad_norm))
        return bool(self._reduce_over_processes([float(drop)], torch.distributed.ReduceOp.MAX)[0])

    def _reduce_over_processes(self, values: list[float], op=None) -> list[float]:
        """``values`` reduced over all processes (sum by default) under several processes, else as
        given. A collective: every rank must call it at the same point."""
        if self.args.world_size <= 1 or not torch.distributed.is_initialized():
            return values
        reduced = torch.tensor(values, dtype=torch.float64, device=self.args.device)
        torch.distributed.all_reduce(reduced, op=op if op is not None else torch.distributed.ReduceOp.SUM)
        return reduced.tolist()

    def _grad_scaler_enabled(self) -> bool:
        scaler = getattr(self.accelerator, "scaler", None)
        return scaler is not None and scaler.is_enabled()

    def nonfinite_total(self) -> int:
        """Terms dropped as non-finite (``smart_nonfinite``), summed over all processes. A collective
        under several processes: call it on every rank."""
        return int(self._reduce_over_processes([float(self.nonfinite_count)])[0])

    def _drop_update(self) -> None:
        for group in self.optimizer.param_groups:
            for param in group["params"]:
                param.grad = None

    def _end_update(self, step: int) -> None:
        """After optimizer step ``step`` (1-based): count a skipped step; stop after too many in a row."""
        if not self._update_nonfinite:
            self._nonfinite_run = 0
            return
        self._update_nonfinite = False
        self.skipped_steps += 1
        self._nonfinite_run += 1
        limit = self.args.smart_max_nonfinite_steps
        if self._nonfinite_run >= limit:
            first = step - self._nonfinite_run + 1
            raise NonFiniteLoss(
                f"the loss or its gradients were NaN or Inf at {self._nonfinite_run} optimizer steps in a row (steps "
                f"{first} to {step}), each skipped without an update; training stopped. Try a lower "
                "--learning-rate, or turn --bf16/--fp16 off (smart_max_nonfinite_steps sets how many "
                "are tolerated)"
            )
        if not self._warned_skipped:
            warnings.warn(
                f"smart-tune: the loss or its gradients were NaN or Inf at step {step}; that step was skipped without an "
                f"update (counted in smart_skipped_steps; warned once; {limit} in a row stop training)",
                RuntimeWarning,
                stacklevel=2,
            )
            self._warned_skipped = True

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
        totals = self._reduce_over_processes(
            [self._sums.get(n, 0.0) for n in names] + [float(self._counts.get(n, 0)) for n in names]
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
