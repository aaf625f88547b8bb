"""Study 5 (issue 17) and the GPU checks of issue 20 as one queue, for one short call on a lent GPU machine.

A GPU machine is lent for minutes, so every run of the call goes through one queue of independent
jobs served by ``--workers`` processes (the small MiniLM leaves an H200 mostly idle; each worker imports
torch once and runs its jobs in-process with ``smart_tune.cli.main``), in priority order, with a
deadline after which no job starts and a hard stop that ends what still runs. Every run writes its own
``results.json`` at once, in the layout of ``smart-tune compare`` (``FOLDER/task/method/seed-N``), so
what finished is usable whatever is cut, and ``smart-tune report`` reads it. As it starts, each run
(``train``, which writes it) records the ``run_config.json`` that compare writes for the same job (and
the defaults and code revision under it, :mod:`smart_tune.run_record`), so that ``smart-tune compare``
over the same folder, with the same options, takes a run the hard stop cut for its own rather than
refusing it. Its checkpoints hold the model only (``--save-only-model``: no optimizer, schedule or RNG
state to continue from), so compare trains such a run again from the start, and ``train --resume``
refuses it, rather than resuming it inexactly.

Phases, in order:

1. **Pooling pilot** (issue 17 item 7): plain fine-tuning only, head on the [CLS] pooler against mean
   pooling, RTE/MRPC/STS-B/CoLA, seeds 1-2, selected on the held-out part. Rule, fixed before any run:
   Study 5 uses mean pooling iff plain's mean held-out main metric over those 8 runs is at least
   ``POOLING_MARGIN`` points above the [CLS] head's. SMART is not looked at; dev is not looked at.
2. **Mixed precision** (issue 20 item 2): RTE with the Study 0 schedule, SMART in fp32, bf16 and fp16,
   plain in bf16 and fp32.
3. **Study 5**: RTE, MRPC, STS-B, CoLA, and about 1,000 training examples of MRPC and CoLA
   (class-balanced fractions), methods plain, R3F, SMART paper-literal and two SMART candidates, each
   on the same grid (learning rate 2e-5 or 5e-5), 10% of train held out for every selection, seeds 1-5
   (seed by seed, so a cut leaves whole seeds).

    python benchmarks/gpu_study.py --out OUT --data-dir DATA --workers 10 --deadline-s 420 --stop-s 500
    python benchmarks/gpu_study.py --plan tiny --model TINY_DIR ...       # a dry run on a CPU
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from smart_tune.grid import expand, normalise_grids, write_grid  # noqa: E402
from smart_tune.options import TRAINING_FIELDS  # noqa: E402
from smart_tune.results import RESULTS, read_results  # noqa: E402

POOLING_MARGIN = 1.0  # points of held-out main metric (x100) that mean pooling must gain for plain
FULL_TASKS = ("cola", "stsb", "mrpc", "rte")  # longest first: better packing on the workers
LOW_DATA = {"cola": 0.117, "mrpc": 0.27}  # class-balanced fractions: about 1,000 training examples
METHODS = ("vanilla", "r3f", "smart", "smart-fit", "smart-r")
# SMART candidates beside the paper-literal preset (`smart`): a teacher whose time constant is 5% of the
# run (issue 17 item 4), and R_s without the proximal term (Study 3's best SMART).
VARIANTS = {"smart-fit": {"smart_teacher_horizon": 0.05}, "smart-r": {"smart_mu": 0.0}}
GRID = ["learning_rate=2e-5,5e-5"]  # the same two points for every method
SEEDS = (1, 2, 3, 4, 5)
HOLDOUT = 0.1
# The schedule every Study 5 run shares (the Study 0 schedule, batch 32: in the paper's grid, and on a
# GPU a step costs the same at 16 and 32, so a run takes half the steps).
STUDY5 = [
    "--epochs",
    "3",
    "--batch-size",
    "32",
    "--max-length",
    "128",
    "--validation-from-train",
    str(HOLDOUT),
]
COMMON = ["--no-save-model", "--disable-tqdm", "true", "--save-only-model", "true", "--logging-steps", "25"]


def job(folder: Path, task: str, method: str, seed: int, options: list[str], cost: float) -> dict:
    out = folder / task / method / f"seed-{seed}"
    return {"dir": str(out), "args": ["train", "--task", task, "--seed", str(seed), *options], "cost": cost}


def train_args(method: str, variants: dict[str, dict]) -> list[str]:
    """CLI flags of a method or a grid point (``METHOD@key=value``), as compare would run it."""
    if method not in variants:
        return ["--method", method]
    spec = dict(variants[method])
    args = ["--method", spec.pop("method", "smart"), "--label", method]
    for key, value in spec.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


COST = {"vanilla": 1.0, "r3f": 1.6, "smart": 3.2, "smart-fit": 3.2, "smart-r": 2.8}
SIZE = {"cola": 8.5, "stsb": 5.7, "mrpc": 3.7, "rte": 2.5}


def pilot_jobs(root: Path, base: list[str], tasks, seeds) -> list[dict]:
    jobs = []
    for seed in seeds:
        for task in tasks:
            for pooling in ("cls", "mean"):
                opts = [*base, *STUDY5, "--method", "vanilla", "--label", f"vanilla-{pooling}"]
                opts += ["--pooling", pooling, "--learning-rate", "5e-5"]
                jobs.append(
                    job(root / "pooling_pilot", task, f"vanilla-{pooling}", seed, opts, SIZE.get(task, 1))
                )
    return jobs


def precision_jobs(root: Path, base: list[str], task: str) -> list[dict]:
    """Issue 20 item 2: the Study 0 schedule (lr 5e-5, batch 16, 3 epochs), selected on dev as then."""
    jobs = []
    for label, method, flags in (
        ("smart-fp32", "smart", []),
        ("smart-bf16", "smart", ["--bf16", "true"]),
        ("smart-fp16", "smart", ["--fp16", "true"]),
        ("vanilla-bf16", "vanilla", ["--bf16", "true"]),
        ("vanilla-fp32", "vanilla", []),
    ):
        opts = [*base, "--method", method, "--label", label, "--learning-rate", "5e-5", "--batch-size", "16"]
        opts += ["--epochs", "3", *flags]
        jobs.append(job(root / "mixed_precision", task, label, 1, opts, 4.0))
    return jobs


def study5_jobs(root: Path, base: list[str], pooling: str, tasks, low_data, seeds) -> list[dict]:
    methods, variants, index = expand(list(METHODS), normalise_grids(GRID), VARIANTS, TRAINING_FIELDS)
    folders = {"full": root / "study5_full", "low": root / "study5_lowdata"}
    for folder in folders.values():
        write_grid(folder, index)
    jobs = []
    for seed in seeds:
        batch = []
        for m in methods:
            base_method = m.split("@", 1)[0]
            opts = [*base, *STUDY5, "--pooling", pooling, *train_args(m, variants)]
            for task in tasks:
                batch.append(job(folders["full"], task, m, seed, opts, COST[base_method] * SIZE[task]))
            for task, fraction in low_data.items():
                low = [*_without(opts, "--max-train-samples"), "--train-fraction", str(fraction)]
                batch.append(job(folders["low"], task, m, seed, low, COST[base_method] * 1.0))
        jobs += sorted(batch, key=lambda j: -j["cost"])  # within a seed, the longest first
    return jobs


def _without(args: list[str], flag: str) -> list[str]:
    """``args`` less ``flag`` and its value (a fraction of train and a sample cap conflict)."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        else:
            out.append(arg)
    return out


