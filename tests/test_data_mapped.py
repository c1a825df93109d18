"""Uncompressed IDX images are mapped, not read: the page cache holds them once for every process of a
machine and drops them under memory pressure, so a dataset larger than RAM trains. What it costs a
process is measured as anonymous memory (RssAnon), which a copy would fill and a mapping does not."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from wgan.data import load_dataset
from wgan.data.cache import decoded_cache_dir

SRC = Path(__file__).resolve().parents[1] / "src"


def write_idx_pair(folder: Path, images: np.ndarray, packed: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    labels = (np.arange(len(images)) % 10).astype(np.uint8)
    for split in ("train", "t10k"):
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
            path = folder / f"{split}-{kind}-ubyte{'.gz' if packed else ''}"
            with (gzip.open(path, "wb") if packed else open(path, "wb")) as f:
                f.write(header + array.tobytes())
    return folder


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_uncompressed_images_are_the_files_own_pages_and_equal_to_the_packed_ones(tmp_path):
    images = _images(50)
    plain = load_dataset("fashion-mnist", data_path=write_idx_pair(tmp_path / "plain", images))
    packed = load_dataset("fashion-mnist", data_path=write_idx_pair(tmp_path / "packed", images, packed=True))
    assert plain.mapped_from == str(tmp_path / "plain" / "train-images-idx3-ubyte")
    # gzipped: unpacked once into the decoded cache, whose file is then mapped the same way
    assert Path(packed.mapped_from).parent == decoded_cache_dir() and packed.mapped_from.endswith(".npy")
    assert torch.equal(plain.x, packed.x) and torch.equal(plain.y, packed.y) and plain.x.shape == (50, 1, 28, 28)
    plain.x[0].fill_(7)  # copy-on-write: the process's page changes, the user's file never does
    assert (tmp_path / "plain" / "train-images-idx3-ubyte").read_bytes()[16:16 + 784] == images[0].tobytes()


def test_images_resized_or_recoloured_are_the_processes_own_and_no_longer_the_files(tmp_path):
    folder = write_idx_pair(tmp_path / "plain", _images(8))
    assert load_dataset("fashion-mnist", data_path=folder, image_size=32).mapped_from == ""
    assert load_dataset("fashion-mnist", data_path=folder, channels=3).mapped_from == ""
    assert load_dataset("fashion-mnist", data_path=folder, image_size=28, channels=1).mapped_from != ""


def test_a_dataset_costs_a_training_process_no_copy_of_its_images(tmp_path):
    n = 160_000  # 125 MiB of images: a copy would show as that much anonymous memory
    folder, small = write_idx_pair(tmp_path / "big", _images(n)), write_idx_pair(tmp_path / "small", _images(100))
    script = textwrap.dedent(f"""
        from wgan.config import preset_config
        from wgan.training.state import TrainState

        def anon_kib():
            for line in open("/proc/self/status"):
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])

        def config(data):
            return preset_config("quick", data=data, width=8, batch_size=16, device="cpu", tensorboard=False,
                                 runs_dir={str(tmp_path / "runs")!r})

        TrainState.build(config({str(small)!r}))  # what any build costs (imports, models) comes first
        before = anon_kib()
        state = TrainState.build(config({str(folder)!r}))
        for _ in range(50):
            state.data.batch(64)
        print(anon_kib() - before, state.data.mapped_from, len(state.data), state.data.notes)
    """)
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    growth_kib, mapped_from, count, notes = proc.stdout.split(" ", 3)
    assert mapped_from.endswith("train-images-idx3-ubyte") and int(count) == n and "not copied" in notes
    assert int(growth_kib) < 16 * 1024, f"{int(growth_kib) >> 10} MiB of anonymous memory for 125 MiB of images"


def test_a_mapped_file_cut_under_a_run_ends_its_log_with_the_bus_error_not_in_silence(tmp_path):
    import signal
    import time

    from cli_helpers import TINY, wgan_process
    from conftest import tiny_idx_images
    from data_files import write_idx

    data = tmp_path / "data"
    images, labels = tiny_idx_images(4096)  # 3 MiB: batches reach far past the first pages
    write_idx(data / "train-images-idx3-ubyte", images)
    write_idx(data / "train-labels-idx1-ubyte", labels)
    runs = tmp_path / "runs"
    proc = wgan_process("train", *TINY, "--data", data, "--runs-dir", runs, "--steps", 10**6, "--batch-size", 64)
    try:
        deadline = time.monotonic() + 120
        while not list(runs.glob("*/metrics.jsonl")) or not list(runs.glob("*/metrics.jsonl"))[0].stat().st_size:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.1)
        with open(data / "train-images-idx3-ubyte", "r+b") as f:
            f.truncate(16 + 28 * 28)  # one image left of 4096: the pages past it are gone
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGBUS
    (run,) = runs.iterdir()
    log = (run / "log.txt").read_text()
    assert f"the images are mapped from {data / 'train-images-idx3-ubyte'}" in log
    assert "Fatal Python error: Bus error" in log
