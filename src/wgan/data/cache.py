"""The decoded cache (~/.cache/wgan/decoded/): its folder, the stamps that name its files after a source's
path, sizes and modification times (so an edited source is read again), and the uncompressed .npz files
of the small arrays kept beside each decoded .npy (data/decoded.py), read with every claim checked. The
cache is only a copy: a damaged one is read as absent, never a crash."""

from __future__ import annotations

import hashlib
import math
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from wgan.files import atomic_write, stored_zip_problem, user_cache_dir


def decoded_cache_dir() -> Path:
    """Where parsed/decoded datasets are cached (apart from the per-dataset source folders)."""
    return user_cache_dir() / "decoded"


def save_cache(path: Path, **arrays: np.ndarray) -> str | None:
    """Write an uncompressed .npz atomically (loads in a fraction of a second); returns a note if the
    cache cannot be written, since a read-only cache must not stop training."""
    try:
        atomic_write(path, lambda f: np.savez(f, **arrays))
    except OSError as exc:
        return f"could not write the cache {path} ({exc.strerror or exc}); the source will be read again next time"
    return None


def load_cache(path: Path, keys: set[str], consistent: Callable[[dict[str, np.ndarray]], bool] = lambda a: True
               ) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent, damaged, lacking one of `keys` or not `consistent`
    (then the source is simply read again and the cache rewritten)."""
    if not path.is_file():
        return None
    # The cache is only a copy of the source, so whatever a damaged one raises (BadZipFile, a CRC
    # error, a truncated array's ValueError or EOFError, a wrong shape in `consistent`, ...) means
    # "read the source again", never a crash.
    if stored_zip_problem(path) or not _sizes_fit(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return arrays if keys <= set(arrays) and consistent(arrays) else None
    except Exception:
        return None


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _sizes_fit(path: Path) -> bool:
    """Whether every array's header claims no more bytes than its entry holds: a crafted header would
    otherwise have numpy allocate the array it claims before reading finds the bytes missing."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    read_header = _HEADER_READERS[np.lib.format.read_magic(member)]
                    shape, _, dtype = read_header(member)
                    if math.prod(shape) * dtype.itemsize > info.file_size:
                        return False
    except Exception:  # a header damaged past reading: the source is read again
        return False
    return True


def stamp(*parts: object) -> str:
    return hashlib.sha256("\x00".join(map(str, parts)).encode()).hexdigest()[:20]
