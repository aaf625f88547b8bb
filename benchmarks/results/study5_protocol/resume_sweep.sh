#!/usr/bin/env bash
# Study 5 across working sessions. Each session gets a new machine: the pinned worktree, its venv and
# every checkpoint are gone, and only what was committed is left. Run from the main checkout:
#   resume_sweep.sh start   # the worktree at SWEEP_COMMIT (../sweep, or $SWEEP_DIR) and its venv, the
#                           # committed runs copied into it (so they are not run again), then in the
#                           # background (log: ../sweep-study5.log): the rest of stage 2, the grid choice
#                           # by this checkout's `smart-tune report` unless one is committed, stage 3,
#                           # and, once stage 3 is complete, Study 5b (study5b_schedule: its run.sh and
#                           # config.yaml from this checkout, run on the same pinned code)
#   resume_sweep.sh sync    # copy the finished runs (results.json, run_config.json) into this checkout,
#                           # Study 5b's too, and say how many there are
#   resume_sweep.sh drain   # the running runs finish and no new one starts (SIGUSR1 to lanes.py)
# A run cut by the session's end restarts from step 0 in the next one (its checkpoint is lost with the
# machine): drain the lanes early enough that the running runs finish, then sync and commit.
# Why the grid choice comes from this checkout and not the pinned one: the choice is a report, not a
# run, and the report gained tie handling after the pin; run.sh's own report at the end of a stage
# writes the pinned code's choice into the worktree, so `sync` never copies a report back.
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
here=benchmarks/results/study5_protocol
sweep=${SWEEP_DIR:-$root/../sweep}
log=${SWEEP_LOG:-$root/../sweep-study5.log}
stage2_runs=96  # 48 compare jobs (4 methods x 6 cells x seeds 1-2) of 2 grid points
stage3_runs=72  # 4 methods x 6 cells x seeds 3-5, one grid point each
later=benchmarks/results/study5b_schedule  # Study 5b: Study 5's CoLA cell with 6 epochs

# The finished runs of one study folder ($1) copied into another ($2), from its subfolders ($3...: the
# compare jobs' output folders): each run's JSON files and each job's grid.json, never a checkpoint, a
# log or a report.
copy_runs() {
  local from=$1 to=$2 run
  shift 2
  [ -d "$from" ] || return 0  # nothing there yet (Study 5b before its first run)
  (cd "$from" && find "$@" -name results.json 2>/dev/null || true) | while read -r run; do
    run=$(dirname "$run")
    mkdir -p "$to/$run"
    cp -p "$from/$run/results.json" "$to/$run/"
    [ ! -f "$from/$run/run_config.json" ] || cp -p "$from/$run/run_config.json" "$to/$run/"
  done
  for folder in "$@"; do  # the grid each compare job recorded
    [ ! -f "$from/$folder/grid.json" ] || { mkdir -p "$to/$folder"; cp -p "$from/$folder/grid.json" "$to/$folder/"; }
  done
}

finished() { (cd "$sweep/$here" && { find full lowdata -name results.json 2>/dev/null || true; } | wc -l); }
finished_later() { (cd "$sweep/$later" 2>/dev/null && { find . -name results.json || true; } | wc -l) || echo 0; }

case "${1:-}" in
  start)
    source "$root/benchmarks/pinned_worktree.sh"
    pinned_worktree "$sweep" "$(cat "$here/SWEEP_COMMIT")" || exit 1
    copy_runs "$root/$here" "$sweep/$here" full lowdata
    mkdir -p "$sweep/$later"
    cp -p "$later/run.sh" "$later/config.yaml" "$sweep/$later/"
    copy_runs "$root/$later" "$sweep/$later" .
    cp -p "$here/pooling_decision.json" "$sweep/$here/"
    cp -rp "$here/pooling-pilot" "$sweep/$here/"
    nohup "$root/$here/resume_sweep.sh" chain > "$log" 2>&1 &
    echo "Study 5 resumed in $sweep ($(finished) runs there); log: $log"
    ;;
  chain)  # start's background part
    if [ "$(finished)" -lt "$stage2_runs" ]; then
      (cd "$sweep" && STAGE=2 bash "$here/run.sh") || true
      if [ "$(finished)" -lt "$stage2_runs" ]; then  # stopped or drained: start no stage 3
        echo "stage 2 incomplete: $(finished) of $stage2_runs runs; stage 3 not started"
        exit 1
      fi
    fi
    for folder in full lowdata; do
      if [ ! -f "$root/$here/$folder/grid_choice.json" ]; then
        "$root/.venv/bin/smart-tune" report "$sweep/$here/$folder" > /dev/null
        cp -p "$sweep/$here/$folder/grid_choice.json" "$root/$here/$folder/"
        echo "$folder: grid chosen by this checkout's report ($(date -u)); commit $here/$folder/grid_choice.json"
      fi
      cp -p "$root/$here/$folder/grid_choice.json" "$sweep/$here/$folder/"  # the committed choice, not run.sh's
    done
    status=0
    (cd "$sweep" && STAGE=3 bash "$here/run.sh") || status=$?
    if [ "$status" != 0 ] || [ "$(finished)" -lt $((stage2_runs + stage3_runs)) ]; then
      echo "stage 3 not complete (run.sh status $status, $(finished) runs); Study 5b not started"
      exit "$status"
    fi
    cd "$sweep" && exec bash "$later/run.sh"
    ;;
  sync)
    copy_runs "$sweep/$here" "$root/$here" full lowdata
    copy_runs "$sweep/$later" "$root/$later" .
    echo "finished in $sweep: Study 5 $(finished) of $((stage2_runs + stage3_runs)) runs, Study 5b $(finished_later) of 10"
    ;;
  drain) pkill -USR1 -f "benchmarks/lanes.py" || echo "no lanes running" ;;
  *)
    echo "usage: $0 start|sync|drain" >&2
    exit 2
    ;;
esac
