"""The truncation sweep: the same generator scored with its latents truncated at several psi.

Truncating the noise (wgan.latents) trades diversity for fidelity: precision should rise and recall fall
as psi shrinks, and FCD shows where the balance is best. Each psi draws from the same seed, so the rows
differ by the truncation alone; "none" is the untruncated normal.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from wgan import rundir
from wgan.files import atomic_write, pyplot
from wgan.metrics.evaluator import Evaluator
from wgan.metrics.results import flatten_results
from wgan.metrics.samples import generate_samples

SWEEP_METRICS = ("fcd", "class-coverage", "prc")
COLUMNS = ("fcd", "class_coverage", "precision", "recall")


def psi_label(psi: float | None) -> str:
    return "none" if psi is None else f"{psi:g}"


def sweep(generator: nn.Module, ev: Evaluator, truncations: Sequence[float | None], *, num: int,
          device: torch.device, seed: int) -> list[dict]:
    """One row per psi: {"truncation": psi or None, metric fields..., "samples": {...}}."""
    rows = []
    for psi in truncations:
        samples = generate_samples(generator, num, device=device, seed=seed, truncation=psi)
        rows.append({"truncation": psi, **flatten_results(ev.evaluate(samples))})
    return rows


def format_sweep(rows: list[dict]) -> str:
    header = ("psi",) + COLUMNS
    lines = [header] + [(psi_label(r["truncation"]),) + tuple(_cell(r.get(c)) for c in COLUMNS) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines)


def _cell(v) -> str:
    return "-" if v is None else f"{v:.4g}"


def plot_sweep(path: Path, rows: list[dict], num: int) -> None:
    """Precision, recall and class coverage (left) and FCD (right) against psi, "none" at the right end."""
    plt = pyplot()
    labels = [psi_label(r["truncation"]) for r in rows]
    x = list(range(len(rows)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style in (("precision", "o-"), ("recall", "s-"), ("class_coverage", "^--")):
        y = [r.get(key, math.nan) for r in rows]
        left.plot(x, y, style, label=key)
    left.set_ylim(-0.02, 1.02)
    left.set_ylabel("higher is better")
    left.legend(fontsize=8)
    right.plot(x, [r.get("fcd", math.nan) for r in rows], "o-", color="tab:red")
    right.set_ylabel("FCD - lower is better")
    for ax in (left, right):
        ax.set_xticks(x, labels)
        ax.set_xlabel("truncation psi (latents kept within [-psi, psi])")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Truncation sweep, {num:,} samples per psi", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def write_sweep(run_dir: Path, rows: list[dict], *, num: int, step: int | None) -> dict[str, Path]:
    """truncation.png and truncation.json in the run directory; returns their paths."""
    plot, record = Path(run_dir) / rundir.TRUNCATION_PLOT, Path(run_dir) / rundir.TRUNCATION_RECORD
    plot_sweep(plot, rows, num)
    text = json.dumps({"step": step, "samples": num, "rows": rows}, indent=2) + "\n"
    atomic_write(record, lambda f: f.write(text.encode()))
    return {"plot": plot, "record": record}
