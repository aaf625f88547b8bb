#!/usr/bin/env bash
# Reproduces Study 4 (resumable): one compare folder per data fraction, snli-1pct, snli-10pct and
# snli-100pct; the 100% models are also scored on ANLI R1-R3 dev.
# Seed by seed, on two lanes side by side with one torch thread each (benchmarks/lanes.py).
# Run from anywhere; SEEDS="1" limits the seeds; JOBS_ONLY=1 prints the jobs instead,
# REPORT_ONLY=1 rebuilds the report from the runs there are.
set -euo pipefail
cd "$(dirname "$0")/../../.."
source benchmarks/results/decisions.env
if [ -z "$SMART_FROM" ]; then
  echo "Study 4 waits for Study 1 to set smart's defaults: set SMART_FROM in benchmarks/results/decisions.env" >&2
  exit 1
fi
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study4_less_data
SEEDS="${SEEDS:-1 2 3}"
jobs() {  # the arguments of one `smart-tune compare` per line; the long 100% runs first in each seed
  for seed in $SEEDS; do
    for method in vanilla smart; do
      echo "--no-report --config $here/config.yaml --train-fraction 1.0 --output-dir $here/snli-100pct" \
        "--also-evaluate anli_r1,anli_r2,anli_r3 --seeds $seed --methods $method"
    done
    for fraction in 0.1:snli-10pct 0.01:snli-1pct; do
      for method in vanilla smart; do
        echo "--no-report --config $here/config.yaml --train-fraction ${fraction%%:*} --output-dir $here/${fraction#*:}" \
          "--seeds $seed --methods $method"
      done
    done
  done
}
report() {  # one report over the three fractions: a table per fraction, and curve.png across them
  ls "$here"/*/*/*/seed-*/results.json > /dev/null 2>&1 || return 0  # no runs yet: no report
  "$st" report "$here"
}
if [ -n "${JOBS_ONLY:-}" ]; then jobs; exit 0; fi
if [ -n "${REPORT_ONLY:-}" ]; then report; exit 0; fi
status=0
jobs | python3 benchmarks/lanes.py --log-dir "$here" || status=$?
report
exit "$status"
