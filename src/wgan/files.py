"""Generic file helpers: atomic writes, the user cache folder, the plotting back end, reads that never go
past what a check needs (small text files, zip archives of stored entries).

Nothing here knows about GANs, and nothing of ours is imported: every other module may use these.
"""

from __future__ import annotations

import os
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Callable, Iterator


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call write(file_object) on a temporary file beside `path`, fsync, then rename over `path`: a
    crash or a full disk mid-write leaves the previous file as it was, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the permissions an ordinary write would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def user_cache_dir() -> Path:
    """~/.cache/wgan (or $XDG_CACHE_HOME/wgan): downloaded and decoded datasets, classifiers, features."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wgan"


def pyplot():
    """matplotlib.pyplot on the Agg back end: files only, no window, works without a display. Imported
    on first use, so commands that draw nothing do not pay for matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _open_regular(path: Path) -> IO[bytes] | None:
    """`path` opened for reading if it is a regular file, else None (missing, unreadable, a FIFO or a device,
    whose reading would never end): opened without blocking, since opening a FIFO waits for a writer."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        return None
    return f


def open_to_append(path: Path, mode: str = "a", **kwargs) -> IO:
    """`path` opened to append (made if missing), never through a symbolic link: a run's log files are its
    own, and a link put in their place must not make a write land in whatever file it points at."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        if Path(path).is_symlink():
            raise OSError(exc.errno, "a symbolic link, not a file of its own; remove the link", str(path)) from None
        raise
    return os.fdopen(fd, mode, **kwargs)


def read_head(path: Path, size: int) -> bytes:
    """The first `size` bytes of the regular file `path` (b"" where it is missing, unreadable or no regular
    file): a look at a file's magic number that never waits on a FIFO."""
    f = _open_regular(path)
    if f is None:
        return b""
    with f:
        try:
            return f.read(size)
        except OSError:
            return b""


def read_small_text(path: Path, limit_bytes: int) -> str | None:
    """The text of the regular file `path` if it holds at most `limit_bytes` bytes, else None (also when
    it is missing, unreadable, or a FIFO or device, whose reading would never end): no more than the limit
    is ever read, whatever the file claims to be."""
    f = _open_regular(path)
    if f is None:
        return None
    try:
        with f:
            data = f.read(limit_bytes + 1)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace") if len(data) <= limit_bytes else None


def bounded_lines(path: Path, max_line_bytes: int) -> Iterator[str]:
    """The lines of the regular file `path`, passing over any longer than `max_line_bytes` (read past in
    pieces of that size, never held whole), so a file of one endless line costs what one line may; nothing
    from a missing file or a FIFO."""
    f = _open_regular(path)
    if f is None:
        return
    with f:
        while line := f.readline(max_line_bytes + 1):
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):
                    line = f.readline(max_line_bytes + 1)
                continue
            yield line.decode("utf-8", errors="replace")


def tail_text(path: Path, limit_bytes: int) -> str:
    """The last `limit_bytes` bytes of the regular file `path` as text ("" where it is missing, unreadable
    or no regular file): what a status line at the end of a log needs, however long the log has grown."""
    f = _open_regular(path)
    if f is None:
        return ""
    with f:
        try:
            f.seek(max(0, os.fstat(f.fileno()).st_size - limit_bytes))
            data = f.read(limit_bytes)
        except OSError:
            return ""
    return data.decode("utf-8", errors="replace")


def stored_zip_problem(path: Path) -> str | None:
    """Why `path` is not an intact zip archive of stored (uncompressed) entries, as torch.save and
    numpy.savez write, or None. A compressed entry could unpack to far more than the file holds (a zip
    bomb), and the readers would allocate all of it, so it is refused before anything is unpacked; the
    CRC32 checksums are verified, which PyTorch's reader does not do."""
    try:
        with zipfile.ZipFile(path) as archive:
            packed = [i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
            damaged = None if packed else archive.testzip()
    except Exception:  # a parser on untrusted bytes: whatever it raises means the same thing
        return "truncated or not a complete zip archive"
    if packed:
        return f"{packed[0]} is compressed, which the files written here never are"
    if damaged is not None:
        return f"{damaged} fails its CRC check (damaged on disk or in transfer)"
    return None
