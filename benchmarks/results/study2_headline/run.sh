#!/usr/bin/env bash
# Reproduces Study 2 (resumable) on MRPC, STS-B and CoLA; RTE comes from Studies 1 and 1b.
# Seed by seed, on two lanes side by side with one torch thread each (benchmarks/lanes.py).
# Run from anywhere; SEEDS="1 2 3 4 5" extends it; JOBS_ONLY=1 prints the jobs instead,
# REPORT_ONLY=1 rebuilds the report from the runs there are.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/results/decisions.env
if [ -z "$SMART_FROM" ]; then
  echo "Study 2 waits for Study 1: set SMART_FROM in benchmarks/results/decisions.env" >&2
  exit 1
fi
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study2_headline
SEEDS="${SEEDS:-1 2 3}"
methods="vanilla smart smart-paper"
if [ "$SMART_FROM" = smart-paper ]; then methods="vanilla smart"; fi  # one setting under two names
if [ -z "$R3F_FROM" ] || [ -z "$R3F_EPSILON" ]; then
  echo "Study 2's R3F runs wait for Study 1b: set R3F_FROM and R3F_EPSILON in benchmarks/results/decisions.env" >&2
fi
jobs() {  # the arguments of one `smart-tune compare` per line
  for seed in $SEEDS; do
    for task in mrpc stsb cola; do
      for method in $methods; do
        echo "--no-report --config $here/config.yaml --output-dir $here --seeds $seed --task $task --methods $method"
      done
      if [ -n "$R3F_FROM" ] && [ -n "$R3F_EPSILON" ]; then
        echo "--no-report --config $here/config.yaml --output-dir $here --seeds $seed --task $task --methods r3f" \
          "--smart-epsilon $R3F_EPSILON"
      fi
    done
  done
}
report() {
  local reported="${methods// /,}" rename="$SMART_FROM=smart"
  if [ -n "$R3F_FROM" ]; then reported="$reported,r3f" rename="$rename,$R3F_FROM=r3f"; fi
  "$st" report "$here" --include benchmarks/results/study1_which_smart,benchmarks/results/study1b_r3f_grid \
    --rename "$rename" --methods "$reported" --seeds "${SEEDS// /,}"
  python3 "$here/target.py" "$here/summary.json" || true  # target.md; says what is missing until all tasks are in
}
if [ -n "${JOBS_ONLY:-}" ]; then jobs; exit 0; fi
if [ -n "${REPORT_ONLY:-}" ]; then report; exit 0; fi
status=0
jobs | python3 benchmarks/lanes.py --log-dir "$here" || status=$?
report
exit "$status"
