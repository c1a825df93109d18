"""Shared fixtures. Everything here is made on the fly in tmp_path: the tests need no dataset on disk."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from synth_idx import write_dataset
from wgan import metrics

# ---------------------------------------------------------------------------------------------
# One intra-op thread: the tests' tiny models gain nothing from more, and on a busy shared CPU the
# extra OpenMP threads spin against other work (a 20-step CLI run: about 60 s with 2 threads, 4 s with 1).
# The environment variable carries the same setting to the `python -m wgan` subprocesses tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

# ---------------------------------------------------------------------------------------------
# Two code paths (plain vs fused step, one process vs two, unfolded vs library convolution) are
# compared in float64: rounding there is ~1e-15, so the comparison does not depend on which kernels
# the machine's CPU selects (AVX2, AVX-512, ARM), while a structural slip (another batch, a missed
# penalty, a wrong epsilon) is still off by many orders of magnitude, and the tolerance can be tight.
CROSS_PATH_RTOL = 1e-9
CROSS_PATH_ATOL = 1e-12


@pytest.fixture
def float64():
    """torch's default float type is float64 for the test: models, noise and batches."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# ---------------------------------------------------------------------------------------------
# Tiny IDX datasets in the MNIST / Fashion-MNIST file format


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file: magic 0x0000 08 <ndim>, big-endian uint32 dims, then the data.
    Gzipped when the name ends in .gz, as the distributed files are."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    blob = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob += array.tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(blob)
    return path


def tiny_idx_images(num: int, num_classes: int = 10, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images a class can be told from: a bright horizontal bar whose row depends on the label, on faint noise."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(num) % num_classes).astype(np.uint8)
    images = rng.integers(0, 40, size=(num, size, size), dtype=np.uint8)
    rows = 2 + labels.astype(int) * (size - 6) // max(num_classes - 1, 1)
    for i, r in enumerate(rows):
        images[i, r:r + 3, 4:size - 4] = 255
    return images, labels


def write_idx_dataset(folder: Path, num_train: int = 64, num_test: int = 32, num_classes: int = 10,
                      size: int = 28) -> Path:
    """The four Fashion-MNIST/MNIST files (train + t10k, images + labels), gzipped, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, num, seed in (("train", num_train, 0), ("t10k", num_test, 1)):
        images, labels = tiny_idx_images(num, num_classes, size, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture
def fashion_idx_dir(tmp_path: Path) -> Path:
    """A folder with tiny gzipped Fashion-MNIST-format IDX files (64 train, 32 test images, 10 classes)."""
    return write_idx_dataset(tmp_path / "fashion-mnist")


@pytest.fixture(scope="session", autouse=True)
def private_user_cache(tmp_path_factory):
    """The tests' decoded images, data caches and classifiers go to a folder of the test session, never into
    the user's ~/.cache/wgan (a test that wants a cache of its own sets XDG_CACHE_HOME again)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
        yield


@pytest.fixture(scope="module")
def fashion_idx_dir_module(tmp_path_factory) -> Path:
    """The same tiny files, shared by the tests of one module (for fixtures that train once)."""
    return write_idx_dataset(tmp_path_factory.mktemp("data") / "fashion-mnist")


# ---------------------------------------------------------------------------------------------


@pytest.fixture
def isolated_data_dirs(tmp_path, monkeypatch):
    """No user cache, system dataset dir, $WGAN_DATA or network from the machine running the tests."""
    from wgan.data import search

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("WGAN_OFFLINE", "1")
    monkeypatch.delenv("WGAN_DATA", raising=False)
    monkeypatch.setattr(search, "SYSTEM_DATA_DIRS", (tmp_path / "system",))


# ---------------------------------------------------------------------------------------------
# The metrics tests' evaluator


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Synthetic Fashion-MNIST-shaped data, a private cache dir, and an evaluator whose classifier is trained
    once for the module: the metrics tests' common ground (test_inception.py has an `env` of its own)."""
    root = tmp_path_factory.mktemp("metrics")
    data_dir = write_dataset(root / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        notes: list[str] = []
        ev = metrics.Evaluator(["fcd", "class-coverage", "cond-accuracy"], dataset="fashion-mnist",
                               data_path=data_dir, note=notes.append)
        assert ev.prepare(points=False, conditional=True) == ["fcd", "class-coverage", "cond-accuracy"]
        yield dict(ev=ev, data_dir=data_dir, root=root, notes=notes)
