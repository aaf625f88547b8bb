#!/usr/bin/env bash
# The measurements behind the quickstart's recipe (quickstart.md): one `smart-tune train` per
# TASK:EXAMPLES:METHOD:SEED:LR argument, one after another, each line of results appended to
# $OUT/grid.txt (exit code, wall and CPU seconds, load average before and after, dev scores).
#   THREADS=1 benchmarks/results/quickstart/measure.sh sst2:1000:smart:1:1e-4 sst2:1000:vanilla:1:1e-4
# Run from the repository root after ./scripts/install.sh; runs go to $OUT (default /tmp/quickstart-grid).
set -u
ST=${ST:-.venv/bin/smart-tune}
OUT=${OUT:-/tmp/quickstart-grid}
DATA=${DATA:-../shared/data/glue}
mkdir -p "$OUT"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${THREADS:-2}
for spec in "$@"; do
  IFS=: read -r task n method seed lr <<<"$spec"
  out=$OUT/$task-$n-$method-s$seed-lr$lr-t${THREADS:-2}
  rm -rf "$out"
  start=$(date +%s)
  load0=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -o "$out.time" -f "%e %U %S" "$ST" train --task "$task" --data-dir "$DATA" --method "$method" \
    --seed "$seed" --max-train-samples "$n" --epochs 1 --learning-rate "$lr" --output-dir "$out" \
    --no-save-model --disable-tqdm true --logging-steps 10 > "$out.log" 2>&1
  rc=$?
  end=$(date +%s)
  scores=$(python3 -c "import json;r=json.load(open('$out/results.json'));print(' '.join(f'{k}={v:.4f}' for k,v in r['metrics'].items()), 'train_s=%.0f'%r['train_runtime_s'], 'loss=%.4f'%r['train_loss'])" 2>/dev/null)
  echo "$spec wall_user_sys_s=$(tail -1 "$out.time" 2>/dev/null) rc=$rc wall=$((end-start))s load_start=$load0 load_end=$(cut -d' ' -f1 /proc/loadavg) $scores" >> "$OUT/grid.txt"
done
