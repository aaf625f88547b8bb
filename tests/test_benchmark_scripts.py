"""The study scripts under benchmarks/ that compute something: Study 2's check of issue 4's target, and
step_cost.py's device, precision and model options (tiny settings on the CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_script as load
from smart_tune.report import summarise

ROOT = Path(__file__).resolve().parents[1]


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def run(task, method, seed, score, last=None):
    main = "accuracy" if task != "cola" else "matthews_correlation"
    history = [{f"eval_{main}": score if last is None else last, "epoch": 3}, {"train_runtime": 1.0}]
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "metrics": {main: score},
        "main_metric": main,
        "train_runtime_s": 60.0,
        "log_history": history,
    }


def runs(scores):
    """scores: {method: {task: [score per seed]}} -> results for seeds 1, 2, ..."""
    return [
        run(t, m, s, v) for m, tasks in scores.items() for t, vs in tasks.items() for s, v in enumerate(vs, 1)
    ]


target = load("benchmarks/results/study2_headline/target.py")


def test_target_met_only_when_every_clause_is():
    plain = {"rte": [0.50, 0.60, 0.55], "cola": [0.30, 0.20, 0.25]}
    # smart: +2 points on each task and seed (average +2.0, same spread); r3f: +1.
    smart = {t: [v + 0.02 for v in vs] for t, vs in plain.items()}
    r3f = {t: [v + 0.01 for v in vs] for t, vs in plain.items()}
    rows = target.checks(summarise(runs({"vanilla": plain, "smart": smart, "r3f": r3f})), last_epoch=False)
    assert [met for _, _, met in rows] == [True, True, True, True]
    assert rows[0][1] == "+2.00 ± 0.00 over 3 seeds"
    assert rows[1][1] == "cola +2.00, rte +2.00"

    # +3 on rte, -0.5 on cola: the average is (3 - 0.5) / 2 = +1.25, below +1.5, and cola is worse.
    mixed = {"rte": [v + 0.03 for v in plain["rte"]], "cola": [v - 0.005 for v in plain["cola"]]}
    rows = target.checks(summarise(runs({"vanilla": plain, "smart": mixed, "r3f": r3f})), last_epoch=False)
    assert rows[0][2] is False and rows[0][1].startswith("+1.25")
    assert rows[1][2] is False and "cola -0.50" in rows[1][1]
    assert rows[2][2] is True  # +1.25 against r3f's +1

    # a wider spread than plain's fails the last clause though the mean is fine
    wide = {t: [v + 0.02 + d for v, d in zip(vs, (-0.01, 0.03, -0.02))] for t, vs in plain.items()}
    rows = target.checks(summarise(runs({"vanilla": plain, "smart": wide})), last_epoch=False)
    assert rows[3][2] is False and rows[2] == (rows[2][0], "no r3f runs", False)


def test_target_script_writes_its_table_and_refuses_a_summary_without_the_average(tmp_path, capsys):
    plain = {"rte": [0.50, 0.60], "cola": [0.30, 0.20]}
    smart = {t: [v + 0.02 for v in vs] for t, vs in plain.items()}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summarise(runs({"vanilla": plain, "smart": smart}))))
    assert target.main([str(path)]) == 0
    text = (tmp_path / "target.md").read_text()
    assert "## model at the end of training" in text and "Target met: **no**" in text  # no r3f
    path.write_text(json.dumps(summarise(runs({"vanilla": {"rte": [0.5]}, "smart": {"rte": [0.6]}}))))
    assert target.main([str(path)]) == 1
    assert "no 'mean_of_main_metrics'" in capsys.readouterr().err


@pytest.mark.parametrize("last_epoch", [False, True])
def test_target_reads_the_last_epoch_scores_apart_from_the_kept_ones(last_epoch):
    results = [
        run("rte", "vanilla", 1, 0.5, last=0.5),
        run("cola", "vanilla", 1, 0.3, last=0.3),
        run("rte", "smart", 1, 0.6, last=0.4),
        run("cola", "smart", 1, 0.4, last=0.2),
    ]
    rows = target.checks(summarise(results), last_epoch=last_epoch)
    assert rows[0][1] == ("-10.00" if last_epoch else "+10.00") + " ± 0.00 over 1 seeds"


def test_glue_style_average_averages_mrpc_accuracy_with_f1_before_the_tasks():
    def mrpc(method, seed, acc, f1):
        r = run("mrpc", method, seed, acc)
        r["metrics"]["f1"] = f1
        r["log_history"][0]["eval_f1"] = f1
        return r

    results = [mrpc("vanilla", 1, 0.80, 0.90), run("rte", "vanilla", 1, 0.50)]
    results += [mrpc("smart", 1, 0.80, 0.94), run("rte", "smart", 1, 0.52), run("rte", "smart", 2, 0.6)]
    summary = summarise(results)
    assert target.glue_average(summary, "smart", last_epoch=False) == pytest.approx({1: (0.87 + 0.52) / 2})
    assert target.glue_average(summary, "vanilla", last_epoch=True) == pytest.approx({1: (0.85 + 0.50) / 2})
    # main metrics alone: (0 + 2) / 2 = +1.00; GLUE's average also counts F1's +4: (2 + 2) / 2 = +2.00
    assert target.checks(summary, last_epoch=False)[0][1].startswith("+1.00")
    note = target.glue_note(summary, last_epoch=False)
    assert "smart − vanilla +2.00 ± 0.00 over 1 seeds" in note and "r3f" not in note

    # a run whose log lacks F1 at the end is left out of the last-epoch average, not shifted
    results.append(mrpc("vanilla", 2, 0.70, 0.80))
    results.append(run("rte", "vanilla", 2, 0.40))
    del results[0]["log_history"][0]["eval_f1"]
    assert target.glue_average(summarise(results), "vanilla", last_epoch=True) == pytest.approx({2: 0.575})


# --------------------------------------------------------------------------------------------------
# benchmarks/step_cost.py: tiny model, one length, a step or two; the numbers are not looked at.

STEP_COST = "benchmarks/step_cost.py"
TINY = ["--model-config", "tiny", "--lengths", "8", "--batch-size", "2", "--steps", "1", "--warmup", "1"]


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_step_cost_runs_on_cpu_with_device_dtype_and_model_config(tmp_path, dtype):
    step_cost = load(STEP_COST)
    methods = "plain,r3f,smart-rs,smart"
    step_cost.main(
        [
            *TINY,
            "--device",
            "cpu",
            "--dtype",
            dtype,
            "--methods",
            methods,
            "--skip-memory",
            "--out-dir",
            str(tmp_path),
        ]
    )

    stem = "step_cost_cpu_fp32_tiny" if dtype == "fp32" else f"step_cost_cpu_{dtype}_tiny"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{stem}.json", f"{stem}.md"]
    report = json.loads((tmp_path / f"{stem}.json").read_text())
    settings = report["settings"]
    assert (settings["device"], settings["dtype"], settings["model_config"]) == ("cpu", dtype, "tiny")
    assert settings["model_sizes"]["hidden_size"] == 32 and settings["model_sizes"]["parameters"] > 0
    assert "gpu_name" not in report["machine"]
    cells = report["results"]["8"]
    assert list(cells) == methods.split(",")
    for entry in cells.values():
        assert len(entry["times_s"]) == 1 and entry["median_s"] > 0
        assert entry["reg_nonfinite"] == entry["breg_nonfinite"] == 0
    assert cells["plain"]["x_plain"] == 1.0
    text = (tmp_path / f"{stem}.md").read_text()
    assert "| 8 | smart |" in text and "Peak memory: not measured (--skip-memory)." in text


def test_step_cost_model_sizes_and_output_names():
    step_cost = load(STEP_COST)
    config = step_cost.model_config("bert-base")
    sizes = (
        config.hidden_size,
        config.num_hidden_layers,
        config.num_attention_heads,
        config.intermediate_size,
    )
    assert sizes == (768, 12, 12, 3072) and config.vocab_size == 30522 and config.num_labels == 2
    args = step_cost.parse_args(["--lengths", "128,256", "--batch-size", "32"])
    assert (args.lengths, args.batch_size, args.device.type, args.dtype) == ([128, 256], 32, "cpu", "fp32")
    assert step_cost.output_stem(args) == "step_cost"  # the default keeps the name of earlier results
    args = step_cost.parse_args(["--dtype", "bf16", "--model-config", "bert-base"])
    assert step_cost.output_stem(args) == "step_cost_cpu_bf16_bert-base"


def test_step_cost_memory_subprocess_on_cpu(tmp_path):
    step_cost = load(STEP_COST)
    step_cost.main([*TINY, "--methods", "plain", "--memory-steps", "1", "--out-dir", str(tmp_path)])
    report = json.loads((tmp_path / "step_cost_cpu_fp32_tiny.json").read_text())
    assert report["results"]["8"]["plain"]["peak_mib"] > 0


@pytest.mark.skipif(torch_cuda_available(), reason="CUDA is available here")
def test_step_cost_refuses_cuda_without_a_gpu_in_one_line(tmp_path):
    cmd = [sys.executable, str(ROOT / STEP_COST), *TINY, "--device", "cuda", "--out-dir", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(
        "step_cost.py: error: --device cuda, but torch.cuda.is_available() is False"
    )
    assert "Traceback" not in done.stderr and not list(tmp_path.iterdir())


# --------------------------------------------------------------------------------------------------
# Study 6's report.py: its folder layout, paired differences, the per-bucket table, the cost estimate.

STUDY6 = "benchmarks/results/study6_multitask/report.py"


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _study6_folder(tmp_path: Path) -> Path:
    """Fabricated finished runs in run.sh's layout: two tasks, two seeds, every arm; SNLI at 1% and 100%."""
    main = {"rte": "accuracy", "stsb": "pearson"}
    for seed, bump in ((1, 0.0), (2, 0.02)):
        for method, gain in (("vanilla", 0.0), ("smart", 0.01)):
            for task, base in (("rte", 0.60), ("stsb", 0.80)):
                score = {main[task]: base + gain + bump, f"{main[task]}_holdout": 0.5}
                run = {
                    "task": task,
                    "method": method,
                    "seed": seed,
                    "metrics": score,
                    "main_metric": main[task],
                }
                _write_json(tmp_path / f"single/{task}/{method}/seed-{seed}/results.json", run)
                ft = {**run, "metrics": {main[task]: base + gain + bump + 0.03}}
                _write_json(tmp_path / f"mt-ft-{method}/{task}/{method}/seed-{seed}/results.json", ft)
            tasks = {
                t: {"metrics": {main[t]: b + gain + bump + 0.01}, "main_metric": main[t]}
                for t, b in (("rte", 0.60), ("stsb", 0.80))
            }
            _write_json(
                tmp_path / f"mt/{method}/seed-{seed}/results.json",
                {"task": "rte+stsb", "method": method, "seed": seed, "tasks": tasks, "metrics": {}},
            )
            for start, lift in (("minilm", 0.0), ("mt-vanilla", 0.01), ("mt-smart", 0.02)):
                for fraction, base in (("1pct", 0.40), ("100pct", 0.80)):
                    run_dir = tmp_path / f"da-{start}/{fraction}/snli/{method}/seed-{seed}"
                    acc = base + lift + gain + bump
                    r = {"task": "snli", "method": method, "seed": seed, "metrics": {"accuracy": acc}}
                    _write_json(run_dir / "results.json", {**r, "main_metric": "accuracy"})
                    if fraction == "100pct":
                        by = {
                            "5/0/0": {"accuracy": acc + 0.1, "num_examples": 5},
                            "3/1/1": {"accuracy": acc - 0.3, "num_examples": 2},
                        }
                        _write_json(run_dir / "agreement.json", {"by_agreement": by})
    return tmp_path


