"""The ``smart-tune`` command line (placeholder until the commands land)."""

from __future__ import annotations

import argparse

from . import __version__


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="smart-tune", description="SMART fine-tuning for Hugging Face models"
    )
    parser.add_argument("--version", action="version", version=f"smart-tune {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0
