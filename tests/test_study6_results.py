"""Study 6's committed summary and the docs that quote it must say what the committed runs say.

`benchmarks/results/study6_multitask/summary.md` is written by that folder's `report.py` from the runs'
`results.json` and `agreement.json`; docs/results.md copies its tables. This test rebuilds the summary
from the committed runs (without drawing the charts) and checks that every arm has the three seeds the
study was designed with, that the committed summary is the rebuilt one, and that each of its table rows
is in docs/results.md: a re-run, an added run or an edited table that disagree fail here.
"""

import pytest

from conftest import ROOT, load_script

FOLDER = ROOT / "benchmarks" / "results" / "study6_multitask"
SEEDS = {1, 2, 3}
FRACTIONS = ("0.1pct", "1pct", "10pct", "100pct")


@pytest.fixture(scope="module")
def report():
    return load_script("benchmarks/results/study6_multitask/report.py")


def test_every_arm_of_study_6_has_its_three_seeds(report):
    scores = report.collect(FOLDER)
    expected = [("glue", arm, task) for arm, _ in report.GLUE_ARMS for task in report.TASKS]
    arms = [f"{s}/{m}" for s in report.STARTS for m in report.METHODS]
    expected += [("snli", arm, fraction) for arm in arms for fraction in FRACTIONS]
    expected += [("agreement", arm, bucket) for arm in arms for bucket in (*report.BUCKETS, report.OTHER)]
    for key in expected:
        assert set(scores.get(key, {})) == SEEDS, key
    assert set(scores) == set(expected), "a run outside the study's design is in its folder"


def test_study_6s_committed_summary_is_rebuilt_from_its_committed_runs(report):
    charts = {p: name for p, name in report.CHART_FILES.items() if (FOLDER / name).exists()}
    assert sorted(charts) == list(report.PARTS), "a part's chart is not committed"
    rebuilt = report.to_markdown(report.collect(FOLDER), charts) + "\n"
    assert (FOLDER / "summary.md").read_text(encoding="utf-8") == rebuilt


def test_docs_results_quote_study_6s_tables_row_for_row():
    summary = (FOLDER / "summary.md").read_text(encoding="utf-8")
    docs = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    section = docs.split("## Study 6", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in summary.splitlines() if line.startswith("|") and not line.startswith("|---")]
    assert rows
    missing = [row for row in rows if row not in section.splitlines()]
    assert not missing, missing
