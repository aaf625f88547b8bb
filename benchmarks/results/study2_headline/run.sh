#!/usr/bin/env bash
# Reproduces Study 2 (resumable) on MRPC, STS-B and CoLA; RTE comes from Studies 1 and 1b.
# Seed by seed, on two lanes side by side with one torch thread each (benchmarks/lanes.py).
# Run from anywhere; SEEDS="1 2 3 4 5" extends it; JOBS_ONLY=1 prints the jobs instead.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/results/decisions.env
if [ -z "$SMART_FROM" ] || [ -z "$R3F_FROM" ]; then
  echo "Study 2 waits for Studies 1 and 1b: set SMART_FROM and R3F_FROM in benchmarks/results/decisions.env" >&2
  exit 1
fi
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study2_headline
SEEDS="${SEEDS:-1 2 3}"
methods="vanilla smart r3f smart-paper"
if [ "$SMART_FROM" = smart-paper ]; then methods="vanilla smart r3f"; fi  # one method under two names
jobs() {  # the arguments of one `smart-tune compare` per line
  for seed in $SEEDS; do
    for task in mrpc stsb cola; do
      for method in $methods; do
        echo "--config $here/config.yaml --output-dir $here --seeds $seed --task $task --methods $method"
      done
    done
  done
}
if [ -n "${JOBS_ONLY:-}" ]; then jobs; exit 0; fi
status=0
jobs | python3 benchmarks/lanes.py --log-dir "$here" || status=$?
"$st" report "$here" --include benchmarks/results/study1_which_smart,benchmarks/results/study1b_r3f_grid \
  --rename "$SMART_FROM=smart,$R3F_FROM=r3f" --methods "${methods// /,}" --seeds "${SEEDS// /,}"
exit "$status"