def test_study6_collects_every_arm_and_pairs_by_seed(tmp_path):
    report = load(STUDY6)
    scores = report.collect(_study6_folder(tmp_path))
    assert scores[("glue", "single/vanilla", "rte")] == {1: pytest.approx(60.0), 2: pytest.approx(62.0)}
    assert scores[("glue", "mt/smart", "stsb")] == {1: pytest.approx(82.0), 2: pytest.approx(84.0)}
    assert scores[("glue", "mt-ft/vanilla", "rte")][2] == pytest.approx(65.0)
    assert scores[("snli", "mt-smart/smart", "1pct")][1] == pytest.approx(43.0)
    assert scores[("agreement", "minilm/vanilla", "3/1/1")][1] == pytest.approx(50.0)
    averaged = report.with_average(scores)
    assert averaged[("glue", "single/vanilla", "average")] == {1: pytest.approx(70.0), 2: pytest.approx(72.0)}
    # SMART − plain: +1 on every seed, so std 0 and a zero-width interval.
    d = report.paired(scores[("glue", "single/smart", "rte")], scores[("glue", "single/vanilla", "rte")])
    assert (
        d["n"] == 2 and d["wins"] == 2 and d["mean"] == pytest.approx(1.0) and d["std"] == pytest.approx(0.0)
    )
    assert d["interval"] == [pytest.approx(1.0), pytest.approx(1.0)]
    assert report.paired({1: 1.0}, {2: 1.0}) is None  # no seed in common


