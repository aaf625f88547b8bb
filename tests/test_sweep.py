"""smart-tune compare's runs (sweep.run_sweep), with a stand-in for each run's child process: a run cut
short resumes only with the settings it started with, and a run is trained by one sweep at a time."""

import fcntl
import json

import pytest

from smart_tune import environment, options, sweep
from smart_tune.checkpoints import CHECKPOINT_COMPLETE


class FakeRun:
    """Stands in for `python -m smart_tune train`: records its command line; the first run saves a
    complete checkpoint and crashes (exit 1), so that the next sweep has a run to resume."""

    started: list = []

    def __init__(self, cmd, **_):
        FakeRun.started.append(cmd)
        run_dir = sweep.Path(cmd[cmd.index("--config") + 1]).parent
        (run_dir / "checkpoint-2").mkdir(exist_ok=True)
        for name in (CHECKPOINT_COMPLETE, "optimizer.pt", "scheduler.pt"):  # a checkpoint to resume from
            (run_dir / "checkpoint-2" / name).write_text("{}")

    def wait(self):
        return 1

    def send_signal(self, _signum):
        pass


@pytest.fixture
def fake_runs(monkeypatch):
    FakeRun.started = []
    environment.running_source()  # read once per process, by git: before processes are stood in for
    monkeypatch.setattr(sweep.subprocess, "Popen", FakeRun)
    return FakeRun.started


def sweep_once(out, lr, lines=None):
    shared = {"data_dir": "nowhere", "learning_rate": lr, "validation_from_train": 0.1}
    echo = (lines if lines is not None else []).append
    return sweep.run_sweep(out, ["rte"], ["smart"], [1], shared, echo=echo)


def test_a_run_cut_short_resumes_only_with_the_settings_it_started_with(tmp_path, fake_runs, monkeypatch):
    out, run_dir = tmp_path / "cmp", tmp_path / "cmp" / "rte" / "smart" / "seed-1"
    assert len(sweep_once(out, 5e-5)) == 1 and "--resume" not in fake_runs[0]  # started, then crashed
    started_with = json.loads((run_dir / "run_config.json").read_text())

    lines = []
    assert len(sweep_once(out, 2e-5, lines)) == 1, lines  # config.yaml or a flag changed in between: refused
    assert len(fake_runs) == 1, ("resumed with another learning rate", lines)
    assert "learning_rate: 5e-05 then, 2e-05 now" in lines[-1]
    assert json.loads((run_dir / "run_config.json").read_text()) == started_with
    assert "not resumed" in (run_dir / "train.log").read_text()

    monkeypatch.setitem(options.RECIPE, "weight_decay", 0.0)  # a default under the options changed
    lines = []
    assert len(sweep_once(out, 5e-5, lines)) == 1 and len(fake_runs) == 1
    assert "defaults under its options changed" in lines[-1] and "weight_decay" in lines[-1]

    monkeypatch.undo()
    monkeypatch.setattr(sweep.subprocess, "Popen", FakeRun)
    sweep_once(out, 5e-5)  # the same settings: resumed
    assert len(fake_runs) == 2 and "--resume" in fake_runs[1]


def test_a_run_another_sweep_is_running_is_left_to_it(tmp_path, fake_runs):
    run_dir = tmp_path / "cmp" / "rte" / "smart" / "seed-1"
    run_dir.mkdir(parents=True)
    with open(run_dir / sweep.RUN_LOCK, "w") as held:  # another compare job (overlapping --seeds) runs it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lines = []
        assert sweep_once(tmp_path / "cmp", 5e-5, lines) == []
    assert fake_runs == [] and "running in another process" in lines[-1]
    sweep_once(tmp_path / "cmp", 5e-5)  # once it lets go, the run is trained
    assert len(fake_runs) == 1


COMMIT = "a" * 40


def test_a_run_resumed_under_another_commit_is_warned_about_and_started_at_its_own(
    tmp_path, fake_runs, monkeypatch, capsys
):
    out, run_dir = tmp_path / "cmp", tmp_path / "cmp" / "rte" / "smart" / "seed-1"
    monkeypatch.setattr(environment, "running_source", lambda: {"commit": COMMIT, "dirty": False})
    sweep_once(out, 5e-5)  # started at COMMIT, then crashed
    assert json.loads((run_dir / sweep.RESOLVED).read_text())["_source"] == {"commit": COMMIT, "dirty": False}
    assert capsys.readouterr().err == ""

    sweep_once(out, 5e-5)  # the same code: resumed without a word
    assert "--resume" in fake_runs[-1] and capsys.readouterr().err == ""

    fixed = "b" * 40  # a fix committed between two sessions: resumed, but said
    monkeypatch.setattr(environment, "running_source", lambda: {"commit": fixed, "dirty": True})
    lines = []
    sweep_once(out, 5e-5, lines)
    assert len(fake_runs) == 3 and "--resume" in fake_runs[-1], lines
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "warning" in err and COMMIT in err and fixed in err, err
    # The record still says what the run started at (the run records the resumed one in results.json).
    assert json.loads((run_dir / sweep.RESOLVED).read_text())["_source"]["commit"] == COMMIT


