#!/usr/bin/env bash
# GPU checks from a source checkout: the fast-path tests, a short train / resume / sample through the CLI,
# and a short `wgan claims`.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
DATA=${1:-data/fashion-mnist}
RUNS=$(mktemp -d)
python3 -m pytest -q tests/test_fast.py 2>&1 | tail -3
python3 -m wgan train --preset fashion-gp --data "$DATA" --steps 200 --checkpoint-every-steps 100 --runs-dir "$RUNS" \
  --no-progress --no-tensorboard 2>&1 | grep -v -i warn | tail -3
run=$(ls -d "$RUNS"/*)
python3 -m wgan train --resume "$run" --steps 400 --no-progress 2>&1 | grep -v -i warn | tail -3
tail -2 "$run/metrics.jsonl"; cat "$run/log.txt"
python3 -m wgan sample --run "$run" --num 16 --out "$RUNS/s.npz" && echo sample-ok
cp "$run/samples/step-00000400.png" "${OUT:-/tmp}/fashion-gp-400.png" 2>/dev/null
# The claims check on CUDA (the fast step between the measurements): a short run, verdicts printed.
python3 -m wgan claims --datasets toy-8gaussians --steps 300 --checks 6 --runs-dir "$RUNS" 2>&1 | tail -12
