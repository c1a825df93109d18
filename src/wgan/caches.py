"""What the user cache holds, for `wgan cache`: the decoded datasets (~/.cache/wgan/decoded/: one .npy of
images each, with the .npz of its small arrays and its .lock) and the domain classifiers
(~/.cache/wgan/classifiers/), each with its source, size and last use; cleared, or pruned to a size. Training
prunes too, where $WGAN_CACHE_MAX_GB sets a cap: what has gone unused for PRUNE_UNUSED_DAYS, least recently
used first, until the cache fits. A file that a live process maps is never removed: its shared lock says so
(data/decoded.py); one being decoded neither (its exclusive lock).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from wgan.data.cache import decoded_cache_dir, load_cache
from wgan.data.decoded import in_use, lock_path, locked, remove_entry
from wgan.data.shared import PREFIX as SHARED_PREFIX
from wgan.errors import UserError
from wgan.files import user_cache_dir

CAP_VARIABLE = "WGAN_CACHE_MAX_GB"
PRUNE_UNUSED_DAYS = 30
GB = 10**9


def classifier_cache_dir() -> Path:
    """Where metrics/classifier.py caches the domain classifiers."""
    return user_cache_dir() / "classifiers"


@dataclass(frozen=True)
class CacheEntry:
    kind: str  # decoded, shared, partial, older format, classifier
    source: str
    size_bytes: int
    last_used_s: float  # seconds since the epoch
    path: Path  # its main file: what remove() takes away with the files beside it
    in_use: bool  # mapped by a live process, or being written


def _size(*paths: Path) -> int:
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    return total


def _last_used_s(path: Path) -> float:
    """A classifier's last use: its loading updates the access time where the file system keeps one (a daily
    one at least, with Linux's default relatime), else its writing. A decoded entry's is its .npz's
    modification time, which every use touches (reading the .npz here would move its access time)."""
    st = path.stat()
    return max(st.st_mtime, st.st_atime)


def _writer_active(npy: Path) -> bool:
    if not lock_path(npy).exists():
        return False
    with locked(lock_path(npy), blocking=False) as free:
        return not free


def _decoded_entries(folder: Path) -> list[CacheEntry]:
    entries = []
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    for name in sorted(names):
        path = folder / name
        with contextlib.suppress(FileNotFoundError):  # another process removed it meanwhile
            if name.startswith(".") and name.endswith(".tmp"):  # atomic_write's: .STEM.npy.XXXX.tmp
                npy = folder / name[1:].rsplit(".", 2)[0]
                active = _writer_active(npy)
                entries.append(CacheEntry("partial", "a decode under way" if active else
                                          "a decode stopped before it finished", _size(path),
                                          path.stat().st_mtime, path, active))
            elif name.endswith(".npy"):
                arrays = load_cache(path.with_suffix(".npz"), {"source"})
                if name.startswith(SHARED_PREFIX):
                    kind, source = "shared", "training images held in memory, shared by content"
                elif arrays is not None:
                    kind, source = "decoded", str(arrays["source"])
                else:
                    kind, source = "decoded", "unknown (its arrays are missing; decoded again when used)"
                side = path.with_suffix(".npz")
                used = (side if side.exists() else path).stat().st_mtime
                entries.append(CacheEntry(kind, source, _size(path, side, lock_path(path)), used, path,
                                          in_use(path) or _writer_active(path)))
            elif name.endswith(".npz") and name[:-4] + ".npy" not in names:
                entries.append(CacheEntry("older format", f"{name[:-4]} (images kept in the .npz itself)",
                                          _size(path, lock_path(path)), path.stat().st_mtime, path, False))
    return entries


def _classifier_entries(folder: Path) -> list[CacheEntry]:
    entries = []
    for path in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        # DATASET-CxSxS-HASH.pt, where the dataset's name may hold dashes itself
        parts = path.stem.split("-")
        shape = next((p for p in parts if "x" in p and p.replace("x", "").isdigit()), "")
        name = "-".join(parts[:parts.index(shape)]) if shape else path.stem
        with contextlib.suppress(FileNotFoundError):
            entries.append(CacheEntry("classifier", f"{name} {shape}".strip(), _size(path), _last_used_s(path),
                                      path, False))
    return entries


def cache_entries() -> list[CacheEntry]:
    """Everything the two caches hold, least recently used first."""
    entries = _decoded_entries(decoded_cache_dir()) + _classifier_entries(classifier_cache_dir())
    return sorted(entries, key=lambda e: e.last_used_s)


def remove(entry: CacheEntry) -> bool:
    """Remove an entry's files unless a live process maps or writes them; whether they went."""
    if entry.kind == "classifier":
        entry.path.unlink(missing_ok=True)
        return True
    if entry.kind == "partial":
        npy = decoded_cache_dir() / entry.path.name[1:].rsplit(".", 2)[0]
        with locked(lock_path(npy), blocking=False) as free:
            if not free:  # a decode under way
                return False
            entry.path.unlink(missing_ok=True)
            if not npy.exists():  # nothing left to lock
                lock_path(npy).unlink(missing_ok=True)
        return True
    return remove_entry(entry.path.with_suffix(".npy"))


