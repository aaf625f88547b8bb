"""Options of ``smart-tune train`` (and ``compare``): typed, parsed in one place, defaults in layers.

A run's options are two dataclasses, parsed together by transformers' ``HfArgumentParser``:
:class:`RunOptions` (what to train on, which method, how the run is kept) and
:class:`~smart_tune.config.SmartTrainingArguments` (every ``TrainingArguments`` field and every
``smart_*`` knob, spelled with dashes or underscores). Their defaults come in layers, lowest first:

    the dataclasses' defaults  <  the recipe (:mod:`smart_tune.recipe`)  <  the method's preset
    (:mod:`smart_tune.presets`)  <  the ``--config`` file (YAML or JSON)  <  the flags typed

The layers above the dataclasses become the parser's defaults (:func:`parse_train_options`), so the
flags typed win over everything and the parser types them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from .config import SmartTrainingArguments
from .errors import ConfigError, first_line
from .presets import PRESETS, preset
from .recipe import RECIPE, default_output_dir, reconcile, run_defaults

TRAINING_FIELDS = frozenset(f.name for f in dataclasses.fields(SmartTrainingArguments) if f.init)


def _option(default: Any, help: str, **more: Any) -> Any:
    return field(default=default, metadata={"help": help, **more})


@dataclass
class RunOptions:
    """What ``smart-tune train`` trains on and how the run is kept: its options that are not
    ``TrainingArguments`` fields. Defaults here are the command's; the training knobs are
    :class:`~smart_tune.config.SmartTrainingArguments` with :data:`~smart_tune.recipe.RECIPE`."""

    # task and data
    task: str | None = _option(
        None,
        "task name: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli, snli, scitail, anli_r1, anli_r2, "
        "anli_r3, anli (GLUE spellings such as STS-B accepted)",
    )
    data_dir: str | None = _option(None, "folder with the original files (else $GLUE_DIR, else the hub)")
    train_file: str | None = _option(None, "your own training data (.csv, .tsv or .jsonl)")
    validation_file: str | None = _option(None, "your own dev data")
    test_file: str | None = _option(None, "your own test data (labels optional)")
    text_columns: str | None = _option(None, "one or two comma-separated text columns of your files")
    label_column: str = _option("label", "label column of your files (default: label)")
    regression: bool = _option(False, "your labels are numbers to regress")
    max_length: int = _option(128, "maximum tokens per example (default 128)")
    max_train_samples: int | None = _option(
        None, "train on N examples only: the first N, or N drawn at random with --sample-seed"
    )
    sample_seed: int | None = _option(
        None,
        "with --max-train-samples N: draw the N examples at random (class-stratified) with this seed, "
        "the same rows for every run that gives it, instead of taking the first N (a file sorted by "
        "label or by genre, like STS-B's, makes the first N unrepresentative)",
        metavar="S",
    )
    train_fraction: float | None = _option(
        None, "train on a fixed class-balanced fraction of the training split (seeded)"
    )
    validation_from_train: float | None = _option(
        None,
        "hold out a seeded, class-stratified FRACTION of the training split and select on it (best epoch, "
        "a compare grid's setting); dev is then only scored and reported (default: select on dev)",
        metavar="FRACTION",
    )
    train_split: str = _option("train", "split to train on (default train)")
    eval_split: str | None = _option(None, "split(s) to evaluate on, comma-separated (default: dev)")
    also_evaluate: str | None = _option(
        None,
        "after training, also score other tasks with the same labels, TASK[:SPLIT] comma-separated (split "
        "default dev), e.g. anli_r1,anli_r2:test for a model trained on snli",
    )
    # model and method
    method: str = _option(
        "smart",
        f"one of {', '.join(PRESETS)} (default smart): a preset of the --smart-* options, which flags "
        "given beside it override; --smart-method is the same choice",
    )
    label: str | None = _option(None, "name of this setting in results.json (default: the method)")
    model: str | None = _option(None, "model name or path (default: the packaged MiniLM-L6)")
    trust_remote_code: bool = _option(False, "allow a model's own code")
    pooling: str | None = _option(
        None,
        "what the classification head reads: cls (the encoder's pooler over [CLS]) or mean (the masked mean "
        "of the token states, how the packaged MiniLM was trained); default: the model's own (cls)",
        choices=("cls", "mean"),
    )
    # the run
    config: str | None = _option(None, "YAML or JSON file of options; flags override it")
    resume: bool = _option(False, "resume from the last checkpoint")
    overwrite_output_dir: bool = _option(False, "replace another run's results in the output directory")
    keep_checkpoints: bool = _option(
        False, "keep checkpoint-* folders after a finished run (default: removed)"
    )
    save_model: bool = _option(True, "keep the model (--no-save-model: only results.json, for sweeps)")

    @property
    def name(self) -> str:
        """The method's name in results.json and in the default output folder."""
        return self.label or self.method

    def check(self) -> None:
        """Refuse options that contradict each other, in one line."""
        if self.resume and self.overwrite_output_dir:
            raise ConfigError(
                "conflicting options: --resume continues a run, --overwrite-output-dir discards it"
            )
        if self.task and self.train_file:
            raise ConfigError("conflicting options: give --task or --train-file, not both")
        if not self.task and not self.train_file and not self.validation_file:
            raise ConfigError("no task: give --task NAME, or your own data with --train-file")
        # A flag for the other kind of data would be dropped without a word (--task rte with
        # --validation-file dev.csv scores RTE's dev, and says so only in the number of examples).
        if self.task:
            own = {
                "--validation-file": self.validation_file,
                "--test-file": self.test_file,
                "--text-columns": self.text_columns,
                "--label-column": self.label_column != "label",
                "--regression": self.regression,
            }
            flag = next((flag for flag, given in own.items() if given), None)
            if flag:
                raise ConfigError(
                    f"conflicting options: {flag} is for your own files (--train-file ...); "
                    f"--task {self.task} reads the task's own files"
                )
            self.check_train_split(self.task, self.scored_splits(self.task))
        else:
            task_only = {
                "--data-dir": self.data_dir,
                "--eval-split": self.eval_split,
                "--train-split": self.train_split != "train",
            }
            flag = next((flag for flag, given in task_only.items() if given), None)
            if flag:
                raise ConfigError(
                    f"conflicting options: {flag} is for --task; your own files are the splits "
                    "(--train-file, --validation-file, --test-file)"
                )
        if self.train_fraction is not None and self.max_train_samples is not None:
            raise ConfigError("conflicting options: --train-fraction and --max-train-samples")
        if self.sample_seed is not None and self.max_train_samples is None:
            raise ConfigError("--sample-seed draws the examples of --max-train-samples N; give it N")
        if self.train_fraction is not None and not 0 < self.train_fraction <= 1:
            raise ConfigError(f"--train-fraction must lie in (0, 1]; got {self.train_fraction}")
        holdout = self.validation_from_train
        if holdout is not None and not 0 < holdout < 1:
            raise ConfigError(f"--validation-from-train must lie in (0, 1); got {holdout}")

    def scored_splits(self, task_name: str) -> dict[str, str]:
        """{split of ``task_name`` the run scores: the option that asks for it}: its eval splits
        (``--eval-split``, else the task's dev splits) and ``--also-evaluate``'s of the same task."""
        from .tasks import get_task

        task = get_task(task_name)
        given = [s.strip() for s in self.eval_split.split(",")] if self.eval_split else []
        scored = {split: "--eval-split" if given else "dev" for split in given or task.eval_splits}
        specs = self.also_evaluate or ""
        for spec in specs.split(",") if isinstance(specs, str) else specs:
            name, _, split = str(spec).strip().partition(":")
            if name and _same_task(name, task.name):
                scored.setdefault(split or "dev", "--also-evaluate")
        return scored

    def check_train_split(self, task_name: str, scored: dict[str, str], hint: str = "") -> None:
        """Refuse a ``--train-split`` the run also scores (``scored``: :meth:`scored_splits`): its scores,
        and the epoch they choose, would be on the examples it trained on."""
        why = scored.get(self.train_split)
        if why is not None:
            asked = "which it scores" if why == "dev" else f"which {why} scores"
            raise ConfigError(
                f"--train-split {self.train_split} is {task_name}'s {self.train_split} split, {asked}: the "
                f"scores would be on the examples it trains on{hint or '; score another with --eval-split'}"
            )

    def scored(self) -> tuple[str, bool]:
        """(the task's main metric, whether a dev split is scored), known before any data loads."""
        if self.task:
            from .tasks import get_task

            task = get_task(self.task)
            return task.main_metric, bool(self.eval_split or task.eval_splits)
        return ("pearson" if self.regression else "accuracy"), bool(self.validation_file)

    def best_metric(self) -> str | None:
        """The logged metric that chooses the kept epoch, when not the recipe's rule (None)."""
        return None


