"""Study 6's report and cost estimate (run.sh calls both).

    python report.py FOLDER            # reads FOLDER's finished runs, writes FOLDER/summary.md and
                                       # a chart per part beside it (summary-a.png, -b, -c)
    run.sh's job list | python report.py --estimate -   # jobs and lane-hours, from Studies 4-5's costs

Scores are ×100: mean ± std over seeds, and paired differences (same seed) as mean [95% interval] (wins,
ties and losses of n: smart_tune.report.tally), the interval Student's t over the seeds
(smart_tune.report.paired_interval).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from smart_tune.agreement import BUCKETS, OTHER
from smart_tune.report import _pyplot, _save_figure, mean_std, paired_stats, tally_text

ROOT = Path(__file__).resolve().parents[3]
TASKS = ("rte", "mrpc", "stsb", "cola", "sst2")
METHODS = ("vanilla", "smart")
NAMES = {"vanilla": "plain", "smart": "SMART"}
STARTS = ("minilm", "mt-vanilla", "mt-smart")
START_NAMES = {"minilm": "MiniLM", "mt-vanilla": "MT plain", "mt-smart": "MT SMART"}
AVERAGE = "average"

# Scores: {(group, arm, column): {seed: value ×100}}; group "glue" (arm "single/M", "mt/M", "mt-ft/M";
# column a task), "snli" (arm "START/M"; column the fraction, e.g. "10pct"), "agreement" (arm
# "START/M"; column a bucket).
Scores = dict[tuple[str, str, str], dict[int, float]]


class DamagedFile(Exception):
    """A run's results.json or agreement.json that cannot be read, or lacks what the report reads."""


@contextmanager
def _damaged(path: Path) -> Iterator[None]:
    """Turns a missing or mistyped field of ``path`` into one line naming the file (not a traceback)."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DamagedFile(f"{path}: not a finished run's file ({type(exc).__name__}: {exc})") from None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DamagedFile(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise DamagedFile(f"{path}: not a JSON object")
    return data


def _main_score(metrics: dict[str, float], main: str) -> float:
    return 100.0 * metrics[main]


def _seed(path: Path) -> int:
    return int(path.name.split("-", 1)[1])


def collect(folder: str | Path) -> Scores:
    """Every finished run's score under ``folder`` (run.sh's layout)."""
    folder = Path(folder)
    scores: Scores = {}

    def put(group: str, arm: str, column: str, seed: int, value: float) -> None:
        scores.setdefault((group, arm, column), {})[seed] = value

    for arm, pattern in (("single", "single/*/*/seed-*"), ("mt-ft", "mt-ft-*/*/*/seed-*")):
        for run in sorted(folder.glob(pattern)):
            if (run / "results.json").exists():
                r = _read(run / "results.json")
                with _damaged(run / "results.json"):
                    score = _main_score(r["metrics"], r["main_metric"])
                    put("glue", f"{arm}/{r['method']}", r["task"], _seed(run), score)
    for run in sorted(folder.glob("mt/*/seed-*")):
        if (run / "results.json").exists():
            r = _read(run / "results.json")
            with _damaged(run / "results.json"):
                for task, entry in r["tasks"].items():
                    score = _main_score(entry["metrics"], entry["main_metric"])
                    put("glue", f"mt/{r['method']}", task, _seed(run), score)
    for run in sorted(folder.glob("da-*/*/snli/*/seed-*")):
        start, fraction, method = run.parts[-5][len("da-") :], run.parts[-4], run.parts[-2]
        if (run / "results.json").exists():
            r = _read(run / "results.json")
            with _damaged(run / "results.json"):
                score = _main_score(r["metrics"], r["main_metric"])
                put("snli", f"{start}/{method}", fraction, _seed(run), score)
        if (run / "agreement.json").exists():
            agreement = _read(run / "agreement.json")
            with _damaged(run / "agreement.json"):
                for bucket, entry in agreement["by_agreement"].items():
                    put("agreement", f"{start}/{method}", bucket, _seed(run), 100.0 * entry["accuracy"])
    return scores


def with_average(scores: Scores, group: str = "glue") -> Scores:
    """Adds, per arm of ``group``, the column "average": per seed, the mean over the tasks the group has
    (any arm), for the seeds that have every one of them."""
    out = dict(scores)
    present = {c for g, _, c in scores if g == group}
    columns = [t for t in TASKS if t in present] + sorted(present - set(TASKS))
    arms = {arm for g, arm, _ in scores if g == group}
    for arm in arms:
        per_task = [scores.get((group, arm, c), {}) for c in columns]
        seeds = set.intersection(*(set(p) for p in per_task)) if per_task else set()
        if seeds:
            out[(group, arm, AVERAGE)] = {
                s: sum(p[s] for p in per_task) / len(per_task) for s in sorted(seeds)
            }
    return out


def paired(a: dict[int, float], b: dict[int, float]) -> dict[str, Any] | None:
    """a − b over the seeds both have: smart_tune.report.paired_stats (n, mean, std, wins, ties, losses
    and the 95% interval, here under ``interval``: None under two pairs) and the differences."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = [a[s] - b[s] for s in seeds]
    stats = paired_stats(diffs)
    return {**stats, "interval": stats.pop("ci95"), "diffs": diffs}


