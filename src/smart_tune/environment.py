"""What a result was measured on: library versions, the processor, threads, the accelerator; and
whether the user watches a terminal (progress bars there only)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


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
    }


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
