"""Helpers shared by the tests that drive the `wgan` command, in this process or in another."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import wgan
from wgan.cli import main

# The smallest quick-preset run that still goes through every part of the loop; unconditional unless a test
# adds --conditional (the preset itself is conditional).
TINY = ["--preset", "quick", "--no-conditional", "--width", "8", "--latent-dim", "16", "--batch-size", "8", "--critic-steps", "1",
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


def wgan_process(*argv) -> subprocess.Popen:
    src = str(Path(wgan.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "wgan", *map(str, argv)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout_s: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, out, err


def train_tiny(runs, data, *extra) -> Path:
    """A TINY run of 2 steps (unless `extra` says otherwise) in `runs`: its run directory."""
    code, _, err = run_cli("train", *TINY, "--data", data, "--runs-dir", runs, "--steps", "2", *extra)
    assert code == 0, err
    (run,) = Path(runs).iterdir()
    return run


def cli_peak_growth_mib(*argv) -> tuple[int, str, float]:
    """`wgan ARGV` in a fresh process: (exit code, stderr, how far its peak RSS rose above what the imports
    took, MiB). Peak RSS only ever grows, so the rise is what the command itself allocated at its worst."""
    code = ("import resource, sys; from wgan.cli import main; import torch, safetensors.torch, wgan.exported, "
            "wgan.metrics.samples, wgan.grids; before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "rc = main(sys.argv[1:]); after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            "print(f'PEAK_GROWTH_KB {after - before}', file=sys.stderr); sys.exit(rc)")
    src = str(Path(wgan.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, argv)], env=env, capture_output=True, text=True,
                          timeout=300)
    lines = proc.stderr.strip().splitlines()
    growth = int(lines[-1].split()[1]) / 1024
    return proc.returncode, "\n".join(lines[:-1]), growth
