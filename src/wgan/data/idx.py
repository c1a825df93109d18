"""IDX files: MNIST, Fashion-MNIST and EMNIST letters, gzipped or not, under the names and folder layouts
of LeCun's site, torchvision, NIST's EMNIST zip and Kaggle's MNIST zip."""

from __future__ import annotations

import gzip
import math
import os
import string
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from wgan.data.core import Data, LoadOptions
from wgan.data.search import candidate_dirs, download_root, not_there, refuse_file, try_download
from wgan.errors import UserError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not, whatever its suffix) into a numpy array, with clear errors on bad
    files. An uncompressed file is mapped, not read: its pages are the page cache's, shared by every process
    that maps it and dropped under memory pressure, so a dataset larger than the machine's RAM trains. A
    gzipped one is decompressed as far as its header, which is checked first, and then no further than the
    data the header claims (and one byte more, to see that nothing follows): a small file that unpacks to
    gigabytes costs what its header says, never what it unpacks to."""
    try:
        with open(path, "rb") as f:
            # The magic bytes decide, not the suffix: browsers often unpack a downloaded .gz and keep its name.
            packed = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f, mode="rb") if packed else f
            dtype, dims, header = _idx_header(path, stream)
            expected = math.prod(dims) * dtype.itemsize  # whole numbers: no overflow, whatever the dims
            if packed:
                _check_fits_in_memory(path, expected)
                data, extra = _read_at_most(stream, expected)
                size = header + len(data) + extra
            else:
                size = os.fstat(f.fileno()).st_size
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise UserError(f"{path}: cannot read IDX file ({exc}); re-download it") from None
    if size - header != expected:
        held = f"more than {expected}" if size - header > expected else str(size - header)
        raise UserError(f"{path}: IDX file holds {held} data bytes, its header says {expected}; re-download it")
    if packed:
        return np.frombuffer(data, dtype=dtype).reshape(dims)
    if expected == 0:
        return np.zeros(dims, dtype)
    # copy-on-write: writable for torch, and a write (there is none) would stay in this process
    return np.memmap(path, dtype=dtype, mode="c", offset=header, shape=tuple(dims))


def _idx_header(path: Path, stream) -> tuple[np.dtype, list[int], int]:
    """The data type, dimensions and header length of the IDX file open as `stream`, read from its header alone."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number); re-download it")
    ndim = magic[3]
    raw = stream.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise UserError(f"{path}: truncated IDX header; re-download it")
    dims = [int.from_bytes(raw[4 * i: 4 + 4 * i], "big") for i in range(ndim)]
    return np.dtype(_IDX_DTYPES[magic[2]]), dims, 4 + 4 * ndim


def _check_fits_in_memory(path: Path, data_bytes: int) -> None:
    """A gzipped file is decompressed into memory: one whose header claims more than the machine holds is
    refused before a byte of its data is unpacked."""
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if data_bytes > memory / 2:
        raise UserError(f"{path}: its IDX header says {data_bytes / 2**30:,.1f} GiB of data, more than half this "
                        f"machine's {memory / 2**30:.0f} GiB; not a file of this dataset, or decompress it first "
                        "(an uncompressed file is mapped, not read)")


def _read_at_most(stream, size: int) -> tuple[bytearray, int]:
    """Up to `size` bytes of `stream`, and whether anything follows them (0 or 1)."""
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    del view
    if got < size:
        del data[got:]
    return data, len(stream.read(1))


IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EMNIST_LETTERS_FILES = {
    "train": ("emnist-letters-train-images-idx3-ubyte", "emnist-letters-train-labels-idx1-ubyte"),
    "test": ("emnist-letters-test-images-idx3-ubyte", "emnist-letters-test-labels-idx1-ubyte"),
}


def _idx_names(stem: str) -> tuple[str, ...]:
    """The names an IDX file goes by: LeCun's `train-images-idx3-ubyte`, and the dotted
    `train-images.idx3-ubyte` of Kaggle's MNIST zip and some mirrors."""
    head, sep, tail = stem.rpartition("-idx")
    return (stem, f"{head}.idx{tail}") if sep else (stem,)


