"""Options (issue 19): typed dataclasses parsed by HfArgumentParser, and where each default comes from.

Lowest first: the dataclasses' defaults < the recipe (recipe.py) < the method's preset < the --config
file < the flags typed."""

import pytest

from smart_tune.config import SmartTrainingArguments
from smart_tune.errors import ConfigError
from smart_tune.options import (
    MultiTaskOptions,
    RunOptions,
    layered,
    parse_train_options,
    training_parser,
)
from smart_tune.recipe import RECIPE, run_defaults


def parse(*argv, options_class=RunOptions):
    parser = training_parser("t", "", "", options_class)
    return parse_train_options(parser, list(argv), options_class=options_class)


def test_each_layer_beats_the_one_below(tmp_path):
    field_default = SmartTrainingArguments.__dataclass_fields__["learning_rate"].default
    assert RECIPE["learning_rate"] != field_default
    plain = parse("--task", "rte")
    assert plain.training.learning_rate == RECIPE["learning_rate"]  # recipe > dataclass
    assert plain.training.smart_dropout == "independent"  # the dataclass default, no layer above it
    cfg = tmp_path / "c.yaml"
    cfg.write_text("learning_rate: 3.0e-5\nsmart_dropout: shared\nmethod: smart-paper\n")
    from_file = parse("--task", "rte", "--config", str(cfg))
    assert from_file.training.learning_rate == 3e-5  # config > recipe
    assert from_file.training.smart_dropout == "shared"  # config > preset (smart-paper: independent)
    flagged = parse(
        "--task", "rte", "--config", str(cfg), "--learning-rate", "4e-5", "--smart-dropout", "off"
    )
    assert flagged.training.learning_rate == 4e-5 and flagged.training.smart_dropout == "off"  # flag > config
    assert flagged.run.method == "smart-paper" and flagged.chosen["learning_rate"] == 4e-5


def test_a_preset_beats_the_dataclass_default():
    options = parse("--task", "rte", "--method", "r3f")
    assert options.training.smart_method == "r3f" and options.run.method == "r3f"


def test_run_options_are_typed():
    options = parse("--task", "mrpc", "--max-length", "64", "--train-fraction", "0.5", "--no-save-model")
    assert isinstance(options.run, RunOptions) and isinstance(options.training, SmartTrainingArguments)
    assert (
        options.run.max_length == 64 and options.run.train_fraction == 0.5 and options.run.save_model is False
    )
    assert options.training.output_dir.endswith("mrpc-smart-seed42")


def test_selection_defaults_follow_the_run():
    holdout = parse("--task", "cola", "--validation-from-train", "0.1").training
    assert holdout.metric_for_best_model == "eval_holdout_matthews_correlation"
    assert holdout.load_best_model_at_end and holdout.eval_strategy == "epoch"
    dev = parse("--task", "cola").training
    assert dev.metric_for_best_model == "eval_matthews_correlation"
    mine = parse("--task", "cola", "--metric-for-best-model", "eval_loss", "--greater-is-better", "false")
    assert mine.training.metric_for_best_model == "eval_loss"  # what the user sets is kept
    steps = parse("--task", "rte", "--eval-strategy", "steps", "--eval-steps", "5").training
    assert steps.save_strategy == "steps"  # a step's evaluation needs that step's checkpoint


@pytest.mark.parametrize("command", [("--task", "rte"), ("--tasks", "rte,stsb")], ids=["train", "multitask"])
def test_evaluating_every_few_steps_saves_at_those_steps(command):
    """The kept model is an evaluated step's checkpoint: saving must happen at the steps evaluated, not
    at TrainingArguments' default of every 500 steps (which passes its multiple-of check)."""
    options_class = MultiTaskOptions if command[0] == "--tasks" else RunOptions
    steps = parse(*command, "--eval-strategy", "steps", "--eval-steps", "2", options_class=options_class)
    assert steps.training.save_strategy == "steps" and steps.training.save_steps == 2
    unset = parse(*command, "--eval-strategy", "steps", "--logging-steps", "3", options_class=options_class)
    assert unset.training.eval_steps == 3 and unset.training.save_steps == 3  # eval_steps from logging
    mine = parse(
        *command, "--eval-strategy", "steps", "--eval-steps", "2", "--save-steps", "4",
        options_class=options_class,
    )  # fmt: skip
    assert mine.training.save_steps == 4  # what the user sets is kept


def test_run_defaults_without_anything_to_score():
    defaults = run_defaults({}, "accuracy", has_dev=False, progress=True, accelerator=False)
    assert defaults == {
        "dataloader_pin_memory": False,
        "disable_tqdm": False,
        "eval_strategy": "no",
        "save_strategy": "epoch",
    }


def test_output_dir_names_the_label_and_seed():
    options = layered({"task": "rte", "label": "smart-fit", "seed": 3})
    assert options["output_dir"].endswith("rte-smart-fit-seed3")