def score_cell(values: dict[int, float] | None) -> str:
    if not values:
        return "–"
    mean, std = mean_std(list(values.values()))
    return f"{mean:.2f} ± {std:.2f} (n={len(values)})"


def delta_cell(d: dict[str, Any] | None) -> str:
    if d is None:
        return "–"
    interval = f" [{d['interval'][0]:+.2f}, {d['interval'][1]:+.2f}]" if d["interval"] else ""
    text = f"{d['mean']:+.2f}{interval} ({tally_text(d)})"
    return f"**{text}**" if d["interval"] and (d["interval"][0] > 0 or d["interval"][1] < 0) else text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


# The arms of (a), in the order of the tables, and the paired differences reported.
GLUE_ARMS = [
    ("single/vanilla", "single-task plain"),
    ("single/smart", "single-task SMART"),
    ("mt/vanilla", "multi-task plain (no fine-tuning)"),
    ("mt/smart", "multi-task SMART (no fine-tuning)"),
    ("mt-ft/vanilla", "multi-task plain + fine-tuning (MT-DNN)"),
    ("mt-ft/smart", "multi-task SMART + fine-tuning (MT-DNN-SMART)"),
]
GLUE_DELTAS = [
    ("single/smart", "single/vanilla", "SMART − plain, single-task"),
    ("mt/smart", "mt/vanilla", "SMART − plain, multi-task"),
    ("mt-ft/smart", "mt-ft/vanilla", "SMART − plain, multi-task + fine-tuning"),
    ("mt/vanilla", "single/vanilla", "multi-task − single-task, plain"),
    ("mt-ft/vanilla", "single/vanilla", "MT-DNN − single-task plain"),
    ("mt-ft/smart", "single/smart", "MT-DNN-SMART − single-task SMART"),
    ("mt-ft/smart", "single/vanilla", "MT-DNN-SMART − single-task plain"),
]


def glue_section(scores: Scores) -> list[str]:
    scores = with_average(scores)
    columns = [*TASKS, AVERAGE]
    lines = ["## (a) Single-task against multi-task (dev, main metric ×100)", ""]
    rows = [[name] + [score_cell(scores.get(("glue", arm, c))) for c in columns] for arm, name in GLUE_ARMS]
    lines += _table(["arm", *columns], rows)
    lines += [
        "",
        "Paired differences (same seed): mean [95% interval] (W/T/L of n: wins, ties, losses over n seeds); "
        "bold: the interval excludes 0.",
        "",
    ]
    rows = [
        [name]
        + [
            delta_cell(paired(scores.get(("glue", a, c), {}), scores.get(("glue", b, c), {})))
            for c in columns
        ]
        for a, b, name in GLUE_DELTAS
    ]
    return lines + _table(["difference", *columns], rows)


