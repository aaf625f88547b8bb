"""Run benchmark jobs on a few lanes side by side: a shared queue, so that no lane idles while work is left.

Each job is one ``smart-tune compare`` command line, given as its arguments on one line of the job
list (standard input or a file; ``#`` starts a comment). A line that starts with another smart-tune
command (``train``, ``multitask``, ``evaluate``) runs that command instead (Study 6's multi-task stage);
such a job resumes only if its line says so (``--resume``), so the script that writes the list decides.
A line may start with ``--after PATH`` (once per file): that job waits until each PATH exists, e.g. the
model another job of the list trains, so that a study's later runs start as soon as what they need is
there rather than after a whole stage. Every lane takes the first job in list order that no lane (of this
or of another ``lanes.py`` process) holds and whose files are there, so a list written seed by seed
finishes seed by seed. A job still waiting when no job of this process runs any more (its file was not
made: the job that makes it failed, or is not in the list) is never started, and fails the queue. A job whose runs are finished costs a few seconds: ``compare``
skips finished runs and resumes cut ones from their last checkpoint, so the whole list can be started
again after a kill and only the missing work is done.

Each lane runs with one torch thread (``OMP_NUM_THREADS=1`` unless set): on 2 cores, two 1-thread
runs finish about 1.2x the work of one 2-thread run. Its output goes to ``lane-K.log`` in ``--log-dir``.
SIGTERM or Ctrl-C is passed on to the running jobs, which checkpoint and stop (``compare`` handles it).
SIGUSR1 drains instead: the running jobs finish, no lane starts another, and the exit status is 3 (also
when a job failed or none was left: a study's run.sh starts no further stage after it). Use it before a
machine goes away: a checkpoint does not outlive the machine, so a run cut there starts again from
nothing, while a drained lane loses no work.

    pkill -USR1 -f "python3 benchmarks/lanes.py"       # finish what runs, start nothing new

    benchmarks/results/study1b_r3f_grid/run.sh          # a study's script pipes its jobs in here
    python3 benchmarks/lanes.py --lanes 2 jobs.txt

Standard library only, POSIX only (``fcntl`` locks).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

# Ignored by git; a held lock dies with its process. LANES_LOCK_DIR moves it (tests use their own).
LOCK_DIR = Path(os.environ.get("LANES_LOCK_DIR") or Path(__file__).resolve().parent / ".locks")
# How often a lane with nothing ready looks again for the files a waiting job needs (tests: less).
POLL_S = float(os.environ.get("LANES_POLL_S", 5))


def read_jobs(lines) -> list[list[str]]:
    """The argument lists of the job lines, comments and blank lines dropped, duplicates kept once (the
    first: a job is the same whatever files its line waits for)."""
    jobs, seen = [], set()
    for line in lines:
        args = shlex.split(line, comments=True)
        key = tuple(split_after(args)[1])
        if args and key not in seen:
            seen.add(key)
            jobs.append(args)
    return jobs


def try_claim(args: list[str]):
    """An open, exclusively locked file for this job, or None when another lane holds it."""
    LOCK_DIR.mkdir(exist_ok=True)
    key = hashlib.sha1(shlex.join(args).encode()).hexdigest()[:16]
    handle = open(LOCK_DIR / f"{key}.lock", "w")  # noqa: SIM115 (held open while the job runs)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.write(shlex.join(args) + "\n")
    handle.flush()
    return handle


def split_after(args: list[str]) -> tuple[list[Path], list[str]]:
    """(the files the job waits for, from its leading ``--after PATH`` pairs; the job's own arguments)."""
    after = []
    while len(args) >= 2 and args[0] == "--after":
        after.append(Path(args[1]))
        args = args[2:]
    return after, args


# A job line starting with one of these runs `smart-tune <that command> ...`; any other line is compare's.
COMMANDS = ("compare", "train", "multitask", "evaluate")


def command_line(executable: str, args: list[str]) -> list[str]:
    """The process a job runs: ``smart-tune compare ARGS``, or ``smart-tune ARGS`` for a line that names
    its command."""
    return [executable, *args] if args and args[0] in COMMANDS else [executable, "compare", *args]


class Lanes:
    def __init__(self, jobs: list[list[str]], executable: str, log_dir: Path):
        self.jobs, self.executable, self.log_dir = jobs, executable, log_dir
        self.stopping = threading.Event()  # SIGTERM/SIGINT: running jobs checkpoint and stop
        self.stop_signal = signal.SIGTERM  # the one that set it, passed on
        self.draining = threading.Event()  # SIGUSR1: running jobs finish, no new one starts
        self.running: set[subprocess.Popen] = set()
        self.failed: list[str] = []
        self.taken: set[int] = set()  # jobs a lane of this process has started (each runs once here)
        self.elsewhere: set[int] = set()  # jobs another process's lane held when this one came to them
        self.busy = 0  # lanes of this process running a job: only they can make a waited-for file
        self.lock = threading.RLock()  # RLock: a second signal may come while stop() holds it

    def claim_next(self):
        """(its arguments without ``--after``, its held lock file) of the first job in list order that no
        lane has started, whose files are there and that no other process holds, marked as taken; None
        when no job is ready. Called with ``self.lock`` held."""
        for index, line in enumerate(self.jobs):
            if index in self.taken or index in self.elsewhere:
                continue
            after, args = split_after(line)
            if not all(path.exists() for path in after):
                continue
            claim = try_claim(args)
            if claim is None:  # another process's lane holds it: that one runs it
                self.elsewhere.add(index)
                continue
            self.taken.add(index)
            return args, claim
        return None

    def waiting(self) -> list[list[str]]:
        """The jobs no lane has started or come to: each waits for a file."""
        return [j for i, j in enumerate(self.jobs) if i not in self.taken and i not in self.elsewhere]

    def lane(self, number: int) -> None:
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", "1")
        with open(self.log_dir / f"lane-{number}.log", "a") as log:
            while True:
                with self.lock:  # drain() and stop() take it too: a signal before this starts nothing
                    if self.stopping.is_set() or self.draining.is_set():
                        return
                    picked = self.claim_next()
                    if picked is None and (self.busy == 0 or not self.waiting()):
                        return  # nothing left, or nothing here runs that could make a waited-for file
                    self.busy += picked is not None
                if picked is None:  # another lane's job may make the file a waiting job needs
                    self.stopping.wait(POLL_S)
                    continue
                args, claim = picked
                try:
                    with claim:
                        self.run_job(args, log, env)
                finally:
                    with self.lock:  # with the next claim_next under the same lock, a finished job's
                        self.busy -= 1  # files are there before another lane can see busy == 0

    def run_job(self, args: list[str], log, env: dict[str, str]) -> None:
        command = command_line(self.executable, args)
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        # Its own session: a terminal's Ctrl-C reaches only this script, which passes it on once
        # (a second signal would stop a run at once, without its checkpoint).
        process = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
        with self.lock:
            self.running.add(process)
            if self.stopping.is_set():  # the signal came while it started: stop() missed it
                process.send_signal(self.stop_signal)
        code = process.wait()
        with self.lock:
            self.running.discard(process)
        if code != 0 and not self.stopping.is_set():
            with self.lock:
                self.failed.append(f"exit {code}: {shlex.join(args)}")

    def stop(self, signum, _frame) -> None:
        """Pass the signal on once: each running job checkpoints and stops; no lane starts another."""
        with self.lock:  # with the lane's check after its start: each job gets the signal exactly once
            self.stop_signal = signum
            self.stopping.set()
            for process in self.running:
                process.send_signal(signum)

    def drain(self, _signum, _frame) -> None:
        """Let each running job finish; no lane starts another."""
        with self.lock:
            self.draining.set()

    def run(self, lanes: int) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGUSR1, self.drain)
        threads = [threading.Thread(target=self.lane, args=(k,)) for k in range(1, lanes + 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():  # join with a timeout, so that signals reach the main thread
                thread.join(timeout=1.0)
        if not (self.stopping.is_set() or self.draining.is_set()):
            for after, args in map(split_after, self.waiting()):
                missing = ", ".join(str(path) for path in after if not path.exists())
                self.failed.append(f"never started, {missing} not there: {shlex.join(args)}")
        for line in self.failed:
            print(f"lanes: job failed ({line})", file=sys.stderr)
        if self.stopping.is_set():
            return 143
        if self.draining.is_set():  # before a failure's 1, and with no job left: a stage script stops here
            left = len(self.jobs) - len(self.taken)  # jobs no lane of this process started
            print(f"lanes: drained, {left} job(s) not started", file=sys.stderr)
            return 3
        if self.failed:
            return 1
        return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="?", default="-", help="job list file (default: standard input)")
    parser.add_argument("--lanes", type=int, default=int(os.environ.get("LANES", 2)))
    parser.add_argument("--log-dir", type=Path, default=Path("."), help="where lane-K.log go")
    parser.add_argument(
        "--smart-tune",
        default=os.path.join(os.environ.get("SMART_TUNE_VENV", ".venv"), "bin", "smart-tune"),
        help="the smart-tune executable (default: $SMART_TUNE_VENV/bin/smart-tune, else .venv's)",
    )
    options = parser.parse_args(argv)
    if options.lanes < 1:
        parser.error("--lanes must be at least 1")
    if options.jobs == "-":
        jobs = read_jobs(sys.stdin)
    else:
        try:
            jobs = read_jobs(Path(options.jobs).read_text().splitlines())
        except OSError as error:
            print(f"lanes: cannot read {options.jobs}: {error.strerror}", file=sys.stderr)
            return 2
    options.log_dir.mkdir(parents=True, exist_ok=True)
    return Lanes(jobs, options.smart_tune, options.log_dir).run(options.lanes)


if __name__ == "__main__":
    sys.exit(main())
