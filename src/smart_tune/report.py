"""Summaries of finished runs: ``summary.md``, ``summary.json`` and ``summary.png``.

Input: every ``results.json`` under a folder (as ``compare`` lays them out, or any other way).
Per task and method, for each metric: mean ± sample std over seeds, the best run, n; the paired
difference to ``vanilla`` on the seeds both have (mean ± std of the per-seed differences); and the
mean training time per run. Each metric comes twice: as ``train`` kept the model (the best of the
end-of-epoch evaluations on dev) and as ``last_epoch_<metric>`` (the model training ended with). Beside
the scores: the SMART terms each method logged, and how far it fitted (the training task loss over the
last epoch, the epoch it kept). The chart shows each task's main metric: bars with error bars (std) and
one dot per seed.

Runs trained on a fraction of their training split (``--train-fraction``) form their own group,
``"snli (1% train)"``; when one task has several fractions, ``curve.png`` plots the main metric against
the fraction. With two or more whole tasks, an ``average`` group gives, per method and seed, the mean
of the tasks' main metrics (the seeds where the method has every task; the others, and a method with
no such seed, are named as left out), compared with vanilla in pairs as any task is. Each paired
difference counts wins, ties and losses and names the seeds it pairs. Runs of other folders can join a
report (``include``), e.g. an ablation that reuses a headline study's plain and SMART runs, filtered by
task and method.
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .grid import CHOICE_FILE, HOLDOUT_SUFFIX, TIE, choice_markdown, read_grids, rename_grid, unchosen
from .grid import select as select_grid
from .results import (
    RESULTS,
    TRAIN_HOLDOUT,
    atomic_path,
    read_results,
    write_json_atomic,
    write_text_atomic,
)

BASELINE = "vanilla"
AVERAGE = "average"
AVERAGE_METRIC = "mean_of_main_metrics"


def load_results(folder: str | Path) -> list[dict[str, Any]]:
    """Every run's results under ``folder``, as the JSON objects ``train`` writes today (an older file's
    missing fields filled in with :class:`RunResults`' defaults), each with its file's ``_path``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"no such folder: {folder}")
    results = []
    for path in sorted(folder.rglob(RESULTS)):
        r = read_results(path).to_dict()
        r["_path"] = str(path)
        results.append(r)
    return results


def paired_interval(mean: float, std: float, n: int) -> list[float] | None:
    """The 95% confidence interval of a mean paired difference: mean ± t(0.975, n − 1) · std / √n
    (Student's t over the seeds); None with fewer than two pairs."""
    if n < 2:
        return None
    from scipy.stats import t

    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return [mean - half, mean + half]


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n − 1; 0.0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


LAST = "last_epoch_"


def recorded(result: dict[str, Any], part: str) -> dict[str, Any]:
    """The options a run recorded under ``arguments.<part>`` (``run`` or ``training``); {} if none."""
    return (result.get("arguments") or {}).get(part) or {}


def train_fraction(result: dict[str, Any]) -> float | None:
    """The ``--train-fraction`` a run was trained with (None: the whole training split)."""
    return recorded(result, "run").get("train_fraction")


def group_name(result: dict[str, Any]) -> str:
    """The task, or ``"task (p% train)"`` for a run trained on a fraction of its training split."""
    fraction = train_fraction(result)
    return result["task"] if fraction is None else f"{result['task']} ({100 * fraction:g}% train)"


# The schedule and data of a run (``arguments.training`` and ``arguments.run`` keys): the same for
# every method of a side-by-side table, unless the study compares schedules (a pilot).
SCHEDULE_KEYS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "warmup_steps",
    "lr_scheduler_type",
    "weight_decay",
    "max_grad_norm",
    "load_best_model_at_end",  # which model is scored: the best epoch on the evaluation split, or the last
)
DATA_KEYS = (
    "model",
    "max_length",
    "train_split",
    "eval_split",
    "max_train_samples",
    "sample_seed",
    "pooling",
)


# smart_* fields that do not change what a run computes.
NOT_SETTINGS = ("smart_max_nonfinite_steps",)


def run_settings(result: dict[str, Any]) -> dict[str, Any] | None:
    """Schedule, data and method knobs a run recorded (None when it recorded no arguments).

    Only recorded keys appear, so that runs written before a knob existed still compare; except
    ``sample_seed``: a run that recorded ``max_train_samples`` before ``--sample-seed`` existed took
    the first N rows, as ``sample_seed`` None does, not the rows a seed draws. A plain run ignores the
    ``smart_*`` knobs, so they are left out for it.
    """
    args = result.get("arguments")
    if not args:
        return None
    training, run = args.get("training") or {}, args.get("run") or {}
    settings = {k: training[k] for k in SCHEDULE_KEYS if k in training}
    settings.update({k: run[k] for k in DATA_KEYS if k in run})
    if "max_train_samples" in run:
        settings.setdefault("sample_seed", None)
    if training.get("smart_method", "vanilla") != "vanilla":
        settings.update(
            {k: v for k, v in training.items() if k.startswith("smart_") and k not in NOT_SETTINGS}
        )
    return settings


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Keys both recorded with different values."""
    return sorted(k for k in a.keys() & b.keys() if a[k] != b[k])


def check_comparable(results: list[dict[str, Any]]) -> None:
    """Refuse a method whose seeds did not train alike (schedule, data or ``smart_*`` knobs).

    A report that brings in other folders, or renames a method, cannot then count a different setting
    under the same name. Runs that recorded no arguments are not checked.
    """
    first: dict[tuple, tuple[dict, str]] = {}
    for r in results:
        settings = run_settings(r)
        if settings is None:
            continue
        key = (group_name(r), r["method"])
        if key not in first:
            first[key] = (settings, r["_path"])
            continue
        ref, ref_path = first[key]
        diff = _differences(ref, settings)
        if diff:
            k = diff[0]
            raise ConfigError(
                f"{key[1]} in {key[0]} did not train alike: {k} is {ref.get(k)!r} in {ref_path} but "
                f"{settings.get(k)!r} in {r['_path']}"
            )


def kept_model(result: dict[str, Any]) -> str:
    """Which model a run scored: ``last``, the one training ended with (``load_best_model_at_end`` off),
    or ``best``, its best end-of-epoch evaluation (the default when an evaluation split is scored)."""
    return "last" if recorded(result, "training").get("load_best_model_at_end") is False else "best"


def schedule_differences(runs: list[dict[str, Any]]) -> list[str]:
    """The schedule and data keys on which a group's runs differ (empty: the methods sit side by side)."""
    settings = [s for s in map(run_settings, runs) if s is not None]
    schedule = [{k: s[k] for k in (*SCHEDULE_KEYS, *DATA_KEYS) if k in s} for s in settings]
    return sorted({k for s in schedule[1:] for k in _differences(schedule[0], s)})


