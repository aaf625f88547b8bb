"""The ``smart-tune`` command line: train, evaluate, predict, compare, report. Thin: parse, call, print.

Bad input ends in one line on stderr (``error: ...``) and a non-zero exit, never a traceback. An
interrupted training (SIGTERM, Ctrl-C) saves a checkpoint, names it in that line and exits with
128 + the signal's number (143, 130), as a process ended by the signal would.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import __version__
from .errors import ConfigError, Interrupted, SmartTuneError

TRAIN_EXAMPLES = """examples:
  smart-tune train --task rte --data-dir ../shared/data/glue
  smart-tune train --task mrpc --method r3f --epochs 3 --seed 2 --output-dir runs/mrpc-r3f
  smart-tune train --task stsb --smart-lambda 3 --smart-epsilon 1e-3 --smart-dropout shared
  smart-tune train --train-file train.csv --validation-file dev.csv --text-columns question,answer
  smart-tune train --config study.yaml --learning-rate 3e-5      # flags override the file
  smart-tune train --task rte --output-dir runs/rte-smart-seed42 --resume   # continue an interrupted run

Any transformers TrainingArguments field is accepted too, with dashes or underscores
(--learning-rate, --warmup-steps, --gradient-accumulation-steps, --bf16, ...)."""

MULTITASK_EXAMPLES = """examples:
  smart-tune multitask --tasks rte,mrpc,stsb,cola --method smart --output-dir runs/mt-smart
  smart-tune multitask --tasks rte,mrpc,stsb,cola,sst2 --max-train-samples 8000 --task-sampling temperature:2
  smart-tune train --model runs/mt-smart --task rte --output-dir runs/rte-from-mt   # fine-tune one task
  smart-tune evaluate --model-dir runs/mt-smart --task mrpc                          # score one task's head
Each batch holds one task; the kept epoch is the best by the mean of the tasks' main metrics."""

COMPARE_EXAMPLES = """examples:
  smart-tune compare --task rte,mrpc --methods vanilla,r3f,smart --seeds 1,2,3 --output-dir runs/cmp
  smart-tune compare --config study1.yaml --output-dir benchmarks/results/study1
A config file may define variants of SMART by name:
  variants: {smart-eps1e-3: {smart_epsilon: 1.0e-3, smart_sigma: 1.0e-3, smart_dropout: shared}}
Run it again after an interruption: finished runs are skipped, unfinished ones resume."""


def _split_list(text: str | list | None) -> list[str]:
    if text is None:
        return []
    if isinstance(text, list):
        return [str(t) for t in text]
    return [t.strip() for t in str(text).split(",") if t.strip()]


# --------------------------------------------------------------------------------------------------


def cmd_train(argv: list[str]) -> int:
    from . import environment, run
    from .config import has_accelerator
    from .options import parse_train_options, training_parser

    parser = training_parser(
        "smart-tune train", "Fine-tune a model with SMART, R3F or plainly.", TRAIN_EXAMPLES
    )
    options = parse_train_options(parser, argv, environment.show_progress(), has_accelerator())
    results = run.train(options)
    if run.is_main_process():
        print_run_summary(results, str(options.training.output_dir))
    _end_process_group()
    return 0


def cmd_multitask(argv: list[str]) -> int:
    from . import environment
    from .config import has_accelerator
    from .multitask_run import train_multitask
    from .options import MultiTaskOptions, parse_train_options, training_parser
    from .outputs import is_main_process

    parser = training_parser(
        "smart-tune multitask",
        "Train one encoder on several tasks at once (MT-DNN), with SMART, R3F or plainly.",
        MULTITASK_EXAMPLES,
        MultiTaskOptions,
        usage="%(prog)s --tasks TASK,TASK[,...] [options]",
    )
    options = parse_train_options(
        parser, argv, environment.show_progress(), has_accelerator(), MultiTaskOptions
    )
    results = train_multitask(options)
    if is_main_process():
        print_multitask_summary(results, str(options.training.output_dir))
    _end_process_group()
    return 0


