#!/usr/bin/env bash
# One GPU session, prepared to work first time: bash benchmarks/gpu_session.sh DATA_DIR OUT_DIR
# (from a source checkout; DATA_DIR holds the Fashion-MNIST IDX files). Four parts, in order, each bounded
# by its own timeout and writing under OUT_DIR, so a part that hangs costs its budget and no more:
#   1. the CUDA tests                                    (TESTS_S, default 60 s)
#   2. wgan bench, fast (tf32, bf16) against eager       (BENCH_S, 150 s)
#   3. time to quality: fashion-gp for TRAIN_S seconds of training, fast, and EAGER_S with --no-fast,
#      FCD and class coverage on EVAL_NUM samples every EVAL_EVERY_S seconds of training   (QUALITY_S, 360 s)
#   4. the fast run's generator exported to safetensors, its grid, timelapse and plots copied  (EXPORT_S, 60 s)
# Dry run on a CPU with tiny budgets:
#   DEVICE=cpu TESTS_S=20 BENCH_SECONDS=0.5 TRAIN_S=20 EAGER_S=10 EVAL_EVERY_S=10 EVAL_NUM=500 \
#     bash benchmarks/gpu_session.sh ../shared/data/fashion-mnist /tmp/session
set -u
DATA=${1:?usage: gpu_session.sh DATA_DIR OUT_DIR}
OUT_DIR=${2:?usage: gpu_session.sh DATA_DIR OUT_DIR}
DEVICE=${DEVICE:-cuda}
TESTS_S=${TESTS_S:-60} BENCH_S=${BENCH_S:-150} QUALITY_S=${QUALITY_S:-360} EXPORT_S=${EXPORT_S:-60}
BENCH_SECONDS=${BENCH_SECONDS:-3}
TRAIN_S=${TRAIN_S:-240} EAGER_S=${EAGER_S:-60} EVAL_EVERY_S=${EVAL_EVERY_S:-20} EVAL_NUM=${EVAL_NUM:-10000}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR"
RUNS=$OUT_DIR/runs
log() { echo "== $(date +%T) $*" | tee -a "$OUT_DIR/session.log"; }

log "device and versions"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi";
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } | tee "$OUT_DIR/device.txt"

log "1. CUDA tests (${TESTS_S} s)"
timeout "$TESTS_S" $PY -m pytest -p no:cacheprovider -m cuda -rs tests 2>&1 | tail -15 | tee "$OUT_DIR/1-tests.txt"

log "2. bench (${BENCH_S} s)"
bench_all() {
  for spec in "fashion-gp 64" "fashion-gp 256" "celeba-clip 64" "cifar10-resnet-gp 64" "celeba-resnet-gp 64"; do
    set -- $spec
    $PY -m wgan bench --preset "$1" --batch "$2" --seconds "$BENCH_SECONDS" --device "$DEVICE" --data "$DATA" \
      --json "$OUT_DIR/2-bench-$1-$2.json" 2>&1 | grep -v -i warn
  done
}
export -f bench_all; export DATA OUT_DIR DEVICE BENCH_SECONDS PY
timeout "$BENCH_S" bash -c bench_all 2>&1 | tee "$OUT_DIR/2-bench.txt"

log "3. time to quality (${QUALITY_S} s)"
common=(--preset fashion-gp --data "$DATA" --device "$DEVICE" --steps 1000000 --eval-metrics fcd,class-coverage
        --eval-every-seconds "$EVAL_EVERY_S" --eval-num-samples "$EVAL_NUM" --sample-every-steps 500
        --checkpoint-every-steps 5000 --runs-dir "$RUNS" --no-progress --seed 1)
# each run stops itself after its seconds of training; the timeouts only bound start-up and evaluations
timeout_total=$(date -d "+$QUALITY_S sec" +%s)
left() { echo $(( timeout_total - $(date +%s) > 1 ? timeout_total - $(date +%s) : 1 )); }
{
  timeout "$(left)" $PY -m wgan train "${common[@]}" --max-train-seconds "$TRAIN_S" --fast 2>&1 | grep -v -i warn | tail -3
  timeout "$(left)" $PY -m wgan train "${common[@]}" --max-train-seconds "$EAGER_S" --no-fast 2>&1 | grep -v -i warn | tail -3
} 2>&1 | tee "$OUT_DIR/3-quality.txt"
for run in "$RUNS"/*; do
  [ -d "$run" ] || continue
  echo "-- $run"
  $PY - "$run/metrics.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "fcd" in r:
        print(f"step {r['step']} time_s {r.get('time_s', 0):.1f} fcd {r['fcd']:.2f} class_coverage {r.get('class_coverage', float('nan')):.3f}")
PY
  cp "$run/metrics.jsonl" "$OUT_DIR/3-$(basename "$run")-metrics.jsonl"
done 2>&1 | tee -a "$OUT_DIR/3-quality.txt"

log "4. export (${EXPORT_S} s)"
fast=$(ls -d "$RUNS"/* 2>/dev/null | head -1)
if [ -n "$fast" ]; then
  timeout "$EXPORT_S" $PY -m wgan report --run "$fast" 2>&1 | grep -v -i warn | tail -2
  timeout "$EXPORT_S" $PY -m wgan export --run "$fast" --out "$OUT_DIR/fashion-gp.safetensors" 2>&1 | tail -2
  cp "$fast/config.json" "$fast/log.txt" "$OUT_DIR/" 2>/dev/null
  cp "$fast/quality.png" "$fast/losses.png" "$fast/timelapse.gif" "$OUT_DIR/" 2>/dev/null
  cp "$(ls "$fast"/samples/*.png | tail -1)" "$OUT_DIR/fashion-gp-final.png" 2>/dev/null
  ls -la "$OUT_DIR"
else
  echo "no run to export"
fi
log "done"
