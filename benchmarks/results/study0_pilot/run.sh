#!/usr/bin/env bash
# Reproduces this study (resumable: finished runs are skipped). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/../../.."
exec "${SMART_TUNE_VENV:-.venv}/bin/smart-tune" compare --config benchmarks/results/study0_pilot/config.yaml \
  --output-dir benchmarks/results/study0_pilot "$@"
