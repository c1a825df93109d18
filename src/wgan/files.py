"""Generic file helpers: atomic writes, the user cache folder, the plotting back end.

Nothing here knows about GANs, and nothing of ours is imported: every other module may use these.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


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
