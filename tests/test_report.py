"""Summaries of finished runs: statistics, paired differences, the last-epoch scores."""

import statistics

import pytest

from smart_tune.errors import ConfigError
from smart_tune.report import (
    collect_results,
    last_epoch_metrics,
    paired_differences,
    summarise,
    to_markdown,
    write_report,
)


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


def test_last_epoch_metrics_of_a_run_with_a_held_out_part_that_kept_its_last_epoch():
    """--validation-from-train scores the held-out part and dev each epoch under their own names; with
    load_best_model_at_end off nothing selected the kept epoch (``selected_on: none``), yet the log's
    names are still those of the held-out part and dev."""
    history = [
        {"eval_holdout_accuracy": 0.7, "epoch": 1.0, "step": 2},
        {"eval_dev_accuracy": 0.6, "epoch": 1.0, "step": 2},
        {"eval_holdout_accuracy": 0.65, "epoch": 2.0, "step": 4},
        {"eval_dev_accuracy": 0.55, "epoch": 2.0, "step": 4},
        {"train_runtime": 1.0, "epoch": 2.0, "step": 4},
    ]
    run = {
        "metrics": {"accuracy": 0.55, "accuracy_holdout": 0.65},
        "selected_on": "none",
        "holdout_examples": 16,
        "dev_split": "dev",
        "log_history": history,
    }
    expected = {"last_epoch_accuracy": 0.55, "last_epoch_accuracy_holdout": 0.65}
    assert last_epoch_metrics(run) == expected
    assert last_epoch_metrics({**run, "selected_on": "train-holdout"}) == expected


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
    assert last["mean"] == pytest.approx(0.0) and (last["wins"], last["ties"], last["losses"]) == (1, 0, 1)
    assert summary["vanilla"]["train_minutes_mean"] == pytest.approx(2.0)
    table = to_markdown(summarise(runs))
    assert "last_epoch_accuracy mean ± std" in table and "| smart | 3 |" in table
    assert "| 62.33 ± 7.51 | 70.00 | +3.50 ± 2.12 [-15.56, +22.56] (2W/0T/0L of 2) |" in table
    single = to_markdown(summarise([result("vanilla", 1, 0.5, 0.5), result("smart", 1, 0.6, 0.6)]))
    assert "| smart | 1 | 60.00 | 60.00 | +10.00 (1W/0T/0L of 1) |" in single  # no "± 0.00" from one seed


def test_a_seed_where_a_method_ties_vanilla_is_a_tie_not_a_loss():
    # Equal accuracies on a small dev set give a difference of exactly 0; it was counted as a non-win
    # ("1/3"), i.e. as a loss. A mean of two tasks summed in another order is a tie too (grid.TIE).
    runs = [result("vanilla", s, v, v) for s, v in ((1, 0.50), (2, 0.60), (3, 0.55))]
    runs += [result("smart", s, v, v) for s, v in ((1, 0.55), (2, 0.60), (3, 0.50))]  # +5, 0, -5
    d = summarise(runs)["rte"]["methods"]["smart"]["vs_vanilla"]["accuracy"]
    assert (d["wins"], d["ties"], d["losses"], d["n"]) == (1, 1, 1, 3)
    assert "+0.00 ± 5.00 [-12.42, +12.42] (1W/1T/1L of 3) |" in to_markdown(summarise(runs))
    # Correct answers out of 249 on rte and mrpc: the same total, summed in another order.
    for plain, smart in (((120, 126), (121, 125)), ((121, 125), (120, 126))):
        two_tasks = [
            {**result(method, 1, k / 249, k / 249), "task": task}
            for method, ks in (("vanilla", plain), ("smart", smart))
            for task, k in zip(("rte", "mrpc"), ks)
        ]
        avg = summarise(two_tasks)["average"]["methods"]["smart"]["vs_vanilla"]["mean_of_main_metrics"]
        assert avg["mean"] != 0 and (avg["wins"], avg["ties"], avg["losses"]) == (0, 1, 0)


def test_the_charts_paired_differences_are_the_per_seed_pairs_of_vs_vanilla():
    runs = [
        result("vanilla", 2, 0.60, 0.60),
        result("vanilla", 1, 0.50, 0.48),
        result("vanilla", 4, 0.5, 0.5),
    ]
    runs += [result("smart", 1, 0.55, 0.50), result("smart", 3, 0.70, 0.70), result("smart", 2, 0.62, 0.58)]
    task = summarise(runs)["rte"]
    diffs = paired_differences(task, "smart", "accuracy")
    assert diffs == pytest.approx([0.05, 0.02])  # seeds 1 and 2, in seed order; 3 and 4 have no partner
    assert statistics.mean(diffs) == pytest.approx(task["methods"]["smart"]["vs_vanilla"]["accuracy"]["mean"])
    assert statistics.stdev(diffs) == pytest.approx(task["methods"]["smart"]["vs_vanilla"]["accuracy"]["std"])
    assert paired_differences(task, "smart", "f1") == []  # a metric it does not have
    assert paired_differences(summarise(runs[3:])["rte"], "smart", "accuracy") == []  # no vanilla at all


