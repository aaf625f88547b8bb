#!/usr/bin/env bash
# Study 5b: Study 5's CoLA cell with a 6-epoch schedule (designed 2026-12-01, before any of its runs).
# Why: in Study 5 (3 epochs) every method was still improving at epoch 3 on CoLA, the regularised ones
# about an epoch behind plain, and SMART lost 5.4 MCC (0 of 5 seeds). Question: with 6 epochs for
# every method alike, is SMART still behind plain on CoLA?
# Design: CoLA, plain (vanilla) and the library's `smart`, seeds 1-5, lr 5e-5 (Study 5's choice for
# both on CoLA), batch 32, the [CLS] head (Study 5's pooling decision), 10% of train held out to choose
# the kept epoch among 1-6; dev only scores. Reported: mean ± std, paired Δ with its 95% interval and
# wins, beside the same seeds' 3-epoch runs of Study 5. R3F and smart-fit are left out to keep the cost
# at about 3.3 lane-hours (plain ~12 min, smart ~27 min per run on these cores).
# Code: Study 5's pinned commit (its SWEEP_COMMIT), so that these runs and Study 5's 3-epoch runs differ
# in the schedule only: Study 5's resume_sweep.sh copies this script and config.yaml into its pinned
# worktree and runs them there once Study 5's stage 3 is complete (by hand: SMART_TUNE_VENV=<that
# worktree>/.venv).
# Run from anywhere. JOBS_ONLY=1 prints the jobs; REPORT_ONLY=1 rebuilds the report. METHODS overrides
# the compared methods. SIGUSR1 to lanes.py drains (see benchmarks/lanes.py).
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
here=benchmarks/results/study5b_schedule
METHODS="${METHODS:-smart vanilla}"

jobs() {  # seed by seed, the longer SMART run first
  for seed in 1 2 3 4 5; do
    for method in $METHODS; do
      echo "--no-report --config $here/config.yaml --output-dir $here --task cola --seeds $seed" \
        "--methods $method --grid learning_rate=5e-5 --pooling cls"
    done
  done
}

report() {
  ls "$here"/*/*/seed-*/results.json > /dev/null 2>&1 && "$st" report "$here" > /dev/null
  return 0
}

if [ -n "${JOBS_ONLY:-}" ]; then jobs; exit 0; fi
if [ -n "${REPORT_ONLY:-}" ]; then report; exit 0; fi
status=0
python3 benchmarks/lanes.py --log-dir "$here" <<< "$(jobs)" || status=$?
report
exit "$status"
