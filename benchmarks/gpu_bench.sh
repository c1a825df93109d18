#!/usr/bin/env bash
# Benchmarks on a CUDA machine from a source checkout: `bash benchmarks/gpu_bench.sh [DATA_DIR]`.
# Runs `wgan bench` for the configurations in benchmarks/README.md and writes JSON beside the log.
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
DATA=${1:-data/fashion-mnist}
OUTDIR=${OUT:-/tmp/wgan-bench}
mkdir -p "$OUTDIR"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
for spec in "fashion-gp 64" "fashion-gp 256" "celeba-clip 64"; do
  set -- $spec
  python3 -m wgan bench --preset "$1" --batch "$2" --seconds "${SECONDS_PER_VARIANT:-8}" --data "$DATA" \
    --json "$OUTDIR/bench-$1-$2.json" 2>&1
done