def prune(entries: list[CacheEntry], keep_bytes: float, unused_for_s: float = 0.0,
          now_s: float | None = None) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Remove entries, least recently used first, until the rest take at most `keep_bytes`; only entries
    unused for `unused_for_s` or longer go, and never one in use. Returns (removed, kept although asked)."""
    now_s = time.time() if now_s is None else now_s
    total = sum(e.size_bytes for e in entries)
    removed, spared = [], []
    for entry in sorted(entries, key=lambda e: e.last_used_s):
        if total <= keep_bytes:
            break
        if now_s - entry.last_used_s < unused_for_s:
            break  # the rest were used more recently still
        if not entry.in_use and remove(entry):
            removed.append(entry)
            total -= entry.size_bytes
        else:
            spared.append(entry)
    return removed, spared


def cap_bytes() -> float | None:
    """$WGAN_CACHE_MAX_GB in bytes, or None where it is not set."""
    text = os.environ.get(CAP_VARIABLE, "").strip()
    if not text:
        return None
    try:
        cap = float(text)
    except ValueError:
        cap = math.nan
    if not math.isfinite(cap) or cap < 0:
        raise UserError(f"{CAP_VARIABLE}={text!r}: not a size in GB (a number >= 0, e.g. 50); set it to the most "
                        "the cache may hold, or unset it for no cap")
    return cap * GB


def prune_to_cap() -> list[str]:
    """Where $WGAN_CACHE_MAX_GB is set and the cache holds more: what has gone unused for PRUNE_UNUSED_DAYS goes,
    least recently used first, until the cache fits. One line for the log where anything went."""
    cap = cap_bytes()
    if cap is None:
        return []
    entries = cache_entries()
    total = sum(e.size_bytes for e in entries)
    if total <= cap:
        return []
    removed, _ = prune(entries, cap, unused_for_s=PRUNE_UNUSED_DAYS * 86400)
    if not removed:
        return []
    freed = sum(e.size_bytes for e in removed)
    return [f"the cache ({user_cache_dir()}) held {total / GB:.2f} GB, more than {CAP_VARIABLE}={cap / GB:g}: removed "
            f"{len(removed)} file(s) unused for {PRUNE_UNUSED_DAYS} days or more ({freed / GB:.2f} GB)"]


# ---------------------------------------------------------------------------------------------
# `wgan cache`


@dataclass(frozen=True)
class CacheRequest:
    """What `wgan cache` is asked: list (neither), --clear, or --keep-gb."""

    clear: bool = False
    keep_gb: float | None = None


def validated(req: CacheRequest) -> CacheRequest:
    if req.clear and req.keep_gb is not None:
        raise UserError(f"--clear with --keep-gb {req.keep_gb:g}: --clear removes everything; give one of them")
    if req.keep_gb is not None and not (math.isfinite(req.keep_gb) and req.keep_gb >= 0):
        raise UserError(f"--keep-gb {req.keep_gb:g}: must be a size in GB >= 0 (0 is --clear)")
    return req


def _size_text(size_bytes: float) -> str:
    for unit, scale in (("GB", GB), ("MB", 10**6), ("kB", 10**3)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.3g} {unit}"
    return f"{size_bytes:.0f} B"


def _when(seconds: float, now_s: float) -> str:
    days = (now_s - seconds) / 86400
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))
    return f"{stamp} ({days:.0f} days ago)" if days >= 1 else stamp


def cache_table(entries: list[CacheEntry], now_s: float | None = None) -> str:
    now_s = time.time() if now_s is None else now_s
    if not entries:
        return f"the cache ({decoded_cache_dir()}, {classifier_cache_dir()}) is empty"
    rows = [("kind", "size", "last used", "source", "file")]
    for e in sorted(entries, key=lambda e: -e.last_used_s):
        rows.append((e.kind + (" (in use)" if e.in_use else ""), _size_text(e.size_bytes), _when(e.last_used_s, now_s),
                     e.source, e.path.name))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]
    total = sum(e.size_bytes for e in entries)
    lines.append(f"{len(entries)} entries, {_size_text(total)} in {decoded_cache_dir()} and {classifier_cache_dir()}")
    return "\n".join(lines)


def cache_command(req: CacheRequest) -> str:
    """`wgan cache`: the listing, or what --clear / --keep-gb removed and what they spared because it is in use."""
    req = validated(req)
    entries = cache_entries()
    if not req.clear and req.keep_gb is None:
        return cache_table(entries)
    removed, spared = prune(entries, -1.0 if req.clear else req.keep_gb * GB)
    left = sum(e.size_bytes for e in entries) - sum(e.size_bytes for e in removed)
    lines = [f"removed {len(removed)} entries ({_size_text(sum(e.size_bytes for e in removed))}); the cache now "
             f"holds {_size_text(left)}"]
    if spared:
        lines.append(f"kept {len(spared)} in use by a live process (first: {spared[0].path})")
    return "\n".join(lines)
