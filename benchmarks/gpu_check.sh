#!/usr/bin/env bash
# GPU checks from a source checkout: the fast-path tests, a short train / resume / sample through the CLI,
# and a short `wgan claims`.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
DATA=${1:-data/fashion-mnist}
RUNS=$(mktemp -d)
python3 -m pytest -q tests/test_training_fast.py 2>&1 | tail -3
python3 -m wgan train --preset fashion-gp --data "$DATA" --steps 200 --checkpoint-every-steps 100 --runs-dir "$RUNS" \
  --no-progress --no-tensorboard 2>&1 | grep -v -i warn | tail -3
run=$(ls -d "$RUNS"/*)
python3 -m wgan train --resume "$run" --steps 400 --no-progress 2>&1 | grep -v -i warn | tail -3
tail -2 "$run/metrics.jsonl"; cat "$run/log.txt"
python3 -m wgan sample --run "$run" --num 16 --out "$RUNS/s.npz" && echo sample-ok
cp "$run/samples/step-00000400.png" "${OUT:-/tmp}/fashion-gp-400.png" 2>/dev/null
# The claims check on CUDA (the fast step between the measurements): a short run, verdicts printed.
python3 -m wgan claims --datasets toy-8gaussians --steps 300 --checks 6 --runs-dir "$RUNS" 2>&1 | tail -12
# Inception FID/KID on the GPU (a randomly initialised Inception-v3 in torch-fidelity's format: the code
# path, not the numbers), on the run's device, and the test split's features cached for the second call.
python3 - "$DATA" "$RUNS" <<'PY' 2>&1 | grep -v -i warn | tail -4
import sys, time, torch
sys.path.insert(0, "tests")
from test_inception import write_random_inception_weights
from wgan import metrics
data, runs = sys.argv[1], sys.argv[2]
weights = write_random_inception_weights(f"{runs}/inception.pth", seed=0)
ev = metrics.Evaluator(["fid", "kid"], dataset="fashion-mnist", data_path=data, device="cuda",
                       inception_weights=weights)
ev.prepare(points=False, conditional=False)
for _ in range(2):
    t0 = time.perf_counter()
    out = ev.evaluate(metrics.Samples(torch.randint(0, 256, (5000, 1, 28, 28), dtype=torch.uint8)))
    print({k: v.values for k, v in out.items()}, f"{time.perf_counter() - t0:.1f} s")
PY
