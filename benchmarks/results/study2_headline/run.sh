#!/usr/bin/env bash
# Reproduces Study 2 (resumable). Two lanes side by side, one torch thread each, seed by seed;
# SEEDS="1 2 3 4 5" extends it. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study2_headline
lane() {
  for seed in ${SEEDS:-1 2 3}; do
    OMP_NUM_THREADS=1 "$st" compare --config "$here/config.yaml" --output-dir "$here" --seeds "$seed" --task "$1"
  done
}
lane rte,stsb > "$here/lane-a.log" 2>&1 &
lane mrpc,cola > "$here/lane-b.log" 2>&1 &
wait
"$st" report "$here"