# --------------------------------------------------------------------------------------------------
# Workers


def _run(spec: dict) -> dict:
    """One training run in this worker process; its output goes to train.log beside its results."""
    out = Path(spec["dir"])
    if (out / RESULTS).exists():
        return {"dir": spec["dir"], "code": 0, "seconds": 0.0, "skipped": True}
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    log = open(out / "train.log", "w", encoding="utf-8")  # noqa: SIM115
    saved = os.dup(1), os.dup(2)
    sys.stdout.flush(), sys.stderr.flush()
    os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
    try:
        from smart_tune.cli import main

        args = [*spec["args"], "--output-dir", spec["dir"], "--overwrite-output-dir"]
        print("$ smart-tune " + " ".join(args), flush=True)
        try:
            code = main(args)
        except BaseException as exc:  # a crash of one run must not take the worker down
            print(f"CRASH: {type(exc).__name__}: {exc}", flush=True)
            code = 99
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(saved[0], 1), os.dup2(saved[1], 2)
        log.close()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass
    return {"dir": spec["dir"], "code": code, "seconds": round(time.time() - started, 1)}


def run_queue(jobs: list[dict], pool, t0: float, deadline: float, stop: float, workers: int, status) -> None:
    """Keep ``workers`` jobs in flight, in list order, until the list or the deadline ends."""
    pending = list(jobs)
    running: dict = {}
    while pending or running:
        while pending and len(running) < workers and time.time() - t0 < deadline:
            spec = pending.pop(0)
            running[pool.submit(_run, spec)] = spec
        if not running:
            break
        left = stop - (time.time() - t0)
        if left <= 0:
            raise TimeoutError
        done, _ = cf.wait(running, timeout=min(left, 5.0), return_when=cf.FIRST_COMPLETED)
        for fut in done:
            spec = running.pop(fut)
            try:
                r = fut.result()
            except Exception as exc:
                r = {"dir": spec["dir"], "code": 98, "error": str(exc)}
            r["t"] = round(time.time() - t0, 1)
            status.write(json.dumps(r) + "\n")
            status.flush()
            print(f"[{r['t']:6.1f}s] exit {r['code']} {r.get('seconds', 0):6.1f}s {spec['dir']}", flush=True)
    if pending:
        print(f"deadline: {len(pending)} job(s) not started", flush=True)
        for spec in pending:
            status.write(json.dumps({"dir": spec["dir"], "code": None, "not_started": True}) + "\n")


