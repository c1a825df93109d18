"""Tiny labelled image data for tests, written as the four Fashion-MNIST IDX files so the real loaders read it.

Class k is a bright 8x8 square at one of ten positions (a 2 x 5 layout), jittered by up to 2 pixels, over
faint noise: a small CNN tells the classes apart after a few dozen batches.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

NUM_CLASSES = 10


def make_images(labels: np.ndarray, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    x = rng.integers(0, 40, size=(len(labels), size, size), dtype=np.int64)
    for i, k in enumerate(labels):
        row, col = divmod(int(k), 5)
        top = 4 + row * 12 + int(rng.integers(-2, 3))
        left = 1 + col * 5 + int(rng.integers(-1, 2))
        x[i, top:top + 8, left:left + 8] = rng.integers(180, 256)
    return x.astype(np.uint8)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_dataset(folder: Path, n_train: int = 1200, n_test: int = 600, seed: int = 0) -> Path:
    """Write train and test IDX files (gzipped) into `folder`; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for (images, labels), n in ((("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), n_train),
                                (("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"), n_test)):
        y = np.arange(n) % NUM_CLASSES
        rng.shuffle(y)
        _write_idx(folder / (images + ".gz"), make_images(y, rng))
        _write_idx(folder / (labels + ".gz"), y)
    return folder