def _find_file(dirs: list[Path], stem: str) -> Path | None:
    # "raw" is torchvision's layout; "gzip" is what NIST's EMNIST zip unpacks to. Kaggle's MNIST zip also
    # wraps each file in a folder of the same name (train-images-idx3-ubyte/train-images-idx3-ubyte).
    for d in dirs:
        for sub in ("", "raw", "gzip"):
            for name in _idx_names(stem):
                for suffix in ("", ".gz"):
                    for p in (d / sub / (name + suffix), d / sub / name / (name + suffix)):
                        if p.is_file():
                            return p
    return None


def load_idx_dataset(name: str, *, split: str, data_path, torchvision_cls: str, class_names: list[str],
                     download: bool = True, files: dict[str, tuple[str, str]] = IDX_FILES,
                     fetch: Callable[[Path], object] | None = None, label_offset: int = 0,
                     transpose: bool = False) -> Data:
    """An IDX image/label pair. `label_offset` is subtracted from the stored labels (EMNIST letters
    store 1-26); `transpose` undoes EMNIST's column-major storage so letters stand upright."""
    img_stem, lbl_stem = files[split]
    refuse_file(data_path, name, f"{img_stem}[.gz]")
    dirs = candidate_dirs(name, data_path, torchvision_cls)
    images, labels = _find_file(dirs, img_stem), _find_file(dirs, lbl_stem)
    if images is None or labels is None:
        if download:
            if fetch is None:
                def fetch(root: Path) -> None:
                    import torchvision  # here, not at the top: seconds to import, needed only to download

                    getattr(torchvision.datasets, torchvision_cls)(str(root), train=(split == "train"), download=True)
            if try_download(fetch, download_root(name, data_path)):
                images, labels = _find_file(dirs, img_stem), _find_file(dirs, lbl_stem)
        if images is None or labels is None:
            hint = " (Debian: apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
            raise not_there(name, data_path, f"{name} {split} IDX files ({img_stem}[.gz], {lbl_stem}[.gz], "
                             f"flat or under {torchvision_cls}/raw/)", dirs, torchvision_cls, download, hint)
    x = read_idx(images)
    y = read_idx(labels)
    # IDX also stores signed, 16/32-bit and float values; these datasets' images are bytes 0-255, their
    # labels whole numbers: anything else is another file under a dataset's name, refused while loading.
    if x.dtype != np.uint8:
        raise UserError(f"{images}: IDX images of type {x.dtype}, where {name} stores unsigned bytes (0x08); "
                        "pass the dataset's own image file")
    if y.dtype.kind not in "iu":
        raise UserError(f"{labels}: IDX labels of type {y.dtype}, where {name} stores whole numbers; pass the "
                        "dataset's own label file")
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise UserError(f"{images}: expected N x H x W images with N labels in {labels}, got {x.shape} and {y.shape}")
    y = y.astype(np.int64) - label_offset
    if y.size and (int(y.min()) < 0 or int(y.max()) >= len(class_names)):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        raise UserError(f"{labels}: label {bad + label_offset} out of range "
                        f"{label_offset}-{len(class_names) - 1 + label_offset}; re-download it")
    mapped = isinstance(x, np.memmap) and not transpose
    if transpose:
        x = x.transpose(0, 2, 1)
    # copy, unless mapped: frombuffer's array is read-only, and a transposed one is not contiguous
    x_t = torch.from_numpy(x if mapped else x.copy()).unsqueeze(1)
    return Data(name, x_t, torch.from_numpy(y), len(class_names), list(class_names), source=str(images.parent),
                mapped_from=str(images) if mapped else "")


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
LETTER_CLASSES = list(string.ascii_uppercase)
MNIST_CLASSES = [str(i) for i in range(10)]


def load_mnist(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
    return load_idx_dataset("mnist", split=split, data_path=data_path, torchvision_cls="MNIST",
                            class_names=MNIST_CLASSES)


def load_fashion_mnist(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
    return load_idx_dataset("fashion-mnist", split=split, data_path=data_path, torchvision_cls="FashionMNIST",
                            class_names=FASHION_CLASSES)


def load_emnist_letters(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
    def fetch(root: Path) -> None:
        import torchvision  # here, not at the top: seconds to import, needed only to download

        torchvision.datasets.EMNIST(str(root), split="letters", train=(split == "train"), download=True)

    return load_idx_dataset("emnist-letters", split=split, data_path=data_path, torchvision_cls="EMNIST",
                            class_names=LETTER_CLASSES, files=EMNIST_LETTERS_FILES, fetch=fetch, label_offset=1,
                            transpose=True)
