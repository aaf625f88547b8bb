"""Multi-process training on CPU (gloo): 2 processes launched by torchrun and by accelerate launch.

Shows that student and mean teacher stay identical across ranks, that metrics are computed once over the
whole dev set, and that 2 processes × batch 8 equal 1 process × batch 16 (dropout 0). SMART's R_s starts
from random noise, which differs when the batch is split, so exact agreement is checked with a
deterministic stand-in for R_s that takes the same path (an extra pass of the unwrapped model, added to
the loss before DDP's backward); the real R_s is checked for rank agreement, which fails unless its
gradient is synchronised.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from conftest import shared_data_dir

HERE = Path(__file__).parent
GLUE = str(shared_data_dir() / "glue")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}

WORKER_RUNS = {
    "vanilla": {"smart_method": "vanilla"},
    "smart-fixed": {"fixed_perturbation": True},
    "smart-random": {"smart_epsilon": 0.1, "smart_sigma": 0.1, "smart_eta": 10.0},
    "smart-random-no-rs": {"smart_epsilon": 0.1, "smart_sigma": 0.1, "smart_eta": 10.0, "smart_lambda": 0.0},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]


def accelerate_launch(nproc: int, *args: str) -> list[str]:
    # The CPU form that starts N processes: --cpu with --num_processes N silently starts one.
    return [
        *(sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc)),
        *("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"),
        *("--main_process_port", str(free_port()), *args),
    ]


def run(cmd: list[str], cwd=None) -> str:
    done = subprocess.run(cmd, env=ENV, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def worker_runs(tmp_path_factory):
    """The worker's runs with 1 process × batch 16 and 2 processes × batch 8."""
    out = tmp_path_factory.mktemp("ddp")
    specs = [f"{name}={json.dumps(options)}" for name, options in WORKER_RUNS.items()]
    for nproc in (1, 2):
        run(torchrun(nproc, str(HERE / "ddp_worker.py"), str(out / f"procs-{nproc}"), "16", *specs))
    return out


@pytest.mark.parametrize("name", WORKER_RUNS)
def test_student_and_teacher_are_identical_across_ranks(worker_runs, name):
    folder = worker_runs / "procs-2" / name
    kinds = ["student", "teacher"] if name != "vanilla" else ["student"]
    for kind in kinds:
        rank0 = load_file(folder / f"{kind}-rank0.safetensors")
        rank1 = load_file(folder / f"{kind}-rank1.safetensors")
        assert max_diff(rank0, rank1) == 0.0, kind


@pytest.mark.parametrize("name", ["vanilla", "smart-fixed"])
def test_two_processes_equal_one_with_the_same_global_batch(worker_runs, name):
    kinds = ["student", "teacher"] if name != "vanilla" else ["student"]
    for kind in kinds:
        one = load_file(worker_runs / "procs-1" / name / f"{kind}-rank0.safetensors")
        two = load_file(worker_runs / "procs-2" / name / f"{kind}-rank0.safetensors")
        assert max_diff(one, two) < 1e-6, kind
    scores = [json.loads((worker_runs / f"procs-{n}" / name / "eval.json").read_text()) for n in (1, 2)]
    # Predictions are gathered over the whole eval set (37 rows, not a multiple of 2 × 5) and scored once.
    assert scores[0]["eval_n"] == scores[1]["eval_n"] == 37
    assert scores[0]["eval_accuracy"] == scores[1]["eval_accuracy"]
    # The logged loss and gradient norm (gathered over ranks) too: a gradient scaled by the number of
    # processes would show in the norm even where AdamW's update hides it.
    for key in ("loss", "grad_norm"):
        logged = [[e[key] for e in score["log_history"] if key in e] for score in scores]
        assert len(logged[0]) == 6 and logged[0] == pytest.approx(logged[1], rel=1e-5), key


def test_random_r_s_is_active(worker_runs):
    """The R_s of the rank-agreement test really moves the weights (against the same run with
    λ_s = 0), so the ranks' agreement means its gradient was synchronised."""
    folder = worker_runs / "procs-2"
    with_rs = load_file(folder / "smart-random" / "student-rank0.safetensors")
    without = load_file(folder / "smart-random-no-rs" / "student-rank0.safetensors")
    assert max_diff(with_rs, without) > 1e-4


@pytest.mark.parametrize("launcher", [torchrun, accelerate_launch])
def test_cli_under_two_processes_equals_one_process(tiny_model_dir_no_dropout, tmp_path, launcher):
    common = ["--task", "rte", "--data-dir", GLUE, "--model", tiny_model_dir_no_dropout]
    common += [
        "--max-train-samples",
        "64",
        "--max-steps",
        "4",
        "--logging-steps",
        "1",
        "--disable-tqdm",
        "true",
    ]
    common += ["--learning-rate", "1e-3", "--smart-lambda", "0"]  # R_s's random start aside: see above
    two_dir, one_dir = tmp_path / "two", tmp_path / "one"
    stdout = run(
        launcher(
            2,
            "-m",
            "smart_tune",
            "train",
            *common,
            "--per-device-train-batch-size",
            "8",
            "--output-dir",
            str(two_dir),
        )
    )
    assert stdout.count("finished") == 1  # rank 0 alone reports
    run(
        [
            sys.executable,
            "-m",
            "smart_tune",
            "train",
            *common,
            "--per-device-train-batch-size",
            "16",
            "--output-dir",
            str(one_dir),
        ]
    )
    two = json.loads((two_dir / "results.json").read_text())
    one = json.loads((one_dir / "results.json").read_text())
    assert two["num_examples"] == one["num_examples"] == 277  # the whole dev set, once
    assert two["metrics"] == pytest.approx(one["metrics"], abs=1e-9)
    losses = [[e["smart_task_loss"] for e in r["log_history"] if "smart_task_loss" in e] for r in (one, two)]
    assert len(losses[0]) == 4 and losses[0] == pytest.approx(losses[1], abs=1e-5)
    # The saved model scores the same in a fresh single process.
    scored = run(
        [
            sys.executable,
            "-m",
            "smart_tune",
            "evaluate",
            "--model-dir",
            str(two_dir),
            "--task",
            "rte",
            "--data-dir",
            GLUE,
        ]
    )
    assert json.loads(scored)["metrics"]["accuracy"] == pytest.approx(two["metrics"]["accuracy"], abs=1e-9)