def _fraction_key(column: str) -> float:
    return float(column.removesuffix("pct"))


def snli_section(scores: Scores) -> list[str]:
    fractions = sorted({c for g, _, c in scores if g == "snli"}, key=_fraction_key)
    lines = ["## (b) Domain adaptation: fraction of SNLI dev trained on → SNLI test accuracy ×100", ""]
    if not fractions:
        return lines + ["(no runs yet)"]
    arms = [(f"{s}/{m}", f"{START_NAMES[s]}, {NAMES[m]}") for s in STARTS for m in METHODS]
    rows = [[name] + [score_cell(scores.get(("snli", arm, f))) for f in fractions] for arm, name in arms]
    lines += _table(["start, fine-tuning", *fractions], rows)
    deltas = [(f"{s}/smart", f"{s}/vanilla", f"SMART − plain, from {START_NAMES[s]}") for s in STARTS]
    deltas += [
        (f"{s}/{m}", f"minilm/{m}", f"{START_NAMES[s]} − MiniLM start, {NAMES[m]}")
        for s in STARTS[1:]
        for m in METHODS
    ]
    rows = [
        [name]
        + [
            delta_cell(paired(scores.get(("snli", a, f), {}), scores.get(("snli", b, f), {})))
            for f in fractions
        ]
        for a, b, name in deltas
    ]
    return lines + ["", "Paired differences (same seed):", ""] + _table(["difference", *fractions], rows)


def agreement_section(scores: Scores) -> list[str]:
    buckets = [b for b in (*BUCKETS, OTHER) if any(g == "agreement" and c == b for g, _, c in scores)]
    lines = [
        "## (c) SNLI test accuracy ×100 by annotator agreement (the 100% models of (b))",
        "",
        "Buckets: sorted counts of the five annotator labels (SNLI test: 5/0/0 5,368 pairs, 4/1/0 2,868, "
        "3/2/0 1,224, 3/1/1 355; other: the 9 pairs with four labels; the 176 without a gold label are "
        "not scored).",
        "",
    ]
    if not buckets:
        return lines + ["(no runs yet)"]
    arms = [(f"{s}/{m}", f"{START_NAMES[s]}, {NAMES[m]}") for s in STARTS for m in METHODS]
    rows = [[name] + [score_cell(scores.get(("agreement", arm, b))) for b in buckets] for arm, name in arms]
    lines += _table(["model", *buckets], rows)
    rows = [
        [f"SMART − plain, from {START_NAMES[s]}"]
        + [
            delta_cell(
                paired(
                    scores.get(("agreement", f"{s}/smart", b), {}),
                    scores.get(("agreement", f"{s}/vanilla", b), {}),
                )
            )
            for b in buckets
        ]
        for s in STARTS
    ]
    return lines + ["", "Paired differences (same seed):", ""] + _table(["difference", *buckets], rows)


