#!/usr/bin/env bash
# Reproduces Study 4 (resumable): one compare folder per data fraction, snli-1pct, snli-10pct and
# snli-100pct. Two lanes side by side, one torch thread each. Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study4_less_data
fraction() {  # fraction, folder, extra flags
  OMP_NUM_THREADS=1 "$st" compare --config "$here/config.yaml" --train-fraction "$1" --output-dir "$here/$2" "${@:3}"
}
(fraction 0.01 snli-1pct && fraction 0.1 snli-10pct) > "$here/lane-a.log" 2>&1 &
fraction 1.0 snli-100pct --also-evaluate anli_r1,anli_r2,anli_r3 > "$here/lane-b.log" 2>&1 &
wait
for folder in snli-1pct snli-10pct snli-100pct; do "$st" report "$here/$folder"; done
