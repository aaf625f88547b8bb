"""Options of ``smart-tune train``: flags, a config file, presets and defaults, merged in that order.

Precedence, lowest first: the command's defaults (:data:`TRAIN_DEFAULTS`), the method preset, the
``--config`` file (YAML or JSON), the flags on the command line. Every ``TrainingArguments`` field
(and every ``smart_*`` knob) is an option, spelled with dashes or underscores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from .config import SmartTrainingArguments
from .errors import ConfigError, first_line
from .presets import PRESETS, preset

TRAINING_FIELDS = frozenset(f.name for f in dataclasses.fields(SmartTrainingArguments) if f.init)

# Options of the command itself (not TrainingArguments fields), with their defaults.
RUN_DEFAULTS: dict[str, Any] = {
    "task": None,
    "method": "smart",
    "label": None,  # the method's name in results.json (a sweep's variant name); default: method
    "model": None,  # None: the packaged MiniLM
    "data_dir": None,
    "train_file": None,
    "validation_file": None,
    "test_file": None,
    "text_columns": None,
    "label_column": "label",
    "regression": False,
    "max_length": 128,
    "max_train_samples": None,
    "train_fraction": None,
    "validation_from_train": None,  # a fraction of train held out for selection; dev is then only reported
    "train_split": "train",
    "eval_split": None,  # None: the task's dev split(s)
    "also_evaluate": None,  # other tasks' splits with the same labels, scored at the end: "anli_r1:dev,..."
    "resume": False,
    "overwrite_output_dir": False,
    "keep_checkpoints": False,
    "save_model": True,
    "trust_remote_code": False,
    "pooling": None,  # the head's input: cls (the pooler) or mean; None: the model's own (cls)
    "config": None,
}

# TrainingArguments values this command uses unless told otherwise: the usual GLUE recipe
# (AdamW, linear decay with 10% warm-up, gradient clipping at 1), evaluation every epoch.
TRAIN_DEFAULTS: dict[str, Any] = {
    "learning_rate": 2e-5,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "num_train_epochs": 3.0,
    "warmup_steps": 0.1,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "logging_steps": 50,
    "report_to": "none",
    "seed": 42,
    "save_total_limit": 2,
    "train_sampling_strategy": "group_by_length",
    "dataloader_num_workers": 0,
}

ALIASES = {"epochs": "num_train_epochs", "batch_size": "per_device_train_batch_size"}

# Help of the TrainingArguments fields that `train --help` lists with words of its own.
SHOWN_HELP = {
    "output_dir": "where the model, results.json and checkpoints go (default runs/TASK-METHOD-seedSEED)",
    "max_steps": "stop after this many optimizer steps (default: --epochs decides)",
    "seed": f"seed of the new classification head, the data order and dropout (default {TRAIN_DEFAULTS['seed']})",
    "smart_method": "the same choice as --method for vanilla, r3f and smart; give one of the two "
    "(both with different values is an error)",
}


def normalise_key(key: str) -> str:
    return key.lstrip("-").replace("-", "_")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The options in a YAML or JSON file, keys normalised to underscores."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory, not a file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # a parse error of either format, reported in one line
        raise ConfigError(f"cannot parse config file {path}: {first_line(exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option names to values")
    return {normalise_key(str(k)): v for k, v in data.items()}


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``train`` that are not TrainingArguments fields (defaults suppressed: merged later)."""
    S = argparse.SUPPRESS
    g = parser.add_argument_group("task and data")
    g.add_argument(
        "--task",
        default=S,
        help="task name: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli, "
        "snli, scitail, anli_r1, anli_r2, anli_r3, anli (GLUE spellings such as STS-B accepted)",
    )
    g.add_argument(
        "--data-dir", default=S, help="folder with the original files (else $GLUE_DIR, else the hub)"
    )
    g.add_argument("--train-file", default=S, help="your own training data (.csv, .tsv or .jsonl)")
    g.add_argument("--validation-file", default=S, help="your own dev data")
    g.add_argument("--test-file", default=S, help="your own test data (labels optional)")
    g.add_argument("--text-columns", default=S, help="one or two comma-separated text columns of your files")
    g.add_argument("--label-column", default=S, help="label column of your files (default: label)")
    g.add_argument("--regression", action="store_true", default=S, help="your labels are numbers to regress")
    g.add_argument("--max-length", type=int, default=S, help="maximum tokens per example (default 128)")
    g.add_argument("--max-train-samples", type=int, default=S, help="train on the first N examples only")
    g.add_argument(
        "--train-fraction",
        type=float,
        default=S,
        help="train on a fixed class-balanced fraction of the training split (seeded)",
    )
    g.add_argument(
        "--validation-from-train",
        type=float,
        default=S,
        metavar="FRACTION",
        help="hold out a seeded, class-stratified FRACTION of the training split and select on it (best "
        "epoch, a compare grid's setting); dev is then only scored and reported (default: select on dev)",
    )
    g.add_argument("--train-split", default=S, help="split to train on (default train)")
    g.add_argument("--eval-split", default=S, help="split(s) to evaluate on, comma-separated (default: dev)")
    g.add_argument(
        "--also-evaluate",
        default=S,
        help="after training, also score other tasks with the same labels, TASK[:SPLIT] comma-separated "
        "(split default dev), e.g. anli_r1,anli_r2:test for a model trained on snli",
    )
    g = parser.add_argument_group("model and method")
    g.add_argument(
        "--method",
        default=S,
        help=f"one of {', '.join(PRESETS)} (default smart): a preset of the --smart-* options, which "
        "flags given beside it override; --smart-method is the same choice",
    )
    g.add_argument("--label", default=S, help="name of this setting in results.json (default: the method)")
    g.add_argument("--model", default=S, help="model name or path (default: the packaged MiniLM-L6)")
    g.add_argument("--trust-remote-code", action="store_true", default=S, help="allow a model's own code")
    g.add_argument(
        "--pooling",
        choices=("cls", "mean"),
        default=S,
        help="what the classification head reads: cls (the encoder's pooler over [CLS]) or mean (the masked "
        "mean of the token states, how the packaged MiniLM was trained); default: the model's own (cls)",
    )
    g.add_argument("--epochs", type=float, default=S, help="training epochs (default 3)")
    g.add_argument("--batch-size", type=int, default=S, help="training batch size per device (default 16)")
    g = parser.add_argument_group("run")
    g.add_argument("--config", default=S, help="YAML or JSON file of options; flags override it")
    g.add_argument("--resume", action="store_true", default=S, help="resume from the last checkpoint")
    g.add_argument(
        "--overwrite-output-dir",
        action="store_true",
        default=S,
        help="replace another run's results in the output directory",
    )
    g.add_argument(
        "--no-save-model",
        dest="save_model",
        action="store_false",
        default=S,
        help="keep only results.json (sweeps: no model files in the results folder)",
    )
    g.add_argument(
        "--keep-checkpoints",
        action="store_true",
        default=S,
        help="keep checkpoint-* folders after a finished run (default: removed)",
    )