def print_multitask_summary(results: dict[str, Any], output_dir: str) -> None:
    lines = ["", f"smart-tune: {results['task']} with {results['method']} (seed {results['seed']}) finished"]
    for name, entry in results["tasks"].items():
        main = entry["main_metric"]
        value = entry["metrics"].get(main)
        shown = f"{value:.4f}" if value is not None else "-"
        lines.append(f"  {name:<8} {main:<22} {shown}   on {entry['num_examples']} dev examples")
        for split in [k[len("metrics_") :] for k in entry if k.startswith("metrics_dev_")]:  # MNLI's
            value = entry[f"metrics_{split}"].get(main)
            shown = f"{value:.4f}" if value is not None else "-"
            lines.append(f"  {'':<8} {main:<22} {shown}   on {entry[f'{split}_examples']} {split} examples")
    for name, value in results["metrics"].items():
        lines.append(f"  {name:<31} {value:.4f}")
    lines += _summary_tail(
        results, output_dir, f"  (train --model {output_dir} --task T fine-tunes one task)"
    )
    print("\n".join(lines))


def _summary_tail(results: dict[str, Any], output_dir: str, saved_note: str = "") -> list[str]:
    """The last lines of a run's summary: time, where the model and the results are."""
    return [
        f"  train time   {results['train_runtime_s'] / 60:.1f} min ({results['global_steps']} steps)",
        f"  model saved  {output_dir}{saved_note}"
        if results["arguments"]["run"]["save_model"]
        else "  model        not saved (--no-save-model)",
        f"  results      {os.path.join(output_dir, 'results.json')}",
    ]


def _end_process_group() -> None:
    """Under several processes, leave together: wait until every rank is done (rank 0 writes the results
    last), then take the process group down. A rank that exits while another still holds the group can
    abort at interpreter exit ("terminate called without an active exception"), failing a run that
    succeeded."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def print_run_summary(results: dict[str, Any], output_dir: str) -> None:
    lines = [
        "",
        f"smart-tune: {results['task']} with {results['method']} (seed {results['seed']}) finished",
        f"  model        {results['model']}",
    ]
    by_split = dict(results.get("num_examples_by_split") or {})
    main_split = next(iter(by_split), "dev")
    if results.get("holdout_examples"):  # the held-out part of train that selected the kept epoch
        by_split["holdout"] = results["holdout_examples"]
    baseline = results.get("baseline") or {}
    for name, value in results["metrics"].items():
        # A metric of another split than the main one ends in "_<split>" (see run.train).
        split = next((s for s in by_split if s != main_split and name.endswith(f"_{s}")), main_split)
        count = by_split.get(split, results["num_examples"])
        line = f"  {name:<12} {value:.4f}   on {count} {split.replace('_', ' ')} examples"
        if split == main_split and name in baseline.get("metrics", {}):
            line += f'   (always "{baseline["label"]}": {baseline["metrics"][name]:.4f})'
        lines.append(line)
    if not results["metrics"]:
        lines.append("  (no dev split: nothing scored)")
    elif baseline:
        lines.append(
            "  in brackets: the score of always answering the most frequent training label, which a model "
            "that learned nothing gets"
        )
    lines += _summary_tail(results, output_dir)
    print("\n".join(lines))


def _scoring_parser(command: str, description: str) -> argparse.ArgumentParser:
    """The options ``evaluate`` and ``predict`` share: a trained model, a task, where its data is."""
    p = argparse.ArgumentParser(
        prog=f"smart-tune {command}",
        description=description,
        epilog=f"example:\n  smart-tune {command} --model-dir runs/quickstart/smart --task sst2 "
        "--data-dir ../shared/data/glue",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model-dir", required=True)
    p.add_argument("--task", help="the task whose split to read (or --file)")
    p.add_argument(
        "--file",
        help="a file of your own (.csv, .tsv, .jsonl, .json) instead of a task's split, read with the labels "
        "of the model (fine-tuned with --train-file) and the columns its results.json records",
    )
    p.add_argument(
        "--text-columns", help="with --file: its text column(s), if not those the model trained on"
    )
    p.add_argument(
        "--label-column", help="with --file: its label column, if not the one the model trained on"
    )
    p.add_argument("--data-dir", help="folder with the original files (else $GLUE_DIR etc., else the hub)")
    p.add_argument("--max-length", type=int, default=128, help="maximum tokens per example (default 128)")
    p.add_argument("--batch-size", type=int, default=64, help="examples per forward pass (default 64)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code to run")
    p.add_argument(
        "--tokenizer",
        help="the model's tokenizer (name or folder), for a model folder without tokenizer files",
    )
    return p


def _task_or_file(a: argparse.Namespace, **task_only: str | bool) -> None:
    """evaluate/predict read a task's split (--task) or a file of your own (--file), not both; each
    kind's own flags only with it (``task_only``: {name: the flag, when given})."""
    if bool(a.task) == bool(a.file):
        raise ConfigError("give --task NAME or --file FILE (your own data), one of them")
    if a.file:
        given = [flag for flag in (a.data_dir and "--data-dir", *task_only.values()) if flag]
        if given:
            raise ConfigError(f"conflicting options: {given[0]} is for --task; --file is read as it is")
    else:
        given = [
            flag for flag, v in (("--text-columns", a.text_columns), ("--label-column", a.label_column)) if v
        ]
        if given:
            raise ConfigError(
                f"conflicting options: {given[0]} is for --file; --task {a.task} has its own columns"
            )


