#!/usr/bin/env bash
# The one command of a lent GPU call (issues 17 and 20), from the repository root on the GPU machine,
# after ../shared/tools/gpu/pack.sh built .devrun here and the call carries it:
#
#   bash benchmarks/gpu_run.sh          (device tool: command "bash benchmarks/gpu_run.sh", carry .devrun)
#
# In order, each step bounded so that the whole ends inside END_S seconds:
#   1. set-up (.devrun/setup-on-device.sh) and a smoke run of a few SMART steps: exits at once
#      if anything is wrong, so a broken set-up costs seconds, not the lease;
#   2. benchmarks/step_cost.py --device cuda on a quiet GPU (MiniLM and a BERT-base-sized model,
#      fp32 and bf16, batch 32, lengths 128 and 256);
#   3. the test suite on the GPU machine (pytest -n 3) in the background, beside
#   4. benchmarks/gpu_study.py: the pooling pilot, the mixed-precision runs and Study 5, one queue
#      with a deadline and a hard stop;
#   5. everything but weights packed into $OUT/gpu_results.tar.gz.
# A dry run on a CPU: GPU_DRY_RUN=1 with a tiny model in TINY_MODEL (see benchmarks/README.md).
set -uo pipefail
START=$(date +%s)
END_S=${END_S:-555}
elapsed() { echo $(( $(date +%s) - START )); }
OUT=${OUT:-/tmp/gpu-out}
R=${RESULTS_DIR:-/tmp/gpu-results}
rm -rf "$R"; mkdir -p "$R" "$OUT"
pack() { tar czf "$OUT/gpu_results.tar.gz" -C "$R" --exclude='*.safetensors' --exclude='*.bin' \
  --exclude='checkpoint-*' --exclude='*.pt' . ; echo "packed at $(elapsed) s"; }

if [ -z "${GPU_DRY_RUN:-}" ]; then
  # shellcheck disable=SC1091
  source .devrun/setup-on-device.sh || { echo "setup failed"; exit 3; }
  DATA=.devrun/data; MODEL=(); PLAN=full; DEVICE=cuda; WORKERS=${WORKERS:-12}
  TESTS=(-n 3 --timeout 200)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$R/nvidia-smi.csv" 2>&1
else
  DATA=../shared/data; MODEL=(--model "$TINY_MODEL"); PLAN=tiny; DEVICE=cpu; WORKERS=${WORKERS:-2}
  TESTS=(tests/test_divergences.py)
  export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
fi
PY=${PY:-python3}
echo "setup done at $(elapsed) s"

# 1. Smoke: a few SMART steps in fp32, Study 5's precision (bf16 and fp16 are queued runs: their
#    failure is a finding, not a reason to stop); any failure ends the call here.
timeout 90 $PY -m smart_tune train --task rte --data-dir "$DATA/glue" "${MODEL[@]}" --max-train-samples 64 \
  --max-steps 3 --validation-from-train 0.25 --output-dir /tmp/gpu-smoke --overwrite-output-dir --no-save-model \
  --disable-tqdm true > "$R/smoke.log" 2>&1 || { tail -30 "$R/smoke.log"; pack; exit 4; }
echo "smoke passed at $(elapsed) s"

# 2. Step cost on a quiet GPU (before anything else runs).
mkdir -p "$R/step_cost"
if [ "$PLAN" = full ]; then
  for model in minilm bert-base; do
    for dtype in fp32 bf16; do
      timeout 60 $PY benchmarks/step_cost.py --device "$DEVICE" --dtype "$dtype" --model-config "$model" \
        --batch-size 32 --lengths 128,256 --methods plain,r3f,smart-rs,smart,smart-nodrop --steps 20 \
        --warmup 3 --out-dir "$R/step_cost" > "$R/step_cost/$model-$dtype.log" 2>&1 \
        || echo "step cost $model $dtype failed (see its log)"
    done
  done
fi
echo "step cost done at $(elapsed) s"

# 3 and 4. Tests in the background, the queue in the foreground, both ending before END_S. One CPU
# thread per process: the GPU does the arithmetic, and 15 processes share 16 cores.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
q0=$(elapsed)
deadline=$(( END_S - q0 - 75 )); stop=$(( END_S - q0 - 15 ))
( timeout $(( stop - 5 )) $PY -m pytest "${TESTS[@]}" -p no:cacheprovider -q -rfE \
    --junitxml="$R/pytest.xml" > "$R/pytest.log" 2>&1; echo "pytest exit $?" >> "$R/pytest.log" ) &
tests=$!
$PY benchmarks/gpu_study.py --out "$R/runs" --data-dir "$DATA" "${MODEL[@]}" --plan "$PLAN" \
  --workers "$WORKERS" --deadline-s "$deadline" --stop-s "$stop" > "$R/queue.log" 2>&1
echo "queue done at $(elapsed) s: $(grep -c '"code": 0' "$R/runs/queue_status.jsonl") runs finished"
wait "$tests" 2>/dev/null
tail -5 "$R/pytest.log"
pack
