"""The command line end to end on a tiny model and real RTE: train, evaluate, predict, compare, report,
and every bad input ending in one line and a non-zero exit, with nothing written."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import shared_data_dir
from smart_tune.cli import main

GLUE = str(shared_data_dir() / "glue")
FAST = ["--max-train-samples", "32", "--max-steps", "4", "--logging-steps", "1", "--disable-tqdm", "true"]


def test_train_evaluate_predict(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--task",
            "RTE",
            "--data-dir",
            GLUE,
            "--model",
            tiny_model_dir,
            "--seed",
            "3",
            "--output-dir",
            str(out),
            *FAST,
        ]
    )
    assert code == 0
    r = json.loads((out / "results.json").read_text())
    assert r["task"] == "rte" and r["method"] == "smart" and r["seed"] == 3
    assert r["model"] == tiny_model_dir and r["num_examples"] == 277
    assert set(r["metrics"]) == {"accuracy"} and 0 <= r["metrics"]["accuracy"] <= 1
    assert r["train_runtime_s"] > 0 and r["global_steps"] == 4
    assert r["arguments"]["training"]["smart_method"] == "smart"
    assert r["arguments"]["run"]["max_train_samples"] == 32
    assert any("smart_adv_loss" in h for h in r["log_history"])
    environment = r["environment"]  # what a run time needs beside it to be compared
    assert environment["processor"] and environment["cpus"] >= 1 and environment["threads"] >= 1
    assert environment["gpu"] is None and environment["cuda"] is False
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (out / name).exists(), name
    assert not list(out.glob("checkpoint-*"))  # removed once the run finished
    screen = capsys.readouterr().out
    assert "accuracy" in screen and str(out) in screen

    assert main(["evaluate", "--model-dir", str(out), "--task", "rte", "--data-dir", GLUE]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["num_examples"] == 277
    assert scored["metrics"]["accuracy"] == pytest.approx(r["metrics"]["accuracy"], abs=1e-9)

    assert main(["predict", "--model-dir", str(out), "--task", "rte", "--data-dir", GLUE]) == 0
    lines = (out / "predictions" / "RTE.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction" and len(lines) == 3001
    assert lines[1].split("\t")[0] == "0"
    assert {line.split("\t")[1] for line in lines[1:]} <= {"entailment", "not_entailment"}


def test_regression_task_and_custom_files(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "stsb"
    assert (
        main(
            [
                "train",
                "--task",
                "sts-b",
                "--data-dir",
                GLUE,
                "--model",
                tiny_model_dir,
                "--method",
                "r3f",
                "--output-dir",
                str(out),
                "--eval-split",
                "dev",
                *FAST,
            ]
        )
        == 0
    )
    r = json.loads((out / "results.json").read_text())
    assert set(r["metrics"]) == {"pearson", "spearman"} and r["method"] == "r3f"

    data = tmp_path / "mine.csv"
    data.write_text(
        "question,answer,label\n" + "".join(f"q{i},a {i},{'yes' if i % 2 else 'no'}\n" for i in range(20))
    )
    out = tmp_path / "custom"
    assert (
        main(
            [
                "train",
                "--train-file",
                str(data),
                "--validation-file",
                str(data),
                "--text-columns",
                "question,answer",
                "--model",
                tiny_model_dir,
                "--output-dir",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    r = json.loads((out / "results.json").read_text())
    assert r["task"] == "custom" and "accuracy" in r["metrics"] and r["num_examples"] == 20


def test_own_files_train_with_a_test_file_then_evaluate_and_predict_them(tiny_model_dir, tmp_path, capsys):
    """A model fine-tuned on your files scores and predicts files of yours: train's --test-file is predicted
    (and scored, being labelled) by the kept model; evaluate --file and predict --file read a file with the
    model's labels and the columns its results.json records, and agree with train's own numbers."""
    rows = "".join(f"q{i},a {i},{'yes' if i % 3 else 'no'}\n" for i in range(24))
    data = tmp_path / "mine.csv"
    data.write_text("question,answer,label\n" + rows)
    unlabelled = tmp_path / "new.jsonl"
    unlabelled.write_text(
        "".join(json.dumps({"question": f"n{i}", "answer": f"b {i}"}) + "\n" for i in range(5))
    )
    out = tmp_path / "custom"
    argv = ["train", "--train-file", str(data), "--validation-file", str(data), "--test-file", str(data)]
    argv += ["--text-columns", "question,answer", "--model", tiny_model_dir, "--output-dir", str(out), *FAST]
    assert main(argv) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["num_examples_by_split"]["test"] == 24
    assert r["metrics"]["accuracy_test"] == pytest.approx(r["metrics"]["accuracy"], abs=1e-9)  # same file
    written = (out / "predictions" / "mine.tsv").read_text().splitlines()
    assert written[0] == "index\tprediction" and [w.split("\t")[0] for w in written[1:]] == [
        str(i) for i in range(24)
    ]
    assert {w.split("\t")[1] for w in written[1:]} <= {"no", "yes"}  # your label names
    capsys.readouterr()

    assert main(["evaluate", "--model-dir", str(out), "--file", str(data)]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["task"] == "custom" and scored["num_examples"] == 24 and scored["split"] == str(data)
    assert scored["metrics"]["accuracy"] == pytest.approx(r["metrics"]["accuracy"], abs=1e-6)

    os.remove(out / "predictions" / "mine.tsv")
    assert main(["predict", "--model-dir", str(out), "--file", str(data)]) == 0
    assert (out / "predictions" / "mine.tsv").read_text().splitlines() == written  # train's own predictions
    assert (
        main(
            [
                "predict",
                "--model-dir",
                str(out),
                "--file",
                str(unlabelled),
                "--output-dir",
                str(tmp_path / "p"),
            ]
        )
        == 0
    )
    lines = (tmp_path / "p" / "new.tsv").read_text().splitlines()
    assert len(lines) == 6 and {line.split("\t")[1] for line in lines[1:]} <= {"no", "yes"}


def test_own_regression_files_with_negative_targets_are_scored_and_predicted(
    tiny_model_dir, tmp_path, capsys
):
    """A regression target may be -1: a file of them is scored (not taken for an unlabelled test split),
    and a test file without targets is predicted, unclipped."""
    data = tmp_path / "scores.tsv"
    data.write_text("text\tscore\n" + "".join(f"s{i} w{i % 5}\t{i / 4 - 3}\n" for i in range(20)))
    out = tmp_path / "reg"
    argv = ["train", "--train-file", str(data), "--validation-file", str(data), "--regression"]
    argv += [
        "--text-columns",
        "text",
        "--label-column",
        "score",
        "--model",
        tiny_model_dir,
        "--output-dir",
        str(out),
    ]
    assert main([*argv, *FAST]) == 0
    r = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", "--model-dir", str(out), "--file", str(data)]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["metrics"]["pearson"] == pytest.approx(r["metrics"]["pearson"], abs=1e-5)
    blank = tmp_path / "blank.csv"
    blank.write_text("text,score\nhello w1,\nbye w2,\n")  # no targets: predicted, not scored
    assert main(["predict", "--model-dir", str(out), "--file", str(blank)]) == 0
    values = [
        float(line.split("\t")[1])
        for line in (out / "predictions" / "blank.tsv").read_text().splitlines()[1:]
    ]
    assert len(values) == 2
    capsys.readouterr()
    assert main(["evaluate", "--model-dir", str(out), "--file", str(blank)]) == 2  # scored: targets needed
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "line 2: missing value for column 'score'" in err, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate"], "give --task NAME or --file FILE"),
        (["evaluate", "--task", "rte", "--file", "x.csv"], "give --task NAME or --file FILE"),
        (["evaluate", "--file", "x.csv", "--split", "test"], "--split is for --task"),
        (["evaluate", "--file", "x.csv", "--data-dir", "d"], "--data-dir is for --task"),
        (["predict", "--task", "rte", "--text-columns", "a"], "--text-columns is for --file"),
        (["predict", "--file", "missing.csv"], "missing.csv"),
    ],
)
def test_evaluate_and_predict_take_a_task_or_a_file_of_your_own(
    argv, message, tiny_model_dir, tmp_path, capsys
):
    command, rest = argv[0], argv[1:]
    assert main([command, "--model-dir", tiny_model_dir, *rest]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err


def test_a_run_may_not_write_over_the_model_it_starts_from(tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = sorted(p.name for p in model.iterdir())
    argv = [
        "train",
        "--task",
        "rte",
        "--data-dir",
        GLUE,
        "--model",
        str(model),
        "--output-dir",
        str(model) + "/",
    ]
    assert main([*argv, "--overwrite-output-dir", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is the model the run starts from" in err, err
    assert sorted(p.name for p in model.iterdir()) == before


def test_config_file_and_flags(tiny_model_dir, tmp_path):
    from smart_tune.options import parse_train_options, training_parser

    def parse(argv):
        return parse_train_options(training_parser("t", "", ""), argv)

    cfg = tmp_path / "c.yaml"
    cfg.write_text("task: rte\nlearning-rate: 1.0e-3\nsmart_lambda: 2\nmethod: smart-paper\nepochs: 2\n")
    opts = parse(["--config", str(cfg), "--smart-lambda", "3", "--seed", "7"])
    assert (
        opts.training.learning_rate == 1e-3 and opts.training.smart_lambda == 3.0 and opts.training.seed == 7
    )
    assert (
        opts.training.num_train_epochs == 2
        and opts.training.smart_dropout == "independent"
        and opts.run.method == "smart-paper"
    )
    opts = parse(["--task", "rte", "--smart_method", "r3f"])
    assert opts.run.method == "r3f" and opts.training.smart_method == "r3f"


def run_compare(args, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "smart_tune", "compare", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kw,
    )


def test_compare_kill_resume_and_report(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = [
        "--task",
        "rte",
        "--methods",
        "vanilla,smart",
        "--seeds",
        "1,2",
        "--output-dir",
        str(out),
        "--data-dir",
        GLUE,
        "--model",
        tiny_model_dir,
        *FAST,
    ]
    first = out / "rte" / "vanilla" / "seed-1" / "results.json"
    proc = run_compare(args)
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert first.exists(), proc.communicate()[0] if proc.poll() is not None else "no run finished in time"
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its current run die together
    proc.wait()
    done_before = sorted(p.parent.name + p.parent.parent.name for p in out.rglob("results.json"))
    assert len(done_before) < 4

    proc = run_compare(args)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    assert "rte vanilla seed 1: done already" in log
    results = sorted(out.rglob("results.json"))
    assert len(results) == 4
    for name in ("summary.md", "summary.json", "summary.png"):
        assert (out / name).exists()
    summary = json.loads((out / "summary.json").read_text())
    smart = summary["rte"]["methods"]["smart"]
    assert smart["n"] == 2 and smart["vs_vanilla"]["accuracy"]["n"] == 2
    vals = [json.loads(p.read_text())["metrics"]["accuracy"] for p in results if "smart" in str(p)]
    assert smart["metrics"]["accuracy"]["mean"] == pytest.approx(sum(vals) / 2)
    assert "| smart | 2 |" in (out / "summary.md").read_text()

    (out / "summary.md").unlink()
    assert main(["compare", *args, "--no-report"]) == 0  # every run done: skips them, writes no summary
    assert "rte smart seed 2: done already" in capsys.readouterr().out
    assert not (out / "summary.md").exists()
    assert main(["report", str(out)]) == 0
    assert (out / "summary.md").exists()


# --------------------------------------------------------------------------------------------------
# Bad input: one line, non-zero exit, nothing written.


def write_rte(folder, train_rows, dev_rows=None):
    rte = folder / "RTE"
    rte.mkdir(parents=True)
    header = "index\tsentence1\tsentence2\tlabel\n"
    (rte / "train.tsv").write_text(header + "".join(train_rows))
    ok = ["0\tA man sleeps.\tA man rests.\tentailment\n", "1\tIt rains.\tIt is dry.\tnot_entailment\n"]
    (rte / "dev.tsv").write_text(header + "".join(ok if dev_rows is None else dev_rows))
    return str(folder)


GOOD = ["0\tA man sleeps.\tA man rests.\tentailment\n", "1\tIt rains.\tIt is dry.\tnot_entailment\n"]


def bad_inputs(tmp_path, model_dir):
    return {
        "unknown task": (["--task", "glue-rte-x", "--data-dir", GLUE], "unknown task 'glue-rte-x'"),
        "missing data dir": (["--task", "rte", "--data-dir", str(tmp_path / "nowhere")], "nowhere"),
        "missing file": (["--task", "cola", "--data-dir", write_rte(tmp_path / "d0", GOOD)], "CoLA"),
        "wrong field count": (
            ["--task", "rte", "--data-dir", write_rte(tmp_path / "d1", [*GOOD, "2\tonly two\n"])],
            "train.tsv, line 4",
        ),
        "label outside the set": (
            ["--task", "rte", "--data-dir", write_rte(tmp_path / "d2", [*GOOD, "2\ta\tb\tmaybe\n"])],
            "maybe",
        ),
        "empty split": (
            ["--task", "rte", "--data-dir", write_rte(tmp_path / "d3", GOOD, dev_rows=[])],
            "no examples in the rte dev split",
        ),
        "model that does not load": (
            ["--task", "rte", "--data-dir", GLUE, "--model", str(tmp_path / "no-model")],
            "cannot load model",
        ),
        "conflicting method flags": (
            ["--task", "rte", "--method", "vanilla", "--smart-method", "smart"],
            "conflicting",
        ),
        "resume and overwrite": (["--task", "rte", "--resume", "--overwrite-output-dir"], "conflicting"),
        "task and train file": (["--task", "rte", "--train-file", "x.csv"], "conflicting"),
        "bad smart option": (
            ["--task", "rte", "--data-dir", GLUE, "--smart-dropout", "sometimes"],
            "smart_dropout",
        ),
        "also-evaluate with other labels": (
            ["--task", "rte", "--data-dir", GLUE, "--also-evaluate", "cola"],
            "--also-evaluate cola: cola's labels",
        ),
        # Issue 22: each of these ended in a traceback, trained nonsense with exit 0, or said the wrong thing.
        "batch size 0": (
            ["--task", "rte", "--data-dir", GLUE, "--batch-size", "0"],
            "--batch-size must be a positive whole number; got 0",
        ),
        "negative learning rate": (
            ["--task", "rte", "--data-dir", GLUE, "--learning-rate", "-1"],
            "--learning-rate must be a positive number; got -1.0",
        ),
        "negative seed": (
            ["--task", "rte", "--data-dir", GLUE, "--seed", "-1"],
            "--seed must be a whole number from 0 to 4294967295; got -1",
        ),
        "max length 0": (
            ["--task", "rte", "--data-dir", GLUE, "--max-length", "0"],
            "--max-length must be a positive whole number; got 0",
        ),
        "max length beyond the model's positions": (
            ["--task", "rte", "--data-dir", GLUE, "--max-length", "100000"],
            "--max-length 100000 is more than model",
        ),
        "zero epochs": (
            ["--task", "rte", "--data-dir", GLUE, "--epochs", "0"],
            "--epochs must be a positive number; got 0.0",
        ),
        "zero max steps": (
            ["--task", "rte", "--data-dir", GLUE, "--max-steps", "0"],
            "--max-steps must be a positive whole number",
        ),
        "infinite smart lambda": (
            ["--task", "rte", "--data-dir", GLUE, "--smart-lambda", "inf"],
            "--smart-lambda must be a finite number; got inf",
        ),
        "negative max train samples": (
            ["--task", "rte", "--data-dir", GLUE, "--max-train-samples", "-3"],
            "--max-train-samples must be a positive whole number; got -3",
        ),
        "directory as train file": (
            ["--train-file", str(tmp_path), "--text-columns", "sentence"],
            f"{tmp_path} is a directory",
        ),
        "csv with a repeated column name": (
            ["--train-file", write_file(tmp_path / "dup.csv", "sentence,sentence,label\na,b,x\nc,d,y\n")],
            "dup.csv, line 1: column name(s) 'sentence' appear more than once",
        ),
        "directory as config file": (["--config", str(tmp_path)], f"config file {tmp_path} is a directory"),
    }


def write_file(path, text):
    path.write_text(text)
    return str(path)


def fast_except(args):
    """FAST less the flags a case gives itself (--max-steps 0 must not be overridden by --max-steps 4)."""
    pairs = zip(FAST[::2], FAST[1::2])
    return [item for flag, value in pairs if flag not in args for item in (flag, value)]


@pytest.mark.parametrize(
    "case",
    [
        "unknown task",
        "missing data dir",
        "missing file",
        "wrong field count",
        "label outside the set",
        "empty split",
        "model that does not load",
        "conflicting method flags",
        "resume and overwrite",
        "task and train file",
        "bad smart option",
        "also-evaluate with other labels",
        "batch size 0",
        "negative learning rate",
        "negative seed",
        "max length 0",
        "max length beyond the model's positions",
        "zero epochs",
        "zero max steps",
        "infinite smart lambda",
        "negative max train samples",
        "directory as train file",
        "csv with a repeated column name",
        "directory as config file",
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, tiny_model_dir, capsys):
    args, expected = bad_inputs(tmp_path, tiny_model_dir)[case]
    out = tmp_path / "out"
    code = main(
        ["train", *args, "--output-dir", str(out), "--model", tiny_model_dir, *fast_except(args)]
        if "--model" not in args
        else ["train", *args, "--output-dir", str(out), *fast_except(args)]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("error: ") and "\n" not in err and expected in err, err
    assert not out.exists()


def test_output_dir_with_another_runs_results_is_refused(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": true}')
    code = main(
        [
            "train",
            "--task",
            "rte",
            "--data-dir",
            GLUE,
            "--model",
            tiny_model_dir,
            "--output-dir",
            str(out),
            *FAST,
        ]
    )
    err = capsys.readouterr().err
    assert code != 0 and "holds another run's results" in err and "--overwrite-output-dir" in err
    assert (out / "results.json").read_text() == '{"earlier": true}'
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_resume_on_a_finished_run_says_it_is_finished(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "done"
    out.mkdir()
    (out / "results.json").write_text('{"earlier": true}')
    args = ["train", "--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir, "--output-dir", str(out)]
    code = main([*args, *FAST, "--resume"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err.startswith(f"error: --resume: {out} holds a finished run") and "nothing to resume" in err
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_failed_run_removes_the_folders_it_created(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from smart_tune.errors import DataError
    from smart_tune.trainer import SmartTrainer

    def fails(self, *args, **kwargs):
        raise DataError("failed mid-run")

    monkeypatch.setattr(SmartTrainer, "train", fails)
    args = ["train", "--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir, *FAST]
    code = main([*args, "--output-dir", str(tmp_path / "new" / "run")])
    assert code == 2 and capsys.readouterr().err.strip() == "error: failed mid-run"
    assert not (tmp_path / "new").exists()  # the Trainer had made it, and its parent was made for it

    def another_run_starts_beside_it(self, *args, **kwargs):
        (tmp_path / "shared" / "other-run").mkdir(exist_ok=True)
        raise DataError("failed mid-run")

    monkeypatch.setattr(SmartTrainer, "train", another_run_starts_beside_it)
    assert main([*args, "--output-dir", str(tmp_path / "shared" / "run")]) == 2
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["other-run"]  # the parent stays
    (tmp_path / "mine").mkdir()
    assert main([*args, "--output-dir", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine").is_dir()  # a folder that was there before stays


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_resume_falls_back_from_a_damaged_checkpoint(tmp_path, tiny_model_dir, capsys):
    """A checkpoint marked complete whose model file was truncated later: --resume takes the previous
    complete one; with none left, one line names the file and nothing changes."""
    out = tmp_path / "run"
    args = ["train", "--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir, "--method", "vanilla"]
    args += [*FAST, "--output-dir", str(out), "--keep-checkpoints"]  # saves at steps 2 and 4 (epochs)
    assert main(args) == 0
    (out / "results.json").unlink()  # as if stopped after its last save
    truncate(out / "checkpoint-4" / "model.safetensors")
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"{out / 'checkpoint-4' / 'model.safetensors'} is damaged" in err and "Traceback" not in err
    results = json.loads((out / "results.json").read_text())
    assert results["resumed_at_step"] == 2 and results["global_steps"] == 4

    (out / "results.json").unlink()
    for step in (2, 4):
        truncate(out / f"checkpoint-{step}" / "model.safetensors")
    before = sorted((p.name, p.stat().st_size) for p in out.rglob("*"))
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert err.startswith(f"error: --resume: {out / 'checkpoint-4' / 'model.safetensors'} is damaged")
    assert "--overwrite-output-dir" in err
    assert sorted((p.name, p.stat().st_size) for p in out.rglob("*")) == before


def model_copy(source, folder, without=(), config=None):
    folder.mkdir()
    for path in Path(source).iterdir():
        if path.name not in without:
            shutil.copy(path, folder / path.name)
    if config:
        data = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**data, **config}))
    return str(folder)


def test_evaluate_and_predict_refuse_a_model_without_its_tokenizer(tiny_model_dir, tmp_path, capsys):
    """transformers builds a tokenizer of special tokens alone for such a folder: every word [UNK]."""
    bare = model_copy(tiny_model_dir, tmp_path / "bare", without=("tokenizer.json", "tokenizer_config.json"))
    for command in ("evaluate", "predict"):
        code = main([command, "--model-dir", bare, "--task", "rte", "--data-dir", GLUE])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err, err
        assert err.startswith(f"error: the tokenizer of '{bare}' has no vocabulary") and "--tokenizer" in err
    assert sorted(p.name for p in Path(bare).iterdir()) == ["config.json", "model.safetensors"]
    args = ["evaluate", "--model-dir", bare, "--task", "rte", "--data-dir", GLUE]
    assert main([*args, "--tokenizer", tiny_model_dir]) == 0
    with_tokenizer = json.loads(capsys.readouterr().out)
    assert main(["evaluate", "--model-dir", tiny_model_dir, "--task", "rte", "--data-dir", GLUE]) == 0
    assert with_tokenizer == json.loads(capsys.readouterr().out)


def test_evaluate_warns_when_the_model_was_trained_on_another_task(tiny_model_dir, tmp_path, capsys):
    model = model_copy(tiny_model_dir, tmp_path / "qnli-model")
    (Path(model) / "results.json").write_text(json.dumps({"task": "qnli"}))  # same labels as rte
    assert main(["evaluate", "--model-dir", model, "--task", "rte", "--data-dir", GLUE]) == 0
    lines = capsys.readouterr().err.strip().splitlines()  # the warning, then what is being scored
    assert lines[0] == f"warning: the model in {model} was fine-tuned on qnli (its results.json), not on rte"
    assert [line.startswith("warning:") for line in lines] == [True] + [False] * (len(lines) - 1)


def test_evaluate_refuses_a_model_whose_labels_are_another_tasks(tiny_model_dir, tmp_path, capsys):
    mrpc = {"id2label": {"0": "not_equivalent", "1": "equivalent"}}
    model = model_copy(tiny_model_dir, tmp_path / "mrpc-model", config=mrpc)
    code = main(["evaluate", "--model-dir", model, "--task", "rte", "--data-dir", GLUE])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err == (
        f"error: the model in {model} predicts ['equivalent', 'not_equivalent'], task rte has labels "
        "['entailment', 'not_entailment']"
    )


def labelled_copy(source, folder, names, flip_head=False):
    """A copy of a model whose config names its outputs ``names``; ``flip_head`` reverses the classifier's
    rows too, so that the copy predicts what the source predicts under the other output order."""
    import safetensors.torch

    config = {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}
    path = model_copy(source, folder, config=config)
    if flip_head:
        weights = safetensors.torch.load_file(f"{path}/model.safetensors")
        for key in ("classifier.weight", "classifier.bias"):
            weights[key] = weights[key].flip(0).contiguous()
        safetensors.torch.save_file(weights, f"{path}/model.safetensors", metadata={"format": "pt"})
    return path


def test_scoring_maps_the_models_label_names_onto_the_tasks(tiny_model_dir, tmp_path, capsys):
    """Same label names in another order (e.g. a WNLI head, not_entailment first, scored on RTE): each
    output is read by its name, not its position; default names (LABEL_i) are taken in the task's order."""
    names = ("entailment", "not_entailment")
    models = {
        "default": tiny_model_dir,
        "named": labelled_copy(tiny_model_dir, tmp_path / "named", names),
        "reversed": labelled_copy(tiny_model_dir, tmp_path / "reversed", names[::-1], flip_head=True),
        "renamed": labelled_copy(tiny_model_dir, tmp_path / "renamed", names[::-1]),
    }
    scored = {}
    for name, model in models.items():
        out = tmp_path / f"predictions-{name}"
        args = ["--model-dir", model, "--task", "rte", "--data-dir", GLUE]
        assert main(["evaluate", *args]) == 0
        metrics = json.loads(capsys.readouterr().out)
        assert main(["predict", *args, "--output-dir", str(out)]) == 0
        capsys.readouterr()
        scored[name] = (metrics, sorted((p.name, p.read_text()) for p in out.rglob("*") if p.is_file()))
    assert scored["default"][1] and scored["named"] == scored["default"] == scored["reversed"]
    assert scored["renamed"] != scored["default"]  # the same outputs under swapped names: other answers


