"""The study scripts under benchmarks/ that compute something: Study 2's check of issue 4's target, and
step_cost.py's device, precision and model options (tiny settings on the CPU)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from smart_tune.report import summarise

ROOT = Path(__file__).resolve().parents[1]


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def load(path: str):
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


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
    assert "| 8 | smart |" in (tmp_path / f"{stem}.md").read_text()


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
