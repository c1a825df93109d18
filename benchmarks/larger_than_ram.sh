#!/usr/bin/env bash
# A dataset larger than the memory a training process may use, trained inside a memory cgroup limited to
# LIMIT_MIB (default 1024), as root, from a source checkout:
#   sudo bash benchmarks/larger_than_ram.sh [DIR] [COUNT]
# CASE=idx (the default): a synthetic uncompressed IDX dataset (COUNT 28x28 images, default 2,000,000: 1.46
#   GiB), which is mapped in place; trains 40 steps on it.
# CASE=folder: COUNT synthetic 64x64 JPEG files (default 140,000: 1.60 GiB once decoded to 64x64 RGB); decodes
#   them inside the cgroup (`wgan datasets --check`, timed, with its peak RSS) into the decoded cache, then
#   trains 40 steps of celeba-clip on the file it wrote. The cache goes to DIR/cache.
# CGROUP: the parent memory cgroup folder to make a child in (default: this shell's own; cgroup v1 or v2).
# The figures go in benchmarks/README.md.
set -eu
CASE=${CASE:-idx}
DIR=${1:-/tmp/wgan-larger-than-ram-$CASE}
LIMIT_MIB=${LIMIT_MIB:-1024}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export XDG_CACHE_HOME=$DIR/cache OMP_NUM_THREADS=1
mkdir -p "$DIR"
case $CASE in
  idx)
    COUNT=${2:-2000000}
    $PY - "$DIR" "$COUNT" <<'PY'
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
    DATA=$DIR
    SIZE="$(du -m "$DIR/train-images-idx3-ubyte" | cut -f1) MiB of images"
    TRAIN="--preset quick --data $DIR --no-conditional"
    ;;
  folder)
    COUNT=${2:-140000}
    DATA=$DIR/images
    $PY - "$DATA" "$COUNT" <<'PY'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
folder, n = Path(sys.argv[1]), int(sys.argv[2])
folder.mkdir(parents=True, exist_ok=True)
have = len(list(folder.glob("*.jpg")))
rng = np.random.default_rng(have)
for i in range(have, n):  # smooth colour fields with noise: small JPEGs, nothing a decoder can skip
    small = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((64, 64), Image.BILINEAR)
    pixels = np.clip(np.asarray(small, dtype=np.int16) + rng.integers(-12, 13, (64, 64, 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:07d}.jpg", quality=90)
PY
    SIZE="$COUNT JPEG files ($(du -sm "$DATA" | cut -f1) MiB), $((COUNT * 64 * 64 * 3 >> 20)) MiB decoded at 64x64 RGB"
    TRAIN="--preset celeba-clip --dataset image-folder --data $DATA --width 8 --batch-size 16"
    ;;
  *) echo "CASE=$CASE: use idx or folder" >&2; exit 2 ;;
esac
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then  # v2
  PARENT=${CGROUP:-/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)}; LIMIT_FILE=memory.max; PEAK_FILE=memory.peak
else  # v1
  PARENT=${CGROUP:-/sys/fs/cgroup/memory$(grep ':memory:' /proc/self/cgroup | cut -d: -f3)}
  LIMIT_FILE=memory.limit_in_bytes; PEAK_FILE=memory.max_usage_in_bytes
fi
CG=$PARENT/wgan-larger-than-ram
mkdir -p "$CG"
echo $((LIMIT_MIB << 20)) > "$CG/$LIMIT_FILE"
echo "dataset: $SIZE; memory limit: $LIMIT_MIB MiB ($CG)"
in_cgroup() {  # the command, in the cgroup, under /usr/bin/time: its exit code, seconds and peak RSS
  echo 0 > "$CG/$PEAK_FILE" 2>/dev/null || true  # the cgroup's peak, of this command alone
  sh -c "echo \$\$ > '$CG/cgroup.procs'; exec /usr/bin/time -f 'seconds: %e; peak RSS: %M KiB' $*" 2>&1 \
    | grep -v -i warn | tail -3
  echo "exit code: ${PIPESTATUS[0]} (137: killed for memory); cgroup peak: $(( $(cat "$CG/$PEAK_FILE" 2>/dev/null || echo 0) >> 20 )) MiB"
}
set +e
if [ "$CASE" = folder ]; then
  echo "decoding:"
  in_cgroup "$PY -m wgan datasets --check image-folder --data '$DATA' --image-size 64 --channels 3"
  echo "training on the decoded file:"
fi
in_cgroup "$PY -m wgan train $TRAIN --steps 40 --eval-metrics '' --runs-dir '$DIR/runs' --no-progress \
  --no-tensorboard --sample-every-steps 1000 --checkpoint-every-steps 1000"
rmdir "$CG" 2>/dev/null || true