def collect_results(
    folders: list[str | Path],
    tasks: list[str] | None = None,
    methods: list[str] | None = None,
    seeds: list[int] | None = None,
    rename: dict[str, str] | None = None,
    grid_points: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The finished runs of several folders, optionally only some tasks, methods and seeds.

    ``rename`` maps a method's name in its folder to its name in this report (applied before the
    filters), e.g. the Study 1 variant that became the ``smart`` preset. ``grid_points`` maps each grid
    point's variant name (``smart@lr=2e-05``) to its method (``smart``): a ``methods`` filter names the
    methods as the report shows them, so it keeps every point of a named method's grid (the choice
    needs them all). A (group, method, seed) found twice is an error: the report would not know which
    one to count. See :func:`check_comparable`.
    """
    seen: dict[tuple, str] = {}
    kept = []
    for folder in folders:
        for r in load_results(folder):
            r["method"] = (rename or {}).get(r["method"], r["method"])
            shown = (grid_points or {}).get(r["method"], r["method"])
            if (tasks and r["task"] not in tasks) or (methods and shown not in methods):
                continue
            if seeds and int(r["seed"]) not in seeds:
                continue
            key = (group_name(r), r["method"], int(r["seed"]))
            if key in seen:
                raise ConfigError(
                    f"run {key[0]}/{key[1]}/seed {key[2]} is in two places: {seen[key]} and {r['_path']}"
                )
            seen[key] = r["_path"]
            kept.append(r)
    check_comparable(kept)
    return kept


def _average_inputs(results: list[dict[str, Any]]) -> tuple[list[str], dict[tuple, dict], list[tuple]]:
    """What an average over tasks reads: (the tasks, every task with a whole-split run, [] under two;
    each such run that has its main metric, by (task, method, seed); each (method, seed) with a
    whole-split run, in order)."""
    whole = [r for r in results if train_fraction(r) is None]
    task_names = sorted({r["task"] for r in whole})
    if len(task_names) < 2:
        return [], {}, []
    # A run without its main metric (no labelled evaluation split) leaves its method and seed out.
    by_run = {
        (r["task"], r["method"], int(r["seed"])): r
        for r in whole
        if r.get("main_metric") in (r.get("metrics") or {})
    }
    return task_names, by_run, sorted({(r["method"], int(r["seed"])) for r in whole})


def average_left_out(results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{method: [{"seed", "missing": [tasks]}]}: each seed of a method that the average over tasks
    leaves out, and the tasks it lacks there (no whole-split run, or one without its main metric).
    Every method and seed with a run is either averaged or named here: none drops out unsaid, and no
    method's mean is over fewer tasks than another's."""
    task_names, by_run, pairs = _average_inputs(results)
    left: dict[str, list[dict[str, Any]]] = {}
    for method, seed in pairs:
        missing = [t for t in task_names if (t, method, seed) not in by_run]
        if missing:
            left.setdefault(method, []).append({"seed": seed, "missing": missing})
    return left


