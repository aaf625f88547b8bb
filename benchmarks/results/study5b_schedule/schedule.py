"""Study 5b beside Study 5: CoLA after 6 epochs and after 3, plain and ``smart``, on the same seeds.

Each run's kept model (its epoch chosen on the held-out 10% of train) scored on dev, MCC ×100. Both
studies ran the same pinned code, config and seeds; the schedule (``num_train_epochs``) is the only
difference. Written to ``schedule.md`` beside this file and printed:

    python3 benchmarks/results/study5b_schedule/schedule.py

Needs ``smart_tune`` importable (the repository's ``.venv``) for its paired statistics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from smart_tune.report import kept_epoch, mean_std, paired_stats

HERE = Path(__file__).resolve().parent
STUDY5 = HERE.parent / "study5_protocol" / "full"
POINT = "lr=5e-05"  # Study 5's choice for plain and smart on CoLA (full/grid_choice.json)
METHODS = {"plain": "vanilla", "smart": "smart"}


def runs(folder: Path, method: str) -> list[dict]:
    """Every seed's ``results.json`` of ``method`` at Study 5's point on CoLA under ``folder``."""
    paths = sorted((folder / "cola" / f"{method}@{POINT}").glob("seed-*/results.json"))
    return [json.loads(p.read_text()) for p in paths]


def scores(folder: Path, method: str, metric: str) -> dict[int, float]:
    """``metric`` ×100 of each seed's kept model: {seed: score}."""
    return {r["seed"]: 100 * r["metrics"][metric] for r in runs(folder, method)}


def kept_epochs(folder: Path, method: str) -> list[float | None]:
    """The epoch of each seed's kept model (``smart-tune report``'s own reading of a run)."""
    return [kept_epoch(r) for r in runs(folder, method)]


def cell(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.2f} ± {std:.2f}"


def delta(pairs: list[float]) -> str:
    d = paired_stats(pairs)
    low, high = d["ci95"]
    return f"{d['mean']:+.2f} [{low:+.2f}, {high:+.2f}] ({d['wins']}/{d['n']})"


def table(metric: str) -> list[str]:
    """One row per schedule (mean ± std per method, smart − plain) and one per method (6 − 3 epochs)."""
    by = {(e, name): scores(f, m, metric) for e, f in ((6, HERE), (3, STUDY5)) for name, m in METHODS.items()}
    seeds = sorted(set.intersection(*(set(s) for s in by.values())))
    if not seeds:
        sys.exit(f"schedule.py: no seed has every run of {sorted(by)} under {HERE} and {STUDY5}")
    lines = [
        f"| {metric} ×100, seeds {','.join(map(str, seeds))} | plain | `smart` | Δ `smart` − plain |",
        "|---|---:|---:|---:|",
    ]
    for epochs in (3, 6):
        plain, smart = ([by[epochs, n][s] for s in seeds] for n in METHODS)
        pairs = [b - a for a, b in zip(plain, smart)]
        lines.append(f"| {epochs} epochs | {cell(plain)} | {cell(smart)} | {delta(pairs)} |")
    moves = [delta([by[6, n][s] - by[3, n][s] for s in seeds]) for n in METHODS]
    lines.append(f"| Δ 6 − 3 epochs | {moves[0]} | {moves[1]} | |")
    return lines


def main() -> None:
    lines = ["# Study 5b: CoLA after 6 epochs beside Study 5's 3", ""]
    lines += [
        "Kept model (epoch chosen on the held-out 10% of train) scored on dev; the held-out score below.",
        "Δ: paired difference on the same seeds [95% interval, Student's t] (seeds ahead, of n).",
        "",
    ]
    for metric in ("matthews_correlation", "matthews_correlation_holdout"):
        lines += table(metric) + [""]
    for name, method in METHODS.items():
        lines.append(f"Kept epoch, 6-epoch runs, {name}: {kept_epochs(HERE, method)}")
    text = "\n".join(lines) + "\n"
    (HERE / "schedule.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
