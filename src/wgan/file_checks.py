"""The checks every file that wgan reads back passes before its contents are trusted: training checkpoints,
exported generators and cached classifiers alike.

A path that is a FIFO, a device or a socket is refused by name before it is opened (its reading would block or
never end). A torch.save file is an intact zip archive of stored entries (CRC32 checksums verified, which
PyTorch's reader does not do, and no compressed entry that could unpack to far more than the file holds)
before it is unpickled, and it is unpickled with weights_only=True: a crafted pickle is refused, never executed.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from wgan.errors import UserError, first_line
from wgan.files import read_head, stored_zip_problem


def check_not_special(path: Path, option: str) -> None:
    """A FIFO, a device or a socket handed over as a file would block its reader or never end: refused by
    name before anything opens it for reading."""
    path = Path(path)
    if path.exists() and not path.is_dir() and not path.is_file():
        raise UserError(f"{option} {path}: not a regular file (a FIFO, a device or a socket), which wgan never reads; "
                        "pass a file or a run directory")


def is_zip(path: Path) -> bool:
    """torch.save's files are zip archives (PK...); a .safetensors file starts with its header's length."""
    return read_head(path, 4) == b"PK\x03\x04"


def _unpickling_problem(exc: pickle.UnpicklingError, what: str) -> str:
    global_name = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if global_name:
        return (f"refused to load: it would call {global_name.group(1)}, which a wgan {what} never holds "
                "(possibly malicious; nothing was executed)")
    return f"refused to load: it holds objects other than tensors and primitives ({first_line(exc)})"


def load_torch_file(path: Path, what: str):
    """The object torch.save wrote to `path`, verified first and loaded on the CPU with weights_only=True;
    any problem is one UserError naming the file and calling it a `what` ("checkpoint")."""
    problem = stored_zip_problem(path)
    if problem:
        raise UserError(f"{path}: {problem}: not a {what} that torch.save wrote intact")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path}: {_unpickling_problem(exc, what)}") from None
    except Exception as exc:  # the archive is intact but its contents are not what torch.save makes of tensors
        raise UserError(f"{path}: unreadable {what} ({first_line(exc)})") from None