def cmd_evaluate(argv: list[str]) -> int:
    from .scoring import evaluate

    p = _scoring_parser("evaluate", "Score a fine-tuned model on a split.")
    p.add_argument("--split", default="dev", help="split to score (default dev)")
    p.add_argument(
        "--by-agreement",
        action="store_true",
        help="also the accuracy per annotator-agreement bucket (5/0/0, 4/1/0, 3/2/0, 3/1/1, other: the "
        "paper's error analysis), for SNLI read from its files (--task snli --split test)",
    )
    a = p.parse_args(argv)
    _task_or_file(a, split=a.split != "dev" and "--split", by_agreement=a.by_agreement and "--by-agreement")
    out = evaluate(
        a.model_dir,
        a.task,
        a.split,
        a.data_dir,
        a.max_length,
        a.batch_size,
        a.trust_remote_code,
        a.tokenizer,
        a.by_agreement,
        a.file,
        a.text_columns,
        a.label_column,
    )
    print(json.dumps(out, indent=2))
    return 0


def cmd_predict(argv: list[str]) -> int:
    from .scoring import predict

    p = _scoring_parser("predict", "Write test-set predictions in the GLUE submission format.")
    p.add_argument("--output-dir", help="where to write (default MODEL_DIR/predictions)")
    a = p.parse_args(argv)
    _task_or_file(a)
    for path in predict(
        a.model_dir,
        a.task,
        a.output_dir,
        a.data_dir,
        a.max_length,
        a.batch_size,
        a.trust_remote_code,
        a.tokenizer,
        a.file,
        a.text_columns,
        a.label_column,
    ):
        print(f"wrote {path}")
    return 0


# What a compare config file may hold beside a run's options.
COMPARE_KEYS = frozenset({"tasks", "methods", "seeds", "variants", "grid", "no_report"})