def task_average(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method and seed, the mean over tasks of each task's main metric (a run of group ``average``).

    Only whole-split runs count, only when there are two tasks or more, and only the seeds where the
    method has every task (the others: :func:`average_left_out`). ``train_runtime_s`` is the sum over
    the tasks.
    """
    task_names, by_run, pairs = _average_inputs(results)
    averaged = []
    for method, seed in pairs:
        runs = [by_run.get((t, method, seed)) for t in task_names]
        if any(r is None for r in runs):
            continue
        metrics = {AVERAGE_METRIC: sum(r["metrics"][r["main_metric"]] for r in runs) / len(runs)}
        lasts = [last_epoch_metrics(r).get(LAST + r["main_metric"]) for r in runs]
        if all(v is not None for v in lasts):
            metrics[LAST + AVERAGE_METRIC] = sum(lasts) / len(lasts)
        averaged.append(
            {
                "task": AVERAGE,
                "method": method,
                "seed": seed,
                "metrics": metrics,
                "main_metric": AVERAGE_METRIC,
                "averaged": {t: r["main_metric"] for t, r in zip(task_names, runs)},
                "train_runtime_s": _sum_or_none([run_seconds(r) for r in runs]),
            }
        )
    return averaged


def last_epoch_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The scores of the last evaluation during training (the final epoch's model), from the log.

    ``metrics`` holds the model ``train`` kept: the best on dev over the epochs (load_best_model_at_end),
    which is optimistic when dev is also the test. The last evaluation logged before the Trainer's
    closing ``train_runtime`` entry scores the model as training left it. Empty when not logged.
    """
    history = result.get("log_history") or []
    end = next((i for i, e in enumerate(history) if "train_runtime" in e), len(history))
    evals = [e for e in history[:end] if any(k.startswith("eval_") for k in e)]
    if not evals:
        return {}
    last = {}
    for name in result["metrics"]:
        key = _logged_eval_key(result, name)
        found = next((e[key] for e in reversed(evals) if key in e), None)
        if found is not None:
            last[f"{LAST}{name}"] = float(found)
    return last


def _logged_eval_key(result: dict[str, Any], name: str) -> str:
    """The log key of metric ``name`` in the evaluations during training. A run that selects on a part
    held out of train (``--validation-from-train``) scores it and dev each epoch under their own names
    (``eval_holdout_accuracy``, ``eval_dev_accuracy``); otherwise dev alone is ``eval_accuracy``. The part
    is scored so even when nothing selected on it (``load_best_model_at_end`` off: ``selected_on`` none)."""
    if result.get("selected_on") != TRAIN_HOLDOUT and not result.get("holdout_examples"):
        return f"eval_{name}"
    if name.endswith(HOLDOUT_SUFFIX):
        return f"eval_holdout_{name[: -len(HOLDOUT_SUFFIX)]}"
    return f"eval_{result.get('dev_split') or 'dev'}_{name}"


# Logged SMART terms summarised per run: (log key, column title, how the run's log is reduced).
TERMS = (
    ("smart_adv_loss", "R_s (mean)", "mean"),
    ("smart_breg_loss", "D_Breg (mean)", "mean"),
    ("smart_delta_linf", "max ‖x̃ − x‖∞", "max"),
)


def training_terms(result: dict[str, Any]) -> dict[str, float]:
    """The SMART terms a run logged while training: mean of R_s and D_Breg (both unweighted, as logged
    every ``logging_steps``) and the largest perturbation size. Empty for runs that logged none."""
    out = {}
    for key, _, how in TERMS:
        values = [float(e[key]) for e in result.get("log_history") or [] if key in e]
        if values:
            out[key] = sum(values) / len(values) if how == "mean" else max(values)
    return out


def kept_epoch(result: dict[str, Any]) -> float | None:
    """The epoch of the model a run kept: ``best_epoch`` as ``train`` records it; for a results file
    older than that field, its best checkpoint's evaluation (selection on held-out data or dev), else
    the last evaluation; None when the log has no evaluation."""
    if result.get("best_epoch") is not None:
        return float(result["best_epoch"])
    history = result.get("log_history") or []
    evals = [e for e in history if "epoch" in e and any(k.startswith("eval_") for k in e)]
    if not evals:
        return None
    best = result.get("best_checkpoint")
    step = best.rstrip("/").rsplit("checkpoint-", 1)[-1] if best and "checkpoint-" in best else None
    if step is not None and step.isdigit():
        matching = [e for e in evals if e.get("step") == int(step)]
        if matching:
            return float(matching[-1]["epoch"])
    return float(evals[-1]["epoch"])


def training_fit(result: dict[str, Any]) -> dict[str, float]:
    """How far a run fitted its training data: the task loss L over its last epoch (the mean of the
    values logged there; L alone, without λ_s·R_s or μ·D_Breg, so that methods compare), the epoch it
    kept, and whether that was the last one (a run still improving when training stopped). Empty when
    nothing was logged."""
    history = result.get("log_history") or []
    train = [e for e in history if "loss" in e and "epoch" in e]
    if not train:
        return {}
    epochs = math.ceil(float(train[-1]["epoch"]) - 1e-6)
    losses = [float(e.get("smart_task_loss", e["loss"])) for e in train if float(e["epoch"]) > epochs - 1]
    fit = {"task_loss_last_epoch": sum(losses) / len(losses), "epochs": float(epochs)}
    kept = kept_epoch(result)
    if kept is not None:
        fit["kept_epoch"] = kept
        fit["kept_last_epoch"] = float(math.ceil(kept - 1e-6) >= epochs)
    return fit


def _fit_summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean over seeds of :func:`training_fit` (``kept_last_epoch``: how many seeds kept the last)."""
    fits = [training_fit(r) for r in runs]
    keys = [k for k in ("task_loss_last_epoch", "kept_epoch", "epochs") if fits and all(k in f for f in fits)]
    out = {k: sum(f[k] for f in fits) / len(fits) for k in keys}
    if fits and all("kept_last_epoch" in f for f in fits):
        out["kept_last_epoch"] = sum(f["kept_last_epoch"] for f in fits)
        out["n"] = len(fits)
    return out


def run_seconds(result: dict[str, Any]) -> float | None:
    """Training time of a whole run, or None when unknown.

    A resumed run timed only its steps after the checkpoint: its time is scaled up to all its steps
    (the per-step time of the part that was timed). A run that resumed but did not record where
    (written before ``resumed_at_step`` existed), or that timed no step, has no known time.
    """
    seconds = result.get("train_runtime_s")
    if seconds is None:
        return None
    steps = result.get("global_steps")
    resumed = result.get("resumed_at_step")
    if resumed is None and recorded(result, "run").get("resume"):
        return None
    if resumed:
        if not steps or steps <= resumed:
            return None
        seconds *= steps / (steps - resumed)
    return seconds


def _sum_or_none(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values)


# One group's runs (a task, a task at a fraction, or the average): method → seed → run.
GroupRuns = dict[str, dict[int, dict[str, Any]]]


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """{task: {"main_metric", "methods": {method: {"n", "seeds", "metrics": {m: stats}, "vs_vanilla", ...}}}}."""
    grouped = _group_runs(results)
    # Tasks by name, each task's fractions from small to large, the average last.
    summary = {
        task: _group_summary(grouped[task])
        for task in sorted(grouped, key=lambda g: _group_order(g, grouped[g]))
    }
    _complete_average(summary, results)
    return summary


def _complete_average(summary: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """With two whole tasks or more, the ``average`` group (last) names what it leaves out
    (``left_out``, see :func:`average_left_out`; {} when nothing); when no method has a seed with every
    task it is there all the same, with no method, rather than missing without a word. It inherits
    every averaged task's schedule differences and selection."""
    task_names = _average_inputs(results)[0]
    if not task_names:
        return
    empty = {"main_metric": AVERAGE_METRIC, "task": AVERAGE, "train_fraction": None, "methods": {}}
    data = summary.pop(AVERAGE, None) or empty
    data.setdefault("averaged", {t: summary[t]["main_metric"] for t in task_names})
    data["left_out"] = average_left_out(results)
    tasks = [summary[t] for t in task_names]
    for key in ("differs_in", "kept", "selected_on"):
        data[key] = sorted({k for d in tasks for k in d[key]})
    summary[AVERAGE] = data


def _group_runs(results: list[dict[str, Any]]) -> dict[str, GroupRuns]:
    """The runs and the task averages by group, method and seed, each run's metrics joined by its
    last-epoch scores."""
    grouped: dict[str, GroupRuns] = defaultdict(lambda: defaultdict(dict))
    for r in results + task_average(results):
        r = {**r, "metrics": {**r["metrics"], **last_epoch_metrics(r)}}
        group, method, seed = group_name(r), r["method"], int(r["seed"])
        if seed in grouped[group][method]:
            # e.g. a method's own runs beside its grid's chosen point (renamed to it by grid.select):
            # one would silently replace the other.
            other = grouped[group][method][seed]
            raise ConfigError(
                f"run {group}/{method}/seed {seed} is there twice: "
                f"{other.get('grid_point') or other.get('_path', '?')} and {r.get('grid_point') or r.get('_path', '?')}"
            )
        grouped[group][method][seed] = r
    return grouped


def _any_run(methods: GroupRuns) -> dict[str, Any]:
    """A run of the group: what every run of it shares (task, fraction, main metric) is read there."""
    return next(iter(next(iter(methods.values())).values()))


def _group_summary(methods: GroupRuns) -> dict[str, Any]:
    """One group's entry of :func:`summarise`: vanilla first, then the methods by name."""
    any_run = _any_run(methods)
    runs = [r for by_seed in methods.values() for r in by_seed.values()]
    baseline = methods.get(BASELINE, {})
    out = {
        method: _method_summary(method, by_seed, baseline)
        for method, by_seed in sorted(methods.items(), key=lambda kv: (kv[0] != BASELINE, kv[0]))
    }
    data = {
        "main_metric": any_run.get("main_metric"),
        "differs_in": schedule_differences(runs),
        "task": any_run["task"],
        "train_fraction": train_fraction(any_run),
        "kept": sorted({kept_model(r) for r in runs}),
        "selected_on": sorted({r.get("selected_on", "dev") for r in runs}),
        "methods": out,
    }
    if "averaged" in any_run:
        data["averaged"] = any_run["averaged"]
    return data


def _method_summary(
    method: str, by_seed: dict[int, dict[str, Any]], baseline: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """One method's statistics over its seeds: per metric, and paired with vanilla's on common seeds."""
    seeds = sorted(by_seed)
    entry: dict[str, Any] = {"n": len(seeds), "seeds": seeds, "metrics": {}, "vs_vanilla": {}}
    for name in sorted({m for r in by_seed.values() for m in r["metrics"]}):
        # A run may lack a metric (e.g. a last-epoch score when its log has no evaluation), so
        # each metric keeps the seeds its values belong to.
        covered = [s for s in seeds if name in by_seed[s]["metrics"]]
        values = [by_seed[s]["metrics"][name] for s in covered]
        mean, std = mean_std(values)
        entry["metrics"][name] = {
            "mean": mean,
            "std": std,
            "best": max(values),
            "values": values,
            "seeds": covered,
        }
        pairs = [s for s in covered if s in baseline and name in baseline[s]["metrics"]]
        if pairs and method != BASELINE:
            paired = [by_seed[s]["metrics"][name] - baseline[s]["metrics"][name] for s in pairs]
            entry["vs_vanilla"][name] = {**paired_stats(paired), "seeds": pairs}
    terms = [training_terms(by_seed[s]) for s in seeds]
    entry["terms"] = {
        key: sum(t[key] for t in terms) / len(terms) for key, _, _ in TERMS if all(key in t for t in terms)
    }
    entry["fit"] = _fit_summary([by_seed[s] for s in seeds])
    times = [run_seconds(by_seed[s]) for s in seeds]
    known = [t for t in times if t is not None]
    # Unknown times (see run_seconds) are left out of the mean; none known: None.
    entry["train_minutes_mean"] = sum(known) / len(known) / 60 if known else None
    entry["train_minutes_unknown"] = len(times) - len(known)
    return entry


def paired_stats(paired: list[float]) -> dict[str, Any]:
    """Mean, std, n, wins, ties, losses (:func:`tally`) and 95% interval (``ci95``, :func:`paired_interval`)
    of per-seed differences, e.g. a method minus vanilla."""
    d_mean, d_std = mean_std(paired)
    return {
        "mean": d_mean,
        "std": d_std,
        "n": len(paired),
        **tally(paired),
        "ci95": paired_interval(d_mean, d_std, len(paired)),
    }


def tally(differences: list[float]) -> dict[str, int]:
    """How many per-seed differences are ahead of zero (``wins``), level with it (``ties``: within
    :data:`grid.TIE`, the tolerance the grid choice takes for equal scores, e.g. equal accuracies on a
    small dev set) and behind it (``losses``). A NaN difference (a diverged run's Pearson) is none of
    the three, so the three may add up to fewer than n."""
    return {
        "wins": sum(d > TIE for d in differences),
        "ties": sum(abs(d) <= TIE for d in differences),
        "losses": sum(d < -TIE for d in differences),
    }


def tally_text(d: dict[str, Any]) -> str:
    """``"2W/1T/0L of 3"``: the wins, ties and losses of :func:`tally` out of ``d["n"]`` paired seeds."""
    return f"{d['wins']}W/{d['ties']}T/{d['losses']}L of {d['n']}"


def _group_order(group: str, methods: GroupRuns) -> tuple:
    run = _any_run(methods)
    fraction = train_fraction(run)
    return (group == AVERAGE, run["task"], 1.0 if fraction is None else fraction)


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


# What every summary.md says first: how to read its tables.
MARKDOWN_INTRO = [
    "# Results",
    "",
    "Scores ×100 on each task's evaluation split (dev unless the study says otherwise): mean ± sample "
    "std over seeds, best run, and the paired difference to vanilla on the same seeds (mean ± std, "
    "[its 95% interval, Student's t over the seeds], (W/T/L of n: of the n paired seeds, how many the "
    f"method wins, ties and loses against vanilla; a tie is a difference within {TIE:g}, rounding)).",
    "A metric's plain name scores the model each run kept: the best of its end-of-epoch evaluations on "
    "dev (so dev picks the epoch: optimistic), unless a table says otherwise. `last_epoch_<metric>` "
    "scores the model at the end of training. min/run: training minutes per run (a resumed run's time is scaled up from the steps "
    "it timed; '?' counts runs whose time is unknown: resumed before the resume step was recorded).",
    "",
]


def to_markdown(summary: dict[str, Any]) -> str:
    lines = list(MARKDOWN_INTRO) + _headline_table(summary)
    for task, data in summary.items():
        lines += [f"## {task} (main metric: {data['main_metric']})", ""]
        lines += _group_notes(data)
        lines += _scores_table(data)
        lines += _terms_table(data)
        lines += _fit_table(data)
    return "\n".join(lines)


def _headline_table(summary: dict[str, Any]) -> list[str]:
    """The report at a glance, before the per-group tables: a row per group (task, fraction, average),
    its main metric of the model each run kept, a column per method (mean ± std over seeds, and n) and,
    when vanilla ran, a column per other method with its paired difference to vanilla [95% interval]
    (W/T/L of n). The per-group tables below hold the rest (held-out and last-epoch scores, best run)."""
    seen = list(dict.fromkeys(m for data in summary.values() for m in data["methods"]))
    others = [m for m in seen if m != BASELINE]
    methods = [BASELINE, *others] if BASELINE in seen else others  # vanilla first, as below
    others = others if BASELINE in seen else []  # no vanilla: no Δ columns
    header = ["group (main metric)", *methods, *(f"Δ {m} vs {BASELINE}" for m in others)]
    lines = [
        "## At a glance",
        "",
        "The main metric of the model each run kept, ×100: mean ± std (n seeds); Δ: the paired "
        "difference to vanilla [95% interval] (W/T/L of n paired seeds). Each group's section below says "
        "what chose the kept model.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" + "---:|" * (len(header) - 1),
    ]
    for group, data in summary.items():
        main, entries = data["main_metric"], data["methods"]
        row = [f"{group} ({main})"]
        for method in methods:
            s = entries.get(method, {}).get("metrics", {}).get(main)
            row.append(f"{_pct(s['mean'])}{_spread(s)} ({len(s['values'])})" if s else "–")
        for method in others:
            d = entries.get(method, {}).get("vs_vanilla", {}).get(main)
            row.append(f"{100 * d['mean']:+.2f}{_interval(d)} ({tally_text(d)})" if d else "–")
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def _group_notes(data: dict[str, Any]) -> list[str]:
    """The paragraphs above a group's table: what differs between its runs, what chose and what scored
    the kept model, and what an average is the mean of."""
    lines = []
    if data.get("differs_in"):
        lines += [f"Not one schedule: the runs differ in {', '.join(data['differs_in'])}.", ""]
    if data.get("selected_on") == [TRAIN_HOLDOUT]:
        lines += [
            "Selected without peeking: each run's epoch (and, under a grid, each method's setting) was "
            "chosen on a part of train held out for it (`*_holdout`); dev only scores the kept model.",
            "",
        ]
    if data.get("kept") == ["last"]:
        lines += [
            "Every run here scored the model it ended training with (`load_best_model_at_end` off): "
            "the plain metric is the last epoch's, chosen on nothing.",
            "",
        ]
    if "averaged" in data:
        parts = ", ".join(f"{t} {m}" for t, m in data["averaged"].items())
        lines += [
            f"Per seed, the mean of {parts}; only seeds where the method has every task. "
            "min/run is the sum over the tasks.",
            "",
        ]
    if data.get("left_out"):
        lines += [
            "Left out of the average, a task missing on that seed (no run, or none with its main "
            f"metric): {_left_out_text(data['left_out'])}.",
            "",
        ]
    return lines


def _left_out_text(left_out: dict[str, list[dict[str, Any]]]) -> str:
    """``"smart seeds 1, 2 (no cola); vanilla seed 3 (no cola, mrpc)"``."""
    parts = []
    for method, seeds in left_out.items():
        by_missing: dict[tuple[str, ...], list[int]] = {}
        for s in seeds:
            by_missing.setdefault(tuple(s["missing"]), []).append(s["seed"])
        parts += [f"{method} {_seed_list(ss)} (no {', '.join(m)})" for m, ss in by_missing.items()]
    return "; ".join(parts)


def _scores_table(data: dict[str, Any]) -> list[str]:
    """A group's table: a row per method, three columns per metric (the last-epoch ones last)."""
    metric_names = sorted(
        {m for e in data["methods"].values() for m in e["metrics"]}, key=lambda m: (m.startswith(LAST), m)
    )
    header = ["method", "n"]
    for m in metric_names:
        header += [f"{m} mean ± std", f"{m} best", f"{m} Δ vs vanilla"]
    header += ["min/run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, e in data["methods"].items():
        row = [method, str(e["n"])]
        for m in metric_names:
            row += _metric_cells(e, m)
        minutes = e["train_minutes_mean"]
        row.append(
            "?"
            if minutes is None
            else f"{minutes:.1f}"
            + (f" ({e['train_minutes_unknown']} ?)" if e["train_minutes_unknown"] else "")
        )
        lines.append("| " + " | ".join(row) + " |")
    for method, seeds in data.get("left_out", {}).items():
        if method not in data["methods"]:  # no seed with every task: a row all the same, saying why
            missing = sorted({t for s in seeds for t in s["missing"]})
            shown = f"{method} (incomplete: no {', '.join(missing)})"
            lines.append("| " + " | ".join([shown, "0", *["–"] * (3 * len(metric_names)), "–"]) + " |")
    lines.append("")
    return lines + _paired_seeds_note(data, metric_names)


def _paired_seeds_note(data: dict[str, Any], metric_names: list[str]) -> list[str]:
    """A line under a group's table naming the seeds each Δ vs vanilla pairs (the seeds both have),
    per metric where they differ (a run lacking a last-epoch score); nothing paired: no line."""
    parts = []
    for method, e in data["methods"].items():
        by_seeds: dict[tuple[int, ...], list[str]] = {}
        for m in metric_names:
            if m in e["vs_vanilla"]:
                by_seeds.setdefault(tuple(e["vs_vanilla"][m]["seeds"]), []).append(m)
        if len(by_seeds) == 1:
            parts.append(f"{method} {_seed_list(next(iter(by_seeds)))}")
        elif by_seeds:
            shown = "; ".join(f"{_seed_list(seeds)} ({', '.join(ms)})" for seeds, ms in by_seeds.items())
            parts.append(f"{method} {shown}")
    if not parts:
        return []
    return [f"Δ vs {BASELINE} pairs the seeds both have: {'; '.join(parts)}.", ""]


def _seed_list(seeds) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _spread(s: dict[str, Any]) -> str:
    """``" ± std"`` of a metric's summary; nothing from one seed (rather than "± 0.00")."""
    return f" ± {_pct(s['std'])}" if len(s["values"]) > 1 else ""


def _interval(d: dict[str, Any]) -> str:
    """``" [lo, hi]"``: a paired difference's 95% interval ×100; nothing under two pairs."""
    return f" [{100 * d['ci95'][0]:+.2f}, {100 * d['ci95'][1]:+.2f}]" if d.get("ci95") else ""


def _metric_cells(e: dict[str, Any], m: str) -> list[str]:
    """A method's three cells for metric ``m``: mean ± std, best, difference to vanilla."""
    s = e["metrics"].get(m)
    if s is None:
        return ["–", "–", "–"]
    cells = [f"{_pct(s['mean'])}{_spread(s)}", _pct(s["best"])]
    d = e["vs_vanilla"].get(m)
    d_spread = f" ± {_pct(d['std'])}" if d and d["n"] > 1 else ""
    cells.append(f"{100 * d['mean']:+.2f}{d_spread}{_interval(d)} ({tally_text(d)})" if d else "–")
    return cells


def _terms_table(data: dict[str, Any]) -> list[str]:
    """The SMART terms the group's methods logged (none: no table)."""
    with_terms = {m: e["terms"] for m, e in data["methods"].items() if e.get("terms")}
    if not with_terms:
        return []
    keys = [(k, title) for k, title, _ in TERMS if any(k in t for t in with_terms.values())]
    lines = [
        "Regularisation terms as logged during training (unweighted; mean over seeds):",
        "",
        "| method | " + " | ".join(title for _, title in keys) + " |",
        "|" + "---|" * (len(keys) + 1),
    ]
    for method, t in with_terms.items():
        lines.append(f"| {method} | " + " | ".join(f"{t[k]:.3g}" if k in t else "–" for k, _ in keys) + " |")
    lines.append("")
    return lines


def _fit_table(data: dict[str, Any]) -> list[str]:
    """How far each method fitted its training data (see training_fit); none logged: no table."""
    fitted = {m: e["fit"] for m, e in data["methods"].items() if e.get("fit", {}).get("task_loss_last_epoch")}
    if not fitted:
        return []
    lines = [
        "Fit: the training task loss L over the last epoch (without the regularisers; mean over seeds), "
        "and the epoch each run kept. A method whose L stays high and whose runs keep their last epoch "
        "was still learning when training stopped.",
        "",
        "| method | L, last epoch | kept epoch (mean) | kept the last epoch |",
        "|---|---:|---:|---:|",
    ]
    for method, f in fitted.items():
        kept = f"{f['kept_epoch']:.2f}" if "kept_epoch" in f else "–"
        last = f"{int(f['kept_last_epoch'])}/{int(f['n'])}" if "n" in f else "–"
        lines.append(f"| {method} | {f['task_loss_last_epoch']:.4f} | {kept} | {last} |")
    lines.append("")
    return lines


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display on a server or in CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def paired_differences(data: dict[str, Any], method: str, metric: str) -> list[float]:
    """Per-seed ``method − vanilla`` of ``metric`` in one task's summary, on the seeds both have, in
    seed order; [] without a vanilla row. The same pairs as ``vs_vanilla``'s mean and std."""

    def by_seed(name: str) -> dict[int, float]:
        stats = data["methods"].get(name, {}).get("metrics", {}).get(metric)
        return dict(zip(stats["seeds"], stats["values"])) if stats else {}

    mine, plain = by_seed(method), by_seed(BASELINE)
    return [mine[s] - plain[s] for s in sorted(mine.keys() & plain.keys())]


def plot(summary: dict[str, Any], path: str | Path) -> None:
    """One column per task. Top: bars (mean of the main metric) from zero with std error bars and one
    dot per seed, so the scale is honest. Bottom (when there is a vanilla baseline): each method's
    paired per-seed difference to vanilla, dots with mean ± std, around a zero line: the small gaps
    that matter, at a scale that shows them without a truncated bar axis."""
    plt = _pyplot()
    tasks = list(summary)
    paired = any(d["main_metric"] in e["vs_vanilla"] for d in summary.values() for e in d["methods"].values())
    rows = 2 if paired else 1
    most_methods = max(len(d["methods"]) for d in summary.values())
    panel_width = max(3.2, 0.6 * most_methods + 1.0)  # inches: room for each method's tick label
    fig, axes = plt.subplots(
        rows, len(tasks), figsize=(max(6.0, panel_width * len(tasks)), 3.4 * rows + 0.4), squeeze=False
    )
    for col, task in enumerate(tasks):
        data = summary[task]
        metric = data["main_metric"]
        methods = [m for m, e in data["methods"].items() if metric in e["metrics"]]
        _plot_scores(axes[0][col], task, data, metric, methods)
        if rows == 2:
            _plot_paired(axes[1][col], task, data, metric, methods)
    note = "Top: mean ± std over seeds, from zero; dots are seeds."
    if rows == 2:
        note += f" Bottom: difference to {BASELINE} on the same seed (dots) and its mean ± std (◆)."
    width_chars = int(fig.get_figwidth() * 13)  # about what fits in a line of small text
    fig.text(0.5, 0.005, textwrap.fill(note, width_chars), ha="center", va="bottom", fontsize="small")
    _save_figure(fig, path, rect=(0, 0.04, 1, 1))  # room for the note


def _plot_scores(ax, task: str, data: dict[str, Any], metric: str, methods: list[str]) -> None:
    """A task's top panel: each method's mean from zero, its std error bar and a dot per seed."""
    xs = list(range(len(methods)))
    stats = [data["methods"][m]["metrics"][metric] for m in methods]
    ax.bar(
        xs,
        [100 * s["mean"] for s in stats],
        yerr=[100 * s["std"] for s in stats],
        capsize=4,
        color="#8fb3d9",
        edgecolor="#2b5d8a",
    )
    for x, s in zip(xs, stats):
        ax.plot([x] * len(s["values"]), [100 * v for v in s["values"]], "o", color="#1b3a57", markersize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(xs, methods, rotation=30, ha="right")
    ax.set_title(f"{task}: {metric}")
    ax.grid(axis="y", alpha=0.3)


def _plot_paired(ax, task: str, data: dict[str, Any], metric: str, methods: list[str]) -> None:
    """A task's bottom panel: each method's per-seed difference to vanilla (dots) and their mean ± std,
    on a y axis symmetric about zero; a note instead when nothing is paired yet."""
    others = [m for m in methods if m != BASELINE]
    diffs = {m: [100 * d for d in paired_differences(data, m, metric)] for m in others}
    if not any(diffs.values()):
        ax.set_axis_off()
        alone = "only " + ", ".join(methods) if methods else "no runs"
        ax.set_title(f"{task}: {alone}, nothing paired with {BASELINE} yet", fontsize="small")
        return
    reach = 0.5  # half-height of the y axis, symmetric about zero: at least the largest |Δ| drawn
    for x, m in enumerate(others):
        if diffs[m]:
            mean, std = mean_std(diffs[m])
            ax.plot([x] * len(diffs[m]), diffs[m], "o", color="#1b3a57", markersize=3)
            ax.errorbar([x + 0.15], [mean], yerr=[std], fmt="D", color="#c0392b", capsize=4, markersize=5)
            reach = max(reach, *(abs(d) for d in diffs[m]), abs(mean) + std)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylim(-1.2 * reach, 1.2 * reach)
    ax.set_xlim(-0.5, len(others) - 0.5)
    ax.set_xticks(list(range(len(others))), others, rotation=30, ha="right")
    ax.set_title(f"{task}: Δ vs {BASELINE} (paired)")
    ax.set_ylabel("Δ (points)")
    ax.grid(axis="y", alpha=0.3)


def _save_figure(fig, path: str | Path, rect: tuple[float, ...] = (0, 0, 1, 1)) -> None:
    """Save a PNG atomically (two `compare` jobs may rebuild one folder's report at once), then close
    the figure."""
    try:
        fig.tight_layout(rect=rect)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        _pyplot().close(fig)


def plot_curve(summary: dict[str, Any], path: str | Path) -> bool:
    """Main metric against training fraction (log x), one line per method with std bars, a panel per
    task that was trained on two or more fractions. False (and no file) when there is no such task."""
    curves: dict[str, list[tuple[float, dict]]] = defaultdict(list)
    for data in summary.values():
        if data.get("train_fraction") is not None:
            curves[data["task"]].append((data["train_fraction"], data))
    curves = {t: sorted(points, key=lambda p: p[0]) for t, points in curves.items() if len(points) > 1}
    if not curves:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.8 * len(curves), 3.6), squeeze=False)
    for ax, (task, points) in zip(axes[0], curves.items()):
        metric = points[0][1]["main_metric"]
        methods = sorted({m for _, d in points for m in d["methods"]}, key=lambda m: (m != BASELINE, m))
        for method in methods:
            xs, ys, es = [], [], []
            for fraction, data in points:
                stats = data["methods"].get(method, {}).get("metrics", {}).get(metric)
                if stats:
                    xs.append(100 * fraction)
                    ys.append(100 * stats["mean"])
                    es.append(100 * stats["std"])
            ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_xlabel("% of the training split")
        ax.set_ylabel(metric)
        ax.set_title(task)
        ax.grid(alpha=0.3)
        ax.legend()
    _save_figure(fig, path)
    return True


def renamed_grids(folders: list, rename: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The folders' grids (:func:`grid.read_grids`) with their methods renamed (:func:`grid.rename_grid`).
    A ``--rename OLD=NEW`` whose OLD names no method of the folders' runs or grids is a typo that would
    leave the method under its old name without a word: it is refused in one line."""
    grids = read_grids(folders)
    if rename:
        known = {r["method"] for f in folders for r in load_results(f)} | set(grids)
        unknown = sorted(old for old in rename if old not in known)
        if unknown:
            raise ConfigError(
                f"--rename: no method called {', '.join(unknown)} under {', '.join(str(f) for f in folders)} "
                f"(methods: {', '.join(sorted(known))})"
            )
    return rename_grid(grids, rename)


def write_report(
    folder: str | Path,
    include: list[str | Path] = (),
    tasks: list[str] | None = None,
    methods: list[str] | None = None,
    seeds: list[int] | None = None,
    rename: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Rebuild summary.md, summary.json and summary.png (and curve.png, when there are fractions) in
    ``folder`` from its finished runs and those of the ``include`` folders, optionally only some
    ``tasks``, ``methods`` and ``seeds``, with methods renamed by ``rename`` ({old: new}; a method of
    the folder's grid too, see :func:`grid.rename_grid`). An ``include`` folder's grid.json counts too:
    its methods show at their chosen points, as in its own report (:func:`grid.read_grids`). A folder
    with a grid also gets grid_choice.json, from a report of the whole folder only (no filter, no
    rename, no include)."""
    folder = Path(folder)
    where = ", ".join(str(f) for f in [folder, *include])
    # An included folder's grid counts as the folder's own: its points are chosen among as its report would.
    index = renamed_grids([folder, *include], rename or {})
    grid_points = {p["name"]: method for method, pts in index.items() for p in pts}
    results = collect_results([folder, *include], tasks, methods, seeds, rename, grid_points)
    if not results:
        filtered = " that pass the --tasks/--methods/--seeds filters" if tasks or methods or seeds else ""
        raise ConfigError(f"no finished runs ({RESULTS}){filtered} under {where}")
    choices: dict[str, Any] = {}
    waiting: dict[str, Any] = {}
    if index:  # a compare with --grid: only each method's chosen point is reported (see grid.select)
        found = results
        results, choices = select_grid(found, index, group_name)
        waiting = unchosen(found, index, group_name, choices)
        if not results:  # every method waits for its grid: no table to draw
            raise ConfigError(
                f"no method's grid under {where} has a run of every point on a common seed yet "
                f"({'; '.join(f'{m} in {g}' for g, ms in waiting.items() for m in ms)}): nothing to report"
            )
    summary = summarise(results)
    paths = {
        "markdown": folder / "summary.md",
        "json": folder / "summary.json",
        "chart": folder / "summary.png",
    }
    markdown = to_markdown(summary)
    # grid_choice.json is the folder's decision (a study's later stage runs the chosen points): only a
    # report of the whole folder writes it. A filtered one (--seeds 1 to look at one seed) shows its
    # choice in summary.md and leaves the file alone.
    whole_folder = not (include or tasks or methods or seeds or rename)
    if choices and whole_folder:
        paths["grid"] = folder / CHOICE_FILE
        write_json_atomic(paths["grid"], choices)
    if choices or waiting:
        markdown += "\n" + choice_markdown(choices, waiting)
    write_text_atomic(paths["markdown"], markdown)
    write_json_atomic(paths["json"], summary)
    plot(summary, paths["chart"])
    curve = folder / "curve.png"
    if plot_curve(summary, curve):
        paths["curve"] = curve
    else:
        curve.unlink(missing_ok=True)  # a curve of an earlier report would no longer match
    return paths