def test_the_paired_rows_name_the_seeds_they_pair():
    # Methods with different seeds are paired on the seeds both have: the table gave n, not which.
    blind = result("smart", 1, 0.55, 0.50)
    blind["log_history"] = []  # no last-epoch score on seed 1: that metric pairs seed 2 only
    runs = [result("vanilla", s, 0.5, 0.5) for s in (1, 2, 4)]
    runs += [blind, result("smart", 2, 0.62, 0.58), result("smart", 3, 0.7, 0.7), result("r3f", 2, 0.7, 0.7)]
    summary = summarise(runs)
    smart = summary["rte"]["methods"]["smart"]["vs_vanilla"]
    assert smart["accuracy"]["seeds"] == [1, 2] and smart["last_epoch_accuracy"]["seeds"] == [2]
    assert summary["rte"]["methods"]["r3f"]["vs_vanilla"]["accuracy"]["seeds"] == [2]
    assert (
        "Δ vs vanilla pairs the seeds both have: r3f seed 2; "
        "smart seeds 1, 2 (accuracy); seed 2 (last_epoch_accuracy)."
    ) in to_markdown(summary)
    assert "pairs the seeds" not in to_markdown(summarise([r for r in runs if r["method"] == "smart"]))


def test_a_run_without_a_metric_does_not_shift_the_other_seeds_values():
    blind = result("vanilla", 1, 0.50, 0.50)
    blind["log_history"] = []  # no evaluation logged: no last-epoch score for seed 1
    runs = [blind, result("vanilla", 2, 0.52, 0.52), result("vanilla", 3, 0.53, 0.53)]
    runs += [result("smart", 1, 0.88, 0.88), result("smart", 2, 0.60, 0.60), result("smart", 3, 0.70, 0.70)]
    runs.append({**result("r3f", 1, 0.6, 0.6), "log_history": []})  # r3f lacks it where vanilla has it
    runs += [result("r3f", 2, 0.6, 0.6)]
    task = summarise(runs)["rte"]
    last = task["methods"]["vanilla"]["metrics"]["last_epoch_accuracy"]
    assert last["seeds"] == [2, 3] and last["values"] == [0.52, 0.53]
    assert paired_differences(task, "smart", "last_epoch_accuracy") == pytest.approx([0.08, 0.17])
    assert task["methods"]["smart"]["vs_vanilla"]["last_epoch_accuracy"]["n"] == 2
    assert paired_differences(task, "r3f", "last_epoch_accuracy") == pytest.approx([0.08])  # seed 2 only


def run(task, method, seed, metrics, main, fraction=None, minutes=2.0):
    return {
        "task": task,
        "method": method,
        "seed": seed,
        "metrics": metrics,
        "main_metric": main,
        "train_runtime_s": 60.0 * minutes,
        "arguments": {"run": {"train_fraction": fraction}},
        "log_history": [{"eval_" + k: v for k, v in metrics.items()} | {"epoch": 3}, {"train_runtime": 1.0}],
    }


def test_average_over_tasks_is_the_per_seed_mean_of_main_metrics_and_paired_to_vanilla():
    runs = [
        run("rte", "vanilla", 1, {"accuracy": 0.50}, "accuracy"),
        run("cola", "vanilla", 1, {"matthews_correlation": 0.30}, "matthews_correlation"),
        run("rte", "vanilla", 2, {"accuracy": 0.60}, "accuracy"),
        run("cola", "vanilla", 2, {"matthews_correlation": 0.20}, "matthews_correlation"),
        run("rte", "smart", 1, {"accuracy": 0.56}, "accuracy"),
        run("cola", "smart", 1, {"matthews_correlation": 0.34}, "matthews_correlation"),
        run("rte", "smart", 2, {"accuracy": 0.70}, "accuracy"),  # no cola for seed 2: not averaged
    ]
    summary = summarise(runs)
    assert list(summary) == ["cola", "rte", "average"]
    avg = summary["average"]
    assert avg["averaged"] == {"cola": "matthews_correlation", "rte": "accuracy"}
    van = avg["methods"]["vanilla"]["metrics"]["mean_of_main_metrics"]
    assert van["values"] == pytest.approx([0.40, 0.40])
    smart = avg["methods"]["smart"]
    assert smart["n"] == 1 and smart["metrics"]["mean_of_main_metrics"]["mean"] == pytest.approx(0.45)
    assert smart["vs_vanilla"]["mean_of_main_metrics"]["mean"] == pytest.approx(0.05)
    assert smart["metrics"]["last_epoch_mean_of_main_metrics"]["mean"] == pytest.approx(0.45)
    assert smart["train_minutes_mean"] == pytest.approx(4.0)  # the sum over the two tasks
    assert "Per seed, the mean of cola matthews_correlation, rte accuracy" in to_markdown(summary)
    assert "average" not in summarise([r for r in runs if r["task"] == "rte"])


