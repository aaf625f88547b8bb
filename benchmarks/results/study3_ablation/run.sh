#!/usr/bin/env bash
# Reproduces Study 3 (resumable). Only the two ablations are trained here: plain and SMART are Study 2's
# runs on MRPC and CoLA and Study 1's on RTE (same schedule and seeds), which the report brings in.
# Seed by seed, on two lanes side by side with one torch thread each (benchmarks/lanes.py).
# Run from anywhere; SEEDS="1" limits the seeds; JOBS_ONLY=1 prints the jobs instead,
# REPORT_ONLY=1 rebuilds the report from the runs there are.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/results/decisions.env
if [ -z "$SMART_FROM" ]; then
  echo "Study 3 waits for Study 1 to set smart's defaults: set SMART_FROM in benchmarks/results/decisions.env" >&2
  exit 1
fi
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study3_ablation
SEEDS="${SEEDS:-1 2 3}"
jobs() {  # the arguments of one `smart-tune compare` per line
  for seed in $SEEDS; do
    for task in cola rte mrpc; do  # CoLA first: it is where Study 2 found SMART behind plain
      for method in smart-no-rs smart-no-proximal; do
        echo "--no-report --config $here/config.yaml --output-dir $here --seeds $seed --task $task --methods $method"
      done
    done
  done
}
report() {
  ls "$here"/*/*/seed-*/results.json > /dev/null 2>&1 || return 0  # none of its own yet: no report
  "$st" report "$here" --include benchmarks/results/study1_which_smart,benchmarks/results/study2_headline \
    --rename "$SMART_FROM=smart" --tasks rte,mrpc,cola --seeds "${SEEDS// /,}" \
    --methods vanilla,smart,smart-no-rs,smart-no-proximal
}
if [ -n "${JOBS_ONLY:-}" ]; then jobs; exit 0; fi
if [ -n "${REPORT_ONLY:-}" ]; then report; exit 0; fi
status=0
jobs | python3 benchmarks/lanes.py --log-dir "$here" || status=$?
report
exit "$status"
