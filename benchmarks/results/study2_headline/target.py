"""Issue 4's target, checked against Study 2's report: does the chosen default (`smart`) meet it?

The target, as the issue states it: the default beats plain fine-tuning on the four-task average by
at least 1.5 points (mean over seeds), is no worse than plain on any task, beats R3F on the average,
and its spread over seeds is no larger than plain's. Each clause becomes one check on ``summary.json``
(``smart-tune report``'s output), with the numbers it rests on:

- average: the paired difference smart − vanilla of the per-seed four-task mean, mean over seeds ≥ 1.5;
- every task: the mean paired difference smart − vanilla ≥ 0 ("no worse": on average over seeds);
- R3F: the mean paired difference smart − r3f of the four-task mean > 0 (seeds both have);
- spread: the std over seeds of smart's four-task mean ≤ vanilla's (per-task spreads are listed too).

Once for the kept model (best epoch on dev) and once for the model training ended with. Below each
table, for information, the same differences on the GLUE benchmark's own average, which first averages
MRPC's accuracy with its F1 and STS-B's Pearson with its Spearman (the target uses main metrics). Prints a
Markdown table and writes it to ``target.md`` beside the summary; exits 0 whether or not the target is
met (the table says which), 1 when the summary lacks what a check needs.

    python3 benchmarks/results/study2_headline/target.py [benchmarks/results/study2_headline/summary.json]

Standard library only.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

AVERAGE, AVERAGE_METRIC, LAST = "average", "mean_of_main_metrics", "last_epoch_"
METHOD, BASELINE, RIVAL = "smart", "vanilla", "r3f"
MARGIN = 0.015  # 1.5 points, in the summary's 0-1 scale
GLUE_SCORE = {"mrpc": ("accuracy", "f1"), "stsb": ("pearson", "spearman")}  # other tasks: their main metric


def entry(summary: dict, group: str, method: str) -> dict:
    """One method's entry in one group of the summary ({} when absent)."""
    return summary.get(group, {}).get("methods", {}).get(method) or {}


def task_groups(summary: dict) -> list[str]:
    """The summary's per-task groups: not the average, not a training fraction of a task."""
    return [g for g, data in summary.items() if g != AVERAGE and data.get("train_fraction") is None]


def by_seed(summary: dict, group: str, method: str, metric: str) -> dict[int, float]:
    """{seed: value} of one method's metric in one group of the summary; {} when absent."""
    stats = entry(summary, group, method).get("metrics", {}).get(metric)
    return dict(zip(stats["seeds"], stats["values"])) if stats else {}


def checks(summary: dict, last_epoch: bool) -> list[tuple[str, str, bool]]:
    """(clause, the numbers, met) for each clause of the target, on one of the two models. Paired
    differences to plain and spreads are the report's own (``vs_vanilla``, ``std``); only the
    difference to R3F is paired here."""
    prefix = LAST if last_epoch else ""
    avg = prefix + AVERAGE_METRIC
    smart, plain = entry(summary, AVERAGE, METHOD), entry(summary, AVERAGE, BASELINE)
    gain = smart.get("vs_vanilla", {}).get(avg)
    if not gain:
        raise KeyError(f"no '{avg}' of both {METHOD} and {BASELINE} in the summary's '{AVERAGE}' group")
    tasks = task_groups(summary)
    per_task, spreads = [], []
    for task in tasks:
        metric = prefix + summary[task]["main_metric"]
        s, p = entry(summary, task, METHOD), entry(summary, task, BASELINE)
        if metric in s.get("vs_vanilla", {}):
            per_task.append((task, s["vs_vanilla"][metric]["mean"]))
        if s.get("n", 0) > 1 and p.get("n", 0) > 1:
            spreads.append(
                f"{task} {100 * s['metrics'][metric]['std']:.2f} vs {100 * p['metrics'][metric]['std']:.2f}"
            )
    d = paired(by_seed(summary, AVERAGE, METHOD, avg), by_seed(summary, AVERAGE, RIVAL, avg))
    s_std, p_std = smart["metrics"][avg]["std"], plain["metrics"][avg]["std"]
    return [
        (
            f"four-task average: {METHOD} − {BASELINE} ≥ +{100 * MARGIN:.1f}",
            f"{100 * gain['mean']:+.2f} ± {100 * gain['std']:.2f} over {gain['n']} seeds",
            gain["mean"] >= MARGIN,
        ),
        (
            f"no task worse than {BASELINE} (mean paired Δ ≥ 0)",
            ", ".join(f"{t} {100 * m:+.2f}" for t, m in per_task),
            bool(per_task) and all(m >= 0 for _, m in per_task),
        ),
        (
            f"four-task average: {METHOD} beats {RIVAL}",
            *ahead(d),
        ),
        (
            f"spread of the four-task average: std {METHOD} ≤ std {BASELINE}",
            f"{100 * s_std:.2f} vs {100 * p_std:.2f} (per task: {'; '.join(spreads)})",
            s_std <= p_std + 1e-12,  # equal spreads may differ in the last bit
        ),
    ]