def _refuse_shared_data(tasks: list) -> None:
    """Refuse two tasks whose training data overlap (``anli`` holds ``anli_r1``'s rounds): the
    examples would be trained on twice, and one task's held-out part would sit in the other's
    training data, so the kept epoch would be chosen on examples the model was trained on."""

    def train_data(task) -> set:
        if task.hub is None or "train" not in dict(task.hub.splits):
            return set()
        return {(task.hub.path, task.hub.config, split) for split in task.hub.hub_splits("train")}

    for i, a in enumerate(tasks):
        for b in tasks[i + 1 :]:
            if train_data(a) & train_data(b):
                raise ConfigError(
                    f"--tasks lists {a.name} and {b.name}, whose training data overlap; keep one"
                )


@dataclass
class MultiTaskOptions(RunOptions):
    """``smart-tune multitask``: :class:`RunOptions` with several tasks instead of one (MT-DNN)."""

    tasks: str | None = _option(
        None, "the tasks to train on together, comma-separated, e.g. rte,mrpc,stsb,cola"
    )
    task_sampling: str = _option(
        "proportional",
        "which task each batch comes from: proportional (MT-DNN: every task's batches shuffled together "
        "each epoch), uniform, or temperature:T (task k drawn with probability ∝ n_k^(1/T))",
    )

    def task_names(self) -> list[str]:
        """The tasks' canonical names, checked: known, none twice."""
        from .tasks import get_task

        given = [t.strip() for t in (self.tasks or "").split(",") if t.strip()]
        names = [get_task(t).name for t in given]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"--tasks lists {', '.join(twice)} twice")
        _refuse_shared_data([get_task(n) for n in names])
        return names

    def check(self) -> None:
        if self.task or self.train_file or self.validation_file or self.test_file:
            raise ConfigError("multitask takes --tasks T1,T2,...; not --task or your own files")
        if len(self.task_names()) < 2:
            raise ConfigError("multitask needs two tasks or more: --tasks T1,T2[,...]")
        from .multitask_data import parse_sampling

        parse_sampling(self.task_sampling)
        if self.also_evaluate:
            raise ConfigError("--also-evaluate is for train; multitask scores every task's dev set")
        for name, value in (("--train-fraction", self.train_fraction), ("--eval-split", self.eval_split)):
            if value is not None:
                raise ConfigError(f"{name} is for train; multitask takes --max-train-samples per task")
        for name in self.task_names():  # each task trains on --train-split and scores its dev splits
            self.check_train_split(name, self.scored_splits(name), "; multitask scores every task's dev set")
        RunOptions.check(dataclasses.replace(self, tasks=None, task=self.task_names()[0]))

    def scored(self) -> tuple[str, bool]:
        return "mean_main", True

    def best_metric(self) -> str | None:
        return "eval_mean_main"

    @property
    def name(self) -> str:
        return self.label or self.method


