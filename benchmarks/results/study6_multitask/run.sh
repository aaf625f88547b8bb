#!/usr/bin/env bash
# Dry run, before the study: every stage, the report and its charts, on a tiny random BERT with MiniLM's
# tokenizer (56 jobs, 30-40 minutes on two cores busy with another sweep). To check the resume too, send
# SIGTERM to lanes.py mid-way (run.sh then exits 143) and run it again.
#   .venv/bin/python -c "import sys; sys.path.insert(0, 'tests'); import conftest as c; \
#     c.save_tiny_model_dir('/tmp/s6-tiny', dropout=0.1, head=False)"
#   OUT=/tmp/s6-out MODEL=/tmp/s6-tiny SEEDS="1 2" TASKS="rte stsb" FRACTIONS="0.01 1.0" CAP=64 \
#     EXTRA="--epochs 1" benchmarks/results/study6_multitask/run.sh
#   OUT=/tmp/s6-out REPORT_ONLY=1 benchmarks/results/study6_multitask/run.sh   # summary.md, summary-a/b/c.png
# (SMART_TUNE_VENV=DIR for a smart-tune other than .venv's; EXTRA="--max-steps 2" works too, and is
# quicker on the 100% SNLI runs.)
#
# Study 6 (issue 21): SMART with multi-task learning and domain adaptation, the paper's §5.2-5.4 at the
# scale two CPU cores finish. Resumable, across sessions; jobs on two lanes side by side with one torch
# thread each (benchmarks/lanes.py), all in one job list, seed by seed. Three stages:
#   1. (a) single-task against multi-task, RTE, MRPC, STS-B, CoLA, SST-2, seeds 1-3, plain and SMART:
#      single/        smart-tune train per task (through compare);
#      mt/M/seed-S/   smart-tune multitask --tasks rte,mrpc,stsb,cola,sst2 --method M (model kept).
#      Every task capped at CAP=1,000 training examples, a class-stratified random draw made with
#      config.yaml's sample_seed 0: the same rows in every arm and seed (a file's first 1,000 would not do: STS-B's
#      are all image captions, its dev set is three genres). 10% of them are held out to choose the
#      kept epoch; dev only scores. 3 epochs, lr 5e-5, batch 16 (config.yaml).
#      (b) with the packaged MiniLM as start: da-minilm/ (see 2).
#   2. from mt/M/seed-S, each run started as soon as that model is trained (lanes.py --after), while the
#      other lane goes on with whatever is ready: no stage waits for all of stage 1:
#      mt-ft-M/       (a) per-task fine-tuning of the multi-task model, same method M as its multi-task
#                     stage (MT-DNN then plain; MT-DNN-SMART then SMART), same cap and schedule;
#      da-mt-M/       (b) domain adaptation as §5.4 / Study 4 from the multi-task model: fine-tune on
#                     0.1%, 1%, 10%, 100% of SNLI dev (the pool, class-balanced, fixed per seed), score
#                     SNLI test (config-snli.yaml), plain and SMART. The 100% models are kept for 3.
#   3. (c) agreement analysis (§5.2) of every 100% model of (b): smart-tune evaluate --by-agreement on
#      SNLI test, written to agreement.json beside the run's results.json; run here one at a time, with
#      two threads, once the lanes have finished, also after a drain.
#   The kept models (about 90 MB each) are ignored by git: they live only on the machine that trained
#   them. A finished multi-task run whose model is not here while stage 2 still needs it is trained
#   again (the same command and seed: the same batches and heads; on one machine the same weights);
#   a finished 100% run of (b) without its model or agreement.json is a failure that names it.
# Estimate (JOBS_ONLY=1 prints it, from Studies 4-5's measured train_runtime_s): 156 jobs, about
# 23 lane-hours (SMART at 2.7x plain), so about 11.5 hours on the two lanes: four 3-hour sessions.
# The multi-task arm without fine-tuning is read from mt/M/seed-S/results.json (each task's dev scores).
# `report.py` writes summary.md (REPORT_ONLY=1 runs only that).
#
# Run from anywhere. AGREEMENT_ONLY=1 runs only (c); JOBS_ONLY=1 prints every job (as if none were done)
# and the estimate, and runs nothing. Overrides for a dry run: SEEDS ("1 2 3"),
# TASKS ("rte mrpc stsb cola sst2"), FRACTIONS ("0.001 0.01 0.1 1.0"), CAP (1000), MODEL (a model to
# start from instead of the packaged MiniLM), OUT (where runs go instead of this folder), EXTRA (options
# added to every training job, e.g. "--max-steps 2"). SKIP_MT=1 leaves the multi-task runs and stage 2,
# which needs their models, out: for a session too short to train a multi-task model and the runs that
# start from it, since that model lives only on the machine that trained it. MT_SEEDS (default: SEEDS)
# does so for the seeds it does not name: SEEDS="1 3" MT_SEEDS=1 trains seed 1's multi-task models and
# their runs, and fills the lanes meanwhile with seed 3's other runs (they come after seed 1's in the list).
# Across sessions: resume.sh (start, sync, drain) runs this script in a worktree pinned at SWEEP_COMMIT.
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
py="${SMART_TUNE_VENV:-.venv}/bin/python"
here=benchmarks/results/study6_multitask
out="${OUT:-$here}"
SEEDS="${SEEDS:-1 2 3}"
TASKS="${TASKS:-rte mrpc stsb cola sst2}"
FRACTIONS="${FRACTIONS:-0.001 0.01 0.1 1.0}"
CAP="${CAP:-1000}"
EXTRA="${EXTRA:-}"
model="${MODEL:+--model $MODEL}"
METHODS="smart vanilla"  # the long SMART runs first in each seed
tasks_csv=$(echo $TASKS | tr ' ' ,)

