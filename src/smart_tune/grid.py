"""Equal tuning budgets for ``smart-tune compare``: a small grid per method, chosen on held-out data.

A method compared untuned against a tuned one loses for the wrong reason. So each method may get a
grid of settings (``--grid "smart:learning_rate=2e-5,5e-5;smart_lambda=1,3"``); every method's grid
must have the same number of points (plain gets as many tries as SMART). Each point is run as its own
variant, named ``METHOD@key=value,...``, for every task and seed. Then, per task and method, the point
with the best mean main metric over the seeds on the part of train held out by
``--validation-from-train`` is chosen, and only its runs are reported, under the method's own name:
dev scores nothing but the chosen runs. ``grid.json`` in the compare folder records the grid;
``grid_choice.json`` (written with the report) every point's held-out mean and the choice.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .recipe import HOLDOUT
from .results import TRAIN_HOLDOUT, write_json_atomic

GRID_FILE = "grid.json"
CHOICE_FILE = "grid_choice.json"
ALL_METHODS = "*"
HOLDOUT_SUFFIX = f"_{HOLDOUT}"  # held-out metrics: accuracy_holdout, ...
# Short names in variant labels (the folder of each grid point's runs).
SHORT = {
    "learning_rate": "lr",
    "num_train_epochs": "epochs",
    "per_device_train_batch_size": "bs",
    "smart_lambda": "lambda",
    "smart_mu": "mu",
    "smart_epsilon": "eps",
    "smart_teacher_horizon": "horizon",
}
ALIASES = {"epochs": "num_train_epochs", "batch_size": "per_device_train_batch_size", "lr": "learning_rate"}
# Selection scores this close are one mean summed in another order: accuracies are k/n, and 120/249 +
# 126/249 comes out 1e-17 above 121/249 + 125/249. Far below any real difference (1/n over the seeds).
# The report takes the same tolerance for a seed where a method ties vanilla (report.tally).
TIE = 1e-9


def _value(text: str) -> Any:
    """'2e-5' → 2e-05, '3' → 3, 'true' → True, anything else as written."""
    text = text.strip()
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_grid_spec(spec: str) -> tuple[str, dict[str, list[Any]]]:
    """``"METHOD:key=v1,v2;key2=v3"`` (or without ``METHOD:`` for every method) → (method, {key: values})."""
    method, sep, body = spec.partition(":")
    if not sep or "=" in method:
        method, body = ALL_METHODS, spec
    axes: dict[str, list[Any]] = {}
    for part in filter(None, (p.strip() for p in body.split(";"))):
        key, eq, values = part.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        vals = [_value(v) for v in values.split(",") if v.strip()]
        if not eq or not key or not vals:
            raise ConfigError(f"--grid {spec!r}: each part is KEY=V1[,V2...], parts separated by ';'")
        axes[ALIASES.get(key, key)] = vals
    if not axes:
        raise ConfigError(f"--grid {spec!r} names no setting")
    return method.strip(), axes


def normalise_grids(raw: Any) -> dict[str, dict[str, list[Any]]]:
    """Grids from the command line (a list of specs) or a config file ({method: {key: values}})."""
    if not raw:
        return {}
    grids: dict[str, dict[str, list[Any]]] = {}
    if isinstance(raw, dict):
        for method, axes in raw.items():
            if not isinstance(axes, dict) or not axes:
                raise ConfigError(f"grid of {method}: give a mapping of settings to lists of values")
            grids[str(method)] = {
                ALIASES.get(k.replace("-", "_"), k.replace("-", "_")): v if isinstance(v, list) else [v]
                for k, v in axes.items()
            }
        return grids
    for spec in [raw] if isinstance(raw, str) else raw:
        method, axes = parse_grid_spec(spec)
        grids.setdefault(method, {}).update(axes)
    return grids


def points(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the axes' values, in order (the first axis varies slowest)."""
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def point_name(method: str, point: dict[str, Any]) -> str:
    return method + "@" + ",".join(f"{SHORT.get(k, k)}={v}" for k, v in point.items())


