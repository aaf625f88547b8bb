#!/usr/bin/env bash
# Reproduces Study 1 (resumable: finished runs are skipped, a cut run resumes from its last epoch).
# Two lanes run side by side, one torch thread each: on 2 cores two 1-thread runs get about 1.2x the
# work done of one 2-thread run. Within a lane, seed by seed, so that early results cover every method.
# Run from anywhere; SEEDS="1" limits the seeds.
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study1_which_smart
lane() {
  for seed in ${SEEDS:-1 2 3}; do
    OMP_NUM_THREADS=1 "$st" compare --config "$here/config.yaml" --output-dir "$here" --seeds "$seed" --methods "$1"
  done
}
lane vanilla,smart-paper,smart-paper-shared,smart-eps1e-3-shared > "$here/lane-a.log" 2>&1 &
lane smart-eps1e-2-shared,smart-eps1e-1-shared,smart-official > "$here/lane-b.log" 2>&1 &
wait
"$st" report "$here"
