"""The README's headline table must say what the committed Study 5 results say, digit for digit.

The table is written by hand (it picks the columns a reader needs from a much larger report), so this
test re-derives every cell from `benchmarks/results/study5_protocol/full/summary.json`, which
`smart-tune report` wrote from the committed runs: a re-run report, or an edited README, that disagree
fail here instead of drifting apart.
"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = ROOT / "benchmarks" / "results" / "study5_protocol" / "full" / "summary.json"

# README row label -> (summary group, metric); README column -> method name in the summary.
ROWS = {
    "CoLA (MCC)": ("cola", "matthews_correlation"),
    "MRPC (acc)": ("mrpc", "accuracy"),
    "RTE (acc)": ("rte", "accuracy"),
    "STS-B (Pearson)": ("stsb", "pearson"),
    "four-task mean": ("average", "mean_of_main_metrics"),
}
SCORE_COLUMNS = ["vanilla", "r3f", "smart", "smart-fit"]
DELTA_COLUMNS = ["smart", "smart-fit"]


def signed(value: float) -> str:
    """A paired difference ×100 as the README writes it: a sign always, a true minus sign."""
    return f"{value * 100:+.2f}".replace("-", "−")


def headline_rows() -> dict[str, list[str]]:
    """The README's Results table: row label -> its cells after the label."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] in ROWS:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_readme_headline_table_is_study_5s_committed_summary():
    summary = json.loads(SUMMARY.read_text())
    rows = headline_rows()
    assert set(rows) == set(ROWS), "the README's headline table lost or renamed a row"
    for label, (group, metric) in ROWS.items():
        methods = summary[group]["methods"]
        cells = rows[label]
        assert len(cells) == len(SCORE_COLUMNS) + len(DELTA_COLUMNS), label
        for cell, method in zip(cells, SCORE_COLUMNS):
            score = methods[method]["metrics"][metric]
            assert methods[method]["seeds"] == [1, 2, 3, 4, 5], (label, method)
            assert cell == f"{score['mean'] * 100:.2f} ± {score['std'] * 100:.2f}", (label, method)
        for cell, method in zip(cells[len(SCORE_COLUMNS) :], DELTA_COLUMNS):
            delta = methods[method]["vs_vanilla"][metric]
            low, high = delta["ci95"]
            expected = (
                f"{signed(delta['mean'])} [{signed(low)}, {signed(high)}] ({delta['wins']}/{delta['n']})"
            )
            assert cell == expected, (label, method)


def test_the_readme_names_the_commands_that_rebuild_its_headline():
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Results\n", 1)[1]
    for command in (
        "smart-tune report benchmarks/results/study5_protocol/full",
        "benchmarks/results/study5_protocol/target.py",
        "benchmarks/results/study5_protocol/run.sh",
    ):
        assert command in section, command
    assert re.search(r"seeds 1-5", section)
