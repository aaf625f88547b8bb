#!/usr/bin/env bash
# Reproduces Study 2 (resumable). Two lanes side by side, one torch thread each, seed by seed, on MRPC,
# STS-B and CoLA; RTE comes from Studies 1 and 1b. SEEDS="1 2 3 4 5" extends it. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
# Set when Study 1 and 1b have chosen (docs/results.md): the variants that became `smart` and `r3f`.
SMART_FROM=""  # a Study 1 method name, e.g. smart-official
R3F_FROM=""    # a Study 1b method name, e.g. r3f-eps1e-3
if [ -z "$SMART_FROM" ] || [ -z "$R3F_FROM" ]; then
  echo "Study 2 waits for Studies 1 and 1b: set SMART_FROM and R3F_FROM in $0" >&2
  exit 1
fi
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study2_headline
SEEDS="${SEEDS:-1 2 3}"
lane() {
  for seed in $SEEDS; do
    OMP_NUM_THREADS=1 "$st" compare --config "$here/config.yaml" --output-dir "$here" --seeds "$seed" --methods "$1"
  done
}
lane vanilla,smart > "$here/lane-a.log" 2>&1 &
lane r3f,smart-paper > "$here/lane-b.log" 2>&1 &
wait
"$st" report "$here" --include benchmarks/results/study1_which_smart,benchmarks/results/study1b_r3f_grid \
  --rename "$SMART_FROM=smart,$R3F_FROM=r3f" --methods vanilla,r3f,smart,smart-paper --seeds "${SEEDS// /,}"
