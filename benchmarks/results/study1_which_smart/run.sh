#!/usr/bin/env bash
# Reproduces Study 1 (resumable: finished runs are skipped, a cut run resumes from its last epoch).
# Seed by seed, so that every method has seed 1 before any has seed 2. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study1_which_smart
for seed in ${SEEDS:-1 2 3}; do
  "$st" compare --config "$here/config.yaml" --output-dir "$here" --seeds "$seed" "$@"
done
"$st" report "$here"
