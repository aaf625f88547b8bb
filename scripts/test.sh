#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: unit tests on tiny models, plus the integration
# tests on the packaged MiniLM and the real data in ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# Most of the time goes to starting processes (torch and transformers take seconds to import), so the
# tests run in one worker per core (pytest-xdist), each torch on one thread (tiny models gain nothing
# from more, and two workers' threads would fight over the cores). A module whose tests share an
# expensive fixture keeps them on one worker (xdist_group). Pass -n 0 to run in this process.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec "${SMART_TUNE_VENV:-.venv}/bin/python" -m pytest -n "${SMART_TUNE_TEST_WORKERS:-auto}" --dist loadgroup "$@"