def test_study6_paired_interval_and_cells():
    report = load(STUDY6)
    d = report.paired({1: 3.0, 2: 1.0, 3: 2.0}, {1: 1.0, 2: 1.0, 3: 1.0})  # differences 2, 0, 1
    assert d["mean"] == pytest.approx(1.0) and d["std"] == pytest.approx(1.0)
    assert (d["wins"], d["ties"], d["losses"]) == (2, 1, 0)  # the level seed is a tie, not a loss
    half = 4.302652729911275 / 3**0.5  # t(0.975, 2) · 1 / √3
    assert d["interval"] == [pytest.approx(1 - half), pytest.approx(1 + half)]
    assert report.delta_cell(d) == "+1.00 [-1.48, +3.48] (2W/1T/0L of 3)"
    bold = report.paired({1: 2.0, 2: 3.0, 3: 2.5}, {1: 0.0, 2: 0.0, 3: 0.0})  # the interval excludes 0
    assert report.delta_cell(bold) == "**+2.50 [+1.26, +3.74] (3W/0T/0L of 3)**"
    assert report.score_cell({1: 1.0, 2: 3.0}) == "2.00 ± 1.41 (n=2)"
    assert report.score_cell(None) == report.delta_cell(None) == "–"


def test_study6_summary_has_each_table(tmp_path):
    report = load(STUDY6)
    folder = _study6_folder(tmp_path)
    assert report.main([str(folder)]) == 0
    text = (folder / "summary.md").read_text()
    assert (
        "| single-task plain | 61.00 ± 1.41 (n=2) | – | 81.00 ± 1.41 (n=2) | – | – | 71.00 ± 1.41 (n=2) |"
        in text
    )
    assert "| MT-DNN-SMART − single-task plain | +4.00 [+4.00, +4.00] (2W/0T/0L of 2) |" in text.replace(
        "**", ""
    )
    assert "| start, fine-tuning | 1pct | 100pct |" in text  # fractions in increasing order
    assert "| MT SMART, SMART | 44.00 ± 1.41 (n=2) | 84.00 ± 1.41 (n=2) |" in text
    assert "| model | 5/0/0 | 3/1/1 |" in text  # only the buckets there are, in the paper's order
    assert "| MiniLM, plain | 91.00 ± 1.41 (n=2) | 51.00 ± 1.41 (n=2) |" in text


def test_study6_report_draws_a_chart_per_part_beside_the_summary(tmp_path):
    report = load(STUDY6)
    folder = _study6_folder(tmp_path)
    assert report.main([str(folder)]) == 0
    text = (folder / "summary.md").read_text()
    for part in ("a", "b", "c"):
        chart = folder / f"summary-{part}.png"
        assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", part
        assert f"![Study 6 ({part})](summary-{part}.png)" in text
    # below its part's tables: (a)'s chart before (b)'s heading, (c)'s after its own
    assert (
        text.index("summary-a.png")
        < text.index("## (b)")
        < text.index("summary-b.png")
        < text.index("## (c)")
    )
    # a part without runs has no chart, and an earlier report's chart of it is removed
    for path in folder.glob("da-*/*/snli/*/seed-*/agreement.json"):
        path.unlink()
    assert report.main([str(folder)]) == 0
    assert not (folder / "summary-c.png").exists() and (folder / "summary-b.png").exists()
    assert "summary-c.png" not in (folder / "summary.md").read_text()


@pytest.mark.parametrize("damage", ["{cut", "[1, 2]", '{"method": "smart"}', '{"by_agreement": 5}'])
def test_study6_report_names_a_damaged_file_in_one_line(tmp_path, capsys, damage):
    report = load(STUDY6)
    folder = _study6_folder(tmp_path)
    name = "agreement.json" if "by_agreement" in damage else "results.json"
    victim = sorted(folder.glob(f"da-*/*/snli/*/seed-*/{name}"))[0]
    victim.write_text(damage)
    assert report.main([str(folder)]) == 2  # was a traceback (JSONDecodeError, KeyError, TypeError)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: {victim}: "), err
    assert not (folder / "summary.md").exists()


def test_study6_estimate_prices_each_kind_of_job():
    report = load(STUDY6)
    costs = {
        "snli": {("snli-100pct", "smart"): 1000.0, ("snli-1pct", "vanilla"): 100.0},
        "per_example": {"rte": 0.1, "stsb": 0.05},
        "eval": {"rte": 10.0, "stsb": 20.0},
        "smart_factor": 2.0,
    }
    jobs = [
        "--no-report --config c.yaml --output-dir o/single --task rte --seeds 1 --methods vanilla --max-train-samples 100",
        "--after o/mt/smart/seed-1/results.json --no-report --config c.yaml --model o/mt/smart/seed-1"
        " --output-dir o/mt-ft-smart --task stsb --seeds 1 --methods smart --max-train-samples 100",
        "multitask --config c.yaml --tasks rte,stsb --method smart --seed 1 --output-dir o/mt/smart/seed-1"
        " --save-model --max-train-samples 100",
        "--no-report --config s.yaml --train-fraction 1.0 --output-dir o/da-minilm/100pct --seeds 1 --methods smart --save-model",
        "--no-report --config s.yaml --train-fraction 0.001 --output-dir o/da-minilm/0.1pct --seeds 1 --methods vanilla",
        "evaluate --task snli --split test --by-agreement --model-dir o/da-minilm/100pct/snli/smart/seed-1",
    ]
    kinds = [report.job_seconds(line, costs) for line in jobs]
    # 90 examples (10 held out) × 3 epochs × cost, × 2 for SMART, plus 3 scorings of dev.
    assert kinds[0] == ("single-task", pytest.approx(90 * 3 * 0.1 + 30))
    assert kinds[1] == ("fine-tune after multi-task", pytest.approx(90 * 3 * 0.05 * 2 + 60))
    assert kinds[2] == ("multitask", pytest.approx(90 * 3 * 0.1 * 2 + 30 + 90 * 3 * 0.05 * 2 + 60))
    assert kinds[3] == ("domain adaptation", 1000.0)
    assert kinds[4] == ("domain adaptation", 100.0)  # 0.1% priced as 1%
    assert kinds[5] == ("evaluate", report.EVALUATE_S)
    text = report.estimate(jobs + ["# a comment", ""], costs)
    assert text.splitlines()[-2].split()[:2] == ["total", "6"]


def test_study6_measured_costs_read_studies_4_and_5():
    report = load(STUDY6)
    costs = report.measured_costs()
    assert {"rte", "mrpc", "stsb", "cola", "sst2"} <= set(costs["per_example"])
    assert ("snli-100pct", "vanilla") in costs["snli"] and 1.5 < costs["smart_factor"] < 4.0