def expand(
    methods: list[str],
    grids: dict[str, dict[str, list[Any]]],
    variants: dict[str, dict[str, Any]],
    known_fields: frozenset[str] | set[str],
) -> tuple[list[str], dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """(methods to run, variants with one per grid point, {method: [{name, settings}]}).

    A method without a grid of its own takes the ``*`` grid; every method's grid must have as many
    points as every other's (equal tuning budgets), else :class:`ConfigError`.
    """
    unknown = sorted(set(grids) - set(methods) - {ALL_METHODS})
    if unknown:
        raise ConfigError(f"--grid names method(s) not compared: {', '.join(unknown)}")
    per_method = {m: {**grids.get(ALL_METHODS, {}), **grids.get(m, {})} for m in methods}
    for m, axes in per_method.items():
        bad = sorted(k for k in axes if k not in known_fields)
        if bad:
            raise ConfigError(f"--grid of {m}: unknown setting(s) {', '.join(bad)}")
        for key, values in axes.items():
            # 2e-5 and 2.0e-5 (or 3 and 3.0): one setting, counted twice in the budget; two points of one
            # name would never both finish, and the method would drop out of the report.
            twice = [v for n, v in enumerate(values) if v in values[:n]]
            if twice:
                raise ConfigError(f"--grid of {m}: {key} lists {twice[0]!r} twice (give each value once)")
    sizes = {m: len(points(axes)) if axes else 1 for m, axes in per_method.items()}
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{m} {n}" for m, n in sizes.items())
        raise ConfigError(f"equal tuning budgets: every method's grid needs as many points ({shown})")
    expanded, new_variants, index = [], dict(variants), {}
    for m in methods:
        if not per_method[m]:
            expanded.append(m)
            continue
        base = {"method": "smart", **variants[m]} if m in variants else {"method": m}
        index[m] = []
        for point in points(per_method[m]):
            name = point_name(m, point)
            new_variants[name] = {**base, **point}
            expanded.append(name)
            index[m].append({"name": name, "settings": point})
    return expanded, new_variants, index


def write_grid(folder: str | Path, index: dict[str, list[dict[str, Any]]]) -> None:
    """Add ``index``'s methods to the folder's ``grid.json``: a study may run its methods as separate
    compare jobs (benchmarks/lanes.py), each naming one method, so the file gathers them. A later job
    may run a subset of a method's grid (the chosen point on more seeds); any other point is refused. Read, merge and write happen under a lock (jobs side by side)."""
    import fcntl

    if not index:
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".grid.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        merged = read_grid(folder)
        for method, pts in index.items():
            if method in merged:
                # A job may run some points of the method's grid (a study's later seeds run the chosen one).
                if any(p not in merged[method] for p in pts):
                    raise ConfigError(
                        f"{folder / GRID_FILE} already holds another grid for {method}: one method, one grid "
                        "per folder"
                    )
                continue
            merged[method] = pts
        write_json_atomic(folder / GRID_FILE, merged)


def read_grid(folder: str | Path) -> dict[str, list[dict[str, Any]]]:
    """A folder's ``grid.json`` ({method: [{"name", "settings"}]}); {} without one. :class:`ConfigError`
    in one line when it is no such mapping (cut short, edited by hand), not a traceback from the
    report's or compare's reading of it."""
    path = Path(folder) / GRID_FILE
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            grid = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable {path}: {exc}") from None
    fine = isinstance(grid, dict) and all(
        isinstance(pts, list)
        and all(
            isinstance(p, dict) and isinstance(p.get("name"), str) and isinstance(p.get("settings"), dict)
            for p in pts
        )
        for pts in grid.values()
    )
    if not fine:
        raise ConfigError(f"unreadable {path}: not a grid (each method's list of {{name, settings}} points)")
    return grid


def read_grids(folders: list[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """The grids of several folders (each one's ``grid.json``, :func:`read_grid`) as one, for a report
    that counts their runs together (``report FOLDER --include OTHER``): each grid method's points are
    then chosen among as ``report`` of its own folder chooses them. A method whose grid two folders
    hold differently (other points, or another order, which breaks ties) is refused in one line: one
    method, one grid per report, and no choice between them would be honest."""
    merged: dict[str, list[dict[str, Any]]] = {}
    found_in: dict[str, Path] = {}
    for folder in folders:
        for method, pts in read_grid(folder).items():
            if method in merged and merged[method] != pts:
                raise ConfigError(
                    f"{found_in[method] / GRID_FILE} and {Path(folder) / GRID_FILE} hold different grids "
                    f"for {method}: one method, one grid per report; report these folders apart"
                )
            merged.setdefault(method, pts)
            found_in.setdefault(method, Path(folder))
    return merged


def rename_grid(
    index: dict[str, list[dict[str, Any]]], rename: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """The grid with its methods called by ``rename``'s new names ({old: new}, as ``report --rename``
    takes it): the chosen point's runs are then reported under the new name. A point's own name
    (``smart@lr=5e-05``) cannot be renamed: that would take one point out of its method's grid, and
    the choice would no longer be among them all. Two grid methods under one name are refused too:
    one name, one grid."""
    owner = {p["name"]: m for m, pts in index.items() for p in pts}
    point = next((old for old in rename if old in owner), None)
    if point is not None:
        raise ConfigError(
            f"--rename {point}={rename[point]}: {point} is a point of {owner[point]}'s grid; rename the "
            f"method ({owner[point]}=NEW), whose chosen point the report shows"
        )
    renamed: dict[str, list[dict[str, Any]]] = {}
    was: dict[str, str] = {}
    for method, pts in index.items():
        new = rename.get(method, method)
        if new in renamed:
            raise ConfigError(f"--rename: grid methods {was[new]} and {method} would both be called {new}")
        renamed[new], was[new] = pts, method
    return renamed


def select(
    results: list[dict[str, Any]], index: dict[str, list[dict[str, Any]]], group_of
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Keep, per group (task) and method, only the runs of the grid point whose mean held-out main
    metric over the seeds is best, renamed to the method. Returns (runs to report, the choices).

    The mean is over the seeds every point of that method finished, so points are compared on the same
    seeds; points are scored in grid order (``index``), so that a tie (equal means, up to rounding)
    goes to the first point of the grid whatever order the runs were read in; a NaN mean is never
    chosen (see :func:`_best`). Runs without a held-out score (no
    ``--validation-from-train``) are selected on their dev score instead, and the choice says so: that
    is selection on the reported split. A method whose compared runs have a held-out score on some
    seeds or points and not on others is refused (:class:`ConfigError`): a mean over both would let
    dev scores into a held-out choice.
    """
    owner = {p["name"]: (m, p["settings"]) for m, pts in index.items() for p in pts}
    kept = [r for r in results if r["method"] not in owner]
    by_key: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        if r["method"] in owner:
            method = owner[r["method"]][0]
            by_key.setdefault((group_of(r), method), {}).setdefault(r["method"], []).append(r)
    choices: dict[str, Any] = {}
    for (group, method), runs_by_point in sorted(by_key.items()):
        common = set.intersection(*({int(r["seed"]) for r in runs} for runs in runs_by_point.values()))
        if len(runs_by_point) < len(index[method]) or not common:
            continue  # the grid is not complete on any seed yet: nothing to choose from
        compared = {
            p["name"]: [r for r in runs_by_point[p["name"]] if int(r["seed"]) in common]
            for p in index[method]  # grid order
        }
        held = [
            r["metrics"].get(r["main_metric"] + HOLDOUT_SUFFIX) is not None
            for rs in compared.values()
            for r in rs
        ]
        if any(held) and not all(held):
            raise ConfigError(
                f"grid of {method} in {group}: some of its runs on seeds {sorted(common)} have a held-out "
                "score and some do not (--validation-from-train on some runs only): the choice would mix "
                "held-out and dev scores"
            )
        on, suffix = (TRAIN_HOLDOUT, HOLDOUT_SUFFIX) if all(held) else ("dev", "")
        table = []
        for name, runs in compared.items():
            scores = [r["metrics"][r["main_metric"] + suffix] for r in runs]
            table.append(
                {"name": name, "settings": owner[name][1], "selection_score": sum(scores) / len(scores)}
            )
        best = _best(table)
        for r in runs_by_point[best["name"]]:
            kept.append({**r, "method": method, "grid_point": best["name"]})
        choices.setdefault(group, {})[method] = {
            "chosen": best["name"],
            "settings": best["settings"],
            "selected_on": on,
            "seeds": sorted(common),
            "grid": table,
        }
    return kept, choices


def unchosen(
    results: list[dict[str, Any]], index: dict[str, list[dict[str, Any]]], group_of, choices: dict[str, Any]
) -> dict[str, dict[str, dict[str, list[int]]]]:
    """{group: {method: {point: its finished seeds}}} of each method with grid runs in a group but no
    choice there (:func:`select` waits until every point has a run on a common seed): the report
    leaves such a method out, and says so rather than drop it without a word."""
    owner = {p["name"]: m for m, pts in index.items() for p in pts}
    waiting: dict[str, dict[str, dict[str, list[int]]]] = {}
    for r in results:
        method = owner.get(r["method"])
        if method is None or method in choices.get(group_of(r), {}):
            continue
        done = waiting.setdefault(group_of(r), {}).setdefault(method, {p["name"]: [] for p in index[method]})
        done[r["method"]] = sorted({*done[r["method"]], int(r["seed"])})
    return waiting


def _best(table: list[dict[str, Any]]) -> dict[str, Any]:
    """The row of ``table`` (grid order) with the best selection score: a tie (equal up to :data:`TIE`)
    goes to the first in grid order. A NaN score (a diverged run's Pearson) is never best: ``max`` kept
    a NaN first row, since no comparison with NaN is true. All NaN: the first row."""
    scores = [row["selection_score"] for row in table if not math.isnan(row["selection_score"])]
    if not scores:
        return table[0]
    top = max(scores)
    return next(row for row in table if row["selection_score"] >= top - TIE)


def choice_markdown(choices: dict[str, Any], waiting: dict[str, Any] | None = None) -> str:
    """A section for summary.md: every point's selection score and the chosen one, per task and method;
    then each method left out of the report because its grid is not complete on a seed (``waiting``,
    see :func:`unchosen`)."""
    if not choices and not waiting:
        return ""
    lines = ["## Grid: the setting chosen per task and method", ""]
    for group, methods in (waiting or {}).items():
        for method, done in methods.items():
            shown = "; ".join(
                f"{name.split('@', 1)[1]}: {','.join(map(str, s)) or 'none'}" for name, s in done.items()
            )
            lines += [
                f"Not reported: {method} in {group}, no seed has a run of every point of its grid yet "
                f"(seeds finished per point: {shown}).",
                "",
            ]
    if not choices:
        return "\n".join(lines)
    lines += ["| task | method | chosen | selected on | seeds | every point (mean selection score) |"]
    lines += ["|---|---|---|---|---|---|"]
    for group, methods in choices.items():
        for method, c in methods.items():
            points_text = "; ".join(
                f"{row['name'].split('@', 1)[1]}: {100 * row['selection_score']:.2f}" for row in c["grid"]
            )
            chosen = c["chosen"].split("@", 1)[1]
            seeds = ",".join(map(str, c["seeds"]))
            lines.append(f"| {group} | {method} | {chosen} | {c['selected_on']} | {seeds} | {points_text} |")
    return "\n".join(lines) + "\n"
