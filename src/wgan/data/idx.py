"""IDX files: MNIST, Fashion-MNIST and EMNIST letters, gzipped or not, under the names and folder layouts
of LeCun's site, torchvision, NIST's EMNIST zip and Kaggle's MNIST zip. Uncompressed images are mapped in
place; gzipped ones, and EMNIST's (stored transposed), are decoded once, in chunks, into the decoded cache."""

from __future__ import annotations

import gzip
import math
import os
import string
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from wgan.data.cache import stamp
from wgan.data.core import Data, LoadOptions
from wgan.data.decoded import Decoded, Rows, decoded
from wgan.data.search import candidate_dirs, download_root, not_there, refuse_file, try_download
from wgan.errors import UserError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class IdxHeader:
    packed: bool  # gzip-compressed
    dtype: np.dtype
    dims: tuple[int, ...]
    offset: int  # where the values start, in the (unpacked) bytes

    @property
    def data_bytes(self) -> int:
        return math.prod(self.dims) * self.dtype.itemsize  # whole numbers: no overflow, whatever the dims


def _unreadable(path: Path, exc: BaseException) -> UserError:
    return UserError(f"{path}: cannot read IDX file ({exc}); re-download it")


def read_idx_header(path: Path) -> IdxHeader:
    """An IDX file's type and dimensions, from its header alone (unpacked on the fly where it is gzipped),
    with clear errors on bad files; an uncompressed file's size is checked against them here."""
    try:
        with open(path, "rb") as f:
            # The magic bytes decide, not the suffix: browsers often unpack a downloaded .gz and keep its name.
            packed = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if packed else open(path, "rb")) as f:
            raw = f.read(4)
            if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
                raise UserError(f"{path}: not an IDX file (bad magic number); re-download it")
            raw += f.read(4 * raw[3])
            size = None if packed else os.fstat(f.fileno()).st_size
    except (OSError, EOFError, zlib.error) as exc:
        raise _unreadable(path, exc) from None
    ndim = raw[3]
    header = IdxHeader(packed, np.dtype(_IDX_DTYPES[raw[2]]),
                       tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)), 4 + 4 * ndim)
    if len(raw) < header.offset:
        raise UserError(f"{path}: truncated IDX header; re-download it")
    if size is not None and size - header.offset != header.data_bytes:
        raise UserError(f"{path}: IDX file holds {size - header.offset} data bytes, its header says "
                        f"{header.data_bytes}; re-download it")
    return header


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not, whatever its suffix) into a numpy array, with clear errors on bad
    files. An uncompressed file is mapped, not read: its pages are the page cache's, shared by every process
    that maps it and dropped under memory pressure, so a dataset larger than the machine's RAM trains. A
    gzipped file (labels; images are unpacked in chunks by decode_idx_images) is decompressed as far as its
    header, which is checked first, and then no further than the data the header claims (and one byte more,
    to see that nothing follows): a small file that unpacks to gigabytes costs what its header says, never
    what it unpacks to."""
    header = read_idx_header(path)
    if header.packed:
        _check_fits_in_memory(path, header.data_bytes)
        try:
            with gzip.open(path, "rb") as stream:
                stream.seek(header.offset)
                data, extra = _read_at_most(stream, header.data_bytes)
        except (OSError, EOFError, zlib.error) as exc:
            raise _unreadable(path, exc) from None
        if len(data) != header.data_bytes or extra:
            held = f"more than {header.data_bytes}" if extra else str(len(data))
            raise UserError(f"{path}: IDX file holds {held} data bytes, its header says {header.data_bytes}; "
                            "re-download it")
        return np.frombuffer(data, dtype=header.dtype).reshape(header.dims)
    if header.data_bytes == 0:
        return np.zeros(header.dims, header.dtype)
    # copy-on-write: writable for torch, and a write (there is none) would stay in this process
    return np.memmap(path, dtype=header.dtype, mode="c", offset=header.offset, shape=header.dims)


IDX_CHUNK_IMAGES = 4096  # images unpacked and written at once


def decode_idx_images(path: Path, header: IdxHeader, transpose: bool, rows: Rows) -> int:
    """The uint8 N x H x W images of an IDX file into `rows` as N x 1 x H x W, unpacked and written
    IDX_CHUNK_IMAGES at a time (turned from EMNIST's column-major storage where `transpose`)."""
    n, h, w = header.dims
    try:
        with (gzip.open(path, "rb") if header.packed else open(path, "rb")) as f, \
                tqdm(total=n, desc=f"unpacking {path.name}", unit=" img", unit_scale=True, disable=None,
                     leave=False) as bar:
            f.seek(header.offset)
            for start in range(0, n, IDX_CHUNK_IMAGES):
                count = min(IDX_CHUNK_IMAGES, n - start)
                blob = f.read(count * h * w)
                if len(blob) != count * h * w:
                    raise UserError(f"{path}: IDX file ends after {start * h * w + len(blob)} data bytes, its "
                                    f"header says {header.data_bytes}; re-download it")
                chunk = np.frombuffer(blob, dtype=np.uint8).reshape(count, h, w)
                rows.put(start, (chunk.transpose(0, 2, 1) if transpose else chunk)[:, None])
                bar.update(count)
            if f.read(1):
                raise UserError(f"{path}: IDX file holds more data bytes than its header says "
                                f"({header.data_bytes}); re-download it")
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _unreadable(path, exc) from None
    return n


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
    header = read_idx_header(images)
    y = read_idx(labels)
    # IDX also stores signed, 16/32-bit and float values; these datasets' images are bytes 0-255, their
    # labels whole numbers: anything else is another file under a dataset's name, refused while loading.
    if header.dtype != np.uint8:
        raise UserError(f"{images}: IDX images of type {header.dtype}, where {name} stores unsigned bytes (0x08); "
                        "pass the dataset's own image file")
    if y.dtype.kind not in "iu":
        raise UserError(f"{labels}: IDX labels of type {y.dtype}, where {name} stores whole numbers; pass the "
                        "dataset's own label file")
    if len(header.dims) != 3 or y.ndim != 1 or header.dims[0] != y.shape[0]:
        raise UserError(f"{images}: expected N x H x W images with N labels in {labels}, got {header.dims} and "
                        f"{y.shape}")
    y = y.astype(np.int64) - label_offset
    if y.size and (int(y.min()) < 0 or int(y.max()) >= len(class_names)):
        bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
        raise UserError(f"{labels}: label {bad + label_offset} out of range "
                        f"{label_offset}-{len(class_names) - 1 + label_offset}; re-download it")
    notes: list[str] = []
    if not header.packed and not transpose:  # the file's own pages, as they are
        x, mapped = torch.from_numpy(read_idx(images)).unsqueeze(1), images
    else:  # unpacked or turned upright once, into the decoded cache's file
        found = _decoded_idx(name, split, images, header, transpose)
        x, mapped, notes = found.images, found.path, found.notes
    return Data(name, x, torch.from_numpy(y), len(class_names), list(class_names), source=str(images.parent),
                mapped_from=str(mapped or ""), notes=notes)


def _decoded_idx(name: str, split: str, images: Path, header: IdxHeader, transpose: bool) -> Decoded:
    path = images.resolve()
    st = path.stat()
    prefix = f"{name}-{split}-{stamp(path)[:8]}-"
    n, h, w = header.dims
    return decoded(prefix + stamp("idx-v1", path, st.st_size, st.st_mtime_ns, transpose), prefix,
                   (1, w, h) if transpose else (1, h, w), n,
                   lambda rows: (decode_idx_images(images, header, transpose, rows), {}),
                   source=str(images), consistent=lambda count, arrays: count == n)


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