def test_multitask_options():
    options = parse("--tasks", "RTE,mrpc", "--task-sampling", "uniform", options_class=MultiTaskOptions)
    assert options.run.task_names() == ["rte", "mrpc"] and options.run.task_sampling == "uniform"
    assert options.training.metric_for_best_model == "eval_mean_main"
    assert options.training.output_dir.endswith("rte+mrpc-smart-seed42")
    with pytest.raises(ConfigError, match="not --task"):
        parse("--tasks", "rte,mrpc", "--task", "rte", options_class=MultiTaskOptions)
    with pytest.raises(ConfigError, match="per task"):
        parse("--tasks", "rte,mrpc", "--train-fraction", "0.5", options_class=MultiTaskOptions)


def test_train_does_not_take_multitask_flags():
    with pytest.raises(SystemExit):
        parse("--task", "rte", "--tasks", "rte,mrpc")


def test_both_spellings_parse_help_shows_dashes_and_errors_stay_short(capsys):
    dashed = parse("--task", "rte", "--max-train-samples", "8", "--smart-lambda", "3")
    underscored = parse("--task", "rte", "--max_train_samples", "8", "--smart_lambda", "3")
    assert dashed.run.max_train_samples == underscored.run.max_train_samples == 8
    assert dashed.training.smart_lambda == underscored.training.smart_lambda == 3
    parser = training_parser("smart-tune train", "", "")
    shown = parser.format_help()
    assert "--max-train-samples" in shown and "--max_train_samples" not in shown
    with pytest.raises(SystemExit):
        parser.parse_args(["--bogus"])
    err = capsys.readouterr().err.strip().splitlines()
    # The usage line and the error: not the 60 options argparse would list above it.
    assert err == [
        "usage: smart-tune train --task TASK [options]",
        "smart-tune train: error: unrecognized arguments: --bogus",
    ]


@pytest.mark.parametrize(
    "argv, flag",
    [
        # With --task, a flag of your own files was dropped without a word: RTE's dev scored, not dev.csv.
        (["--task", "rte", "--validation-file", "dev.csv"], "--validation-file"),
        (["--task", "rte", "--test-file", "test.csv"], "--test-file"),
        (["--task", "rte", "--text-columns", "question"], "--text-columns"),
        (["--task", "rte", "--label-column", "y"], "--label-column"),
        (["--task", "stsb", "--regression"], "--regression"),
        # With your own files, a flag of the tasks' files was dropped as silently.
        (["--train-file", "train.csv", "--data-dir", "glue"], "--data-dir"),
        (["--train-file", "train.csv", "--eval-split", "test"], "--eval-split"),
        (["--train-file", "train.csv", "--train-split", "dev"], "--train-split"),
    ],
)
def test_flags_of_the_other_kind_of_data_are_refused(argv, flag):
    with pytest.raises(ConfigError) as info:
        parse(*argv)
    assert str(info.value).startswith(f"conflicting options: {flag} ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "argv,asked",
    [
        (["--task", "rte", "--train-split", "dev"], "which it scores"),  # scored and selected on: dev
        (["--task", "STS-B", "--train-split", "dev", "--validation-from-train", "0.1"], "which it scores"),
        (["--task", "mnli", "--train-split", "dev_mismatched"], "which it scores"),  # MNLI's second dev set
        (
            ["--task", "snli", "--train-split", "test", "--eval-split", "dev,test"],
            "which --eval-split scores",
        ),
        (
            ["--task", "snli", "--train-split", "dev", "--eval-split", "test", "--also-evaluate", "SNLI"],
            "--also",
        ),
    ],
)
def test_train_refuses_to_train_on_a_split_it_scores(argv, asked):
    with pytest.raises(ConfigError) as info:
        parse(*argv)
    message = str(info.value)
    assert message.startswith(f"--train-split {argv[3]} is ") and asked in message, message
    assert "the scores would be on the examples it trains on" in message and "\n" not in message


def test_train_takes_a_split_it_does_not_score():
    """Study 4's shape: train on SNLI's dev set, score its test set and ANLI's dev sets."""
    options = parse(
        "--task", "snli", "--train-split", "dev", "--eval-split", "test", "--also-evaluate", "anli_r1"
    )
    assert options.run.train_split == "dev"


@pytest.mark.parametrize("tasks", ["rte,stsb", "stsb,rte", "rte,mnli"])
def test_multitask_refuses_to_train_on_a_dev_set_it_scores(tasks):
    """multitask scores every task's dev sets; a --train-split that is one of them, for any task (not only
    the first), is refused."""
    split = "dev_matched" if "mnli" in tasks else "dev"
    with pytest.raises(ConfigError) as info:
        parse("--tasks", tasks, "--train-split", split, options_class=MultiTaskOptions)
    message = str(info.value)
    assert (
        message.startswith(f"--train-split {split} is ")
        and "multitask scores every task's dev set" in message
    )
    assert "\n" not in message


def test_sample_seed_needs_max_train_samples_and_a_whole_number():
    assert parse("--task", "rte", "--max-train-samples", "8", "--sample-seed", "0").run.sample_seed == 0
    with pytest.raises(ConfigError, match="--sample-seed draws the examples of --max-train-samples N"):
        parse("--task", "rte", "--sample-seed", "0")
    with pytest.raises(ConfigError, match="--sample-seed must be"):
        parse("--task", "rte", "--max-train-samples", "8", "--sample-seed", "-1")