def training_parser(prog: str, description: str, epilog: str) -> HfArgumentParser:
    """A parser that knows every TrainingArguments and smart_* field (dashes or underscores) and the run flags.

    All defaults are suppressed, so the parsed namespace holds exactly what the user typed.
    """
    parser = HfArgumentParser(
        SmartTrainingArguments,
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = {f.name: f.default for f in dataclasses.fields(SmartTrainingArguments)}
    for action in parser._actions:
        action.default = argparse.SUPPRESS
        dest = action.dest
        if (
            dest in TRAINING_FIELDS
            and not dest.startswith("smart_")
            and dest not in ("output_dir", "max_steps", "seed")
        ):
            action.help = argparse.SUPPRESS  # 120 fields: accepted, documented by transformers, not listed
        elif dest in SHOWN_HELP:
            action.help = SHOWN_HELP[dest]
        elif dest.startswith("smart_"):
            action.help = f"{action.help} (default {TRAIN_DEFAULTS.get(dest, defaults[dest])})"
    add_run_flags(parser)
    return parser


def merge_options(namespace: argparse.Namespace) -> dict[str, Any]:
    """Defaults < preset < config file < flags, with conflicts reported. Returns one flat dict."""
    flags = {normalise_key(k): v for k, v in vars(namespace).items()}
    for alias, name in ALIASES.items():
        if alias in flags:
            if name in flags and flags[name] != flags[alias]:
                raise ConfigError(
                    f"conflicting flags --{alias.replace('_', '-')} and --{name.replace('_', '-')}"
                )
            flags[name] = flags.pop(alias)
    from_file = read_config_file(flags["config"]) if flags.get("config") else {}
    for alias, name in ALIASES.items():
        if alias in from_file:
            from_file[name] = from_file.pop(alias)
    unknown = sorted(set(from_file) - TRAINING_FIELDS - set(RUN_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown option(s) in {flags['config']}: {', '.join(unknown)}")
    chosen = {**from_file, **flags}

    method = chosen.get("method", RUN_DEFAULTS["method"])
    method_args = preset(method)
    if "smart_method" in chosen and chosen["smart_method"] != method_args["smart_method"]:
        if "method" in chosen:
            raise ConfigError(
                f"conflicting options: --method {method} and --smart-method {chosen['smart_method']}"
            )
        method, method_args = chosen["smart_method"], preset(chosen["smart_method"])

    options = {**RUN_DEFAULTS, **TRAIN_DEFAULTS, **method_args, **chosen, "method": method}
    if options["resume"] and options["overwrite_output_dir"]:
        raise ConfigError("conflicting options: --resume continues a run, --overwrite-output-dir discards it")
    if options["task"] and options["train_file"]:
        raise ConfigError("conflicting options: give --task or --train-file, not both")
    if not options["task"] and not options["train_file"] and not options["validation_file"]:
        raise ConfigError("no task: give --task NAME, or your own data with --train-file")
    if options["train_fraction"] is not None and options["max_train_samples"] is not None:
        raise ConfigError("conflicting options: --train-fraction and --max-train-samples")
    if options["train_fraction"] is not None and not 0 < options["train_fraction"] <= 1:
        raise ConfigError(f"--train-fraction must lie in (0, 1]; got {options['train_fraction']}")
    holdout = options["validation_from_train"]
    if holdout is not None and not 0 < holdout < 1:
        raise ConfigError(f"--validation-from-train must lie in (0, 1); got {holdout}")
    return options


def field_names(options: dict[str, Any]) -> dict[str, Any]:
    """The same options keyed by field name: underscores, and ``epochs``/``batch_size`` spelled out."""
    return {ALIASES.get(normalise_key(str(k)), normalise_key(str(k))): v for k, v in options.items()}


def option_flag(name: str) -> str:
    """The flag a user most likely typed for an option: ``--batch-size`` for per_device_train_batch_size."""
    short = {field: alias for alias, field in ALIASES.items()}.get(name, name)
    return "--" + short.replace("_", "-")


def _not_text(flag: str, value: Any) -> None:
    if isinstance(value, str):  # from a config file; YAML reads 2e-5 (no dot) as text
        try:
            float(value)
            hint = " (YAML reads 2e-5 as text: write 2.0e-5)"
        except ValueError:
            hint = ""
        raise ConfigError(f"{flag} must be a number, not the text {value!r}{hint}")


def check_whole_number(flag: str, value: Any, low: int = 1, high: int | None = None, hint: str = "") -> None:
    """Refuse a count that is not a whole number from ``low`` (to ``high``), in one line naming the flag."""
    _not_text(flag, value)
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    ):
        return
    if high is not None:
        wanted = f"a whole number from {low} to {high}"
    else:
        wanted = "a positive whole number" if low == 1 else f"a whole number of at least {low}"
    raise ConfigError(f"{flag} must be {wanted}{hint}; got {value!r}")


def check_positive_number(flag: str, value: Any) -> None:
    _not_text(flag, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{flag} must be a positive number; got {value!r}")


def validate_options(options: dict[str, Any]) -> None:
    """Refuse values that would end deep in training with a traceback or train nonsense with exit 0.

    Called on the merged options before anything is loaded or written (``run.train``, ``compare``).
    TrainingArguments and SmartTrainingArguments check the rest when they are built.
    """
    for name, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{option_flag(name)} must be a finite number; got {value}")
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if name in options:
            check_whole_number(option_flag(name), options[name])
    for name in ("max_length", "max_train_samples"):
        if options.get(name) is not None:
            check_whole_number(option_flag(name), options[name])
    for name in ("seed", "data_seed"):
        if options.get(name) is not None:
            check_whole_number(option_flag(name), options[name], 0, 2**32 - 1)
    if options.get("max_steps", -1) != -1:
        check_whole_number("--max-steps", options["max_steps"], hint=" (or -1: train for --epochs)")
    for name in ("num_train_epochs", "learning_rate"):
        if name in options:
            check_positive_number(option_flag(name), options[name])


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(run options, TrainingArguments keyword arguments)."""
    run = {k: options[k] for k in RUN_DEFAULTS if k in options}
    run["method"] = options["method"]
    training = {k: v for k, v in options.items() if k in TRAINING_FIELDS}
    return run, training