# Stands in for `smart-tune` under run.sh and lanes.py: records each job's line; a multitask job
# writes its model and results.json (the runs that wait for it then start) and, with FAKE_DRAIN,
# drains lanes.py (its parent) as `pkill -USR1` would, before it ends; a compare job that keeps its model
# (a 100% run of (b)) writes its run's model and results.json; evaluate prints an agreement; with
# FAKE_FAIL every job fails and writes nothing; the others take a moment.
FAKE_SMART_TUNE = """\
import json, os, pathlib, signal, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
value = lambda flag: args[args.index(flag) + 1]
def finished(run):
    run.mkdir(parents=True, exist_ok=True)
    (run / "model.safetensors").write_text("")
    (run / "results.json").write_text(json.dumps({"method": "smart", "tasks": {}}))
if args[0] == "multitask":
    if not os.environ.get("FAKE_FAIL"):
        finished(pathlib.Path(value("--output-dir")))
    if os.environ.get("FAKE_DRAIN"):
        os.kill(os.getppid(), signal.SIGUSR1)
        time.sleep(1.5)  # lanes.py handles signals at least once a second: drained before this job ends
elif args[0] == "evaluate":
    print(json.dumps({"by_agreement": {"5/0/0": {"accuracy": 0.9, "num_examples": 5}}}))
else:
    time.sleep(0.5)
    if "--save-model" in args and not os.environ.get("FAKE_FAIL"):
        out = pathlib.Path(value("--output-dir"))
        finished(out / "snli" / value("--methods") / ("seed-" + value("--seeds")))
sys.exit(1 if os.environ.get("FAKE_FAIL") else 0)
"""


def _study6_run(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """run.sh on one seed, one task, SNLI at 100%, with FAKE_SMART_TUNE: its result and the jobs run."""
    venv = tmp_path / "venv" / "bin"
    if not venv.exists():  # a second call in one test runs the same fake again
        venv.mkdir(parents=True)
        (venv / "smart-tune").write_text(f"#!{sys.executable}\n{FAKE_SMART_TUNE}")
        (venv / "smart-tune").chmod(0o755)
        (venv / "python").symlink_to(sys.executable)
    log = tmp_path / "jobs.log"
    full_env = {
        **os.environ,
        "SMART_TUNE_VENV": str(tmp_path / "venv"),
        "LANES_LOCK_DIR": str(tmp_path / "locks"),
        "FAKE_LOG": str(log),
        "OUT": str(tmp_path / "out"),
        "SEEDS": "1",
        "TASKS": "rte",
        "FRACTIONS": "1.0",
        **env,
    }
    script = ROOT / "benchmarks/results/study6_multitask/run.sh"
    done = subprocess.run([str(script)], env=full_env, capture_output=True, text=True, timeout=120)
    return done, log.read_text().splitlines() if log.exists() else []


def test_study6_run_sh_exits_with_the_lanes_status(tmp_path):
    done, jobs = _study6_run(tmp_path, FAKE_FAIL="1")
    assert len(jobs) == 6, jobs  # two multi-task runs, two single-task, two of SNLI at 100%
    assert done.returncode == 1, done.stderr
    assert "lanes: job failed" in done.stderr
    # no model, so none of the 2 x 3 runs that start from one (SNLI at 100% twice, RTE) ever starts
    never = [line for line in done.stderr.splitlines() if "never started" in line]
    assert len(never) == 6 and all("/mt/" in line for line in never), done.stderr


def test_study6_runs_from_a_multitask_model_start_once_it_is_trained_in_one_job_list(tmp_path):
    out = tmp_path / "out"
    done, jobs = _study6_run(tmp_path)
    assert done.returncode == 0, done.stderr
    for method in ("smart", "vanilla"):
        trained = jobs.index(next(j for j in jobs if j.startswith("multitask") and f"--method {method}" in j))
        from_it = [i for i, j in enumerate(jobs) if f"--model {out}/mt/{method}/seed-1" in j]
        # SNLI at 100% with SMART and plain, and RTE's fine-tuning: each after its model, none before
        assert len(from_it) == 3 and min(from_it) > trained, jobs
    assert not [j for j in jobs if "--after" in j], jobs  # lanes.py runs each without its prefix
    assert len(jobs) == 2 + 6 + 4 + 6  # and the 6 models of SNLI at 100% are analysed


def test_study6_run_sh_starts_nothing_after_a_drain(tmp_path):
    done, jobs = _study6_run(tmp_path, FAKE_DRAIN="1")
    assert done.returncode == 3, done.stderr
    assert "lanes: drained" in done.stderr
    assert jobs and len(jobs) < 6, jobs  # cut short
    assert not [j for j in jobs if f"--model {tmp_path / 'out' / 'mt'}" in j], jobs  # nothing from them


def test_study6_skip_mt_runs_stage_1_without_multitask_runs_and_no_stage_2(tmp_path):
    done, jobs = _study6_run(tmp_path, SKIP_MT="1")
    assert done.returncode == 0, done.stderr
    training = [j for j in jobs if not j.startswith("evaluate")]
    # the two single-task runs and the two of SNLI at 100%; no multi-task model, so nothing of stage 2
    assert len(training) == 4 and not [j for j in training if j.startswith("multitask")], jobs
    assert not [j for j in jobs if "/mt" in j], jobs
    assert len(jobs) - len(training) == 2  # the 100% models' agreement analysis still runs


def test_study6_mt_seeds_trains_multitask_models_for_those_seeds_only(tmp_path):
    done, jobs = _study6_run(tmp_path, SEEDS="1 2", MT_SEEDS="2")
    assert done.returncode == 0, done.stderr
    multitask = [j for j in jobs if j.startswith("multitask")]
    assert len(multitask) == 2 and all("--seed 2" in j for j in multitask), multitask
    assert not [j for j in jobs if "/mt/" in j and "seed-1" in j], jobs  # nothing from a seed-1 model
    assert len([j for j in jobs if "--seeds 1" in j]) == 4  # but seed 1's single-task and MiniLM runs


def _finished_run(folder: Path, model: bool = True) -> Path:
    """A run folder as a finished run leaves it; ``model=False``: its kept weights gone (another machine)."""
    _write_json(folder / "results.json", {"method": "smart", "tasks": {}})
    if model:
        (folder / "model.safetensors").write_text("")
    return folder


def test_study6_trains_a_multitask_model_again_when_stage_2_needs_it_and_it_is_gone(tmp_path):
    # Finished on another machine: results.json is committed, the weights (ignored by git) are not.
    out = tmp_path / "out"
    _finished_run(out / "mt/smart/seed-1", model=False)
    _finished_run(out / "mt/vanilla/seed-1")
    done, jobs = _study6_run(tmp_path)
    assert done.returncode == 0, done.stderr
    multitask = [j for j in jobs if j.startswith("multitask")]
    # was: none (the run counted as done), and every stage-2 run from it failed to load the model
    assert len(multitask) == 1 and "--method smart" in multitask[0], multitask
    assert multitask[0].endswith("--overwrite-output-dir"), multitask
    assert f"{out}/mt/smart/seed-1 finished, but its model is not here" in done.stderr
    # Once every run that starts from it is finished, a lost model is not trained again.
    (out / "mt/smart/seed-1/model.safetensors").unlink()
    _finished_run(out / "mt-ft-smart/rte/smart/seed-1")
    for method in ("smart", "vanilla"):
        _finished_run(out / f"da-mt-smart/100pct/snli/{method}/seed-1")
    (tmp_path / "jobs.log").unlink()
    done, jobs = _study6_run(tmp_path)
    # and the finished runs from it are not listed: each would wait for the lost model, never to start
    assert done.returncode == 0 and not [j for j in jobs if j.startswith("multitask")], done.stderr
    assert not [j for j in jobs if f"--model {out}/mt/smart/seed-1" in j], jobs


def test_study6_analyses_agreement_after_the_lanes_and_names_a_lost_model(tmp_path):
    out = tmp_path / "out"
    done, _ = _study6_run(tmp_path, SKIP_MT="1")
    assert done.returncode == 0, done.stderr
    # MiniLM's 100% models of (b): analysed while they are on this machine
    for method in ("smart", "vanilla"):
        agreement = json.loads((out / f"da-minilm/100pct/snli/{method}/seed-1/agreement.json").read_text())
        assert agreement["by_agreement"]["5/0/0"]["accuracy"] == 0.9
    lost = _finished_run(out / "da-mt-smart/100pct/snli/smart/seed-1", model=False)
    (tmp_path / "jobs.log").unlink()
    done, jobs = _study6_run(tmp_path, AGREEMENT_ONLY="1")
    assert done.returncode == 1, done.stderr  # was 0: the run left out of (c) without a word
    assert f"agreement: {lost} finished, but its model is not on this machine" in done.stderr
    assert not (lost / "agreement.json").exists()
    assert not [j for j in jobs if not j.startswith("evaluate")], jobs  # (c) only


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_study6_kept_models_stay_out_of_git_and_the_results_do_not():
    run = "benchmarks/results/study6_multitask/da-mt-smart/100pct/snli/smart/seed-1"
    model = [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
        "training_args.bin",
    ]
    kept = ["results.json", "run_config.json", "run_config.resolved.json", "agreement.json"]
    paths = [f"{run}/{name}" for name in [*model, "agreement.json.tmp", *kept]]
    done = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True)
    ignored = {Path(p).name for p in done.stdout.split()}
    # was: config.json and the tokenizer's files committed beside the results, without the weights
    assert ignored == {*model, "agreement.json.tmp"}, ignored


