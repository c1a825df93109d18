#!/usr/bin/env bash
# The demo's quality on this CPU: the old `quick` settings against today's `quick`, at equal training
# time, and today's with and without its generator average (EMA off = the same run's raw generator, so the
# comparison costs no second run and shares every random draw). FCD and class coverage on 10,000 samples.
#   bash benchmarks/quality_cpu.sh DATA_DIR [SECONDS]      (from a source checkout; SECONDS default 300)
# LEVERS=1: instead, today's `quick` against the levers in levers() below, two runs side by side at a time, one
# core and one thread each (both get the same CPU), at equal training time; FCD, class coverage, precision/recall.
#   LEVERS=1 bash benchmarks/quality_cpu.sh DATA_DIR [SECONDS]
set -u
DATA=${1:?usage: quality_cpu.sh DATA_DIR [SECONDS]}
SECONDS_OF_TRAINING=${2:-300}
NUM=${NUM:-10000}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
RUNS=$(mktemp -d)
# The quick preset as it was before the demo was retuned (unconditional, 5 critic steps of 64 images, no
# batch norm, no average).
OLD=(--no-conditional --critic-steps 5 --batch-size 64 --lr-critic 2e-4 --lr-generator 2e-4 --adam-beta1 0.5 --adam-beta2 0.9
     --generator-norm none --ema-halflife-kimg 0 --width 32 --sample-every-steps 100 --checkpoint-every-steps 250)
on_core() {  # core or "", command...: on that one core where taskset exists
  local core=$1; shift
  if [ -n "$core" ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then taskset -c "$core" "$@"; else "$@"; fi
}
train() {  # name, options...   (CORE=N: on core N)
  local name=$1; shift
  on_core "${CORE:-}" $PY -m wgan train --preset quick --data "$DATA" --steps 1000000 \
    --max-train-seconds "$SECONDS_OF_TRAINING" --eval-metrics "" --runs-dir "$RUNS/$name" --no-progress \
    --no-tensorboard "$@" 2>&1 | grep -v -i warn | tail -1
}
score() {  # run dir, label, eval options...   (METRICS: what to measure)
  local run=$1 label=$2; shift 2
  local steps; steps=$(ls "$run"/checkpoints | tail -1)
  echo "-- $label ($steps)"
  $PY -m wgan eval --run "$run" --metrics "${METRICS:-fcd,class-coverage}" --num "$NUM" --no-append "$@" 2>&1 \
    | grep -v -i warn | grep -E "^(fcd|class|precision|recall)"
}
levers() {
  local -a names=(quick beta1-0 generator-batch-64 critic-1-ttur) opts=(
    ""
    "--adam-beta1 0.0"
    "--batch-size-generator 64"
    "--critic-steps 1 --lr-critic 1.6e-3")
  local i j
  for ((i = 0; i < ${#names[@]}; i += 2)); do
    for j in 0 1; do
      # shellcheck disable=SC2086  # the options split into words on purpose
      OMP_NUM_THREADS=1 CORE=$j train "${names[i + j]}" ${opts[i + j]} &
    done
    wait
  done
  for name in "${names[@]}"; do METRICS=fcd,class-coverage,prc score "$RUNS/$name"/* "$name"; done
  echo "runs: $RUNS"
}
# DEMO=1: `make demo` as a user runs it (two threads, five minutes of the wall's clock, FCD and class coverage
# every 60 s), today's `quick` against the `quick` of before the cheaper penalty and bf16, one after the other.
#   DEMO=1 bash benchmarks/quality_cpu.sh DATA_DIR
BEFORE_LEVERS=(--precision fp32 --penalty-every-steps 1 --penalty-batch-fraction 1 --penalty-target-norm 1 --steps 2500)
demo() {
  local name
  for name in before now; do
    local -a opts=()
    [ "$name" = before ] && opts=("${BEFORE_LEVERS[@]}")
    echo "-- quick $name"
    $PY -m wgan train --preset quick --data "$DATA" --eval-metrics fcd,class-coverage --runs-dir "$RUNS/demo-$name" \
      --no-progress "${opts[@]}" 2>&1 | grep -v -i warn | grep -E "finished|quality at"
    $PY - "$RUNS/demo-$name"/*/metrics.jsonl <<'PYEOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1]) if '"fcd"' in line]
print("   FCD over training seconds:", ", ".join(f"{r['time_s']:.0f} s {r['fcd']:.1f}" for r in records))
PYEOF
  done
  echo "runs: $RUNS"
}
if [ "${DEMO:-0}" = 1 ]; then demo; exit; fi
if [ "${LEVERS:-0}" = 1 ]; then levers; exit; fi
train old "${OLD[@]}"
train new
score "$RUNS"/old/* "old quick"
score "$RUNS"/new/* "new quick, EMA generator"
score "$RUNS"/new/* "new quick, raw generator (EMA off)" --raw-generator
echo "runs: $RUNS"
