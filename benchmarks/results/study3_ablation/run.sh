#!/usr/bin/env bash
# Reproduces Study 3 (resumable). Two lanes side by side, one torch thread each, seed by seed.
# Plain and SMART come from Study 2 (same schedule and seeds): run study2_headline/run.sh first, or
# the table lacks them. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study3_ablation
SEEDS="${SEEDS:-1 2 3}"
lane() {
  for seed in $SEEDS; do
    OMP_NUM_THREADS=1 "$st" compare --config "$here/config.yaml" --output-dir "$here" --seeds "$seed" --task "$1"
  done
}
lane rte > "$here/lane-a.log" 2>&1 &
lane mrpc > "$here/lane-b.log" 2>&1 &
wait
"$st" report "$here" --include benchmarks/results/study2_headline --tasks rte,mrpc --seeds "${SEEDS// /,}" \
  --methods vanilla,smart,smart-no-rs,smart-no-proximal
