#!/usr/bin/env bash
# The main job on a new machine: set up smart-tune, then fine-tune the packaged MiniLM-L6 with SMART
# on RTE (from $GLUE_DIR when set, else from the Hugging Face hub) and print the dev accuracy.
# A short run (one epoch on 800 examples) so that it finishes in a few minutes on a laptop CPU;
# extra arguments go to `smart-tune train` (e.g. --epochs 3 --max-train-samples 2490 for the full set).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
export TOKENIZERS_PARALLELISM=false
data=()
[ -n "${GLUE_DIR:-}" ] && data=(--data-dir "$GLUE_DIR")
exec "${SMART_TUNE_VENV:-.venv}/bin/smart-tune" train --task rte --method smart "${data[@]}" \
  --epochs 1 --max-train-samples 800 --output-dir runs/quickstart-rte --overwrite-output-dir "$@"
