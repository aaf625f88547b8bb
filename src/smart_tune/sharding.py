"""Which parallel engines SMART and R3F can run under: parameters must be whole on each process."""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import ConfigError


def _zero_stage(args: Any, state: Any) -> int | None:
    """DeepSpeed's ZeRO stage from accelerate's plugin, the Trainer's DeepSpeed config or the raw one."""
    plugin = getattr(state, "deepspeed_plugin", None)
    if plugin is not None and getattr(plugin, "zero_stage", None) is not None:
        return int(plugin.zero_stage)
    hf_config = getattr(args, "hf_deepspeed_config", None)
    if hf_config is not None and hasattr(hf_config, "is_zero3"):
        return 3 if hf_config.is_zero3() else None
    config = getattr(args, "deepspeed", None)
    if isinstance(config, (str, os.PathLike)) and os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            config = json.load(f)
    if isinstance(config, dict):
        stage = (config.get("zero_optimization") or {}).get("stage")
        try:
            return int(stage)
        except (TypeError, ValueError):
            return None
    return None


def check_sharding(args: Any, accelerator: Any = None) -> None:
    """Refuse SMART and R3F under FSDP or DeepSpeed ZeRO stage 3 with a :class:`ConfigError`.

    The mean teacher is a deep copy of the unwrapped model, and the perturbed and teacher passes run on
    the unwrapped module, reading the word-embedding matrix directly: all of that needs every
    parameter whole on each process. Sharded parameters (FSDP, ZeRO-3) would be copied and read as
    shards. DDP and ZeRO stages 1 and 2 keep whole parameters and work; ``vanilla`` passes through.
    """
    method = getattr(args, "smart_method", "vanilla")
    if method == "vanilla":
        return
    state = getattr(accelerator, "state", None)
    if getattr(args, "fsdp", None) or getattr(state, "fsdp_plugin", None) is not None:
        sharding = "FSDP"
    elif _zero_stage(args, state) == 3:
        sharding = "DeepSpeed ZeRO stage 3"
    else:
        return
    raise ConfigError(
        f"smart_method={method} cannot run under {sharding}: its extra forward passes (and SMART's mean "
        "teacher, a copy of the model) need every parameter whole on each process; use DDP or DeepSpeed "
        "ZeRO stage 1 or 2, or smart_method=vanilla"
    )