def test_the_average_names_each_method_and_seed_it_leaves_out_rather_than_drop_them():
    # A method with no run of one task vanished from the average without a word (and a seed lacking a
    # task likewise): the average row read as if it compared every method over the same tasks.
    runs = [
        run(t, m, s, {"accuracy": 0.5 + s / 100}, "accuracy")
        for t in ("rte", "mrpc", "cola")
        for m in ("vanilla", "smart")
        for s in (1, 2, 3)
        if not (m == "smart" and t == "cola") and not (m == "vanilla" and t == "cola" and s == 3)
    ]
    avg = summarise(runs)["average"]
    assert list(avg["methods"]) == ["vanilla"] and avg["methods"]["vanilla"]["seeds"] == [1, 2]
    assert avg["left_out"] == {
        "smart": [{"seed": s, "missing": ["cola"]} for s in (1, 2, 3)],
        "vanilla": [{"seed": 3, "missing": ["cola"]}],
    }
    text = to_markdown(summarise(runs))
    assert "Left out of the average, a task missing on that seed" in text
    assert "smart seeds 1, 2, 3 (no cola); vanilla seed 3 (no cola)." in text
    assert "| smart (incomplete: no cola) | 0 | – | – | – | – | – | – | – |" in text
    # No method with every task on one seed: the average is there all the same, naming what is missing.
    no_rte = summarise([r for r in runs if not (r["method"] == "vanilla" and r["task"] == "rte")])
    assert no_rte["average"]["methods"] == {}
    assert no_rte["average"]["averaged"] == {"cola": "accuracy", "mrpc": "accuracy", "rte": "accuracy"}
    assert no_rte["average"]["left_out"]["vanilla"][2] == {"seed": 3, "missing": ["cola", "rte"]}
    assert "| vanilla (incomplete: no cola, rte) | 0 | – |" in to_markdown(no_rte)
    complete = summarise([r for r in runs if r["task"] != "cola"])
    assert complete["average"]["left_out"] == {} and "Left out" not in to_markdown(complete)


def test_fractions_form_their_own_groups_and_a_curve(tmp_path):
    import json

    for fraction in (0.01, 0.1, 1.0):
        for method, acc in (("vanilla", 0.5), ("smart", 0.6)):
            for seed in (1, 2):
                r = run("snli", method, seed, {"accuracy": acc * (1 + fraction)}, "accuracy", fraction)
                folder = tmp_path / f"snli-{fraction}" / method / f"seed-{seed}"
                folder.mkdir(parents=True)
                (folder / "results.json").write_text(json.dumps(r))
    paths = write_report(tmp_path)
    summary = json.loads(paths["json"].read_text())
    assert list(summary) == ["snli (1% train)", "snli (10% train)", "snli (100% train)"]  # no average
    assert summary["snli (10% train)"]["train_fraction"] == 0.1
    for chart in (paths["curve"], paths["chart"]):
        assert chart.read_bytes().startswith(b"\x89PNG")  # a PNG, though saved through a temp name
    assert not list(tmp_path.glob(".*tmp*"))  # no temp file (chart, summary) left behind


def test_other_folders_join_a_report_filtered_and_without_double_counting(tmp_path):
    import json

    def put(folder, r):
        path = tmp_path / folder / r["task"] / r["method"] / f"seed-{r['seed']}"
        path.mkdir(parents=True)
        (path / "results.json").write_text(json.dumps(r))

    put("headline", run("rte", "vanilla", 1, {"accuracy": 0.5}, "accuracy"))
    put("headline", run("rte", "r3f", 1, {"accuracy": 0.52}, "accuracy"))
    put("headline", run("cola", "vanilla", 1, {"matthews_correlation": 0.3}, "matthews_correlation"))
    put("ablation", run("rte", "smart-no-rs", 1, {"accuracy": 0.55}, "accuracy"))
    paths = write_report(tmp_path / "ablation", [tmp_path / "headline"], tasks=["rte"], methods=None)
    methods = json.loads(paths["json"].read_text())["rte"]["methods"]
    assert sorted(methods) == ["r3f", "smart-no-rs", "vanilla"]
    assert methods["smart-no-rs"]["vs_vanilla"]["accuracy"]["mean"] == pytest.approx(0.05)
    assert "cola" not in json.loads(paths["json"].read_text())
    only = write_report(tmp_path / "ablation", [tmp_path / "headline"], methods=["vanilla", "smart-no-rs"])
    assert sorted(json.loads(only["json"].read_text())["rte"]["methods"]) == ["smart-no-rs", "vanilla"]
    put("copy", run("rte", "vanilla", 1, {"accuracy": 0.5}, "accuracy"))
    with pytest.raises(ConfigError, match="in two places"):
        write_report(tmp_path / "ablation", [tmp_path / "headline", tmp_path / "copy"])


def test_report_command_takes_other_folders_and_filters(tmp_path, capsys):
    import json

    from smart_tune.cli import main

    for folder, method, seed in (
        ("a", "vanilla", 1),
        ("a", "vanilla", 2),
        ("b", "smart", 1),
        ("b", "smart", 2),
    ):
        path = tmp_path / folder / method / f"seed-{seed}"
        path.mkdir(parents=True)
        (path / "results.json").write_text(
            json.dumps(run("rte", method, seed, {"accuracy": 0.5}, "accuracy"))
        )
    assert main(["report", str(tmp_path / "b"), "--include", str(tmp_path / "a"), "--seeds", "2"]) == 0
    methods = json.loads((tmp_path / "b" / "summary.json").read_text())["rte"]["methods"]
    assert {m: e["seeds"] for m, e in methods.items()} == {"vanilla": [2], "smart": [2]}
    assert "summary.md" in capsys.readouterr().out