def _same_task(name: str, canonical: str) -> bool:
    """Whether the task spelled ``name`` is ``canonical`` (an unknown name is no task: refused later)."""
    from .tasks import get_task

    try:
        return get_task(name).name == canonical
    except ConfigError:
        return False


RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunOptions))
# The run options' defaults, as a mapping (compare checks its runs' options against them).
RUN_DEFAULTS: Mapping[str, Any] = {f.name: f.default for f in dataclasses.fields(RunOptions)}
# Kept for callers of the earlier name: the recipe's TrainingArguments values.
TRAIN_DEFAULTS = RECIPE


@dataclass
class TrainOptions:
    """One run's options, parsed: ``run`` and ``training`` typed; ``chosen`` what the preset's layers
    above held (the config file and the flags, keyed by field name), which ``compare`` passes on."""

    run: RunOptions  # or MultiTaskOptions
    training: SmartTrainingArguments
    chosen: dict[str, Any]


ALIASES = {"epochs": "num_train_epochs", "batch_size": "per_device_train_batch_size"}

# Help of the TrainingArguments fields that `train --help` lists with words of its own.
SHOWN_HELP = {
    "output_dir": "where the model, results.json and checkpoints go (default runs/TASK-METHOD-seedSEED)",
    "max_steps": "stop after this many optimizer steps (default: --epochs decides)",
    "seed": f"seed of the new classification head, the data order and dropout (default {RECIPE['seed']})",
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


def training_parser(
    prog: str,
    description: str,
    epilog: str,
    options_class: type[RunOptions] = RunOptions,
    usage: str = "%(prog)s --task TASK [options]",
) -> HfArgumentParser:
    """A parser of :class:`RunOptions` and every TrainingArguments and smart_* field (dashes or
    underscores), with ``--epochs`` and ``--batch-size`` beside their long names.

    Every default is suppressed: parsed as built, the namespace holds exactly what the user typed, which
    :func:`parse_train_options` needs to stack the layers (and to tell ``--method`` from a default).
    ``usage`` is the one line shown above an error: argparse's own would list some 60 options there.
    """
    parser = HfArgumentParser(
        (options_class, SmartTrainingArguments),
        prog=prog,
        description=description,
        epilog=epilog,
        usage=usage,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--epochs", type=float, help="training epochs (default 3)")
    parser.add_argument("--batch-size", type=int, help="training batch size per device (default 16)")
    defaults = {f.name: f.default for f in dataclasses.fields(SmartTrainingArguments)}
    for action in parser._actions:
        action.default = argparse.SUPPRESS
        # Both spellings parse (the parser maps each); --help shows the dashed one our docs use.
        dashed = [s for s in action.option_strings if "_" not in s]
        if dashed and len(dashed) < len(action.option_strings):
            action.option_strings = dashed
        dest = action.dest
        if dest in TRAINING_FIELDS and not dest.startswith("smart_") and dest not in SHOWN_HELP:
            action.help = argparse.SUPPRESS  # 120 fields: accepted, documented by transformers, not listed
        elif dest in SHOWN_HELP:
            action.help = SHOWN_HELP[dest]
        elif dest.startswith("smart_"):
            action.help = f"{action.help} (default {RECIPE.get(dest, defaults[dest])})"
    return parser


def typed_options(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, Any]:
    """What the user typed, keyed by field name (``--epochs`` read as num_train_epochs)."""
    flags = {normalise_key(k): v for k, v in vars(parser.parse_args(argv)).items()}
    for alias, name in ALIASES.items():
        if alias in flags:
            if name in flags and flags[name] != flags[alias]:
                raise ConfigError(
                    f"conflicting flags --{alias.replace('_', '-')} and --{name.replace('_', '-')}"
                )
            flags[name] = flags.pop(alias)
    return flags


def chosen_options(
    parser: argparse.ArgumentParser,
    argv: list[str],
    also_known: frozenset[str] = frozenset(),
    options_class: type[RunOptions] = RunOptions,
) -> dict[str, Any]:
    """The config file's options under the flags typed, keyed by field name. ``also_known``: keys a
    command reads beside the run's options (compare's methods, seeds, variants)."""
    flags = typed_options(parser, argv)
    from_file = read_config_file(flags["config"]) if flags.get("config") else {}
    for alias, name in ALIASES.items():
        if alias in from_file:
            from_file[name] = from_file.pop(alias)
    known = {f.name for f in dataclasses.fields(options_class)}
    unknown = sorted(set(from_file) - TRAINING_FIELDS - known - also_known)
    if unknown:
        raise ConfigError(f"unknown option(s) in {flags['config']}: {', '.join(unknown)}")
    return {**from_file, **flags}


def method_of(chosen: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(the method, its preset): ``--method``, or ``--smart-method`` alone; both, differing, is an error."""
    method = chosen.get("method", RUN_DEFAULTS["method"])
    method_args = preset(method)
    if "smart_method" in chosen and chosen["smart_method"] != method_args["smart_method"]:
        if "method" in chosen:
            raise ConfigError(
                f"conflicting options: --method {method} and --smart-method {chosen['smart_method']}"
            )
        method, method_args = chosen["smart_method"], preset(chosen["smart_method"])
    return method, method_args


def layered(
    chosen: Mapping[str, Any],
    progress: bool = False,
    accelerator: bool = False,
    options_class: type[RunOptions] = RunOptions,
) -> dict[str, Any]:
    """Every option a run gets, as one mapping: recipe < the run's own defaults < preset < ``chosen``.

    ``progress``/``accelerator``: whether stderr is a terminal and an accelerator is present (they set
    the progress bars and pinned memory). The run options are checked for conflicts on the way.
    """
    method, method_args = method_of(chosen)
    above_recipe = {**method_args, **chosen, "method": method}
    known = {f.name for f in dataclasses.fields(options_class)}
    run = options_class(**{k: v for k, v in above_recipe.items() if k in known})
    run.check()
    main_metric, has_dev = run.scored()
    options = {
        **RECIPE,
        **run_defaults(above_recipe, main_metric, has_dev, progress, accelerator, run.best_metric()),
        **above_recipe,
    }
    if not options.get("output_dir"):
        what = "+".join(run.task_names()) if isinstance(run, MultiTaskOptions) else run.task
        options["output_dir"] = default_output_dir(what, run.name, options["seed"])
    reconcile(options)
    return options


def parse_train_options(
    parser: HfArgumentParser,
    argv: list[str],
    progress: bool = False,
    accelerator: bool = False,
    options_class: type[RunOptions] = RunOptions,
) -> TrainOptions:
    """``train``'s options: the layers become the parser's defaults, the flags are parsed over them, and
    both dataclasses are built (a value TrainingArguments refuses: one line, before anything loads)."""
    chosen = chosen_options(parser, argv, options_class=options_class)
    options = layered(chosen, progress, accelerator, options_class)
    validate_options(options)
    parser.set_defaults(**options)
    values = {normalise_key(k): v for k, v in vars(parser.parse_args(argv)).items()}
    values = {**options, **{ALIASES.get(k, k): v for k, v in values.items()}}
    known = {f.name for f in dataclasses.fields(options_class)}
    run = options_class(**{k: v for k, v in values.items() if k in known})
    training = {k: v for k, v in values.items() if k in TRAINING_FIELDS}
    try:
        args = SmartTrainingArguments(**training)
    except (ValueError, TypeError) as exc:
        raise ConfigError(first_line(exc)) from None
    return TrainOptions(run, args, chosen)


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
    for name in ("seed", "data_seed", "sample_seed"):
        if options.get(name) is not None:
            check_whole_number(option_flag(name), options[name], 0, 2**32 - 1)
    if options.get("max_steps", -1) != -1:
        check_whole_number("--max-steps", options["max_steps"], hint=" (or -1: train for --epochs)")
    for name in ("num_train_epochs", "learning_rate"):
        if name in options:
            check_positive_number(option_flag(name), options[name])
