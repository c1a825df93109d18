#!/usr/bin/env bash
# Same seed, fast path vs plain eager step: FCD over training must agree within noise.
# bash benchmarks/quality_check.sh DATA_DIR STEPS   (from a source checkout, on a CUDA machine)
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
DATA=${1:-data/fashion-mnist}
STEPS=${2:-3000}
OUTDIR=${OUT:-/tmp/wgan-quality}
RUNS=$(mktemp -d)
mkdir -p "$OUTDIR"
python3 -m wgan eval --train-classifier --dataset fashion-mnist --data "$DATA" 2>&1 | grep -v -i warn | tail -3
python3 -m wgan eval --baselines --dataset fashion-mnist --data "$DATA" --num 10000 2>&1 | grep -v -i warn | tail -12
common=(--preset fashion-gp --data "$DATA" --steps "$STEPS" --eval-every-steps 500 --eval-metrics fcd,class-coverage
        --eval-num-samples 5000 --sample-every-steps 250 --runs-dir "$RUNS" --no-progress --seed 1)
for mode in --fast --no-fast; do
  start=$(date +%s)
  python3 -m wgan train "${common[@]}" "$mode" 2>&1 | grep -v -i warn | tail -2
  echo "$mode: $(( $(date +%s) - start )) s wall"
done
for run in "$RUNS"/*; do
  echo "== $run"; grep fcd "$run/metrics.jsonl"
done
fast=$(ls -d "$RUNS"/* | head -1); eager=$(ls -d "$RUNS"/* | tail -1)
cp "$fast/metrics.jsonl" "$OUTDIR/fast-metrics.jsonl"; cp "$eager/metrics.jsonl" "$OUTDIR/eager-metrics.jsonl"
cp "$fast/quality.png" "$fast/losses.png" "$fast/timelapse.gif" "$OUTDIR/"
cp "$(ls "$fast"/samples/*.png | tail -1)" "$OUTDIR/fashion-gp-final.png"
python3 -m wgan train --preset toy-8gaussians --steps "${TOY_STEPS:-3000}" --eval-metrics "" --sample-every-steps 500 \
  --runs-dir "$RUNS/toy" --no-progress 2>&1 | grep -v -i warn | tail -1
cp "$(ls "$RUNS"/toy/*/samples/*.png | tail -1)" "$OUTDIR/toy-8gaussians-final.png"