def compare_parser():
    """``train``'s parser plus what compare adds: methods, seeds, a grid, no report."""
    from .options import training_parser

    parser = training_parser(
        "smart-tune compare",
        "Run methods side by side over tasks and seeds, resumably, then summarise.",
        COMPARE_EXAMPLES,
        usage="%(prog)s --task TASK[,TASK...] --methods METHOD,METHOD[,...] [options]",
    )
    parser.add_argument(
        "--methods", default=argparse.SUPPRESS, help="comma-separated methods or variant names"
    )
    parser.add_argument("--seeds", default=argparse.SUPPRESS, help="comma-separated seeds (default 1,2,3)")
    parser.add_argument(
        "--grid",
        action="append",
        default=argparse.SUPPRESS,
        metavar="[METHOD:]KEY=V1,V2[;KEY=...]",
        help="tune each method on a small grid (repeatable; without METHOD: every method); every method's "
        "grid must be as large; the report keeps, per task, each method's point with the best mean score on "
        "the --validation-from-train part, e.g. --grid 'learning_rate=2e-5,5e-5' --grid 'smart:smart_lambda=1,3' "
        "--grid 'vanilla:num_train_epochs=3,6'",
    )
    parser.add_argument(
        "--no-report",
        action="store_true",
        default=argparse.SUPPRESS,
        help="train only; leave the summary to `smart-tune report` (a sweep of many compare jobs whose "
        "report also reads other folders' runs would otherwise rewrite it from this folder alone)",
    )
    return parser


def _compare_plan(chosen: dict[str, Any]) -> dict[str, Any]:
    """compare's own options taken out of ``chosen`` (which keeps the runs' shared options), checked."""
    from .grid import normalise_grids

    plan = {
        "tasks": _split_list(chosen.pop("task", None) or chosen.pop("tasks", None)),
        # Given but naming nothing ("" or ","): refused, not read as the default.
        "methods": _split_list(chosen.pop("methods")) if "methods" in chosen else ["vanilla", "r3f", "smart"],
        "seeds": _split_list(chosen.pop("seeds")) if "seeds" in chosen else ["1", "2", "3"],
        "variants": chosen.pop("variants", None) or {},
        "grids": normalise_grids(chosen.pop("grid", None)),
        "output_dir": chosen.pop("output_dir", None),
        "no_report": chosen.pop("no_report", False),
    }
    chosen.pop("config", None)
    if not plan["tasks"]:
        raise ConfigError("compare needs --task T1[,T2...]")
    if not plan["methods"]:
        raise ConfigError("--methods names no method; give one or more, e.g. --methods vanilla,smart")
    if not plan["seeds"]:
        raise ConfigError("--seeds names no seed; give one or more, e.g. --seeds 1,2,3")
    try:
        plan["seeds"] = [int(s) for s in plan["seeds"]]
    except ValueError:
        raise ConfigError(f"--seeds must be whole numbers, got {','.join(plan['seeds'])!r}") from None
    if not plan["output_dir"]:
        raise ConfigError("compare needs --output-dir")
    for key in ("seed", "method", "resume", "overwrite_output_dir"):
        if key in chosen:
            raise ConfigError(f"--{key.replace('_', '-')} is set per run by compare; leave it out")
    return plan


def cmd_compare(argv: list[str]) -> int:
    from pathlib import Path

    from .grid import expand, write_grid
    from .options import TRAINING_FIELDS, chosen_options, field_names, layered, validate_options
    from .report import write_report
    from .sweep import plan_runs, run_sweep

    chosen = chosen_options(compare_parser(), argv, COMPARE_KEYS)
    plan = _compare_plan(chosen)
    methods, variants = plan["methods"], plan["variants"]
    if plan["grids"]:
        methods, variants, index = expand(methods, plan["grids"], variants, TRAINING_FIELDS)
    # Options every run would refuse are refused once, before any run folder is made.
    for r in plan_runs(Path(plan["output_dir"]), plan["tasks"], methods, plan["seeds"], chosen, variants):
        validate_options(layered(field_names(r["options"])))
    if plan["grids"]:
        if chosen.get("validation_from_train") is None:
            print("note: --grid without --validation-from-train chooses each method's setting on dev")
        write_grid(plan["output_dir"], index)
    failures = run_sweep(plan["output_dir"], plan["tasks"], methods, plan["seeds"], chosen, variants)
    if not plan["no_report"]:
        try:
            paths = write_report(plan["output_dir"])
            print(f"summary: {paths['markdown']}  {paths['json']}  {paths['chart']}")
        except ConfigError as exc:
            print(f"no summary: {exc}")
    if failures:
        raise SmartTuneError(
            f"{len(failures)} run(s) failed; their train.log says why; run compare again to retry"
        )
    return 0


