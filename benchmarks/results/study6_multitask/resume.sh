#!/usr/bin/env bash
# Study 6 across working sessions. Each session gets a new machine: the pinned worktree, its venv, every
# checkpoint and every kept model are gone, and only what was committed is left. From the main checkout:
#   resume.sh start   # the worktree at SWEEP_COMMIT (../sweep6, or $SWEEP_DIR) and its venv, the committed
#                     # runs copied into it (so they are not run again), then run.sh there in the
#                     # background (log: ../sweep-study6.log). SKIP_MT=1 passes on to run.sh: stage 1
#                     # without the multi-task runs, for a session too short for a multi-task model and
#                     # the stage-2 runs that start from it (that model lives only on this machine).
#   resume.sh sync    # copy the finished runs' JSON files (results.json, run_config.json, agreement.json)
#                     # into this checkout and say how many there are; commit them at once
#   resume.sh drain   # the running runs finish and no new one starts (SIGUSR1 to lanes.py); run.sh
#                     # then analyses the 100% models' agreement before it exits
# Drain early enough that the running runs (a 100% SNLI SMART run: about half an hour) and the agreement
# analysis finish before the session ends, then sync and commit: a run cut by the session's end restarts
# from step 0 in the next one.
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
here=benchmarks/results/study6_multitask
sweep=${SWEEP_DIR:-$root/../sweep6}
log=${SWEEP_LOG:-$root/../sweep-study6.log}

# The finished runs' JSON files under folder $1 copied to the same places under $2: each folder with a
# results.json gives it, its run_config.json and agreement.json; never a checkpoint, a kept model, a lane
# log, a report, or a run still training (it would look finished there).
copy_runs() {
  local from=$1 to=$2 run name
  [ -d "$from" ] || return 0
  (cd "$from" && find . -path '*/checkpoint-*' -prune -o -name results.json -print) | while read -r run; do
    run=$(dirname "$run")
    mkdir -p "$to/$run"
    for name in results.json run_config.json agreement.json; do
      [ ! -f "$from/$run/$name" ] || cp -p "$from/$run/$name" "$to/$run/"
    done
  done
}

count() { (cd "$1" 2>/dev/null && find . -path '*/checkpoint-*' -prune -o -name results.json -print | wc -l) || echo 0; }

case "${1:-}" in
  start)
    source "$root/benchmarks/pinned_worktree.sh"
    pinned_worktree "$sweep" "$(cat "$here/SWEEP_COMMIT")" || exit 1
    copy_runs "$root/$here" "$sweep/$here"
    (cd "$sweep" && SKIP_MT="${SKIP_MT:-}" nohup bash "$here/run.sh" > "$log" 2>&1 &)
    echo "Study 6 resumed in $sweep ($(count "$sweep/$here") runs there); log: $log"
    ;;
  sync)
    copy_runs "$sweep/$here" "$root/$here"
    echo "$(count "$root/$here") finished runs in $here; commit them: git add $here && git commit"
    ;;
  drain)
    pkill -USR1 -f "benchmarks/lanes.py --log-dir $here" && echo "draining: the running runs finish" ||
      echo "resume.sh: no Study 6 lanes running" >&2
    ;;
  *)
    echo "usage: resume.sh start|sync|drain" >&2
    exit 2
    ;;
esac