def test_logged_smart_terms_are_summarised_per_method():
    from smart_tune.report import training_terms

    r = run("rte", "smart", 1, {"accuracy": 0.6}, "accuracy")
    r["log_history"] = [
        {"loss": 0.7, "smart_adv_loss": 0.002, "smart_breg_loss": 0.01, "smart_delta_linf": 1e-5},
        {"loss": 0.6, "smart_adv_loss": 0.004, "smart_breg_loss": 0.03, "smart_delta_linf": 2e-5},
        {"eval_accuracy": 0.6, "epoch": 3},
    ]
    terms = training_terms(r)
    assert terms == pytest.approx(
        {"smart_adv_loss": 0.003, "smart_breg_loss": 0.02, "smart_delta_linf": 2e-5}
    )
    r2 = {
        **r,
        "seed": 2,
        "log_history": [{"smart_adv_loss": 0.005, "smart_breg_loss": 0.0, "smart_delta_linf": 0}],
    }
    summary = summarise([r, r2, run("rte", "vanilla", 1, {"accuracy": 0.5}, "accuracy")])
    assert summary["rte"]["methods"]["smart"]["terms"]["smart_adv_loss"] == pytest.approx(0.004)
    assert summary["rte"]["methods"]["vanilla"]["terms"] == {}
    assert "| smart | 0.004 | 0.01 | 1e-05 |" in to_markdown(summary)  # max per run, mean over seeds


def with_args(r, lr=5e-5, **smart):
    r["arguments"] = {
        "run": {"train_fraction": None, "max_length": 128},
        "training": {
            "learning_rate": lr,
            "num_train_epochs": 3,
            "smart_method": "vanilla" if r["method"] == "vanilla" else "smart",
            "smart_epsilon": 1e-5,
            **smart,
        },
    }
    return r


def test_runs_are_checked_to_train_alike_and_can_be_renamed(tmp_path):
    import json

    def put(folder, r):
        path = tmp_path / folder / r["method"] / f"seed-{r['seed']}"
        path.mkdir(parents=True, exist_ok=True)
        (path / "results.json").write_text(json.dumps(r))

    put("s1", with_args(run("rte", "vanilla", 1, {"accuracy": 0.5}, "accuracy")))
    put("s1", with_args(run("rte", "smart-eps1e-3", 1, {"accuracy": 0.6}, "accuracy"), smart_epsilon=1e-3))
    put("s2", with_args(run("rte", "smart", 2, {"accuracy": 0.7}, "accuracy"), smart_epsilon=1e-3))
    put("s2", with_args(run("rte", "vanilla", 2, {"accuracy": 0.5}, "accuracy")))
    paths = write_report(tmp_path / "s2", [tmp_path / "s1"], rename={"smart-eps1e-3": "smart"})
    summary = json.loads(paths["json"].read_text())["rte"]
    assert summary["methods"]["smart"]["seeds"] == [1, 2] and summary["differs_in"] == []
    # The same name for a different setting is refused, naming the knob and both files.
    put("s3", with_args(run("rte", "smart", 3, {"accuracy": 0.7}, "accuracy"), smart_epsilon=1e-2))
    with pytest.raises(ConfigError, match="smart in rte did not train alike: smart_epsilon is 0.001 in .*s2"):
        write_report(tmp_path / "s2", [tmp_path / "s3"])
    # Methods on different schedules (a pilot) are reported, with a note saying so.
    put("pilot", with_args(run("rte", "lr2e-5", 1, {"accuracy": 0.5}, "accuracy"), lr=2e-5))
    put("pilot", with_args(run("rte", "lr5e-5", 1, {"accuracy": 0.5}, "accuracy"), lr=5e-5))
    pilot = write_report(tmp_path / "pilot")
    assert json.loads(pilot["json"].read_text())["rte"]["differs_in"] == ["learning_rate"]
    assert "Not one schedule: the runs differ in learning_rate." in pilot["markdown"].read_text()


def test_runs_that_keep_their_last_model_say_so_and_do_not_mix_with_best_epoch_runs(tmp_path):
    import json

    def kept(r, best):
        with_args(r)["arguments"]["training"]["load_best_model_at_end"] = best
        return r

    def last(r):
        return kept(r, False)

    runs = [last(result("vanilla", 1, 0.5, 0.5)), last(result("smart", 1, 0.6, 0.6))]
    summary = summarise(runs)
    assert summary["rte"]["kept"] == ["last"]
    assert "scored the model it ended training with" in to_markdown(summary)
    best = [kept(result("vanilla", 1, 0.5, 0.5), True), kept(result("smart", 1, 0.6, 0.6), True)]
    assert "scored the model it ended training with" not in to_markdown(summarise(best))
    mixed = summarise([runs[0], best[1]])["rte"]
    assert mixed["kept"] == ["best", "last"] and mixed["differs_in"] == ["load_best_model_at_end"]
    for folder, r in (("a", runs[1]), ("b", kept(result("smart", 2, 0.6, 0.6), True))):
        path = tmp_path / folder / "rte" / "smart" / f"seed-{r['seed']}" / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(r))
    with pytest.raises(ConfigError, match="load_best_model_at_end"):
        collect_results([tmp_path / "a", tmp_path / "b"])