pct() { python3 -c "import sys; print(f'{float(sys.argv[1]) * 100:g}pct')" "$1"; }  # 0.001 -> 0.1pct

state() {  # what a run folder needs: done (results.json), --resume, --overwrite-output-dir (cut saves) or ""
  local dir=$1
  if [ -f "$dir/results.json" ]; then echo done; return; fi
  if ls "$dir"/checkpoint-*/smart_tune_complete > /dev/null 2>&1; then echo --resume; return; fi
  if ls -d "$dir"/checkpoint-* > /dev/null 2>&1; then echo --overwrite-output-dir; return; fi
  echo ""
}

WEIGHTS=model.safetensors  # a kept model's weights (ignored by git)

lost() {  # the run in $1 finished, but its kept model is not on this machine
  [ -f "$1/results.json" ] && [ ! -f "$1/$WEIGHTS" ]
}

mt_needed() {  # a stage-2 run of the multi-task model of method $1 and seed $2 is not finished yet
  [ -n "$(from_mt_jobs "$1" "$2")" ]
}

mt_job() {  # multitask is not compare: the line itself says whether to resume, or to train again
  local method=$1 seed=$2 dir="$out/mt/$1/seed-$2" s=""
  [ -z "${JOBS_ONLY:-}" ] && s=$(state "$dir")
  if [ "$s" = done ]; then
    if ! lost "$dir" || ! mt_needed "$method" "$seed"; then return 0; fi
    echo "multitask: $dir finished, but its model is not here and stage 2 needs it: training it again" \
      "(its results.json is replaced)" >&2
    s=--overwrite-output-dir
  fi
  echo "multitask --config $here/config.yaml --tasks $tasks_csv --method $method --seed $seed" \
    "--output-dir $dir --save-model --max-train-samples $CAP $model $EXTRA $s"
}

finished() { [ -z "${JOBS_ONLY:-}" ] && [ -f "$1/results.json" ]; }

da_jobs() {  # (b) from start $1 (minilm, mt-vanilla, mt-smart), seed $2; each line after prefix $3
  local start=$1 seed=$2 prefix=${3:-} from=$model fraction method keep dir
  case $start in mt-*) from="--model $out/mt/${start#mt-}/seed-$seed" ;; esac
  for fraction in $(echo $FRACTIONS | tr ' ' '\n' | sort -gr); do  # 100% first
    keep=""; [ "$(pct "$fraction")" = 100pct ] && keep="--save-model"
    dir="$out/da-$start/$(pct "$fraction")"
    for method in $METHODS; do
      finished "$dir/snli/$method/seed-$seed" ||
        echo "$prefix--no-report --config $here/config-snli.yaml $from --train-fraction $fraction" \
          "--output-dir $dir --seeds $seed --methods $method $keep $EXTRA"
    done
  done
}