def pooling_decision(root: Path) -> tuple[str, dict]:
    """The pre-registered rule: mean pooling iff plain's held-out main metric gains POOLING_MARGIN points.

    The two heads are compared on the same (task, seed) runs: a run of one head that failed or was cut
    leaves the pilot incomplete (keep cls), even when the other head lost a run of another task. Equal
    counts alone let CoLA's Matthews correlation (about 30) stand against STS-B's Pearson (about 80)."""
    scores: dict[str, dict[str, float]] = {"cls": {}, "mean": {}}
    for path in sorted((root / "pooling_pilot").rglob(RESULTS)):
        r = read_results(path)
        pooling = r.method.rsplit("-", 1)[1]
        held = r.metrics.get(r.main_metric + "_holdout")
        if held is not None:
            scores[pooling][f"{r.task} seed {r.seed}"] = 100 * held
    if not scores["cls"] or scores["cls"].keys() != scores["mean"].keys():
        return "cls", {"reason": "pilot incomplete: keep cls", "scores": scores}
    means = {k: sum(v.values()) / len(v) for k, v in scores.items()}
    chosen = "mean" if means["mean"] - means["cls"] >= POOLING_MARGIN else "cls"
    return chosen, {"means": means, "margin": POOLING_MARGIN, "n": len(scores["cls"]), "chosen": chosen}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder of all results")
    p.add_argument("--data-dir", required=True, help="folder holding glue/ (the --data-dir of train)")
    p.add_argument("--workers", type=int, default=10)
    p.add_argument("--deadline-s", type=float, default=420, help="no job starts after this many seconds")
    p.add_argument("--stop-s", type=float, default=500, help="hard stop: running jobs are ended")
    p.add_argument("--plan", choices=("full", "tiny"), default="full")
    p.add_argument("--model", help="model path (tiny plan: a tiny model)")
    p.add_argument("--phases", default="pilot,precision,study5")
    a = p.parse_args(argv)
    t0 = time.time()
    root = Path(a.out)
    root.mkdir(parents=True, exist_ok=True)
    base = ["--data-dir", str(Path(a.data_dir) / "glue"), *COMMON]
    tasks, low, seeds, pilot_seeds = FULL_TASKS, LOW_DATA, SEEDS, (1, 2)
    if a.model:
        base += ["--model", a.model]
    if a.plan == "tiny":
        base += ["--max-steps", "2", "--max-train-samples", "60"]
        tasks, low, seeds, pilot_seeds = ("rte", "stsb"), {"mrpc": 0.05}, (1, 2), (1,)
    phases = a.phases.split(",")
    status = open(root / "queue_status.jsonl", "a", encoding="utf-8")  # noqa: SIM115
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=a.workers, mp_context=ctx)
    pooling = "cls"
    try:
        if "pilot" in phases:
            run_queue(
                pilot_jobs(root, base, tasks, pilot_seeds),
                pool,
                t0,
                a.deadline_s,
                a.stop_s,
                a.workers,
                status,
            )
            pooling, why = pooling_decision(root)
            (root / "pooling_decision.json").write_text(json.dumps(why, indent=2))
            print(f"pooling for Study 5: {pooling} ({why})", flush=True)
        jobs = []
        if "precision" in phases:
            jobs += precision_jobs(root, base, tasks[-1] if a.plan == "full" else tasks[0])
        if "study5" in phases:
            jobs += study5_jobs(root, base, pooling, tasks, low, seeds)
        run_queue(jobs, pool, t0, a.deadline_s, a.stop_s, a.workers, status)
    except TimeoutError:
        print("hard stop: ending the running jobs", flush=True)
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        status.close()
    print(f"queue finished in {time.time() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