study5_target = load("benchmarks/results/study5_protocol/target.py")


def held_out(results):
    """Runs whose epoch was chosen on the held-out part of train, as Study 5's are."""
    return [{**r, "selected_on": "train-holdout"} for r in results]


def test_study5_target_needs_a_point_five_seeds_no_task_below_half_a_point_and_r3f_behind():
    plain = {
        "rte": [0.50, 0.60, 0.55, 0.52, 0.58],
        "cola": [0.30, 0.20, 0.25, 0.27, 0.22],
        "mrpc": [0.80, 0.82, 0.81, 0.79, 0.80],
        "stsb": [0.85, 0.86, 0.84, 0.85, 0.87],
    }
    r3f = {t: [v + 0.005 for v in vs] for t, vs in plain.items()}
    # +2.5 on rte and mrpc, -0.4 on cola, -0.2 on stsb: the mean is +1.10 (met), no task below the floor.
    gains = {"rte": 0.025, "mrpc": 0.025, "cola": -0.004, "stsb": -0.002}
    smart = {t: [v + gains[t] for v in vs] for t, vs in plain.items()}
    summary = summarise(held_out(runs({"vanilla": plain, "smart": smart, "r3f": r3f})))
    grid = [{"name": "x", "settings": {"learning_rate": lr}} for lr in (2e-5, 5e-5)]
    grids = {"vanilla": grid, "r3f": grid, "smart": grid}
    rows = study5_target.checks(summary, "smart", grids)
    assert [met for _, _, met in rows] == [True] * 8, rows
    assert rows[7][1] == 'all three: {"learning_rate": 2e-05}, {"learning_rate": 5e-05}'
    # A grid of one point for plain, or no grid.json at all: not the same tuning budget.
    assert study5_target.checks(summary, "smart", {**grids, "vanilla": grid[:1]})[7][2] is False
    assert study5_target.checks(summary, "smart")[7] == (rows[7][0], "no grid.json", False)
    assert rows[0][1].startswith(
        "+1.10 ± 0.00, 95% interval [+1.10, +1.10], 5W/0T/0L of 5 seeds (wins/ties/losses)"
    )
    assert rows[1][1] == "cola -0.40, mrpc +2.50, rte +2.50, stsb -0.20"

    # cola at -0.6: below the floor; three seeds only: not enough.
    worse = {t: vs[:3] for t, vs in smart.items()} | {"cola": [v - 0.006 for v in plain["cola"][:3]]}
    few = {t: vs[:3] for t, vs in plain.items()}
    rows = study5_target.checks(summarise(held_out(runs({"vanilla": few, "smart": worse}))), "smart")
    assert rows[1][2] is False and "cola -0.60" in rows[1][1]
    assert rows[2] == (rows[2][0], "no r3f runs", False) and rows[4][2] is False
    text = study5_target.to_markdown(summarise(held_out(runs({"vanilla": few, "smart": worse}))))
    assert "## smart-fit" in text and "No runs of it in the summary." in text and "Target met: **no**" in text


def with_holdout(results, held):
    """Runs that also carry a held-out score: held[(method, task)] is added to the dev score."""
    out = []
    for r in results:
        main = r["main_metric"]
        score = r["metrics"][main] + held[(r["method"], r["task"])]
        out.append({**r, "metrics": {**r["metrics"], f"{main}_holdout": score}})
    return out