def test_a_resumed_run_time_is_scaled_to_all_its_steps():
    from smart_tune.report import run_seconds

    r = run("rte", "smart", 1, {"accuracy": 0.6}, "accuracy")
    assert run_seconds({**r, "global_steps": 468}) == 120.0
    assert run_seconds({**r, "global_steps": 468, "resumed_at_step": 312}) == pytest.approx(360.0)
    assert run_seconds({**r, "global_steps": 468, "resumed_at_step": 468}) is None  # timed no step
    resumed_unrecorded = {**r, "global_steps": 468, "arguments": {"run": {"resume": True}}}
    assert run_seconds(resumed_unrecorded) is None
    assert run_seconds({k: v for k, v in r.items() if k != "train_runtime_s"}) is None
    table = to_markdown(summarise([{**resumed_unrecorded, "seed": 1}, {**r, "seed": 2}]))
    assert "| 2.0 (1 ?) |" in table  # the mean of the known time, and how many were unknown
    assert "| ? |" in to_markdown(summarise([resumed_unrecorded]))


def test_average_skips_runs_without_their_main_metric_and_inherits_schedule_notes():
    runs = [
        with_args(run("rte", "lr2e-5", 1, {"accuracy": 0.5}, "accuracy"), lr=2e-5),
        with_args(run("rte", "lr5e-5", 1, {"accuracy": 0.6}, "accuracy"), lr=5e-5),
        with_args(run("mrpc", "lr2e-5", 1, {"accuracy": 0.7}, "accuracy"), lr=2e-5),
        with_args(run("mrpc", "lr5e-5", 1, {}, "accuracy"), lr=5e-5),  # no labelled eval split
    ]
    summary = summarise([{**r, "_path": str(i)} for i, r in enumerate(runs)])
    assert list(summary["average"]["methods"]) == ["lr2e-5"]
    assert summary["average"]["left_out"] == {"lr5e-5": [{"seed": 1, "missing": ["mrpc"]}]}
    assert summary["average"]["differs_in"] == ["learning_rate"]


def test_settings_compare_only_what_both_runs_recorded_and_plain_ignores_smart_knobs():
    from smart_tune.report import check_comparable

    a = {**with_args(run("rte", "vanilla", 1, {}, "accuracy")), "_path": "a"}
    b = {**with_args(run("rte", "vanilla", 2, {}, "accuracy"), smart_epsilon=1e-2), "_path": "b"}
    b["arguments"]["training"]["smart_method"] = "vanilla"
    b["arguments"]["training"]["smart_new_knob"] = 3  # recorded by a newer version only
    check_comparable([a, b])  # plain ignores smart_*; a knob one run lacks is not a difference
    c = {**with_args(run("rte", "smart", 1, {}, "accuracy"), smart_method="smart"), "_path": "c"}
    d = {
        **with_args(run("rte", "smart", 2, {}, "accuracy"), smart_method="smart", smart_epsilon=1e-2),
        "_path": "d",
    }
    with pytest.raises(ConfigError, match="smart_epsilon"):
        check_comparable([c, d])
    d["arguments"]["training"].update(smart_epsilon=1e-5, smart_max_nonfinite_steps=50)
    check_comparable([c, d])  # a safety limit is not a setting


def test_a_run_recorded_before_sample_seed_took_the_first_rows():
    """A run that recorded its options before --sample-seed existed trained on the first N rows: beside
    a seed trained on a draw (sample_seed 0) it is not the same data, though only one recorded the key."""
    from smart_tune.report import check_comparable, schedule_differences

    def capped(seed, **run_options):
        r = {**run("stsb", "vanilla", seed, {"pearson": 0.8}, "pearson"), "_path": f"s{seed}"}
        r["arguments"] = {"run": {"max_train_samples": 1000, **run_options}, "training": {}}
        return r

    old, first, drawn = capped(1), capped(2, sample_seed=None), capped(3, sample_seed=0)
    check_comparable([old, first])  # the first N rows both
    with pytest.raises(ConfigError, match="sample_seed is None in s1 but 0 in s3"):
        check_comparable([old, drawn])
    assert schedule_differences([old, drawn]) == ["sample_seed"]
    uncapped = {**run("stsb", "vanilla", 4, {"pearson": 0.8}, "pearson"), "_path": "s4"}
    assert schedule_differences([uncapped, drawn]) == []  # no max_train_samples recorded: not compared


