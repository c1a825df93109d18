"""The training images shared by the processes of a machine: the decoded uint8 (N, C, H, W) array is
written once into the decoded cache as a .npy file named by its content hash, and every process maps
that file instead of keeping a copy of its own, so the page cache holds the one copy that all of them
read (torchrun's 8 processes per machine: one copy of the dataset in RAM, not 8).

One process writes the file, atomically (a temporary file renamed), under a file lock; the others wait
on the lock and then map what it wrote. A file whose size is not what its header says (a writer on
another machine of shared storage that died mid-write, or a truncated copy) is written again. The
cache is only a copy: where it cannot be written, the process keeps its images in its own memory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import warnings
import weakref
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from wgan.data.cache import decoded_cache_dir
from wgan.errors import os_reason
from wgan.files import atomic_write

PREFIX = "images-"


def content_key(x: torch.Tensor) -> str:
    """The hash of the images' bytes and shape: equal images, one file, however they were loaded."""
    digest = hashlib.sha256(str(tuple(x.shape)).encode())
    digest.update(x.contiguous().numpy().data)
    return digest.hexdigest()[:24]


def shared_path(key: str) -> Path:
    return decoded_cache_dir() / f"{PREFIX}{key}.npy"


def is_complete(path: Path, x: torch.Tensor | None = None) -> bool:
    return cache_file_problem(path, x) is None


HALF_WRITTEN = "a half-written or altered cache file (its header or size is not that of these images)"


def cache_file_problem(path: Path, x: torch.Tensor | None = None) -> str | None:
    """Why `path` is not a whole .npy file of uint8 images as share_images writes one (C-ordered N x C x H x W,
    of x's shape where x is given, its size its header's plus the array's bytes), or None. A header edited to
    another shape of the same size would map as other images; a forged one (another type, more rows than the
    file holds) would have numpy map, or fail to map, what it claims."""
    try:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            if dtype != np.uint8 or fortran or len(shape) != 4 or (x is not None and tuple(shape) != tuple(x.shape)):
                return f"an altered cache file, whose header is not what this code writes for these images ({dtype} {shape})"
            if os.fstat(f.fileno()).st_size != f.tell() + math.prod(shape):
                return HALF_WRITTEN
            return None
    except Exception:  # a parser on bytes anyone could have written: whatever it raises means "not complete"
        return HALF_WRITTEN


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive OS file lock beside `path`, released when the block ends (or the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def map_images(path: Path) -> torch.Tensor:
    """The file's images as a tensor over a private read-only mapping (pages stay the page cache's), with a
    shared lock on the file for as long as the images live, which keeps `wgan cache` from removing it."""
    f = open(path, "rb")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)
        array = np.load(path, mmap_mode="c")  # copy-on-write: writable for torch, and nothing ever writes
    except BaseException:
        f.close()
        raise
    return tensor_holding(array, f)


def tensor_holding(array: np.ndarray, lock_file) -> torch.Tensor:
    """`array` (a read-only mapping) as a tensor, `lock_file` (its shared lock) held open until the last tensor
    over the array is gone."""
    weakref.finalize(array, lock_file.close)
    with warnings.catch_warnings():  # torch warns that the mapping is not writable; nothing ever writes to it
        warnings.simplefilter("ignore")
        return torch.from_numpy(array)


def share_images(x: torch.Tensor) -> tuple[torch.Tensor, str | None]:
    """`x` (uint8 images) as the mapped cache file of its content, written if it is not there yet; and
    a note for the log where the file had to be written again or could not be written."""
    path = shared_path(content_key(x))
    note = None
    try:
        with _locked(path):
            problem = cache_file_problem(path, x) if path.exists() else None
            if problem:
                note = f"{path}: {problem}; written again"
            if not is_complete(path, x):
                array = x.contiguous().numpy()
                atomic_write(path, lambda f: np.lib.format.write_array(f, array, allow_pickle=False))
        return map_images(path), note
    except OSError as exc:
        return x, (f"could not share the images through the cache {path} ({os_reason(exc)}); every process keeps "
                   "a copy of its own")