def test_study5_best_smart_is_the_higher_held_out_four_task_mean_and_ignores_dev():
    dev = {t: [0.5, 0.6, 0.55, 0.52, 0.58] for t in ("rte", "cola", "mrpc", "stsb")}
    # smart-fit is far ahead on dev, but the rule reads the held-out part only: smart is +0.5 there
    # on average (+2.0 on stsb, 0 elsewhere), smart-fit is not.
    scores = {"vanilla": dev, "smart": dev, "smart-fit": {t: [v + 0.1 for v in vs] for t, vs in dev.items()}}
    held = {("smart", "stsb"): 0.02} | {("smart-fit", t): -0.1 for t in dev}
    held = {(m, t): held.get((m, t), 0.0) for m in scores for t in dev}
    summary = summarise(held_out(with_holdout(runs(scores), held)))
    best, means = study5_target.best_smart(summary)
    assert best == "smart" and means == pytest.approx({"smart": 0.55 + 0.005, "smart-fit": 0.55})
    assert "Best SMART: `smart`." in study5_target.to_markdown(summary)
    # A tie goes to the paper-literal candidate; a candidate missing a task's held-out score cannot win.
    tied = summarise(
        held_out(with_holdout(runs(scores), {k: 0.0 for k in held} | {("smart-fit", t): -0.1 for t in dev}))
    )
    assert study5_target.best_smart(tied)[0] == "smart"
    partial = {**scores, "smart": {t: vs for t, vs in dev.items() if t != "cola"}}
    best, means = study5_target.best_smart(summarise(held_out(with_holdout(runs(partial), held))))
    assert best == "smart-fit" and means["smart"] is None
    assert study5_target.best_smart(summarise(held_out(runs({"vanilla": dev}))))[0] is None


def test_study5_target_is_not_met_on_fewer_tasks_r3f_seeds_or_runs_selected_on_dev():
    plain = {"rte": [0.50, 0.60, 0.55, 0.52, 0.58], "cola": [0.30, 0.20, 0.25, 0.27, 0.22]}
    smart = {t: [v + 0.02 for v in vs] for t, vs in plain.items()}
    r3f = {t: vs[:2] for t, vs in plain.items()}  # two seeds of R3F only
    rows = study5_target.checks(
        summarise(held_out(runs({"vanilla": plain, "smart": smart, "r3f": r3f}))), "smart"
    )
    met = {clause: ok for clause, _, ok in rows}
    assert rows[0][2] is True and rows[2][2] is True  # +2.0 over plain, ahead of R3F on its two seeds
    # A two-task mean is not the four-task mean; the missing tasks fail the per-task clause too.
    assert rows[1] == (rows[1][0], "cola +2.00, mrpc missing, rte +2.00, stsb missing", False)
    assert rows[5] == (rows[5][0], "cola, rte", False)
    # R3F on two seeds: not the five the target asks for.
    assert rows[4] == (rows[4][0], "5 with vanilla, 2 with r3f", False)
    assert met[rows[6][0]] is False  # mrpc and stsb missing
    four = {**plain, "mrpc": plain["rte"], "stsb": plain["rte"]}
    on_dev = runs({"vanilla": four, "smart": {t: [v + 0.02 for v in vs] for t, vs in four.items()}})
    rows = study5_target.checks(summarise(on_dev), "smart")  # epochs (and grid points) chosen on dev
    assert rows[5][2] is True and rows[6][2] is False and "rte dev" in rows[6][1]


def test_gpu_study_runs_record_what_compare_records_for_the_same_job(tmp_path, tiny_model_dir):
    """A run folder of gpu_study.py (the tiny plan's flags, one Study 5 grid point of a SMART variant)
    holds the run_config.json that `smart-tune compare` writes for the same job, and the defaults under
    it: compare resumes a run the GPU's time cut, rather than refusing it, and report reads both alike."""
    from conftest import shared_data_dir
    from smart_tune.cli import COMPARE_KEYS, _compare_plan, compare_parser
    from smart_tune.grid import expand
    from smart_tune.options import TRAINING_FIELDS, chosen_options
    from smart_tune.run_record import RESOLVED, RUN_CONFIG, settings_changed
    from smart_tune.sweep import plan_runs

    gpu = load("benchmarks/gpu_study.py")
    root = tmp_path / "gpu"
    base = ["--data-dir", str(shared_data_dir() / "glue"), *gpu.COMMON, "--model", tiny_model_dir]
    base += ["--max-steps", "2", "--max-train-samples", "60"]  # main's, for --plan tiny
    jobs = gpu.study5_jobs(root, base, "cls", ("rte",), {}, (1,))
    spec = next(j for j in jobs if Path(j["dir"]).parent.name.startswith("smart-fit@"))
    assert gpu._run(spec)["code"] == 0, (Path(spec["dir"]) / "train.log").read_text()[-2000:]

    config = tmp_path / "study5.json"  # compare takes variants from a config file
    config.write_text(json.dumps({"variants": gpu.VARIANTS}))
    argv = ["--config", str(config), "--task", "rte", "--methods", ",".join(gpu.METHODS), "--seeds", "1"]
    argv += ["--grid", *gpu.GRID, "--output-dir", str(root / "study5_full"), *base, *gpu.STUDY5]
    chosen = chosen_options(compare_parser(), [*argv, "--pooling", "cls"], COMPARE_KEYS)
    plan = _compare_plan(chosen)  # as cmd_compare plans its runs
    methods, variants, _ = expand(plan["methods"], plan["grids"], plan["variants"], TRAINING_FIELDS)
    runs = plan_runs(Path(plan["output_dir"]), plan["tasks"], methods, plan["seeds"], chosen, variants)
    (same_job,) = [r for r in runs if str(r["dir"]) == spec["dir"]]

    run_dir = Path(spec["dir"])
    assert json.loads((run_dir / RUN_CONFIG).read_text()) == json.loads(json.dumps(same_job["options"]))
    assert (run_dir / RESOLVED).exists() and settings_changed(run_dir, same_job["options"]) is None