def to_markdown(scores: Scores, charts: dict[str, str] | None = None) -> str:
    """The summary; ``charts`` ({part: file name}, from write_charts) are shown below their part's tables."""
    charts = charts or {}
    lines = ["# Study 6: SMART with multi-task learning, domain adaptation, error analysis", ""]
    lines += ["Written by report.py from the finished runs; n is the number of seeds.", ""]
    if charts:
        lines += [CHART_NOTE, ""]
    for part, section in zip(PARTS, (glue_section, snli_section, agreement_section)):
        lines += section(scores) + [""]
        if part in charts:
            lines += [f"![Study 6 ({part})]({charts[part]})", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Charts: one PNG per part beside summary.md (docs/results.md shows a table and a chart for each), in
# the two rows of every study's chart.

PARTS = ("a", "b", "c")
CHART_FILES = {part: f"summary-{part}.png" for part in PARTS}
CHART_NOTE = (
    "Charts: top, each arm's mean ×100 with its std and a dot per seed (bars from zero in (a) and (c), "
    "lines against the fraction of SNLI dev, log scale, in (b)); bottom, the paired differences of the "
    "tables, a dot per seed and their mean ± std (◆), around a zero line."
)
COLORS = {"vanilla": "#8fb3d9", "smart": "#e8a87c"}  # bars: the arm's fine-tuning method
START_COLORS = {"minilm": "#2b5d8a", "mt-vanilla": "#3a9a5b", "mt-smart": "#c0392b"}
GLUE_SHORT = {
    "single/vanilla": "single plain",
    "single/smart": "single SMART",
    "mt/vanilla": "MT plain",
    "mt/smart": "MT SMART",
    "mt-ft/vanilla": "MT-DNN",
    "mt-ft/smart": "MT-DNN-SMART",
}
GLUE_DELTAS_SHORT = [
    "SMART − plain, single",
    "SMART − plain, MT",
    "SMART − plain, MT + FT",
    "MT − single, plain",
    "MT-DNN − single plain",
    "MT-DNN-SMART − single SMART",
    "MT-DNN-SMART − single plain",
]
AGREEMENT_SHORT = {f"{s}/{m}": f"{START_NAMES[s]}, {NAMES[m]}" for s in STARTS for m in METHODS}


def _bar_panel(ax, title: str, arms: list[tuple[str, str]], scores: dict[str, dict[int, float]]) -> None:
    """Top row: each arm's mean from zero, its std and a dot per seed (arms without runs left empty)."""
    for x, (arm, _) in enumerate(arms):
        values = list(scores.get(arm, {}).values())
        if values:
            mean, std = mean_std(values)
            color = COLORS[arm.rsplit("/", 1)[1]]
            ax.bar(x, mean, yerr=std, capsize=3, color=color, edgecolor="#333333", linewidth=0.6)
            ax.plot([x] * len(values), values, "o", color="#1b3a57", markersize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(range(len(arms))), [label for _, label in arms], rotation=35, ha="right")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)


def _delta_panel(ax, title: str, deltas: list[tuple[dict[str, Any] | None, str]]) -> None:
    """Bottom row: each paired difference's per-seed values (dots) and mean ± std (◆), y symmetric about 0."""
    reach = 0.5
    for x, (d, _) in enumerate(deltas):
        if d is not None:
            ax.plot([x] * d["n"], d["diffs"], "o", color="#1b3a57", markersize=3)
            ax.errorbar(
                [x + 0.15], [d["mean"]], yerr=[d["std"]], fmt="D", color="#c0392b", capsize=4, markersize=5
            )
            reach = max(reach, *(abs(v) for v in d["diffs"]), abs(d["mean"]) + d["std"])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylim(-1.2 * reach, 1.2 * reach)
    ax.set_xlim(-0.5, len(deltas) - 0.5)
    ax.set_xticks(list(range(len(deltas))), [label for _, label in deltas], rotation=35, ha="right")
    ax.set_title(title)
    ax.set_ylabel("Δ (points)")
    ax.grid(axis="y", alpha=0.3)


def _bars_chart(
    path: Path,
    scores: Scores,
    group: str,
    columns: list[str],
    arms: list[tuple[str, str]],
    deltas: list[tuple[str, str, str]],
    title: str,
) -> None:
    """(a) and (c): a column per task (bucket); top, the arms' scores; bottom, the paired differences."""
    plt = _pyplot()
    width = max(3.6, 0.45 * max(len(arms), len(deltas)) + 1.2)
    fig, axes = plt.subplots(2, len(columns), figsize=(width * len(columns), 8.4), squeeze=False)
    for col, column in enumerate(columns):
        by_arm = {arm: scores.get((group, arm, column), {}) for arm, _ in arms}
        _bar_panel(axes[0][col], column, arms, by_arm)
        pairs = [
            (paired(scores.get((group, a, column), {}), scores.get((group, b, column), {})), label)
            for a, b, label in deltas
        ]
        _delta_panel(axes[1][col], f"{column}: paired (same seed)", pairs)
    fig.suptitle(title)
    _save_figure(fig, path)