from_mt_jobs() {  # stage 2's unfinished runs from the multi-task model of method $1, seed $2
  local mt=$1 seed=$2 dir="$out/mt/$1/seed-$2" task
  local after="--after $dir/results.json --after $dir/$WEIGHTS "  # each waits for the model's files
  da_jobs "mt-$mt" "$seed" "$after"
  for task in $TASKS; do
    finished "$out/mt-ft-$mt/$task/$mt/seed-$seed" ||
      echo "$after--no-report --config $here/config.yaml --model $dir --output-dir $out/mt-ft-$mt" \
        "--task $task --seeds $seed --methods $mt --max-train-samples $CAP $EXTRA"
  done
}

# Stages 1 and 2 in one list, seed by seed: the multi-task models first (SMART's, the longest, leads),
# then the runs that start from them (each waits for its model's files, lanes.py --after, and starts as
# soon as they are there: no stage waits for all of stage 1), then the single-task runs and the
# domain adaptation from MiniLM, which fill a lane while a multi-task model trains.
mt_seed() { [ -z "${SKIP_MT:-}" ] && [[ " ${MT_SEEDS-$SEEDS} " == *" $1 "* ]]; }

training_jobs() {
  local seed method task
  for seed in $SEEDS; do
    if mt_seed "$seed"; then
      for method in $METHODS; do mt_job "$method" "$seed"; done
      for method in $METHODS; do from_mt_jobs "$method" "$seed"; done
    fi
    for method in $METHODS; do
      for task in $TASKS; do
        echo "--no-report --config $here/config.yaml --output-dir $out/single --task $task --seeds $seed" \
          "--methods $method --max-train-samples $CAP $model $EXTRA"
      done
    done
    da_jobs minilm "$seed"
  done
}

agreement_runs() {  # (c): the 100% models of (b); in JOBS_ONLY's plan, also the ones still to train
  for start in minilm mt-vanilla mt-smart; do
    for method in $METHODS; do
      for seed in $SEEDS; do
        echo "$out/da-$start/100pct/snli/$method/seed-$seed"
      done
    done
  done
}

agreement() {  # fails (after trying every model) when an evaluation failed or a finished model is gone
  local dir failed=0
  for dir in $(agreement_runs); do
    [ -f "$dir/agreement.json" ] && continue
    [ -f "$dir/results.json" ] || continue  # not trained (yet)
    if lost "$dir"; then
      echo "agreement: $dir finished, but its model is not on this machine: remove its results.json" \
        "and run run.sh again to train it again" >&2
      failed=1
      continue
    fi
    echo "agreement: $dir" >&2
    if OMP_NUM_THREADS=2 "$st" evaluate --model-dir "$dir" --task snli --split test --data-dir ../shared/data \
      --by-agreement > "$dir/agreement.json.tmp"; then
      mv "$dir/agreement.json.tmp" "$dir/agreement.json"
    else
      echo "agreement: failed for $dir" >&2
      rm -f "$dir/agreement.json.tmp"
      failed=1
    fi
  done
  return "$failed"
}

report() { "$py" "$here/report.py" "$out" > /dev/null && echo "summary: $out/summary.md" >&2; }

if [ -n "${JOBS_ONLY:-}" ]; then
  jobs=$( (training_jobs; agreement_runs | sed 's|^|evaluate --task snli --split test --data-dir ../shared/data --by-agreement --model-dir |') )
  echo "$jobs"
  echo "$jobs" | "$py" "$here/report.py" --estimate - >&2
  exit 0
fi
if [ -n "${REPORT_ONLY:-}" ]; then report; exit 0; fi
status=0
mkdir -p "$out"
if [ -z "${AGREEMENT_ONLY:-}" ]; then
  jobs=$(training_jobs)
  # lanes.py's status: 0, 1 (a job failed or never started), 3 (drained: SIGUSR1), 143 (stopped: SIGTERM)
  python3 benchmarks/lanes.py --log-dir "$out" <<< "$jobs" || status=$?
fi
# (c) of the 100% models there are, also after a drain (not after a stop): their weights are not
# committed, so they are analysed before the machine can go away. Its failure never hides a drain's 3.
if [ "$status" != 143 ] && ! agreement && [ "$status" = 0 ]; then status=1; fi
report || true
exit "$status"
