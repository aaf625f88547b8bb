"""Summaries of finished runs: statistics, paired differences, the last-epoch scores."""

import statistics

import pytest

from smart_tune.report import last_epoch_metrics, summarise, to_markdown


def result(method, seed, best, last, epochs=3):
    history = [{"loss": 0.7, "epoch": 0.5}]
    for epoch in range(1, epochs + 1):
        history.append({"eval_loss": 0.6, "eval_accuracy": last if epoch == epochs else best, "epoch": epoch})
    history.append({"train_runtime": 60.0, "epoch": epochs})
    history.append({"eval_loss": 0.6, "eval_accuracy": best, "epoch": epochs})  # the kept model, after
    return {
        "task": "rte",
        "method": method,
        "seed": seed,
        "metrics": {"accuracy": best},
        "main_metric": "accuracy",
        "train_runtime_s": 120.0,
        "log_history": history,
    }


def test_last_epoch_metrics_come_from_the_last_evaluation_during_training():
    assert last_epoch_metrics(result("vanilla", 1, best=0.6, last=0.55)) == {"last_epoch_accuracy": 0.55}
    assert last_epoch_metrics({"metrics": {"accuracy": 0.5}, "log_history": []}) == {}


def test_summary_statistics_and_paired_differences():
    runs = [
        result("vanilla", 1, 0.50, 0.48),
        result("vanilla", 2, 0.60, 0.60),
        result("smart", 1, 0.55, 0.50),
        result("smart", 2, 0.62, 0.58),
        result("smart", 3, 0.70, 0.70),  # no vanilla partner: out of the paired difference
    ]
    summary = summarise(runs)["rte"]["methods"]
    acc = summary["smart"]["metrics"]["accuracy"]
    assert acc["mean"] == pytest.approx((0.55 + 0.62 + 0.70) / 3)
    assert acc["std"] == pytest.approx(statistics.stdev([0.55, 0.62, 0.70]))
    assert acc["best"] == 0.70 and summary["smart"]["n"] == 3
    diff = summary["smart"]["vs_vanilla"]["accuracy"]
    assert diff["n"] == 2 and diff["wins"] == 2 and diff["mean"] == pytest.approx(0.035)
    last = summary["smart"]["vs_vanilla"]["last_epoch_accuracy"]
    assert last["mean"] == pytest.approx(0.0) and last["wins"] == 1  # +0.02 and -0.02
    assert summary["vanilla"]["train_minutes_mean"] == pytest.approx(2.0)
    table = to_markdown(summarise(runs))
    assert "last_epoch_accuracy mean ± std" in table and "| smart | 3 |" in table
    assert "| 62.33 ± 7.51 | 70.00 | +3.50 ± 2.12 (2/2) |" in table
    single = to_markdown(summarise([result("vanilla", 1, 0.5, 0.5), result("smart", 1, 0.6, 0.6)]))
    assert "| smart | 1 | 60.00 | 60.00 | +10.00 (1/1) |" in single  # no "± 0.00" from one seed