def _glue_chart(path: Path, scores: Scores) -> bool:
    scores = with_average(scores)
    present = {c for g, _, c in scores if g == "glue"}
    columns = [c for c in (*TASKS, AVERAGE) if c in present]
    if not columns:
        return False
    arms = [(arm, GLUE_SHORT[arm]) for arm, _ in GLUE_ARMS]
    deltas = [(a, b, short) for (a, b, _), short in zip(GLUE_DELTAS, GLUE_DELTAS_SHORT)]
    _bars_chart(path, scores, "glue", columns, arms, deltas, "(a) single-task against multi-task: dev ×100")
    return True


def _agreement_chart(path: Path, scores: Scores) -> bool:
    buckets = [b for b in (*BUCKETS, OTHER) if any(g == "agreement" and c == b for g, _, c in scores)]
    if not buckets:
        return False
    arms = list(AGREEMENT_SHORT.items())
    deltas = [(f"{s}/smart", f"{s}/vanilla", f"SMART − plain, {START_NAMES[s]}") for s in STARTS]
    title = "(c) SNLI test accuracy ×100 by annotator agreement, the 100% models of (b)"
    _bars_chart(path, scores, "agreement", buckets, arms, deltas, title)
    return True


def _snli_chart(path: Path, scores: Scores) -> bool:
    """(b): accuracy against the fraction (log x); top, a panel per fine-tuning method with a line per
    start; bottom, SMART − plain per start, and each multi-task start − the MiniLM start."""
    fractions = sorted({c for g, _, c in scores if g == "snli"}, key=_fraction_key)
    if not fractions:
        return False
    plt = _pyplot()
    xs = [_fraction_key(f) for f in fractions]
    fig, axes = plt.subplots(2, 2, figsize=(11.0, 8.4), squeeze=False)

    def values(arm: str) -> list[list[float]]:
        """Per fraction, the arm's scores (one per seed)."""
        return [list(scores.get(("snli", arm, f), {}).values()) for f in fractions]

    def diffs(a: str, b: str) -> list[list[float]]:
        """Per fraction, a − b on each seed both have."""
        pairs = [paired(scores.get(("snli", a, f), {}), scores.get(("snli", b, f), {})) for f in fractions]
        return [d["diffs"] if d else [] for d in pairs]

    def line(ax, series: list[list[float]], label: str, color: str, style: str, shift: float) -> None:
        """Mean ± std over the fractions with a dot per seed; x nudged by ``shift`` steps (log scale)."""
        points = [(x * 1.07**shift, v) for x, v in zip(xs, series) if v]
        if not points:
            return
        stats = [mean_std(v) for _, v in points]
        ax.errorbar(
            [x for x, _ in points],
            [m for m, _ in stats],
            yerr=[sd for _, sd in stats],
            label=label,
            color=color,
            linestyle=style,
            marker="o",
            capsize=3,
            markersize=4,
        )
        for x, v in points:
            ax.plot([x] * len(v), v, ".", color=color, alpha=0.5, markersize=4)

    for ax, method in zip(axes[0], METHODS):
        for k, start in enumerate(STARTS):
            line(ax, values(f"{start}/{method}"), START_NAMES[start], START_COLORS[start], "-", k - 1)
        ax.set_title(f"fine-tuned {NAMES[method]}: SNLI test accuracy ×100")
    for k, start in enumerate(STARTS):
        series = diffs(f"{start}/smart", f"{start}/vanilla")
        line(axes[1][0], series, f"from {START_NAMES[start]}", START_COLORS[start], "-", k - 1)
    axes[1][0].set_title("SMART − plain (paired, same seed)")
    starts = [(s, m, style) for s in STARTS[1:] for m, style in zip(METHODS, ("--", "-"))]
    for k, (start, method, style) in enumerate(starts):
        series = diffs(f"{start}/{method}", f"minilm/{method}")
        label = f"{START_NAMES[start]}, {NAMES[method]}"
        line(axes[1][1], series, label, START_COLORS[start], style, k - 1.5)
    axes[1][1].set_title("multi-task start − MiniLM start (paired, same seed)")
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:g}%" for x in xs])
        ax.minorticks_off()
        ax.set_xlabel("fraction of SNLI dev trained on")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    for ax in axes[1]:
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_ylabel("Δ (points)")
    fig.suptitle("(b) domain adaptation: SNLI test accuracy ×100")
    _save_figure(fig, path)
    return True


