#!/usr/bin/env bash
# Reproduces Study 1b (resumable; its plain runs are Study 1's, which the report brings in).
# Seed by seed, on two lanes side by side with one torch thread each (benchmarks/lanes.py).
# Run from anywhere; SEEDS="1" limits the seeds; JOBS_ONLY=1 prints the jobs instead,
# REPORT_ONLY=1 rebuilds the report from the runs there are.
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study1b_r3f_grid
SEEDS="${SEEDS:-1 2 3}"
jobs() {  # the arguments of one `smart-tune compare` per line
  for seed in $SEEDS; do
    for method in r3f r3f-eps1e-3 r3f-eps1e-2 r3f-eps1e-1; do
      echo "--no-report --config $here/config.yaml --output-dir $here --seeds $seed --methods $method"
    done
  done
}
report() {
  "$st" report "$here" --include benchmarks/results/study1_which_smart \
    --methods vanilla,r3f,r3f-eps1e-3,r3f-eps1e-2,r3f-eps1e-1 --seeds "${SEEDS// /,}"
}
if [ -n "${JOBS_ONLY:-}" ]; then jobs; exit 0; fi
if [ -n "${REPORT_ONLY:-}" ]; then report; exit 0; fi
status=0
jobs | python3 benchmarks/lanes.py --log-dir "$here" || status=$?
report
exit "$status"
