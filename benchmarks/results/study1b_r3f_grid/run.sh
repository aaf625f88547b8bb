#!/usr/bin/env bash
# Reproduces Study 1b (resumable; run after Study 1, whose plain runs the report brings in). Two
# lanes side by side, one torch thread each, seed by seed. Run from anywhere; SEEDS="1" limits seeds.
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study1b_r3f_grid
SEEDS="${SEEDS:-1 2 3}"
lane() {
  for seed in $SEEDS; do
    OMP_NUM_THREADS=1 "$st" compare --config "$here/config.yaml" --output-dir "$here" --seeds "$seed" --methods "$1"
  done
}
lane r3f,r3f-eps1e-2 > "$here/lane-a.log" 2>&1 &
lane r3f-eps1e-3,r3f-eps1e-1 > "$here/lane-b.log" 2>&1 &
wait
"$st" report "$here" --include benchmarks/results/study1_which_smart --methods vanilla,r3f,r3f-eps1e-3,r3f-eps1e-2,r3f-eps1e-1 \
  --seeds "${SEEDS// /,}"