def write_charts(folder: str | Path, scores: Scores) -> dict[str, str]:
    """A chart per part that has runs, beside summary.md ({part: file name}); a part without runs
    removes its chart of an earlier report."""
    folder = Path(folder)
    written = {}
    for part, chart in zip(PARTS, (_glue_chart, _snli_chart, _agreement_chart)):
        path = folder / CHART_FILES[part]
        if chart(path, scores):
            written[part] = CHART_FILES[part]
        else:
            path.unlink(missing_ok=True)
    return written


# --------------------------------------------------------------------------------------------------
# Cost estimate, from what Studies 4 and 5 measured on these two cores (1 torch thread per lane).

STUDY4 = ROOT / "benchmarks/results/study4_less_data"
STUDY5_PILOT = ROOT / "benchmarks/results/study5_protocol/pooling-pilot"
EPOCHS = 3
EVALUATE_S = 60.0  # one `evaluate` of SNLI test: its ~46 s of scoring (Study 4) plus loading


def measured_costs(study4: Path = STUDY4, study5_pilot: Path = STUDY5_PILOT) -> dict[str, Any]:
    """Seconds, from the results.json of Study 4 (SNLI) and Study 5's pooling pilot (plain, GLUE):
    ``snli[(fraction dir, method)]`` per run; ``per_example[task]`` per training example and epoch, and
    ``eval[task]`` per epoch's scoring (train_runtime_s includes one scoring per epoch; eval_runtime_s is
    one); ``smart_factor``: SMART's training time over plain's on SNLI (its scoring left out)."""
    snli: dict[tuple[str, str], list[float]] = {}
    test_eval: list[float] = []
    for path in study4.glob("snli-*/snli/*/seed-*/results.json"):
        r = _read(path)
        snli.setdefault((path.parts[-5], r["method"]), []).append(r["train_runtime_s"])
        if path.parts[-5] != "snli-100pct":  # the 100% runs also scored ANLI at the end
            test_eval.append(r["eval_runtime_s"])
    snli_mean = {k: sum(v) / len(v) for k, v in snli.items()}
    scoring = EPOCHS * sum(test_eval) / len(test_eval)
    factors = [
        (snli_mean[(f, "smart")] - scoring) / (snli_mean[(f, "vanilla")] - scoring)
        for f in ("snli-10pct", "snli-100pct")
        if (f, "smart") in snli_mean and (f, "vanilla") in snli_mean
    ]
    per_example: dict[str, list[float]] = {}
    evals: dict[str, list[float]] = {}
    for path in study5_pilot.glob("*/*/seed-*/results.json"):
        r = _read(path)
        train_s = r["train_runtime_s"] - EPOCHS * r["eval_runtime_s"]
        per_example.setdefault(r["task"], []).append(train_s / (EPOCHS * r["num_train_examples"]))
        evals.setdefault(r["task"], []).append(r["eval_runtime_s"])
    per_example_mean = {k: sum(v) / len(v) for k, v in per_example.items()}
    eval_mean = {k: sum(v) / len(v) for k, v in evals.items()}
    # SST-2 was not run in Studies 4-5: its sentences are short like CoLA's, its dev set (872) smaller.
    per_example_mean.setdefault("sst2", per_example_mean.get("cola", 0.0))
    eval_mean.setdefault("sst2", eval_mean.get("cola", 0.0))
    return {
        "snli": snli_mean,
        "per_example": per_example_mean,
        "eval": eval_mean,
        "smart_factor": max(factors) if factors else 3.0,
    }


