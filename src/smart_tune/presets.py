"""Named method settings: one name for a full set of SMART knobs, usable as ``--method NAME``.

Each preset maps to :class:`~smart_tune.trainer.SmartTrainingArguments` fields. Explicit options
given beside a preset win over the preset's values. ``smart`` is the library's default setting: the
dataclass defaults, which are the paper-literal values because Study 1 of docs/results.md chose them
(``tests/test_presets.py`` holds the defaults to that choice). ``smart-paper`` spells the paper's §4.1
values out, so that it stays the paper-literal setting if the defaults ever move.
"""

from __future__ import annotations

from types import MappingProxyType

from .errors import ConfigError

PRESETS = MappingProxyType(
    {
        "vanilla": MappingProxyType({"smart_method": "vanilla"}),
        "r3f": MappingProxyType({"smart_method": "r3f"}),
        "smart": MappingProxyType({"smart_method": "smart"}),
        # The paper's §4.1 values with the official code's independent dropout masks.
        "smart-paper": MappingProxyType(
            {
                "smart_method": "smart",
                "smart_epsilon": 1e-5,
                "smart_sigma": 1e-5,
                "smart_eta": 1e-3,
                "smart_steps": 1,
                "smart_lambda": 1.0,
                "smart_mu": 1.0,
                "smart_beta": 0.999,
                "smart_beta_warmup": 0.99,
                "smart_beta_warmup_ratio": 0.1,
                "smart_dropout": "independent",
                "smart_teacher_dropout": "off",
                "smart_scale": "absolute",
                "smart_projection": "ball",
            }
        ),
    }
)


def preset(name: str) -> dict:
    """The argument overrides of a named preset (a fresh dict)."""
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise ConfigError(f"unknown method '{name}'; known: {', '.join(PRESETS)}") from None
