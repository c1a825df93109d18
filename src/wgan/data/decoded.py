"""Sources decoded once into the file every process maps: a uint8 .npy in the decoded cache, named by the
source's identity (its paths, sizes, modification times and the decode options), so finding it needs no
pass over decoded bytes, and a source edited since has another name and is decoded again.

A decode writes its images in chunks, at their place in a preallocated temporary file beside the final
one, under an exclusive lock (STEM.lock) so that one process of a machine (or of the machines sharing the
folder) decodes while the others wait; the small arrays beside the images (labels, which files were kept,
notes) go to STEM.npz, and the images are renamed into place last. Whatever a killed decode leaves is a
temporary file that nothing trusts: the next decode of that source removes it and says so in one line.
Peak memory is a chunk's, whatever the dataset's size.

A process that maps the file holds a shared lock on it for as long as it maps it: what prunes the cache
(wgan.caches) removes only files it can lock exclusively, so never one that a live process maps.

Where the cache cannot be written (a read-only disk), the images are decoded into the process's own memory,
as before the cache, and a note says so; a disk that fills while decoding stops the load with one line,
the partial file removed and the source untouched.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np
import torch

from wgan.data.cache import decoded_cache_dir, load_cache
from wgan.data.shared import tensor_holding
from wgan.errors import UserError, os_reason
from wgan.files import atomic_write

# A disk that fills is the user's to fix; any other error writing the cache only costs the memory of a copy.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class Rows:
    """Where a decode puts its images: rows of an (N, C, H, W) uint8 array, in a file or in memory."""

    def __init__(self, sample_shape: tuple[int, ...], capacity: int):
        self.sample_shape, self.capacity = tuple(sample_shape), capacity
        self.sample_bytes = int(np.prod(sample_shape))

    def put(self, start: int, rows: np.ndarray) -> None:
        """Rows start, start + 1, ... of the array."""
        raise NotImplementedError

    def put_at(self, index: np.ndarray, rows: np.ndarray) -> None:
        """Row i of `rows` at row index[i] of the array (a decode that reorders, as the letters CSV's split)."""
        order = np.argsort(index, kind="stable")
        index, rows = index[order], rows[order]
        # runs of consecutive destinations are written at once
        breaks = np.flatnonzero(np.diff(index) != 1) + 1
        for run_index, run_rows in zip(np.split(index, breaks), np.split(rows, breaks)):
            if len(run_index):
                self.put(int(run_index[0]), run_rows)

    def _check(self, start: int, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.uint8)
        if rows.shape[1:] != self.sample_shape or start < 0 or start + len(rows) > self.capacity:
            raise AssertionError(f"rows {start}..{start + len(rows)} of shape {rows.shape[1:]} do not fit "
                                 f"{self.capacity} x {self.sample_shape}")
        return rows


class _FileRows(Rows):
    def __init__(self, fd: int, offset: int, sample_shape, capacity: int):
        super().__init__(sample_shape, capacity)
        self.fd, self.offset = fd, offset

    def put(self, start: int, rows: np.ndarray) -> None:
        data = memoryview(self._check(start, rows)).cast("B")
        at = self.offset + start * self.sample_bytes
        while len(data):  # pwrite may write less than asked
            written = os.pwrite(self.fd, data, at)
            data, at = data[written:], at + written


class _MemoryRows(Rows):
    def __init__(self, sample_shape, capacity: int):
        super().__init__(sample_shape, capacity)
        self.array = np.empty((capacity, *sample_shape), dtype=np.uint8)

    def put(self, start: int, rows: np.ndarray) -> None:
        rows = self._check(start, rows)
        self.array[start:start + len(rows)] = rows


# decode(rows) -> (number of rows written, from row 0; the small arrays to keep beside the images)
Decode = Callable[[Rows], "tuple[int, dict[str, np.ndarray]]"]


@dataclass
class Decoded:
    images: torch.Tensor  # uint8 (N, C, H, W): the mapped file's pages, or the process's own memory
    arrays: dict[str, np.ndarray]  # what the decode kept beside the images
    path: Path | None  # the mapped file; None where the images are the process's own
    notes: list[str] = field(default_factory=list)  # what this load met in the cache


def decoded(stem: str, prefix: str, sample_shape: tuple[int, ...], capacity: int | Callable[[], int], decode: Decode, *,
            source: str, consistent: Callable[[int, dict[str, np.ndarray]], bool] = lambda n, a: True) -> Decoded:
    """The images of the source that `stem` names (STEM.npy in the decoded cache): mapped where they were
    decoded before, else decoded by `decode` into at most `capacity` rows of `sample_shape`. `prefix`, the
    start of the stems of the same source and options, finds its older decodes, removed once this one is
    written. `consistent(n, arrays)` checks what a cached decode kept, before it is trusted."""
    path = decoded_cache_dir() / f"{stem}.npy"
    rows_needed = capacity if isinstance(capacity, int) else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        found = _mapped(path, sample_shape, consistent)
        if found is not None:
            return found
        with locked(lock_path(path)):
            found = _mapped(path, sample_shape, consistent)  # another process decoded it while this one waited
            if found is not None:
                return found
            notes = _clear_leftovers(path, source)
            rows_needed = capacity if isinstance(capacity, int) else capacity()
            _write(path, sample_shape, rows_needed, decode, source)
            _forget_older(prefix, path)
            found = _mapped(path, sample_shape, consistent)  # under the lock still: no pruner between
        if found is None:  # written and checked a moment ago: only a file system that loses writes gets here
            raise OSError(errno.EIO, "the written file does not read back")
        found.notes[:0] = notes
        return found
    except OSError as exc:
        if rows_needed is None:
            rows_needed = capacity()
        if exc.errno in DISK_FULL:
            needed = rows_needed * int(np.prod(sample_shape))
            raise UserError(f"{path.parent}: {os_reason(exc)} while decoding {source} ({needed / 2**30:.2f} GiB "
                            "needed); the partial file is removed and the source untouched: free some space "
                            "(`wgan cache` lists what the cache holds) or set XDG_CACHE_HOME to a larger "
                            "disk") from None
        rows = _MemoryRows(sample_shape, rows_needed)
        count, arrays = decode(rows)
        note = (f"could not write the decoded cache {path.parent} ({os_reason(exc)}): the images of {source} "
                "are kept in this process's memory and decoded again next time; set XDG_CACHE_HOME to a "
                "writable folder to keep them")
        return Decoded(torch.from_numpy(rows.array[:count]), arrays, None, [note])


# ---------------------------------------------------------------------------------------------
# Locks: exclusive on STEM.lock while a process decodes; shared on STEM.npy while a process maps it.


def lock_path(path: Path) -> Path:
    return path.with_suffix(".lock")


@contextlib.contextmanager
def locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive OS lock on the file `path` (made if absent), released when the block ends or the process
    dies; yields False where `blocking` is off and another process holds it. The lock is taken on the file
    that `path` names once locked: a pruner may remove a lock file between its opening and its locking."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        if _same_file(fd, path):
            break
        os.close(fd)
    try:
        yield True
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (st.st_dev, st.st_ino)


def in_use(path: Path) -> bool:
    """Whether a live process (this one included) maps `path`: its shared lock stops an exclusive one, which
    flock refuses to another open file of the same process too."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _mapped(path: Path, sample_shape: tuple[int, ...], consistent) -> Decoded | None:
    """The decode at `path`, mapped and locked shared, or None where there is none that can be trusted (absent,
    cut short, a header that is not what this code writes, arrays beside it missing or inconsistent)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)
        shape, offset = _trusted_header(f, sample_shape) if _same_file(f.fileno(), path) else (None, 0)
        arrays = None if shape is None else load_cache(path.with_suffix(".npz"), {"source", "shape"})
        if arrays is None or tuple(arrays["shape"].tolist()) != shape or not consistent(shape[0], arrays):
            f.close()
            return None
        if shape[0] == 0:
            images = np.zeros(shape, np.uint8)
        else:  # copy-on-write: writable for torch, and nothing ever writes
            images = np.memmap(f, dtype=np.uint8, mode="c", offset=offset, shape=shape)
        with contextlib.suppress(OSError):  # when it was last used, for the pruning of the cache
            os.utime(path.with_suffix(".npz"))
    except BaseException:
        f.close()
        raise
    # The shared lock is held as long as the images are: released when the last tensor over them goes.
    return Decoded(tensor_holding(images, f), arrays, path)


