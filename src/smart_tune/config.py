"""SMART's knobs as ``TrainingArguments`` fields, and the objects they describe.

``SmartTrainingArguments`` is ``transformers.TrainingArguments`` plus the ``smart_*`` fields (the
paper's symbol of each in its help), with their checks. It imports no ``transformers.Trainer``, so the
command line can parse options without loading the training stack. :func:`build_objective` turns the
arguments into the :class:`~smart_tune.objective.SmartObjective` that ``SmartTrainer`` calls (its
teacher is created when training starts: the β schedule needs the run's length).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from .adversarial import NOISE_TYPES, PROJECTIONS, SCALES, AdversarialRegularizer, NoiseRegularizer
from .errors import ConfigError
from .objective import SmartObjective
from .passes import DROPOUT_POLICIES
from .teacher import MeanTeacher, beta_for_horizon

METHODS = ("smart", "r3f", "vanilla")


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
        if launched_processes() > 1 and not self.use_cpu and not self.deepspeed and not has_accelerator():
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


def check_world_size(args: TrainingArguments) -> None:
    """Refuse a launch whose processes would each train alone on all the data."""
    if launched_processes() > 1 and args.world_size != launched_processes():
        raise ConfigError(
            f"launched as {launched_processes()} processes, but the Trainer set up "
            f"{args.world_size}: each would train alone on all the data (parallel mode "
            f"{args.parallel_mode.value}); to train on CPUs pass --use-cpu, else check the "
            "launcher's device options"
        )


def has_accelerator() -> bool:
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


def build_objective(args: SmartTrainingArguments) -> SmartObjective:
    """The objective the arguments describe, without its teacher (created once training starts)."""
    return SmartObjective(build_regularizer(args), None, args.smart_lambda, args.smart_mu)


def build_teacher(args: SmartTrainingArguments, model, max_steps: int) -> MeanTeacher | None:
    """The mean teacher of a run of ``max_steps`` optimizer steps (None without a proximal term); β is
    derived from the run's length when ``smart_teacher_horizon`` is set (teacher.beta_for_horizon)."""
    if not args.smart_uses_teacher:
        return None
    beta, beta_warmup = args.smart_beta, args.smart_beta_warmup
    if args.smart_teacher_horizon > 0:
        beta = beta_for_horizon(args.smart_teacher_horizon, max_steps // args.smart_teacher_every)
        beta_warmup = min(beta_warmup, beta)
    return MeanTeacher(
        model,
        beta=beta,
        beta_warmup=beta_warmup,
        warmup_steps=math.ceil(args.smart_beta_warmup_ratio * max_steps),
        update_every=args.smart_teacher_every,
        dropout=args.smart_teacher_dropout,
    )