def _seeds(text: str) -> list[int]:
    try:
        return [int(n) for n in _split_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be whole numbers, got {text!r}") from None


def _rename(text: str) -> dict[str, str]:
    # Split at the last "=": a grid point's name has "=" in it (smart@lr=5e-05), and the report then
    # says in one line why a point cannot be renamed, rather than that the option is malformed.
    pairs = [item.rpartition("=")[::2] for item in _split_list(text)]
    if any(not old or not new for old, new in pairs):
        raise argparse.ArgumentTypeError(f"--rename takes OLD=NEW[,OLD2=NEW2], got {text!r}")
    return dict(pairs)


def cmd_report(argv: list[str]) -> int:
    from .report import write_report

    p = argparse.ArgumentParser(
        prog="smart-tune report",
        description="Rebuild summary.md/json/png from finished runs (and, for a compare with --grid, "
        "grid_choice.json: each method's chosen point, written by a report with no filter only).",
        epilog="examples:\n  smart-tune report runs/cmp\n"
        "  smart-tune report runs/ablation --include runs/headline --tasks rte,mrpc "
        "--methods vanilla,smart,smart-no-rs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", help="where the runs are and the summary goes")
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="FOLDER[,...]",
        help="count these folders' runs too (repeatable); a folder of a compare with --grid brings its "
        "grid: its methods are reported at their chosen points, as its own report shows them",
    )
    p.add_argument("--tasks", type=_split_list, help="only these tasks (comma-separated)")
    p.add_argument("--methods", type=_split_list, help="only these methods (comma-separated)")
    p.add_argument("--seeds", type=_seeds, help="only these seeds (comma-separated)")
    p.add_argument(
        "--rename",
        type=_rename,
        default={},
        metavar="OLD=NEW[,...]",
        help="call method OLD by the name NEW in this report (before the filters); a method of the "
        "folder's grid too, not one of its points",
    )
    a = p.parse_args(argv)
    include = [f for item in a.include for f in _split_list(item)]
    paths = write_report(a.folder, include, a.tasks, a.methods, a.seeds, a.rename)
    for kind, path in paths.items():
        print(f"{kind:<9} {path}")
    return 0


COMMANDS = {
    "train": (cmd_train, "fine-tune a model (SMART by default) on a task or your data"),
    "multitask": (
        cmd_multitask,
        "train one encoder on several tasks at once (MT-DNN), then fine-tune per task",
    ),
    "evaluate": (cmd_evaluate, "score a fine-tuned model on a split; prints JSON"),
    "predict": (cmd_predict, "write test predictions in the GLUE submission format"),
    "compare": (cmd_compare, "run methods × tasks × seeds side by side (resumable) and summarise"),
    "report": (cmd_report, "rebuild the summary and chart of a compare folder"),
}


def usage() -> str:
    lines = [
        f"smart-tune {__version__}: SMART fine-tuning for Hugging Face models",
        "",
        "usage: smart-tune COMMAND [options]    (smart-tune COMMAND --help for each)",
        "",
        "commands:",
    ]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "example:", "  smart-tune train --task rte --data-dir ../shared/data/glue"]
    return "\n".join(lines)


# What the commands need beyond the library (the [cli] extra of pyproject.toml), by import name.
CLI_MODULES = ("datasets", "sklearn", "scipy", "matplotlib", "yaml")


def missing_cli_extra() -> list[str]:
    """The [cli] extra's modules that cannot be imported here (found without importing them)."""
    import importlib.util

    return [name for name in CLI_MODULES if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"smart-tune {__version__}")
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"error: unknown command '{argv[0]}'; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    missing = missing_cli_extra()
    if missing:
        print(
            f"error: the command line needs smart-tune's [cli] extra (missing: {', '.join(missing)}): "
            "pip install 'smart-tune[cli]'",
            file=sys.stderr,
        )
        return 2
    try:
        return command[0](argv[1:])
    except Interrupted as exc:  # SIGTERM or Ctrl-C during training: checkpoint saved, 128 + signal
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except SmartTuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
