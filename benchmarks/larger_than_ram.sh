#!/usr/bin/env bash
# A dataset larger than the memory a training process may use: writes a synthetic uncompressed IDX dataset
# (default 2,000,000 28x28 images, 1.46 GiB) and trains 40 steps on it inside a memory cgroup limited to
# LIMIT_MIB (default 1024), as root, from a source checkout:
#   sudo bash benchmarks/larger_than_ram.sh [DIR] [IMAGES]
# CGROUP: the parent memory cgroup folder to make a child in (default: this shell's own; cgroup v1 or v2).
set -eu
DIR=${1:-/tmp/wgan-larger-than-ram}
IMAGES=${2:-2000000}
LIMIT_MIB=${LIMIT_MIB:-1024}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$DIR"
$PY - "$DIR" "$IMAGES" <<'PY'
import struct, sys
from pathlib import Path
import numpy as np
folder, n = Path(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
for stem, count in (("train", n), ("t10k", 1000)):
    with open(folder / f"{stem}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, count, 28, 28))
        for start in range(0, count, 100_000):
            f.write(rng.integers(0, 256, (min(100_000, count - start), 28, 28), dtype=np.uint8).tobytes())
    with open(folder / f"{stem}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, count) + (np.arange(count) % 10).astype(np.uint8).tobytes())
PY
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then  # v2
  PARENT=${CGROUP:-/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)}; LIMIT_FILE=memory.max; PEAK_FILE=memory.peak
else  # v1
  PARENT=${CGROUP:-/sys/fs/cgroup/memory$(grep ':memory:' /proc/self/cgroup | cut -d: -f3)}
  LIMIT_FILE=memory.limit_in_bytes; PEAK_FILE=memory.max_usage_in_bytes
fi
CG=$PARENT/wgan-larger-than-ram
mkdir -p "$CG"
echo $((LIMIT_MIB << 20)) > "$CG/$LIMIT_FILE"
echo "dataset: $(du -m "$DIR/train-images-idx3-ubyte" | cut -f1) MiB of images; memory limit: $LIMIT_MIB MiB ($CG)"
set +e
sh -c "echo \$\$ > '$CG/cgroup.procs'; exec env OMP_NUM_THREADS=1 $PY -m wgan train --preset quick --data '$DIR' \
  --no-conditional --width 8 --steps 40 --eval-metrics '' --runs-dir '$DIR/runs' --no-progress --no-tensorboard \
  --sample-every-steps 1000 --checkpoint-every-steps 1000" 2>&1 | grep -v -i warn | tail -3
echo "exit code: ${PIPESTATUS[0]} (137: killed for memory); peak: $(( $(cat "$CG/$PEAK_FILE" 2>/dev/null || echo 0) >> 20 )) MiB"
