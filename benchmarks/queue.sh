#!/usr/bin/env bash
# Every prepared study of issue 4 on one shared queue, in the issue's order, on two lanes
# (benchmarks/lanes.py): when one study's last run is on one lane, the other lane starts the next
# study. A study still waiting on benchmarks/results/decisions.env adds no jobs (it says why).
# Resumable; run from anywhere. At the end each study's run.sh rebuilds its report (REPORT_ONLY=1): the
# jobs run `compare --no-report`, whose report would miss the runs other studies lend a study.
set -euo pipefail
cd "$(dirname "$0")/.."
studies="study1_which_smart study1b_r3f_grid study2_headline study3_ablation study4_less_data"
status=0
for study in $studies; do
  JOBS_ONLY=1 "benchmarks/results/$study/run.sh" || true
done | python3 benchmarks/lanes.py --log-dir benchmarks/results || status=$?
for study in $studies; do
  REPORT_ONLY=1 "benchmarks/results/$study/run.sh" > /dev/null || true  # a waiting study has no report yet
done
exit "$status"