def test_report_command_options_are_checked(tmp_path, capsys):
    import json

    from smart_tune.cli import main

    for folder in ("a", "b"):
        path = tmp_path / folder / "vanilla" / "seed-1"
        path.mkdir(parents=True)
        r = run("rte" if folder == "a" else "mrpc", "vanilla", 1, {"accuracy": 0.5}, "accuracy")
        (path / "results.json").write_text(json.dumps(r))
    out = tmp_path / "out"
    out.mkdir()
    both = f"{tmp_path / 'a'},{tmp_path / 'b'}"  # a comma list, as the other options take
    # A rename of a method that is not there (a typo) would leave the method under its old name.
    assert main(["report", str(out), "--include", both, "--rename", "vanilla=plain,vanila=x"]) == 2
    err = capsys.readouterr().err
    assert "--rename: no method called vanila under" in err and "(methods: vanilla)" in err, err
    assert "\n" not in err.strip() and not (out / "summary.json").exists()
    assert main(["report", str(out), "--include", both, "--rename", "vanilla=plain"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["mrpc", "rte", "average"] and list(summary["rte"]["methods"]) == ["plain"]
    capsys.readouterr()
    for bad in (["--rename", "vanilla"], ["--seeds", "one"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["report", str(tmp_path / "a"), *bad])
        assert exit_info.value.code == 2
    assert main(["report", str(tmp_path / "a"), "--methods", "smart"]) == 2
    assert "that pass the --tasks/--methods/--seeds filters" in capsys.readouterr().err


def test_paired_interval_is_students_t_over_the_seeds():
    from smart_tune.report import paired_interval

    lo, hi = paired_interval(0.02, 0.01, 5)  # t(0.975, 4) = 2.776
    assert lo == pytest.approx(0.02 - 2.776 * 0.01 / 5**0.5, abs=1e-5)
    assert hi == pytest.approx(0.02 + 2.776 * 0.01 / 5**0.5, abs=1e-5)
    assert paired_interval(0.02, 0.0, 1) is None


def test_fit_gives_the_last_epochs_task_loss_and_the_kept_epoch():
    from smart_tune.report import kept_epoch, training_fit

    def fitted(method, seed, task_losses, best_step):
        r = run("rte", method, seed, {"accuracy": 0.6}, "accuracy")
        # 2 epochs of 4 steps, a log every 2 steps; SMART logs its total F as "loss", L apart.
        r["log_history"] = [
            {
                "loss": 9.0,
                **({"smart_task_loss": task} if method == "smart" else {}),
                "epoch": step / 4,
                "step": step,
            }
            for step, task in zip((2, 4, 6, 8), task_losses)
        ]
        if method == "vanilla":
            for e, task in zip(r["log_history"], task_losses):
                e["loss"] = task
        r["log_history"][1:1] = [{"eval_holdout_accuracy": 0.6, "epoch": 1.0, "step": 4}]
        r["log_history"].append({"eval_holdout_accuracy": 0.5, "epoch": 2.0, "step": 8})
        r["log_history"].append({"train_runtime": 1.0, "epoch": 2.0, "step": 8})
        r["best_checkpoint"] = f"runs/x/checkpoint-{best_step}"
        return r

    smart = fitted("smart", 1, [0.7, 0.6, 0.5, 0.3], best_step=4)
    fit = training_fit(smart)
    # L over the last epoch only (steps 6 and 8), read from smart_task_loss, not the total F.
    assert fit == pytest.approx(
        {"task_loss_last_epoch": 0.4, "epochs": 2.0, "kept_epoch": 1.0, "kept_last_epoch": 0.0}
    )
    assert kept_epoch({**smart, "best_checkpoint": None}) == 2.0  # no checkpoint named: the last evaluation
    # train records the kept epoch itself (and names no checkpoint it does not keep): that comes first.
    assert kept_epoch({**smart, "best_checkpoint": None, "best_epoch": 1.0}) == 1.0
    assert training_fit({"log_history": []}) == {}

    runs = [smart, fitted("smart", 2, [0.7, 0.6, 0.6, 0.4], best_step=8)]
    runs += [fitted("vanilla", s, [0.6, 0.4, 0.3, 0.1], best_step=8) for s in (1, 2)]
    summary = summarise(runs)["rte"]["methods"]
    assert summary["smart"]["fit"] == pytest.approx(
        {"task_loss_last_epoch": 0.45, "kept_epoch": 1.5, "epochs": 2.0, "kept_last_epoch": 1, "n": 2}
    )
    assert summary["vanilla"]["fit"]["task_loss_last_epoch"] == pytest.approx(0.2)
    text = to_markdown(summarise(runs))
    assert "| smart | 0.4500 | 1.50 | 1/2 |" in text and "| vanilla | 0.2000 | 2.00 | 2/2 |" in text


def test_a_method_s_own_runs_beside_its_grid_s_chosen_point_are_refused_not_overwritten():
    from smart_tune.grid import select

    index = {"smart": [{"name": "smart@lr=1", "settings": {"learning_rate": 1}}]}
    held = {"accuracy": 0.5, "accuracy_holdout": 0.5}
    runs = [
        {**run("rte", "smart", 1, {"accuracy": 0.9}, "accuracy"), "_path": "other/smart/seed-1"},
        run("rte", "smart@lr=1", 1, held, "accuracy"),
        run("rte", "vanilla", 1, held, "accuracy"),
    ]
    kept, _ = select(runs, index, lambda r: r["task"])
    with pytest.raises(
        ConfigError, match="rte/smart/seed 1 is there twice: other/smart/seed-1 and smart@lr=1"
    ):
        summarise(kept)


def test_the_average_says_how_its_tasks_were_selected_and_which_model_they_kept():
    runs = [
        {**run(t, m, 1, {"accuracy": 0.5}, "accuracy"), "selected_on": "train-holdout"}
        for t in ("rte", "mrpc")
        for m in ("vanilla", "smart")
    ]
    summary = summarise(runs)
    assert summary["rte"]["selected_on"] == summary["average"]["selected_on"] == ["train-holdout"]
    assert summary["average"]["kept"] == ["best"]
    last = [{**r, "arguments": {"run": {}, "training": {"load_best_model_at_end": False}}} for r in runs]
    assert summarise(last)["average"]["kept"] == ["last"]


def lr_index(methods) -> dict:
    """A grid.json index: each method at lr 2e-5 and 5e-5 (points named ``method@lr=...``)."""
    return {
        m: [{"name": f"{m}@lr={lr}", "settings": {"learning_rate": lr}} for lr in (2e-05, 5e-05)]
        for m in methods
    }


def lr_grid_folder(folder, methods) -> None:
    """A compare --grid folder: :func:`lr_index`'s grid.json and one RTE run per point on seed 1, the
    second point ahead on the held-out part (0.6 against 0.5), both 0.6 on dev."""
    import json

    from smart_tune.grid import write_grid

    index = lr_index(methods)
    write_grid(folder, index)
    for pts in index.values():
        for n, p in enumerate(pts):
            path = folder / "rte" / p["name"] / "seed-1"
            path.mkdir(parents=True)
            r = run("rte", p["name"], 1, {"accuracy": 0.6, "accuracy_holdout": 0.5 + n / 10}, "accuracy")
            (path / "results.json").write_text(json.dumps(r))


def test_a_methods_filter_on_a_grid_folder_names_the_methods_the_report_shows(tmp_path):
    # A compare with --grid runs `smart@lr=...` variants and reports each method under its own name;
    # `report --methods vanilla,smart` matched no run (it compared the variants' names) and failed with
    # "no finished runs that pass the filters".
    import json

    lr_grid_folder(tmp_path, ("vanilla", "smart", "r3f"))
    write_report(tmp_path, methods=["vanilla", "smart"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["rte"]["methods"]) == ["vanilla", "smart"]
    shown = (tmp_path / "summary.md").read_text()
    assert "| rte | smart | lr=5e-05 |" in shown and "| rte | vanilla | lr=5e-05 |" in shown
    assert "| rte | r3f |" not in shown
    # The folder's decision file comes from a report of the whole folder only (see the next test).
    assert not (tmp_path / "grid_choice.json").exists()
    write_report(tmp_path)
    choices = json.loads((tmp_path / "grid_choice.json").read_text())["rte"]
    assert {m: c["chosen"] for m, c in choices.items()} == {
        "smart": "smart@lr=5e-05",
        "vanilla": "vanilla@lr=5e-05",
        "r3f": "r3f@lr=5e-05",
    }


def test_a_filtered_report_leaves_the_folders_grid_choice_alone(tmp_path):
    # A study's final stage runs the points in grid_choice.json; `report --seeds 1` (a look at one seed)
    # rewrote it with a choice made on seed 1 alone.
    import json

    from smart_tune.grid import write_grid

    index = lr_index(("vanilla", "smart"))
    write_grid(tmp_path, index)
    for pts in index.values():
        for seed, better in ((1, 0), (2, 1)):  # seed 1 favours the first point, seeds 1-2 the second
            for n, p in enumerate(pts):
                path = tmp_path / "rte" / p["name"] / f"seed-{seed}"
                path.mkdir(parents=True)
                held_out = 0.5 + (0.05 if n == better else 0) + (0.2 * n if seed == 2 else 0)
                r = run("rte", p["name"], seed, {"accuracy": 0.6, "accuracy_holdout": held_out}, "accuracy")
                (path / "results.json").write_text(json.dumps(r))
    write_report(tmp_path)
    before = (tmp_path / "grid_choice.json").read_text()
    assert json.loads(before)["rte"]["smart"]["chosen"] == "smart@lr=5e-05"
    write_report(tmp_path, seeds=[1])
    assert "| rte | smart | lr=2e-05 |" in (tmp_path / "summary.md").read_text()  # seed 1's choice, shown
    assert (tmp_path / "grid_choice.json").read_text() == before


def test_a_method_whose_grid_is_incomplete_is_named_not_dropped_and_none_complete_is_one_line(tmp_path):
    # grid.select chooses nothing for a method until every point has a run on a common seed; the
    # report left such a method out without a word, and with no method complete (report --seeds 3 of a
    # study whose later seeds ran the chosen point only) it stopped with "max() arg is an empty sequence".
    import json

    from smart_tune.grid import write_grid

    index = lr_index(("vanilla", "smart"))
    write_grid(tmp_path, index)
    done = [("vanilla@lr=2e-05", 1), ("vanilla@lr=5e-05", 1), ("smart@lr=2e-05", 1), ("smart@lr=2e-05", 2)]
    done += [("vanilla@lr=5e-05", 3), ("smart@lr=2e-05", 3)]
    for name, seed in done:
        path = tmp_path / "rte" / name / f"seed-{seed}"
        path.mkdir(parents=True)
        r = run("rte", name, seed, {"accuracy": 0.6, "accuracy_holdout": 0.6}, "accuracy")
        (path / "results.json").write_text(json.dumps(r))
    write_report(tmp_path)
    assert list(json.loads((tmp_path / "summary.json").read_text())["rte"]["methods"]) == ["vanilla"]
    assert (
        "Not reported: smart in rte, no seed has a run of every point of its grid yet "
        "(seeds finished per point: lr=2e-05: 1,2,3; lr=5e-05: none)"
    ) in (tmp_path / "summary.md").read_text()
    with pytest.raises(ConfigError, match=r"no method's grid .*\(smart in rte; vanilla in rte\)"):
        write_report(tmp_path, seeds=[3])


def test_rename_applies_to_a_grid_folders_methods_and_refuses_a_point(tmp_path, capsys):
    # `report --rename smart=NEW` on a compare with --grid did nothing: the runs are named after their
    # points (smart@lr=5e-05) and grid.json's methods were read unrenamed.
    import json

    from smart_tune.cli import main

    lr_grid_folder(tmp_path, ("vanilla", "smart"))
    write_report(tmp_path, rename={"smart": "smart-paper"}, methods=["vanilla", "smart-paper"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary["rte"]["methods"]) == ["vanilla", "smart-paper"]
    assert "| rte | smart-paper | lr=5e-05 |" in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "grid_choice.json").exists()  # a renamed report is not the folder's decision
    capsys.readouterr()
    assert main(["report", str(tmp_path), "--rename", "smart@lr=5e-05=best"]) == 2
    err = capsys.readouterr().err
    assert "smart@lr=5e-05 is a point of smart's grid; rename the method (smart=NEW)" in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="grid methods vanilla and smart would both be called vanilla"):
        write_report(tmp_path, rename={"smart": "vanilla"})


def test_an_included_grid_folder_is_reported_at_its_chosen_points(tmp_path, capsys):
    # `report FOLDER --include OTHER` read OTHER's runs but not its grid.json: its points were reported
    # as plain methods (smart@lr=5e-05), none chosen. Now OTHER's grid is chosen among as its own report
    # chooses; a method with another grid in the folder is refused in one line.
    import json

    from smart_tune.cli import main
    from smart_tune.grid import write_grid

    def put(folder, name, held_out):
        path = folder / "rte" / name / "seed-1"
        path.mkdir(parents=True)
        r = run("rte", name, 1, {"accuracy": 0.6, "accuracy_holdout": held_out}, "accuracy")
        (path / "results.json").write_text(json.dumps(r))

    other, folder = tmp_path / "headline", tmp_path / "ablation"
    lr_grid_folder(other, ("vanilla", "smart"))
    put(folder, "smart-no-rs", 0.5)
    write_report(other)
    alone = (other / "summary.md").read_text()
    write_report(folder, [other])
    summary = json.loads((folder / "summary.json").read_text())
    assert sorted(summary["rte"]["methods"]) == ["smart", "smart-no-rs", "vanilla"]
    shown = (folder / "summary.md").read_text()
    for method in ("smart", "vanilla"):
        assert f"| rte | {method} | lr=5e-05 |" in shown and f"| rte | {method} | lr=5e-05 |" in alone
    assert not (folder / "grid_choice.json").exists()  # a report with --include is not a folder's decision
    only = write_report(folder, [other], methods=["smart", "smart-no-rs"])  # a grid method by its name
    assert sorted(json.loads(only["json"].read_text())["rte"]["methods"]) == ["smart", "smart-no-rs"]

    # The folder's own grid of smart, of other points: no honest choice between two grids.
    write_grid(folder, {"smart": [{"name": "smart@lambda=1", "settings": {"smart_lambda": 1}}]})
    capsys.readouterr()
    assert main(["report", str(folder), "--include", str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert "hold different grids for smart: one method, one grid per report" in err and "\n" not in err


def test_the_report_opens_with_one_compact_table_of_every_groups_main_metric():
    """A row per group, a column per method (mean ± std, n) and one per method's paired Δ to vanilla
    with its interval and W/T/L, computed as the per-group tables compute them."""
    runs = [result("vanilla", s, v, v) for s, v in ((1, 0.50), (2, 0.60), (3, 0.55))]
    runs += [result("smart", s, v, v) for s, v in ((1, 0.55), (2, 0.62), (3, 0.58))]  # +5, +2, +3
    runs += [{**result("smart", 1, 0.7, 0.7), "task": "mrpc"}]  # no vanilla on mrpc: no Δ there
    text = to_markdown(summarise(runs))
    start = text.index("## At a glance")
    glance = text[start : text.index("\n## ", start)]
    half = 4.303 * statistics.stdev([5.0, 2.0, 3.0]) / 3**0.5  # t(0.975, 2)
    assert "| group (main metric) | vanilla | smart | Δ smart vs vanilla |" in glance
    assert (
        f"| rte (accuracy) | 55.00 ± 5.00 (3) | 58.33 ± 3.51 (3) | +3.33 [{3.333 - half:+.2f}, "
        f"{3.333 + half:+.2f}] (3W/0T/0L of 3) |"
    ) in glance
    assert "| mrpc (accuracy) | – | 70.00 (1) | – |" in glance
    only_smart = to_markdown(summarise([r for r in runs if r["method"] == "smart"]))
    assert "| group (main metric) | smart |\n" in only_smart  # no baseline: no Δ columns
