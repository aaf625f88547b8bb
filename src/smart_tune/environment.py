"""What a result was measured on: library versions, the processor, threads, the accelerator, the
source revision of smart_tune itself; and whether the user watches a terminal (progress bars there
only)."""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# The folder of this package: in a git checkout, its repository names the code a result came from.
PACKAGE_DIR = Path(__file__).resolve().parent
# Seconds each git command may take: the revision is worth a note, never a slow or failed run.
GIT_TIMEOUT_S = 5.0


def show_progress() -> bool:
    """Progress bars on a terminal only: logs and CI get the lines, not the bars. (TrainingArguments
    would decide from transformers' log level, which models.quiet_libraries sets to "error": never.)"""
    return sys.stderr.isatty()


def capture() -> dict[str, Any]:
    """The versions, processor, threads and accelerator of this process (results.json's ``environment``)."""
    import torch
    import transformers

    from . import __version__

    return {
        "smart_tune": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": processor_name(),  # run times compare only on the same processor
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "source": running_source(),  # the code: a result differs from another's by it too
    }


def running_source() -> dict[str, Any] | None:
    """:func:`source_revision` of the code this process runs, read once, at the first call (a run's
    start: its modules are imported by then, so a checkout changed while it trains does not change the
    code that trains); a copy, for the caller to add to."""
    source = _first_source()
    return dict(source) if source is not None else None


@functools.cache
def _first_source() -> dict[str, Any] | None:
    return source_revision()


def source_revision(package_dir: Path = PACKAGE_DIR) -> dict[str, Any] | None:
    """The git commit smart_tune runs from and whether tracked files differ from it (uncommitted
    changes anywhere in its repository): ``{"commit": "<40 hex>", "dirty": bool}``. None when the
    package is not a tracked file of a git checkout (an installed wheel, even one inside a project's
    repository, as a virtual environment is), or git is missing, fails or takes over
    :data:`GIT_TIMEOUT_S`. Never raises; three git commands, tens of milliseconds on a usual checkout."""
    # Ask about the package's own repository, whatever a calling git (a hook) put in the environment;
    # --no-optional-locks: `git status` leaves the index alone (another git may be working on it).
    env = {k: v for k, v in os.environ.items() if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=package_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()

    try:
        git("ls-files", "--error-unmatch", "--", "__init__.py")  # tracked: the checkout's own code
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except Exception:  # no git, not a repository, a timeout, an odd output: the revision is unknown
        return None
    if not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", commit):  # SHA-1, or SHA-256 repositories
        return None
    return {"commit": commit, "dirty": dirty}


def processor_name() -> str:
    """The CPU's model name ("Intel(R) Xeon(R) Processor"); Linux keeps it in /proc/cpuinfo only.
    Also what benchmarks/step_cost.py records."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
