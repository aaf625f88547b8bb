#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: unit tests on tiny models, plus the integration
# tests on the packaged MiniLM and the real data in ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "${SMART_TUNE_VENV:-.venv}/bin/python" -m pytest "$@"