def glue_average(summary: dict, method: str, last_epoch: bool) -> dict[int, float]:
    """{seed: GLUE-style average} of one method: per task the mean of its GLUE_SCORE metrics (else its
    main metric), then the mean over the tasks; only seeds where the method has every one of them."""
    prefix = LAST if last_epoch else ""
    per_task = []
    for task in task_groups(summary):
        names = GLUE_SCORE.get(task, (summary[task]["main_metric"],))
        columns = [by_seed(summary, task, method, prefix + name) for name in names]
        seeds = set.intersection(*(set(c) for c in columns))
        per_task.append({seed: statistics.fmean(c[seed] for c in columns) for seed in seeds})
    seeds = set.intersection(*(set(t) for t in per_task)) if per_task else set()
    return {seed: statistics.fmean(t[seed] for t in per_task) for seed in sorted(seeds)}


def glue_note(summary: dict, last_epoch: bool) -> str:
    """One line: the GLUE-style average's paired differences of smart to vanilla and to r3f."""
    mine = glue_average(summary, METHOD, last_epoch)
    parts = []
    for other in (BASELINE, RIVAL):
        d = paired(mine, glue_average(summary, other, last_epoch))
        if d:
            parts.append(
                f"{METHOD} − {other} {100 * statistics.fmean(d):+.2f} ± {100 * std(d):.2f} over {len(d)} seeds"
            )
    found = "; ".join(parts) or "no seed has every task for both"
    return f"For information, on GLUE's own average (MRPC accuracy and F1, STS-B Pearson and Spearman averaged first): {found}."


def paired(a: dict[int, float], b: dict[int, float]) -> list[float]:
    """a − b on the seeds both have, in seed order."""
    return [a[seed] - b[seed] for seed in sorted(a) if seed in b]


def ahead(d: list[float]) -> tuple[str, bool]:
    """The paired differences ``d`` to R3F shown (mean ± std over n seeds), and whether they are ahead."""
    if not d:
        return "no r3f runs", False
    return f"{100 * statistics.fmean(d):+.2f} ± {100 * std(d):.2f} over {len(d)} seeds", statistics.fmean(
        d
    ) > 0


def std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def to_markdown(summary: dict) -> str:
    lines = [
        "# Issue 4's target, checked on Study 2 (`target.py`)",
        "",
        "Points ×100 of each task's main metric; Δ = paired difference on the same seeds (mean ± std).",
    ]
    for last_epoch, title in (
        (False, "kept model (best epoch on dev)"),
        (True, "model at the end of training"),
    ):
        lines += ["", f"## {title}", "", "| clause | measured | met |", "|---|---|---|"]
        rows = checks(summary, last_epoch)
        lines += [f"| {clause} | {numbers} | {'yes' if met else '**no**'} |" for clause, numbers, met in rows]
        lines += ["", f"Target met: {'yes' if all(met for _, _, met in rows) else '**no**'}."]
        lines += ["", glue_note(summary, last_epoch)]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else Path(__file__).with_name("summary.json"))
    try:
        summary = json.loads(path.read_text())
        text = to_markdown(summary)
    except (OSError, ValueError, KeyError) as exc:
        print(f"target.py: {path}: {exc}", file=sys.stderr)
        return 1
    path.with_name("target.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
