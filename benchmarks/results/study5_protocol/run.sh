#!/usr/bin/env bash
# Reproduces Study 5 on CPUs (resumable, across sessions), in three stages on two lanes side by side
# with one torch thread each (benchmarks/lanes.py). benchmarks/gpu_study.py runs the same plan as one
# queue on a lent GPU.
#   1. pooling-pilot/: plain only, the [CLS] pooler against mean pooling, RTE/MRPC/STS-B/CoLA, seed 1,
#      learning rate 5e-5. Rule, written before any run: Study 5 uses mean pooling iff plain's mean
#      held-out main metric over the four tasks is at least 1.0 point above the [CLS] head's (dev and
#      SMART are not looked at). Written to pooling_decision.json.
#   2. selection, seeds 1-2: every method at every grid point (lr 2e-5, 5e-5), full/ (RTE, MRPC, STS-B,
#      CoLA) and lowdata/ (about 1,000 examples: 27% of MRPC, 11.7% of CoLA, class-balanced).
#   3. finals, seeds 3-5: each method's point chosen on the held-out part of seeds 1-2 (grid_choice.json).
# Run from anywhere. STAGE=1|2|3 runs one stage only; JOBS_ONLY=1 prints the jobs; REPORT_ONLY=1
# rebuilds the reports. METHODS overrides the compared methods (default vanilla r3f smart smart-fit).
set -euo pipefail
cd "$(dirname "$0")/../../.."
st="${SMART_TUNE_VENV:-.venv}/bin/smart-tune"
py="${SMART_TUNE_VENV:-.venv}/bin/python"
here=benchmarks/results/study5_protocol
METHODS="${METHODS:-vanilla r3f smart smart-fit}"
GRID="learning_rate=2e-5,5e-5"
FULL="cola stsb mrpc rte"
LOW="mrpc:0.27 cola:0.117"

pilot_jobs() {
  for task in $FULL; do
    for pooling in cls mean; do
      echo "--no-report --config $here/config.yaml --output-dir $here/pooling-pilot --task $task --seeds 1" \
        "--methods vanilla-$pooling --learning-rate 5e-5"
    done
  done
}

pooling() {  # the pilot's rule; "" while the pilot is incomplete
  "$py" - "$here" <<'PY'
import json, os, sys
from pathlib import Path
here = Path(sys.argv[1])
scores = {"cls": {}, "mean": {}}
for path in (here / "pooling-pilot").rglob("results.json"):
    r = json.loads(path.read_text())
    scores[r["method"].rsplit("-", 1)[1]][r["task"]] = 100 * r["metrics"][r["main_metric"] + "_holdout"]
if len(scores["cls"]) < 4 or len(scores["mean"]) < 4:
    sys.exit(0)
means = {k: sum(v.values()) / len(v) for k, v in scores.items()}
chosen = "mean" if means["mean"] - means["cls"] >= 1.0 else "cls"
decision = {"rule": "mean iff plain's mean held-out main metric gains >= 1.0 point", "held_out_scores": scores,
            "means": means, "chosen": chosen}
if not os.environ.get("JOBS_ONLY"):  # JOBS_ONLY prints the jobs and writes nothing
    (here / "pooling_decision.json").write_text(json.dumps(decision, indent=2) + "\n")
print(chosen)
PY
}

selection_jobs() {  # seeds 1-2, every grid point; the long SMART runs first in each seed
  local pool=$1
  for seed in 1 2; do
    for method in $(echo "$METHODS" | tr ' ' '\n' | tac); do
      for task in $FULL; do
        echo "--no-report --config $here/config.yaml --output-dir $here/full --task $task --seeds $seed" \
          "--methods $method --grid $GRID --pooling $pool"
      done
      for cell in $LOW; do
        echo "--no-report --config $here/config.yaml --output-dir $here/lowdata --task ${cell%%:*} --seeds $seed" \
          "--methods $method --grid $GRID --pooling $pool --train-fraction ${cell#*:}"
      done
    done
  done
}

final_jobs() {  # seeds 3-5 at each method's chosen point, once seeds 1-2 have chosen it
  local pool=$1
  for folder in full lowdata; do
    [ -f "$here/$folder/grid_choice.json" ] || continue
    "$py" - "$here/$folder/grid_choice.json" "$METHODS" <<'PY' | while read -r task method lr fraction; do
import json, sys
choices = json.load(open(sys.argv[1]))
for group, methods in choices.items():
    for method, c in methods.items():
        if method in sys.argv[2].split() and c["seeds"] == [1, 2]:
            task, _, rest = group.partition(" (")
            fraction = rest.split("%")[0] if rest else "-"
            print(task, method, c["settings"]["learning_rate"], fraction)
PY
      frac=""; [ "$fraction" != "-" ] && frac="--train-fraction $(python3 -c "print(round($fraction / 100, 4))")"
      for seed in 3 4 5; do
        echo "--no-report --config $here/config.yaml --output-dir $here/$folder --task $task --seeds $seed" \
          "--methods $method --grid learning_rate=$lr --pooling $pool $frac"
      done
    done
  done
}

report() {
  [ -z "${JOBS_ONLY:-}" ] || return 0  # JOBS_ONLY prints the jobs and writes nothing
  for folder in pooling-pilot full lowdata; do
    ls "$here/$folder"/*/*/seed-*/results.json > /dev/null 2>&1 && "$st" report "$here/$folder" > /dev/null
  done
  return 0
}

if [ -n "${REPORT_ONLY:-}" ]; then report; exit 0; fi
status=0
# One stage's jobs (the function "$@" lists them) on the lanes. Not `pilot_jobs | run_jobs`: a pipeline's
# last part runs in a subshell, which would lose the status set there (run.sh then exited 0 after failed
# jobs, and went on to the next stage after a SIGTERM or a SIGUSR1 drain).
run_jobs() {
  local jobs
  jobs=$("$@")
  if [ -n "${JOBS_ONLY:-}" ]; then
    [ -z "$jobs" ] || echo "$jobs"
  else
    python3 benchmarks/lanes.py --log-dir "$here" <<< "$jobs" || status=$?
  fi
}
# lanes.py stopped (SIGTERM/SIGINT: 143) or drained (SIGUSR1: 3): start no further stage.
go_on() { [ "$status" != 143 ] && [ "$status" != 3 ]; }
stage() { [ -z "${STAGE:-}" ] || [ "$STAGE" = "$1" ]; }
if stage 1; then run_jobs pilot_jobs; fi
go_on || exit "$status"
pool=$(pooling)
if [ -z "$pool" ]; then echo "Study 5 waits for the pooling pilot (stage 1) to finish" >&2; exit "${status:-1}"; fi
echo "pooling: $pool (pooling_decision.json)" >&2
if stage 2; then run_jobs selection_jobs "$pool"; report; fi
if go_on && stage 3; then run_jobs final_jobs "$pool"; report; fi
exit "$status"
