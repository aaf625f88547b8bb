"""Study 5's learning curves: a task's main metric ×100 after each epoch, mean over the seeds, per method
at its chosen grid point (``full/grid_choice.json``), on the held-out part and on dev, read from each
run's ``log_history`` (the evaluations during training, before the Trainer's ``train_runtime`` entry).

    python3 benchmarks/results/study5_protocol/curves.py [TASK (cola)] [FOLDER (…/full)]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def curve(path: Path, key: str) -> list[float]:
    """``key``'s value at each evaluation during training of one run, in order."""
    history = json.loads(path.read_text())["log_history"]
    end = next((i for i, e in enumerate(history) if "train_runtime" in e), len(history))
    return [100 * e[key] for e in history[:end] if key in e]


def main(task: str = "cola", folder: Path = HERE / "full") -> None:
    choice = json.loads((folder / "grid_choice.json").read_text())[task]
    runs = {m: sorted((folder / task / c["chosen"]).glob("seed-*/results.json")) for m, c in choice.items()}
    main_metric = json.loads(next(iter(runs.values()))[0].read_text())["main_metric"]
    print(f"{task} {main_metric} ×100 after each epoch, mean over seeds; held-out | dev")
    print("| method | seeds | held-out | dev |\n|---|---|---|---|")
    for method, paths in runs.items():
        cells = []
        for split in ("holdout", "dev"):
            curves = [curve(p, f"eval_{split}_{main_metric}") for p in paths]
            means = [sum(c[i] for c in curves) / len(curves) for i in range(min(map(len, curves)))]
            cells.append(" / ".join(f"{v:.1f}" for v in means))
        seeds = ",".join(p.parent.name.removeprefix("seed-") for p in paths)
        print(f"| {method} | {seeds} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main(*sys.argv[1:2], *(Path(a) for a in sys.argv[2:3]))