def _options(args: list[str]) -> dict[str, str]:
    """--key value pairs of a job line (flags without a value map to "")."""
    out, i = {}, 0
    while i < len(args):
        if args[i].startswith("--"):
            has_value = i + 1 < len(args) and not args[i + 1].startswith("--")
            out[args[i][2:]] = args[i + 1] if has_value else ""
            i += 2 if has_value else 1
        else:
            i += 1
    return out


def _glue_run_s(costs: dict[str, Any], task: str, method: str, cap: int, holdout: float = 0.1) -> float:
    train = round(cap * (1 - holdout)) * EPOCHS * costs["per_example"][task]
    factor = costs["smart_factor"] if method != "vanilla" else 1.0
    return train * factor + EPOCHS * costs["eval"][task]


def job_seconds(line: str, costs: dict[str, Any]) -> tuple[str, float]:
    """(kind, estimated lane-seconds) of one job line of run.sh."""
    args = shlex.split(line)
    while args[:1] == ["--after"]:  # what the job waits for (lanes.py) costs nothing
        args = args[2:]
    opts = _options(args)
    if args[0] == "evaluate":
        return "evaluate", EVALUATE_S
    method = opts.get("method") or opts.get("methods", "smart")
    cap = int(opts.get("max-train-samples", 1000))
    if args[0] == "multitask":
        return "multitask", sum(_glue_run_s(costs, t, method, cap) for t in opts["tasks"].split(","))
    if "train-fraction" in opts:  # (b): Study 4's runs; 0.1% costs as 1% (both are mostly scoring)
        fraction = float(opts["train-fraction"])
        folder = {1.0: "snli-100pct", 0.1: "snli-10pct"}.get(fraction, "snli-1pct")
        return "domain adaptation", costs["snli"][(folder, method)]
    kind = "fine-tune after multi-task" if "model" in opts and "mt" in opts["model"] else "single-task"
    return kind, _glue_run_s(costs, opts["task"], method, cap)


def estimate(lines: list[str], costs: dict[str, Any], lanes: int = 2) -> str:
    """A table of job counts and lane-hours per kind of job, and the total wall time on ``lanes`` lanes."""
    totals: dict[str, list[float]] = {}
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            kind, seconds = job_seconds(line, costs)
            totals.setdefault(kind, []).append(seconds)
    out = ["kind of job                  jobs  lane-hours"]
    for kind, seconds in totals.items():
        out.append(f"{kind:<28} {len(seconds):>4}  {sum(seconds) / 3600:>10.1f}")
    count = sum(len(s) for s in totals.values())
    hours = sum(sum(s) for s in totals.values()) / 3600
    out.append(f"{'total':<28} {count:>4}  {hours:>10.1f}")
    out.append(
        f"about {hours / lanes:.1f} hours on {lanes} lanes ({math.ceil(hours / lanes / 3)} sessions of 3 hours); "
        f"SMART costs {costs['smart_factor']:.1f}x plain's training time (Study 4)"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="Study 6's run folder (writes summary.md there)")
    parser.add_argument("--estimate", metavar="JOBS", help="estimate the cost of a job list (- for stdin)")
    a = parser.parse_args(argv)
    if a.estimate:
        text = sys.stdin.read() if a.estimate == "-" else Path(a.estimate).read_text()
        print(estimate(text.splitlines(), measured_costs()))
        return 0
    if not a.folder:
        parser.error("give the run folder, or --estimate JOBS")
    try:
        scores = collect(a.folder)
    except DamagedFile as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    markdown = to_markdown(scores, write_charts(a.folder, scores))
    (Path(a.folder) / "summary.md").write_text(markdown + "\n", encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