def test_gpu_study_pooling_rule_compares_the_two_heads_on_the_same_runs(tmp_path):
    # A cls run of STS-B and a mean run of CoLA failed: equal counts, so the rule compared cls's mean
    # with CoLA's Matthews correlation (about 25) in it against mean's with STS-B's Pearson (about 80):
    # mean pooling "won" by 26 points although it is behind on every task.
    gpu = load("benchmarks/gpu_study.py")
    held = {
        "cls": {"rte": 0.60, "stsb": 0.80, "cola": 0.25},
        "mean": {"rte": 0.59, "stsb": 0.79, "cola": 0.24},
    }
    main = {"rte": "accuracy", "stsb": "pearson", "cola": "matthews_correlation"}

    def finish(pooling, task):
        path = tmp_path / "pooling_pilot" / task / f"vanilla-{pooling}" / "seed-1"
        path.mkdir(parents=True)
        r = {"task": task, "method": f"vanilla-{pooling}", "seed": 1, "main_metric": main[task]}
        r["metrics"] = {main[task] + "_holdout": held[pooling][task]}
        (path / "results.json").write_text(json.dumps(r))

    failed = [("cls", "stsb"), ("mean", "cola")]
    for pooling, tasks in held.items():
        for task in tasks:
            if (pooling, task) not in failed:
                finish(pooling, task)
    chosen, why = gpu.pooling_decision(tmp_path)
    assert chosen == "cls" and why["reason"].startswith("pilot incomplete")
    for pooling, task in failed:  # now complete: mean is 1 point behind on every task
        finish(pooling, task)
    chosen, why = gpu.pooling_decision(tmp_path)
    assert (
        chosen == "cls" and why["n"] == 3 and why["means"]["cls"] - why["means"]["mean"] == pytest.approx(1.0)
    )


def _study5_layout(tmp_path: Path) -> tuple[Path, Path]:
    """A checkout holding only Study 5's resume_sweep.sh, and a sweep worktree beside it (SWEEP_DIR)."""
    script = "benchmarks/results/study5_protocol/resume_sweep.sh"
    root, sweep = tmp_path / "main", tmp_path / "sweep"
    (root / script).parent.mkdir(parents=True)
    (root / script).write_text((ROOT / script).read_text())
    return root / script, sweep / "benchmarks/results/study5_protocol"


