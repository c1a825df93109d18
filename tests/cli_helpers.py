"""Helpers shared by the tests that drive the `wgan` command in-process."""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

from wgan.cli import main

# The smallest quick-preset run that still goes through every part of the loop.
TINY = ["--preset", "quick", "--width", "8", "--latent-dim", "16", "--batch-size", "8", "--critic-steps", "1",
        "--log-every-steps", "1", "--sample-every-steps", "0", "--no-tensorboard", "--device", "cpu",
        "--no-progress"]


def run_cli(*argv) -> tuple[int, str, str]:
    """`wgan ARGV` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
