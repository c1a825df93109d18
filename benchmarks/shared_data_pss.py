"""The memory two torchrun processes on one CPU machine take for a large dataset against a small one.

Writes two synthetic Fashion-MNIST-shaped IDX datasets (uncompressed: a large one of --images 28x28
images, a small one of 1,000), trains each in `torchrun --nproc-per-node 2 -m wgan train --device cpu`
until the first losses are logged, and then sums the two processes' PSS (/proc/PID/smaps_rollup: a page
that both map counts half in each). The growth from the small run to the large one, divided by the
large dataset's bytes, is how many copies of it the machine holds: 2 if each process keeps its own,
1 if they share one.

    python benchmarks/shared_data_pss.py [--images 400000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_idx_dataset(folder: Path, n: int) -> int:
    """Uncompressed IDX train/test files of `n` random images; returns the images' bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem, count in (("train", n), ("t10k", 100)):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        with open(folder / f"{stem}-images-idx3-ubyte", "wb") as f:
            f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, count, 28, 28) + images.tobytes())
        with open(folder / f"{stem}-labels-idx1-ubyte", "wb") as f:
            f.write(struct.pack(">BBBBI", 0, 0, 8, 1, count) + labels.tobytes())
    return n * 28 * 28


def pss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no Pss in /proc/{pid}/smaps_rollup")


def workers(launcher: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == launcher:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summed_pss(data: Path, runs: Path, env: dict) -> int:
    """Train in two processes until the first losses are logged; their summed PSS then."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--master-addr=127.0.0.1",
               f"--master-port={free_port()}", "-m", "wgan", "train", "--preset", "quick", "--device", "cpu",
               "--data", str(data), "--steps", "100000", "--log-every-steps", "2", "--no-tensorboard",
               "--no-progress", "--sample-every-steps", "0", "--checkpoint-every-steps", "0", "--runs-dir", str(runs)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not any(p.stat().st_size for p in runs.glob("*/metrics.jsonl")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(proc.communicate()[1][-3000:])
            time.sleep(0.5)
        time.sleep(2)  # a few more steps: the batches' pages are touched
        pids = workers(proc.pid)
        assert len(pids) == 2, pids
        return sum(pss_bytes(p) for p in pids)
    finally:
        proc.terminate()
        proc.communicate(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400_000, help="images in the large dataset")
    parser.add_argument("--keep", type=Path, help="write the datasets and runs here (else a temporary folder)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="wgan-pss-"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(root / "cache")}
    small_bytes = write_idx_dataset(root / "small", 1_000)
    large_bytes = write_idx_dataset(root / "large", args.images)
    small = summed_pss(root / "small", root / "runs-small", env)
    large = summed_pss(root / "large", root / "runs-large", env)
    copies = (large - small) / (large_bytes - small_bytes)
    mib = 2**20
    print(f"dataset: {args.images:,} images of 28x28 = {large_bytes / mib:.0f} MiB (small: {small_bytes / mib:.1f} MiB)")
    print(f"summed PSS of the 2 processes: small {small / mib:.0f} MiB, large {large / mib:.0f} MiB")
    print(f"growth: {(large - small) / mib:.0f} MiB = {copies:.2f} copies of the dataset")


if __name__ == "__main__":
    main()
