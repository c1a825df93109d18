"""The exception types the CLI turns into one line and an exit code.

UserError: a problem the user caused and can fix (bad option, bad file, bad checkpoint): exit code 2; a
    ValueError, which is what the Python API raises.
TrainingDiverged: a loss or a parameter became NaN or infinite: exit code 3, last good checkpoint kept.
Stopped: a signal stopped training after its checkpoint: exit code 128 + the signal's number.
Nothing else catches them.
"""

import contextlib
import errno
import os
import sys
import time
from pathlib import Path
from typing import Iterator


class UserError(ValueError):
    """A problem the user caused: the message names the thing and what to do. A ValueError, so that a
    caller of the Python API catches it as one; the command line prints it as one line and exits 2."""


class AgreedError(UserError):
    """A UserError that every process of a torchrun job raises at the same point, having compared their values
    (the processes disagree): each can leave the process group in step with the others."""


class TrainingDiverged(RuntimeError):
    """A loss, the penalty or a parameter became NaN or infinite."""


class Stopped(Exception):
    """SIGINT or SIGTERM stopped training; the checkpoint, the generator and the report are written. The
    command exits with 128 + the signal's number (130 for Ctrl-C), as a process killed by it would."""

    def __init__(self, signum: int, run_dir: Path):
        super().__init__(f"stopped by signal {signum}; resume: wgan train --resume {run_dir}")
        self.signum, self.run_dir = signum, run_dir


def first_line(exc: BaseException, limit: int | None = 160) -> str:
    """The first line of an exception's message (its type name if it has none), for a one-line error."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def named(name: str, value) -> str:
    """A value as a message names it where the user gave it: `--num 0` for a command-line option, `num=0` for
    a Python argument; so that one rule says the same thing to both."""
    return f"{name} {value}" if name.startswith("--") else f"{name}={value!r}"


@contextlib.contextmanager
def writing(option: str, path) -> Iterator[None]:
    """An OSError while writing where the user said (--out, --runs-dir) becomes one line naming the option,
    the path and why: a file where a folder should be, no permission, a full disk."""
    try:
        yield
    except OSError as exc:
        blocker = file_in_the_way(Path(path).parent)
        why = f"{blocker} is a file, not a folder" if blocker is not None else os_reason(exc)
        raise UserError(f"{option} {path}: cannot write there ({why}); choose another path") from None


def remedy(exc: OSError) -> str:
    """What to do about a failed write, as its cause says: room where the disk is full, else the cause itself
    (a permission, a link, a file in the way) is what to fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "make room"
    return "fix that"


def os_reason(exc: OSError) -> str:
    """Why an OSError happened, in the system's words ("No space left on device")."""
    return exc.strerror or first_line(exc)


def file_in_the_way(folder: Path) -> Path | None:
    """The file at `folder` or at one of its parents, which stops the folder from being made."""
    return next((p for p in [Path(folder), *Path(folder).parents] if p.exists() and not p.is_dir()), None)


# How long a process other than its machine's first waits before printing its error (seconds).
OTHER_PROCESS_GRACE_S = 5.0


def report_error(text: str) -> None:
    """Print an error line on stderr; under torchrun, once rather than once per process.

    torchrun starts one process per GPU and they all meet the same bad option. Each machine's first
    process (LOCAL_RANK 0) prints at once and exits, and torchrun, which checks its processes every
    0.1 s, ends the others while they wait here, so the error is one line. A process whose error is
    its own (say LOCAL_RANK 5 on a machine with 4 GPUs) still prints it after the wait, naming its
    rank. Read from the launcher's environment, not torch.distributed: errors come before and after
    the process group exists, and this module must not import torch.
    """
    if os.environ.get("LOCAL_RANK", "0") != "0":
        time.sleep(OTHER_PROCESS_GRACE_S)
    rank = int(os.environ.get("RANK", "0") or 0)
    print(f"rank {rank}: {text}" if rank else text, file=sys.stderr, flush=True)