def test_evaluate_refuses_a_head_that_does_not_fit_the_task(tiny_model_dir, capsys):
    code = main(["evaluate", "--model-dir", tiny_model_dir, "--task", "stsb", "--data-dir", GLUE])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert err == (
        f"error: the model in {tiny_model_dir} has a head for 2 labels (LABEL_0, LABEL_1), task stsb "
        "needs 1 output (a regression score): it was fine-tuned for another task"
    )


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--max-length", "0"], "--max-length must be a positive whole number; got 0"),
        (["--batch-size", "0"], "--batch-size must be a positive whole number; got 0"),
        (["--max-length", "100000"], "--max-length 100000 is more than model"),
    ],
)
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_scoring_options_out_of_range(command, flags, expected, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "predictions"
    args = [command, "--model-dir", tiny_model_dir, "--task", "rte", "--data-dir", GLUE, *flags]
    code = main([*args, "--output-dir", str(out)] if command == "predict" else args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and expected in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--methods", ""], "--methods names no method"),
        (["--methods", ","], "--methods names no method"),
        (["--seeds", ""], "--seeds names no seed"),
        (["--seeds", "1,two"], "--seeds must be whole numbers"),
        (["--batch-size", "0"], "--batch-size must be a positive whole number"),
        (["--smart-lambda", "inf"], "--smart-lambda must be a finite number"),
    ],
)
def test_compare_bad_input_is_one_line_and_makes_no_folder(flags, expected, tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--task", "rte", "--data-dir", GLUE, "--output-dir", str(out), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and expected in err, err
    assert not out.exists()


def test_process_exit_code_and_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "smart_tune", "train", "--task", "nope"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown task 'nope'")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--smart-lambda" in text and "--task" in text
    assert main([]) == 0 and "compare" in capsys.readouterr().out


def test_one_seed_means_one_initial_model(tiny_base_model_dir, tmp_path):
    """The new classification head is initialised from the seed: the same seed twice trains identically,
    another seed starts elsewhere."""
    first_losses = []
    for n, seed in enumerate(["3", "3", "4"]):
        out = tmp_path / f"run-{n}"
        args = [
            "train",
            "--task",
            "rte",
            "--data-dir",
            GLUE,
            "--model",
            tiny_base_model_dir,
            "--method",
            "vanilla",
        ]
        assert main([*args, *FAST, "--seed", seed, "--output-dir", str(out), "--no-save-model"]) == 0
        history = json.loads((out / "results.json").read_text())["log_history"]
        first_losses.append([e["loss"] for e in history if "loss" in e])
    # Same seed: the same losses up to float rounding. Not bit for bit: a BLAS may split a reduction
    # across its threads differently when the machine is loaded (this failed once beside two sweeps).
    # 1e-6 is more than 1000 times smaller than the gap between seeds 3 and 4 (about 2.5e-3).
    assert first_losses[0] == pytest.approx(first_losses[1], rel=0, abs=1e-6)
    assert abs(first_losses[0][0] - first_losses[2][0]) > 1e-4


def test_train_on_snli_dev_score_snli_test_and_anli(tiny_model_dir, tmp_path):
    """Study 4's shape: train on a class-balanced fraction of SNLI dev, score SNLI test and, with
    --also-evaluate, ANLI rounds with the same three labels."""
    out = tmp_path / "snli"
    data = str(shared_data_dir())  # the folder holding snli/ and anli/
    args = ["train", "--task", "snli", "--data-dir", data, "--model", tiny_model_dir, "--method", "vanilla"]
    args += ["--train-split", "dev", "--train-fraction", "0.01", "--eval-split", "test"]
    args += ["--also-evaluate", "anli_r1,anli_r2:dev", "--max-steps", "2", "--disable-tqdm", "true"]
    assert main([*args, "--output-dir", str(out), "--no-save-model"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"accuracy", "accuracy_anli_r1_dev", "accuracy_anli_r2_dev"}
    assert results["num_examples_by_split"] == {"test": 9824, "anli_r1_dev": 1000, "anli_r2_dev": 1000}
    assert results["num_train_examples"] == 98  # 1% of each class of SNLI dev, rounded: 33 + 32 + 33


def test_evaluate_refuses_an_encoder_without_a_trained_head(tiny_base_model_dir, capsys):
    args = ["evaluate", "--model-dir", tiny_base_model_dir, "--task", "rte", "--data-dir", GLUE]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "has no classification head" in err and "\n" not in err


def test_predict_writes_no_file_when_a_later_split_fails(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """MNLI has two test splits: a failure on the second leaves no half submission (here RTE with a
    second, missing test split stands in for MNLI, which ../shared/data lacks)."""
    import dataclasses

    from smart_tune import data, tasks
    from smart_tune.errors import DataError

    rte = tasks.get_task("rte")
    monkeypatch.setattr(
        tasks, "get_task", lambda name: dataclasses.replace(rte, test_splits=("test", "test2"))
    )
    load_split = data.load_split

    def second_missing(task, split, data_dir=None):
        if split == "test2":
            raise DataError("test2.tsv: no such file")
        return load_split(task, split, data_dir)

    monkeypatch.setattr(data, "load_split", second_missing)
    out = tmp_path / "predictions"
    args = [
        "predict",
        "--model-dir",
        tiny_model_dir,
        "--task",
        "rte",
        "--data-dir",
        GLUE,
        "--output-dir",
        str(out),
    ]
    assert main(args) == 2
    assert "test2.tsv: no such file" in capsys.readouterr().err
    assert not out.exists()