def test_study5_sync_copies_finished_runs_and_never_a_checkpoint_a_log_or_a_report(tmp_path):
    """The sweep's report (pinned code) must not overwrite the committed grid choice, and a run still
    training (no results.json) must not reach the checkout, where it would look finished."""
    script, sweep = _study5_layout(tmp_path)
    done = sweep / "full/rte/smart@lr=5e-05/seed-3"
    _write_json(done / "results.json", {"method": "smart@lr=5e-05"})
    _write_json(done / "run_config.json", {"seed": 3})
    (done / "train.log").write_text("log")
    (done / "checkpoint-71").mkdir()
    running = sweep / "full/rte/smart@lr=5e-05/seed-4"
    _write_json(running / "run_config.json", {"seed": 4})
    _write_json(sweep / "full/grid.json", {"grid": "lr"})
    for report in ("grid_choice.json", "summary.json", "summary.md"):
        (sweep / "full" / report).write_text("pinned report")
    env = {**os.environ, "SWEEP_DIR": str(tmp_path / "sweep")}
    out = subprocess.run(["bash", str(script), "sync"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    study = script.parent
    copied = sorted(str(p.relative_to(study)) for p in study.rglob("*") if p.is_file() and p != script)
    assert copied == [
        "full/grid.json",
        "full/rte/smart@lr=5e-05/seed-3/results.json",
        "full/rte/smart@lr=5e-05/seed-3/run_config.json",
    ]
    assert "Study 5 1 of 168 runs, Study 5b 0 of 10" in out.stdout  # no Study 5b folder yet: nothing to copy
    later = tmp_path / "sweep/benchmarks/results/study5b_schedule"
    _write_json(later / "cola/vanilla@lr=5e-05/seed-1/results.json", {"method": "vanilla@lr=5e-05"})
    _write_json(later / "grid.json", {"grid": "lr"})
    (later / "cola/vanilla@lr=5e-05/seed-1/checkpoint-9").mkdir()
    (later / "summary.md").write_text("pinned report")
    out = subprocess.run(["bash", str(script), "sync"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "Study 5b 1 of 10" in out.stdout, out.stderr
    mine = script.parents[1] / "study5b_schedule"
    copied = sorted(str(p.relative_to(mine)) for p in mine.rglob("*"))
    assert copied == [
        "cola",
        "cola/vanilla@lr=5e-05",
        "cola/vanilla@lr=5e-05/seed-1",
        *(["cola/vanilla@lr=5e-05/seed-1/results.json", "grid.json"]),
    ]
    wrong = subprocess.run(["bash", str(script), "restart"], env=env, capture_output=True, text=True)
    assert wrong.returncode == 2 and "usage" in wrong.stderr


@pytest.mark.parametrize(
    ("runs", "status", "follows"),
    [(168, 0, True), (168, 3, False), (167, 0, False)],
    ids=["stage-3-complete", "drained", "a-run-missing"],
)
def test_study5_chain_starts_study5b_only_after_a_complete_stage_3(tmp_path, runs, status, follows):
    """Study 5b follows on the same lanes and pinned code once stage 3 has every run; not after a drain
    (lanes.py's status 3), a stop or a failed job, and not while a stage-3 run is missing."""
    script, sweep = _study5_layout(tmp_path)
    study = script.parent
    for folder in ("full", "lowdata"):  # committed choices: the chain runs no report of its own
        _write_json(study / folder / "grid_choice.json", {})
    (sweep / "lowdata").mkdir(parents=True)
    (sweep / "run.sh").write_text(f"exit {status}\n")
    for i in range(runs):
        (sweep / f"full/cola/m/seed-{i}").mkdir(parents=True)
        (sweep / f"full/cola/m/seed-{i}/results.json").write_text("{}")
    later = tmp_path / "sweep/benchmarks/results/study5b_schedule"
    later.mkdir(parents=True)
    (later / "run.sh").write_text('touch "$SWEEP_DIR/study5b-started"\n')
    env = {**os.environ, "SWEEP_DIR": str(tmp_path / "sweep")}
    out = subprocess.run(["bash", str(script), "chain"], env=env, capture_output=True, text=True)
    assert (tmp_path / "sweep/study5b-started").exists() == follows, out.stdout + out.stderr
    assert out.returncode == status
    if not follows:
        assert "Study 5b not started" in out.stdout


def test_study5b_changes_only_the_schedule_of_study5s_cola_cell():
    """Study 5b is Study 5 with 6 epochs: its config may differ from Study 5's in nothing that a run
    computes but num_train_epochs (Study 5's SMART variants are not among its methods), and its jobs are
    CoLA, plain and smart, seeds 1-5, at Study 5's chosen lr and pooling."""
    import yaml

    def settings(path):
        return yaml.safe_load((ROOT / path).read_text())

    five = settings("benchmarks/results/study5_protocol/config.yaml")
    five_b = settings("benchmarks/results/study5b_schedule/config.yaml")
    five.pop("variants")
    assert {k: v for k, v in five_b.items() if k != "num_train_epochs"} == {
        k: v for k, v in five.items() if k != "num_train_epochs"
    }
    assert (five["num_train_epochs"], five_b["num_train_epochs"]) == (3, 6)
    out = subprocess.run(
        ["bash", str(ROOT / "benchmarks/results/study5b_schedule/run.sh")],
        env={**os.environ, "JOBS_ONLY": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    jobs = [line.split() for line in out if line]
    assert len(jobs) == 10
    pooling = json.loads((ROOT / "benchmarks/results/study5_protocol/pooling_decision.json").read_text())
    choice = json.loads((ROOT / "benchmarks/results/study5_protocol/full/grid_choice.json").read_text())
    for method in ("vanilla", "smart"):
        lr = choice["cola"][method]["settings"]["learning_rate"]
        mine = [j for j in jobs if j[j.index("--methods") + 1] == method]
        assert sorted(int(j[j.index("--seeds") + 1]) for j in mine) == [1, 2, 3, 4, 5]
        for j in mine:
            assert j[j.index("--task") + 1] == "cola"
            assert float(j[j.index("--grid") + 1].removeprefix("learning_rate=")) == lr
            assert j[j.index("--pooling") + 1] == pooling["chosen"]


def test_study5_curves_average_each_epochs_score_over_the_seeds_of_the_chosen_point(tmp_path, capsys):
    curves = load("benchmarks/results/study5_protocol/curves.py")
    _write_json(tmp_path / "grid_choice.json", {"cola": {"smart": {"chosen": "smart@lr=5e-05"}}})
    for seed, (a, b) in {1: (0.1, 0.3), 2: (0.3, 0.5)}.items():
        history = [
            {"eval_holdout_matthews_correlation": a, "eval_dev_matthews_correlation": a / 2, "epoch": 1.0},
            {"eval_holdout_matthews_correlation": b, "eval_dev_matthews_correlation": b / 2, "epoch": 2.0},
            {"train_runtime": 1.0},
            {"eval_dev_matthews_correlation": 0.9},  # scored after training: not a point of the curve
        ]
        run = {"main_metric": "matthews_correlation", "log_history": history}
        _write_json(tmp_path / f"cola/smart@lr=5e-05/seed-{seed}/results.json", run)
    _write_json(tmp_path / "cola/smart@lr=2e-05/seed-1/results.json", {})  # not the chosen point
    curves.main("cola", tmp_path)
    assert "| smart | 1,2 | 20.0 / 40.0 | 10.0 / 20.0 |" in capsys.readouterr().out


def test_study6_sync_copies_each_runs_json_and_never_a_model_a_checkpoint_or_a_log(tmp_path):
    """A kept model (about 90 MB) or a checkpoint copied into the checkout would be one `git add` away
    from the repository; a run still training (no results.json) would look finished there."""
    script = "benchmarks/results/study6_multitask/resume.sh"
    root = tmp_path / "main"
    (root / script).parent.mkdir(parents=True)
    (root / script).write_text((ROOT / script).read_text())
    sweep = tmp_path / "sweep6/benchmarks/results/study6_multitask"
    done = sweep / "da-minilm/100pct/snli/smart/seed-1"
    for name in ("results.json", "run_config.json", "agreement.json"):
        _write_json(done / name, {"name": name})
    (done / "model.safetensors").write_text("weights")
    _write_json(done / "checkpoint-9" / "results.json", {"partial": True})
    _write_json(sweep / "single/rte/vanilla/seed-2/run_config.json", {"seed": 2})  # still training
    (sweep / "lane-1.log").write_text("log")
    env = {**os.environ, "SWEEP_DIR": str(tmp_path / "sweep6")}
    out = subprocess.run(["bash", str(root / script), "sync"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    study = (root / script).parent
    copied = sorted(
        str(p.relative_to(study)) for p in study.rglob("*") if p.is_file() and p.name != "resume.sh"
    )
    run = "da-minilm/100pct/snli/smart/seed-1"
    assert copied == [f"{run}/agreement.json", f"{run}/results.json", f"{run}/run_config.json"]
    assert out.stdout.startswith("1 finished runs")
    wrong = subprocess.run(["bash", str(root / script), "restart"], env=env, capture_output=True, text=True)
    assert wrong.returncode == 2 and "usage" in wrong.stderr


def test_study5b_schedule_pairs_the_two_schedules_by_seed(tmp_path, monkeypatch):
    """6 epochs against 3, plain against smart: only seeds with all four runs, each paired by seed."""
    schedule = load("benchmarks/results/study5b_schedule/schedule.py")
    six, three = tmp_path / "5b", tmp_path / "5"
    scores = {  # (epochs, method): {seed: MCC}
        (6, "vanilla"): {1: 0.30, 2: 0.32, 3: 0.40},
        (6, "smart"): {1: 0.25, 2: 0.29},
        (3, "vanilla"): {1: 0.20, 2: 0.24, 3: 0.10},
        (3, "smart"): {1: 0.19, 2: 0.21, 3: 0.10},
    }
    for (epochs, method), by_seed in scores.items():
        for seed, mcc in by_seed.items():
            folder = (six if epochs == 6 else three) / f"cola/{method}@lr=5e-05/seed-{seed}"
            _write_json(
                folder / "results.json",
                {
                    "seed": seed,
                    "metrics": {"matthews_correlation": mcc, "matthews_correlation_holdout": mcc},
                    "best_checkpoint": f"{folder}/checkpoint-{40 + seed}",
                    "log_history": [  # the kept checkpoint's evaluation says its epoch
                        {"eval_matthews_correlation": mcc, "epoch": (40 + seed) / 10, "step": 40 + seed}
                    ],
                },
            )
    monkeypatch.setattr(schedule, "HERE", six)
    monkeypatch.setattr(schedule, "STUDY5", three)
    rows = schedule.table("matthews_correlation")
    assert rows[0].startswith("| matthews_correlation ×100, seeds 1,2 |")  # seed 3 lacks a 6-epoch smart run
    # 3 epochs: plain 20, 24 -> 22.00 ± 2.83; smart 19, 21 -> 20.00 ± 1.41; smart - plain: -1, -3
    assert rows[2].startswith("| 3 epochs | 22.00 ± 2.83 | 20.00 ± 1.41 | -2.00 [")
    assert rows[2].endswith("(0/2) |")
    # 6 - 3 epochs per method: plain +10, +8 -> +9.00; smart +6, +8 -> +7.00
    assert rows[4].startswith("| Δ 6 − 3 epochs | +9.00 [") and "| +7.00 [" in rows[4]
    assert schedule.kept_epochs(six, "vanilla") == [4.1, 4.2, 4.3]  # checkpoint-41 at 10 steps per epoch