def test_where_a_run_is_kept_and_a_default_spelled_out_do_not_block_its_resume(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    options = {"task": "rte", "seed": 1, "learning_rate": 5e-5, "output_dir": str(run_dir)}
    sweep.write_run_record(run_dir, options)
    same = {**options, "output_dir": str(run_dir.resolve()) + "/", "weight_decay": 0.01, "resume": True}
    assert sweep.settings_changed(run_dir, same) is None  # the recipe's weight decay, typed out
    why = sweep.settings_changed(run_dir, {**options, "weight_decay": 0.1})
    assert why == "its options changed since it started (weight_decay: 0.01 then, 0.1 now)"


def test_logging_progress_and_a_task_spelled_another_way_do_not_block_a_resume(tmp_path):
    """What a run shows or keeps (progress bars, logging, its label, whether its model is saved) and the
    spelling of its task change nothing it trains: a resume with them changed goes on. A setting that
    trains (another task, another learning rate) is still refused."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    options = {"task": "stsb", "seed": 1, "learning_rate": 5e-5, "output_dir": str(run_dir)}
    sweep.write_run_record(run_dir, options)
    shown = {
        **options,
        "task": "STS-B",
        "disable_tqdm": True,
        "logging_steps": 7,
        "logging-first-step": True,
        "label": "mine",
        "save_model": False,
        "keep_checkpoints": True,
    }
    assert sweep.settings_changed(run_dir, shown) is None
    why = sweep.settings_changed(run_dir, {**options, "task": "rte"})
    assert why == "its options changed since it started (task: 'stsb' then, 'rte' now)"
    why = sweep.settings_changed(run_dir, {**shown, "learning_rate": 2e-5})
    assert why == "its options changed since it started (learning_rate: 5e-05 then, 2e-05 now)"


def test_a_multitask_run_resumes_with_its_tasks_spelled_another_way(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    options = {"tasks": "rte,stsb", "seed": 1, "output_dir": str(run_dir)}
    sweep.write_run_record(run_dir, options)
    assert sweep.settings_changed(run_dir, {**options, "tasks": "RTE, STS-B"}) is None
    why = sweep.settings_changed(run_dir, {**options, "tasks": "stsb,rte"})
    assert why is not None and "tasks: 'rte,stsb' then, 'stsb,rte' now" in why  # order sets the heads


def test_a_compare_run_passes_the_check_its_train_process_makes(tmp_path):
    """compare's run is `train --config run_config.json [--resume]`: what train records of its options is
    what compare wrote, so train's own check on --resume (run.check_resume) lets it through."""
    from smart_tune.run import check_resume
    from smart_tune.run_record import recorded_options

    shared = {"data_dir": "nowhere", "learning_rate": 5e-5, "validation_from_train": 0.1}
    (r,) = sweep.plan_runs(
        tmp_path, ["rte"], ["smart-eps"], [1], shared, {"smart-eps": {"smart_epsilon": 1e-3}}
    )
    r["dir"].mkdir(parents=True)
    sweep.write_run_record(r["dir"], r["options"])
    config = str(r["dir"] / sweep.RUN_CONFIG)
    parser = options.training_parser("smart-tune train", "", "")
    train = options.parse_train_options(parser, ["--config", config, "--resume"])
    recorded = recorded_options(train.chosen, train.training.output_dir)
    assert recorded == json.loads((r["dir"] / sweep.RUN_CONFIG).read_text())
    assert check_resume(r["dir"], recorded) is None  # not refused; started at this very commit


def test_a_variant_spelled_with_dashes_or_an_alias_resumes_under_compare_and_train_alike(tmp_path):
    """A config file's variants may spell an option with dashes or as --epochs does; train reads
    run_config.json with them spelled as fields, and records that as the run starts. Neither check on
    resume (train's own, compare's after train rewrote the record) may take the spelling for a change."""
    from smart_tune.run import check_resume
    from smart_tune.run_record import recorded_options

    variants = {"smart-eps": {"smart-epsilon": 1e-3, "epochs": 2}}
    (r,) = sweep.plan_runs(tmp_path, ["rte"], ["smart-eps"], [1], {"data_dir": "nowhere"}, variants)
    r["dir"].mkdir(parents=True)
    sweep.write_run_record(r["dir"], r["options"])  # compare, before it starts the run
    parser = options.training_parser("smart-tune train", "", "")
    config = str(r["dir"] / sweep.RUN_CONFIG)
    train = options.parse_train_options(parser, ["--config", config, "--resume"])
    recorded = recorded_options(train.chosen, train.training.output_dir)
    assert recorded["smart_epsilon"] == 1e-3 and recorded["num_train_epochs"] == 2
    assert check_resume(r["dir"], recorded) is None  # train's check on compare's record
    sweep.write_run_record(r["dir"], recorded)  # train, as the run starts: its own spelling
    assert sweep.settings_changed(r["dir"], r["options"]) is None  # compare's check on train's record
    why = sweep.settings_changed(r["dir"], {**r["options"], "smart-epsilon": 1e-2})
    assert why is not None and "smart_epsilon: 0.001 then, 0.01 now" in why, why
