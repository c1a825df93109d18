"""Metric results as the command line prints them and as metrics.jsonl records them."""

from __future__ import annotations

from pathlib import Path

from wgan import rundir
from wgan.metrics.registry import MetricResult


def flatten_results(results: dict[str, MetricResult]) -> dict:
    """Metric results as one metrics.jsonl record: the values, and the sample count behind each."""
    record: dict = {}
    counts: dict[str, int] = {}
    for r in results.values():
        for k, v in r.values.items():
            record[k] = v if isinstance(v, int) else round(float(v), 6)
            counts[k] = r.samples
    if counts:
        record["samples"] = counts
    return record


def format_table(results: dict[str, MetricResult]) -> str:
    rows = [("metric", "value", "samples", "compared with")]
    for r in results.values():
        for k, v in r.values.items():
            rows.append((k, f"{v:.4g}" if isinstance(v, float) else str(v), str(r.samples), r.reference))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows)


def run_time_at(run_dir: Path, step: int | None) -> dict:
    """{"time_s": training seconds when the run reached `step`} from its log, or {} when unknown: an
    evaluation made after training then sits at the right place on the wall-clock axis."""
    times = [r["time_s"] for r in rundir.read_records(run_dir)
             if rundir.is_training_record(r) and "time_s" in r and step is not None and r["step"] <= step]
    return {"time_s": times[-1]} if times else {}
