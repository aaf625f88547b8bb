"""Issue 17's target, checked on Study 5's report, written before Study 5's method runs are in.

The target, as the issue states it: default SMART − plain (each tuned on the same grid, selected on
held-out data) ≥ +1.0 on the four-task mean over 5 seeds, no task with a mean paired Δ below −0.5, and
ahead of R3F; seed std no larger than plain's. Each clause is one check on ``summary.json`` (``smart-tune
report``'s output for ``full/``, where each method already stands at its grid point chosen on the
held-out part, ``grid_choice.json``), with the numbers it rests on:

- average: the paired difference CANDIDATE − vanilla of the per-seed four-task mean, mean ≥ +1.0, with
  its 95% interval (Student's t over the seeds);
- every task: the mean paired difference CANDIDATE − vanilla ≥ −0.5;
- R3F: the mean paired difference CANDIDATE − r3f of the four-task mean > 0;
- spread: the std over seeds of CANDIDATE's four-task mean ≤ vanilla's;
- seeds: the comparisons with plain and with R3F each rest on 5 paired seeds (fewer: the table says
  so and the target is not met);
- the four tasks: the average is over RTE, MRPC, STS-B and CoLA, each with its per-task Δ (a task
  missing from the summary fails the per-task clause and this one, rather than leaving the mean to the
  tasks that are there);
- held-out selection: every run of the four tasks chose its kept epoch on the held-out part of train
  (``selected_on``), so each grid point was chosen on held-out scores too (``grid.select`` refuses to
  mix them with dev scores);
- the same grid: CANDIDATE, plain and R3F were each tuned over the same grid points (``grid.json``
  beside the summary; missing: not met).

The kept model only (its epoch chosen on the held-out part; dev scores it). CANDIDATE is ``smart`` (the
paper-literal default) and, reported as extra tuning budget, ``smart-fit``. target.md ends with the
design's "best SMART" (``best_smart``: the candidate with the higher mean held-out score over the four
tasks), the setting ``benchmarks/results/decisions.env`` records for the library default. Prints a Markdown table and
writes ``target.md`` beside the summary; exits 0 whether or not the target is met, 1 when the summary
lacks what a check needs.

    python3 benchmarks/results/study5_protocol/target.py [benchmarks/results/study5_protocol/full/summary.json]

Reuses Study 2's reading of a summary (``study2_headline/target.py``); the interval is
``smart_tune.report.paired_interval``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from smart_tune.report import paired_interval, tally_text
from smart_tune.results import TRAIN_HOLDOUT

_spec = importlib.util.spec_from_file_location(
    "study2_target", Path(__file__).resolve().parents[1] / "study2_headline" / "target.py"
)
study2 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study2)

AVERAGE, AVERAGE_METRIC = study2.AVERAGE, study2.AVERAGE_METRIC
BASELINE, RIVAL = "vanilla", "r3f"
CANDIDATES = ("smart", "smart-fit")
MARGIN = 0.010  # +1.0 point on the four-task mean, in the summary's 0-1 scale
FLOOR = -0.005  # no task's mean paired Δ below −0.5 points
SEEDS = 5
TASKS = ("cola", "mrpc", "rte", "stsb")


def same_grid(grids: dict | None, method: str) -> tuple[str, bool]:
    """Whether ``method``, plain and R3F were tuned over the same grid points (``grid.json``)."""
    if grids is None:
        return "no grid.json", False
    points = {
        m: sorted(json.dumps(p["settings"], sort_keys=True) for p in grids.get(m, []))
        for m in (method, BASELINE, RIVAL)
    }
    met = all(points.values()) and len({tuple(v) for v in points.values()}) == 1
    shown = "; ".join(f"{m}: {', '.join(v) or 'none'}" for m, v in points.items())
    return (f"all three: {', '.join(points[method])}" if met else shown), met


def checks(summary: dict, method: str, grids: dict | None = None) -> list[tuple[str, str, bool]]:
    """(clause, the numbers, met) for each clause of the target, for one candidate; ``grids`` is
    ``grid.json`` (method → its grid points), None when there is none."""
    avg = AVERAGE_METRIC
    mine, plain = study2.entry(summary, AVERAGE, method), study2.entry(summary, AVERAGE, BASELINE)
    gain = mine.get("vs_vanilla", {}).get(avg)
    if not gain:
        raise KeyError(f"no '{avg}' of both {method} and {BASELINE} in the summary's '{AVERAGE}' group")
    interval = paired_interval(gain["mean"], gain["std"], gain["n"])
    shown = f"[{100 * interval[0]:+.2f}, {100 * interval[1]:+.2f}]" if interval else "n/a"
    per_task = []  # (task, mean paired Δ or None when the task has none)
    for task in TASKS:
        metric = summary.get(task, {}).get("main_metric")
        diff = study2.entry(summary, task, method).get("vs_vanilla", {}).get(metric)
        per_task.append((task, diff["mean"] if diff else None))
    averaged = sorted(summary.get(AVERAGE, {}).get("averaged", {}))
    selected = {task: summary.get(task, {}).get("selected_on", []) for task in TASKS}
    d = study2.paired(
        study2.by_seed(summary, AVERAGE, method, avg), study2.by_seed(summary, AVERAGE, RIVAL, avg)
    )
    s_std, p_std = mine["metrics"][avg]["std"], plain["metrics"][avg]["std"]
    grid_shown, grid_met = same_grid(grids, method)
    return [
        (
            f"four-task mean: {method} − {BASELINE} ≥ +{100 * MARGIN:.1f}",
            f"{100 * gain['mean']:+.2f} ± {100 * gain['std']:.2f}, 95% interval {shown}, {tally_text(gain)} seeds (wins/ties/losses)",
            gain["mean"] >= MARGIN,
        ),
        (
            f"no task's mean paired Δ below {100 * FLOOR:+.1f}",
            ", ".join(f"{t} {100 * m:+.2f}" if m is not None else f"{t} missing" for t, m in per_task),
            all(m is not None and m >= FLOOR for _, m in per_task),
        ),
        (
            f"four-task mean: {method} ahead of {RIVAL}",
            *study2.ahead(d),
        ),
        (
            f"spread of the four-task mean: std {method} ≤ std {BASELINE}",
            f"{100 * s_std:.2f} vs {100 * p_std:.2f}",
            s_std <= p_std + 1e-12,  # equal spreads may differ in the last bit
        ),
        (
            f"{SEEDS} paired seeds",
            f"{gain['n']} with {BASELINE}, {len(d)} with {RIVAL}",
            gain["n"] >= SEEDS and len(d) >= SEEDS,
        ),
        (
            f"the four-task mean is over {', '.join(TASKS)}",
            ", ".join(averaged) or "no task",
            averaged == list(TASKS),
        ),
        (
            "every run's epoch (so every grid point) chosen on the held-out part",
            "; ".join(f"{t} {', '.join(v) or 'missing'}" for t, v in selected.items()),
            all(v == [TRAIN_HOLDOUT] for v in selected.values()),
        ),
        (f"{method}, {BASELINE} and {RIVAL} tuned over the same grid", grid_shown, grid_met),
    ]


def best_smart(summary: dict) -> tuple[str | None, dict[str, float | None]]:
    """Study 5's pre-registered rule for the "best SMART" (docs/results.md, its design): the candidate
    with the higher mean held-out score over the four tasks, i.e. the mean over TASKS of its mean over
    seeds of the main metric scored on the held-out part of train (``<metric>_holdout``, never dev).

    Returns (the candidate, or None when none has every task's held-out score; {candidate: its score
    on the summary's 0-1 scale, None when a task lacks it}). A tie goes to the first candidate, the
    paper-literal ``smart``: a changed default needs the evidence to prefer it."""
    scores: dict[str, float | None] = {}
    for method in CANDIDATES:
        per_task = []
        for task in TASKS:
            metric = f"{summary.get(task, {}).get('main_metric')}_holdout"
            per_task.append(
                study2.entry(summary, task, method).get("metrics", {}).get(metric, {}).get("mean")
            )
        scores[method] = None if None in per_task else sum(per_task) / len(per_task)
    ranked = [m for m in CANDIDATES if scores[m] is not None]
    return (max(ranked, key=lambda m: scores[m]) if ranked else None), scores


def best_smart_markdown(summary: dict) -> list[str]:
    """The rule's section of target.md: each candidate's held-out four-task mean and the choice."""
    best, scores = best_smart(summary)
    shown = ", ".join(
        f"`{m}` {100 * v:.2f}" if v is not None else f"`{m}` incomplete" for m, v in scores.items()
    )
    return [
        "",
        "## Best SMART (the pre-registered rule)",
        "",
        f"The candidate with the higher mean held-out score over {', '.join(TASKS)} (main metric ×100 on",
        f"the held-out part of train, mean over seeds; dev not used): {shown}.",
        f"Best SMART: {f'`{best}`' if best else 'none yet (a task lacks held-out scores)'}.",
    ]


def to_markdown(summary: dict, grids: dict | None = None) -> str:
    lines = [
        "# Issue 17's target, checked on Study 5 (`target.py`)",
        "",
        "Points ×100 of each task's main metric on dev, each method at its grid point chosen on the held-out",
        "part; Δ = paired difference on the same seeds (mean ± std, Student's t interval).",
    ]
    for method in CANDIDATES:
        if not study2.entry(summary, AVERAGE, method):
            lines += ["", f"## {method}", "", "No runs of it in the summary."]
            continue
        rows = checks(summary, method, grids)
        lines += ["", f"## {method}", "", "| clause | measured | met |", "|---|---|---|"]
        lines += [f"| {clause} | {numbers} | {'yes' if met else '**no**'} |" for clause, numbers, met in rows]
        lines += ["", f"Target met: {'yes' if all(met for _, _, met in rows) else '**no**'}."]
    return "\n".join(lines + best_smart_markdown(summary)) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else Path(__file__).with_name("full") / "summary.json")
    try:
        summary = json.loads(path.read_text())
        grid_file = path.with_name("grid.json")
        grids = json.loads(grid_file.read_text()) if grid_file.is_file() else None
        text = to_markdown(summary, grids)
    except (OSError, ValueError, KeyError) as exc:
        print(f"target.py: {path}: {exc}", file=sys.stderr)
        return 1
    path.with_name("target.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
