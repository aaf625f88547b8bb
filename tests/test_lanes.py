"""benchmarks/lanes.py: the shared job queue the sweeps run on, with a stand-in for ``smart-tune``."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Stands in for `smart-tune compare <name>`: records its start, waits for <dir>/go when asked, records its
# end, exits with the code its name asks for.
FAKE = """\
import sys, time, pathlib
name = sys.argv[2]
record = pathlib.Path(sys.argv[0]).parent
(record / (name + ".started")).touch()
if name.startswith("wait"):
    while not (record / "go").exists():
        time.sleep(0.02)
(record / (name + ".done")).touch()
sys.exit(int(name.split("-")[-1]) if name.startswith("fail") else 0)
"""


def lanes(tmp_path: Path, jobs: list[str]) -> subprocess.Popen:
    fake = tmp_path / "smart-tune"
    fake.write_text(f"#!{sys.executable}\n{FAKE}")
    fake.chmod(0o755)
    (tmp_path / "jobs.txt").write_text("\n".join(jobs) + "\n")
    env = dict(os.environ, LANES_LOCK_DIR=str(tmp_path / "locks"), LANES_POLL_S="0.05")
    command = [sys.executable, str(ROOT / "benchmarks/lanes.py"), "--lanes", "2"]
    command += ["--log-dir", str(tmp_path / "logs"), "--smart-tune", str(fake), str(tmp_path / "jobs.txt")]
    return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path.name} never appeared"
        time.sleep(0.02)


def test_every_job_runs_once_on_the_lanes(tmp_path):
    # the same job on a line that waits for a file is still the same job
    process = lanes(tmp_path, ["a", "b", "# a comment", "c", "a", "", f"--after {tmp_path} b", "d"])
    assert process.wait(timeout=60) == 0
    assert sorted(p.stem for p in tmp_path.glob("*.done")) == ["a", "b", "c", "d"]
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("lane-*.log"))
    assert sorted(line.split()[-1] for line in logs.splitlines()) == ["a", "b", "c", "d"]


def test_a_failed_job_fails_the_queue_and_the_rest_still_runs(tmp_path):
    process = lanes(tmp_path, ["fail-5", "b"])
    assert process.wait(timeout=60) == 1
    assert "exit 5: fail-5" in process.stderr.read()
    assert (tmp_path / "b.done").exists()


def test_sigusr1_drains_running_jobs_finish_and_no_new_one_starts(tmp_path):
    process = lanes(tmp_path, ["wait-1", "wait-2", "c"])
    wait_for(tmp_path / "wait-1.started")
    wait_for(tmp_path / "wait-2.started")
    process.send_signal(signal.SIGUSR1)
    time.sleep(1.5)  # lanes.py handles signals at least once a second; both jobs still wait for go
    (tmp_path / "go").touch()
    assert process.wait(timeout=60) == 3
    assert (tmp_path / "wait-1.done").exists() and (tmp_path / "wait-2.done").exists()  # not cut
    assert not (tmp_path / "c.started").exists()
    assert "drained, 1 job(s) not started" in process.stderr.read()


def test_a_drain_says_so_in_the_exit_status_after_a_failed_job_or_with_every_job_started(tmp_path):
    """Study 5's and 6's run.sh start no further stage after a drain, which they know by status 3 alone:
    a job that failed meanwhile, or a queue whose every job had started, must not hide it."""
    process = lanes(tmp_path, ["wait-1", "fail-5"])
    wait_for(tmp_path / "wait-1.started")
    wait_for(tmp_path / "fail-5.done")
    process.send_signal(signal.SIGUSR1)
    time.sleep(1.5)  # lanes.py handles signals at least once a second
    (tmp_path / "go").touch()
    assert process.wait(timeout=60) == 3
    err = process.stderr.read()
    assert "exit 5: fail-5" in err and "drained" in err, err


def test_a_line_naming_a_command_runs_it_instead_of_compare(tmp_path):
    process = lanes(tmp_path, ["a", "multitask m", "evaluate e"])
    assert process.wait(timeout=60) == 0
    assert sorted(p.stem for p in tmp_path.glob("*.done")) == ["a", "e", "m"]
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("lane-*.log"))
    commands = sorted(line.split()[2:] for line in logs.splitlines())  # after "$ smart-tune"
    assert commands == [["compare", "a"], ["evaluate", "e"], ["multitask", "m"]]


def test_a_job_after_a_file_starts_once_another_job_made_it_and_the_other_lane_goes_on_meanwhile(tmp_path):
    # Study 6: the runs that start from a multi-task model start when it is trained, not after a stage.
    process = lanes(
        tmp_path, [f"--after {tmp_path}/wait-1.done --after {tmp_path}/d.done c", "wait-1", "d", "e"]
    )
    wait_for(tmp_path / "wait-1.started")
    wait_for(tmp_path / "e.done")  # the other lane ran d and e while c waited
    time.sleep(0.3)
    assert not (tmp_path / "c.started").exists()
    (tmp_path / "go").touch()
    assert process.wait(timeout=60) == 0, process.stderr.read()
    assert (tmp_path / "c.done").exists()
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("lane-*.log"))
    assert "--after" not in logs  # the job runs without the prefix
    assert sorted(line.split()[-1] for line in logs.splitlines()) == ["c", "d", "e", "wait-1"]


def test_a_job_whose_file_never_comes_is_never_started_and_fails_the_queue(tmp_path):
    process = lanes(tmp_path, [f"--after {tmp_path}/fail-5.made b", "fail-5", "c"])
    assert process.wait(timeout=60) == 1
    err = process.stderr.read()
    assert f"never started, {tmp_path}/fail-5.made not there: b" in err, err
    assert "exit 5: fail-5" in err
    assert not (tmp_path / "b.started").exists() and (tmp_path / "c.done").exists()


def test_a_sigterm_that_comes_while_a_job_starts_still_reaches_it(tmp_path, monkeypatch):
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("lanes_under_test", ROOT / "benchmarks/lanes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "LOCK_DIR", tmp_path / "locks")
    job = tmp_path / "smart-tune"
    job.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")  # a long run, stopped by the signal
    job.chmod(0o755)
    queue = module.Lanes([["a"]], str(job), tmp_path)

    def popen_then_signal(*args, **kwargs):  # the signal lands between the job's start and its record
        process = subprocess.Popen(*args, **kwargs)
        queue.stop(signal.SIGTERM, None)
        return process

    monkeypatch.setattr(module, "subprocess", SimpleNamespace(Popen=popen_then_signal))
    started = time.time()
    queue.lane(1)
    assert time.time() - started < 15, "the job never got the SIGTERM: it ran to its end"
    assert queue.failed == []