def _trusted_header(f: IO[bytes], sample_shape: tuple[int, ...]) -> tuple[tuple[int, ...] | None, int]:
    """(shape, data offset) of the .npy file `f` where it is what a decode writes: uint8, C order, rows of
    `sample_shape`, and exactly as many bytes as its header says. (None, 0) otherwise: a file cut short or
    a forged header would have the reader allocate, or map past the end of, what it claims."""
    try:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = {(1, 0): np.lib.format.read_array_header_1_0,
                                 (2, 0): np.lib.format.read_array_header_2_0}[version](f)
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size
    except Exception:  # a parser on bytes anyone could have written: whatever it raises means "not trusted"
        return None, 0
    if (dtype != np.uint8 or fortran or len(shape) != 1 + len(sample_shape) or tuple(shape[1:]) != sample_shape
            or shape[0] < 0 or size != offset + shape[0] * int(np.prod(sample_shape))):
        return None, 0
    return tuple(shape), offset


# ---------------------------------------------------------------------------------------------
# Writing


def _header(shape: tuple[int, ...], length: int | None = None) -> bytes:
    """A version 1.0 .npy header for uint8 `shape`, padded as numpy pads it (to a multiple of 64 bytes) or to
    `length`: a decode that keeps fewer rows than it made room for rewrites the header in place, at the same
    length, which numpy's writer cannot promise."""
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    length = length or -(-(len(text) + 11) // 64) * 64
    body = text.ljust(length - 11) + "\n"
    if len(body) != length - 10:
        raise AssertionError(f"a header for {shape} does not fit {length} bytes")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body.encode("latin1")


def _write(path: Path, sample_shape: tuple[int, ...], capacity: int, decode: Decode, source: str) -> None:
    """Decode into a temporary file made as large as `capacity` rows at once (so a disk too small fails
    before decoding, not halfway), cut to the rows written, and renamed to `path` after its arrays."""
    def write(f: IO[bytes]) -> None:
        header = _header((capacity, *sample_shape))
        f.write(header)
        f.flush()
        size = len(header) + capacity * int(np.prod(sample_shape))
        try:  # the blocks now, rather than ENOSPC halfway through (macOS has no posix_fallocate)
            getattr(os, "posix_fallocate", lambda *a: None)(f.fileno(), 0, size)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise
            # a file system that cannot reserve blocks: the writes still report a full disk, only later
        count, arrays = decode(_FileRows(f.fileno(), len(header), sample_shape, capacity))
        if count < capacity:  # skipped files: the rows written are the first `count`
            os.ftruncate(f.fileno(), len(header) + count * int(np.prod(sample_shape)))
            os.pwrite(f.fileno(), _header((count, *sample_shape), len(header)), 0)
        arrays = {**arrays, "source": np.array(source), "shape": np.array((count, *sample_shape), dtype=np.int64)}
        atomic_write(path.with_suffix(".npz"), lambda g: np.savez(g, **arrays))

    atomic_write(path, write)


def partial_files(path: Path) -> list[Path]:
    """What decodes into `path` that were stopped before the end left: atomic_write's temporary files."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _clear_leftovers(path: Path, source: str) -> list[str]:
    """Called under the decode lock, so no live decode owns what is found: a partial file of a killed decode,
    or a file at `path` that cannot be trusted. Both are removed, each with one line."""
    notes = []
    for leftover in partial_files(path):
        notes.append(f"{path.name}: a decode of {source} was stopped before it finished (its partial file "
                     f"{leftover.name} is removed); decoding again")
        leftover.unlink(missing_ok=True)
    if path.exists():
        notes.append(f"{path}: a decoded cache file that is cut short, has a header other than what this code "
                     "writes, or lacks its .npz beside it; decoding again")
    return notes


def _forget_older(prefix: str, keep: Path) -> None:
    """The same source decoded with the same options before it changed (or into the single .npz that held
    images before): those files are no longer used, and go where no process maps them."""
    stems = {p.stem for p in keep.parent.glob(f"{prefix}*") if p.suffix in (".npy", ".npz")} - {keep.stem}
    for stem in sorted(stems):
        remove_entry(keep.parent / f"{stem}.npy")


def remove_entry(path: Path) -> bool:
    """Remove the decode at `path` (.npy, .npz, .lock) unless a process decodes or maps it; whether it went.
    Both locks are held while the files go: a process about to map the file finds it gone once it gets its
    shared lock, and decodes again."""
    with locked(lock_path(path), blocking=False) as free:
        if not free:
            return False
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            fd = None
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
            for p in (path, path.with_suffix(".npz"), lock_path(path)):
                p.unlink(missing_ok=True)
        finally:
            if fd is not None:
                os.close(fd)
    return True
