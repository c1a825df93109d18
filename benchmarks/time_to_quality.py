"""Time to quality: K training variants side by side on one machine, each for the same budget of training
seconds and with several seeds, their FCD (5,000 samples of the sampled generator against the test split,
on our classifier) logged every `--eval-every` seconds of training.

    python benchmarks/time_to_quality.py --data DATA_DIR --variants quick-before,quick --seeds 3 --seconds 600

Each run is one `wgan train` process on one thread, pinned to a core of its own where there are enough
cores, with `--train-clock cpu`: its budget is its own CPU seconds, so a run that shares a core with other
work is not cut short by it. The runs are queued seed by seed, so the variants of one seed train at the
same time, under the same conditions.

It prints and writes (OUT/time_to_quality.json, OUT/fcd_vs_time.png: one line per variant, the seeds'
median, their range shaded) each variant's training seconds to FCD 100, 60, 40 and 25 and its FCD at
60, 150 and 300 s (and at the budget), each with the seeds' mean and 95% t-interval, and marks a variant
better or worse than the first (the baseline) only where the two intervals do not overlap.
Finished runs under OUT are read again, not retrained: a second call with more seeds or variants adds them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from wgan import rundir

ROOT = Path(__file__).resolve().parent.parent
THRESHOLDS = (100.0, 60.0, 40.0, 25.0)
EDGE_S = 1.0  # an evaluation due at 60 s runs at the first loss read after it: 60.03 s still tells FCD at 60
AT_SECONDS = (60.0, 150.0, 300.0)

# Options on top of `--preset quick`. quick-before: the preset as it was before the time-to-quality work
# (fp32, the one-centred penalty on every critic update; its 2,500-step cap is lifted here, as for every
# variant); the others are the levers measured against it (docs/levers.md has the rows).
VARIANTS = {
    "quick-before": "--precision fp32 --penalty-every-steps 1 --penalty-batch-fraction 1 --penalty-target-norm 1",
    "quick": "",
    "bf16": "--precision bf16 --penalty-every-steps 1",
    "lazy4": "--precision fp32 --penalty-every-steps 4",
    "frac25": "--precision fp32 --penalty-every-steps 1 --penalty-batch-fraction 0.25",
    "zero-gp": "--precision fp32 --penalty-every-steps 1 --penalty-target-norm 0",
    "lazy4-zero-gp": "--precision fp32 --penalty-every-steps 4 --penalty-target-norm 0",
    "bf16-zero-gp": "--precision bf16 --penalty-every-steps 1 --penalty-target-norm 0",
    "bf16-zero-gp-decay": "--precision bf16 --penalty-every-steps 1 --penalty-target-norm 0 --lr-decay linear",
    "bf16-lazy4": "--precision bf16 --penalty-every-steps 4",
    "bf16-lazy4-beta2-099": "--precision bf16 --penalty-every-steps 4 --adam-beta2 0.99",
    "bf16-lazy4-critic1": "--precision bf16 --penalty-every-steps 4 --critic-steps 1 --lr-critic 1.6e-3",
    "bf16-lazy4-lr12": "--precision bf16 --penalty-every-steps 4 --lr-critic 1.2e-3 --lr-generator 1.2e-3",
    "bf16-lazy4-batch64": "--precision bf16 --penalty-every-steps 4 --batch-size 64",
    "bf16-lazy4-zero-gp": "--precision bf16 --penalty-every-steps 4 --penalty-target-norm 0",
    "bf16-lazy4-zero-gp-lr12": "--precision bf16 --penalty-every-steps 4 --penalty-target-norm 0 --lr-critic 1.2e-3 "
                               "--lr-generator 1.2e-3",
    "bf16-lazy4-zero-gp-critic1": "--precision bf16 --penalty-every-steps 4 --penalty-target-norm 0 --critic-steps 1 "
                                  "--lr-critic 1.6e-3",
    # a longer moving average of the generator (quick's is 2k images), against the plateau after four minutes
    "decay": "--lr-decay linear",
    "ema8": "--ema-halflife-kimg 8 --ema-rampup 0.1",
    "ema8-decay": "--ema-halflife-kimg 8 --ema-rampup 0.1 --lr-decay linear",
}


# ---------------------------------------------------------------------------------------------
# What the curves say (pure functions: tests/test_time_to_quality.py)


def time_to_reach(times: list[float], fcds: list[float], threshold: float) -> float | None:
    """Training seconds at which FCD first falls to `threshold`, linearly interpolated between the evaluation
    before and the one that reached it; None where no evaluation did."""
    for i, (t, f) in enumerate(zip(times, fcds)):
        if f <= threshold:
            if i == 0 or fcds[i - 1] <= f:
                return t
            t0, f0 = times[i - 1], fcds[i - 1]
            return t0 + (t - t0) * (f0 - threshold) / (f0 - f)
    return None


def fcd_at(times: list[float], fcds: list[float], seconds: float, slack_s: float = 0.0) -> float | None:
    """FCD at `seconds` of training, linearly interpolated between evaluations; None past the last one (more
    than `slack_s` past: a run whose budget ends at `seconds` evaluates a step after it)."""
    if not times or seconds < times[0] - EDGE_S or seconds > times[-1] + slack_s:
        return None
    return float(np.interp(seconds, times, fcds))


def interval(values: list[float | None]) -> dict:
    """The seeds' median, mean and 95% t-interval of the mean. A seed with no value (a threshold it never
    reached) lies beyond the budget: the interval is then open above (lower bound from the seeds that have
    a value), and with no value at all it lies wholly beyond (low = high = inf)."""
    known = [v for v in values if v is not None]
    n, missing = len(values), len(values) - len(known)
    median = float(np.median([math.inf if v is None else v for v in values])) if values else math.inf
    if not known:
        return {"n": n, "reached": 0, "median": None, "mean": None, "low": math.inf, "high": math.inf}
    mean = float(np.mean(known))
    half = math.inf
    if len(known) > 1:
        half = float(scipy_stats.t.ppf(0.975, len(known) - 1) * np.std(known, ddof=1) / math.sqrt(len(known)))
    return {"n": n, "reached": len(known), "median": None if math.isinf(median) else median,
            "mean": None if missing else mean, "mean_reached": mean, "low": mean - half,
            "high": math.inf if missing else mean + half}


def verdict(lever: dict, baseline: dict) -> str:
    """Lower is better (seconds, FCD): better or worse only where the two 95% intervals do not overlap."""
    if lever["high"] < baseline["low"]:
        return "better"
    if lever["low"] > baseline["high"]:
        return "worse"
    return "same"


TABLES = {"seconds_to_fcd": "training seconds to FCD", "fcd_at_seconds": "FCD at training seconds",
          "fcd_at_end": "FCD at the last step"}


def summarise(curves: dict[str, list[tuple[list[float], list[float]]]], budget_s: float, eval_every_s: float) -> dict:
    """Per variant: time to each threshold, FCD at each time and at the end, over its seeds' curves, with
    the verdict against the first variant. `budget_s` inf: the runs were set by steps, not time."""
    at = [s for s in AT_SECONDS if s < budget_s] + ([budget_s] if math.isfinite(budget_s) else [])
    out = {}
    for name, runs in curves.items():
        out[name] = {
            "seconds_to_fcd": {str(thr): interval([time_to_reach(t, f, thr) for t, f in runs]) for thr in THRESHOLDS},
            "fcd_at_seconds": {str(s): interval([fcd_at(t, f, s, slack_s=eval_every_s) for t, f in runs]) for s in at},
            "fcd_at_end": {"last": interval([f[-1] if f else None for _, f in runs])},
        }
    base = next(iter(out), None)
    for name, row in out.items():
        for table in TABLES:
            for key, cell in row[table].items():
                cell["vs_baseline"] = "baseline" if name == base else verdict(cell, out[base][table][key])
    return out


def shown(cell: dict) -> str:
    if cell["reached"] == 0:
        return "not reached"
    if cell["mean"] is None:
        # one seed that reached it bounds nothing (its interval is open below as well)
        bound = f">= {cell['low']:.0f}" if math.isfinite(cell["low"]) else f"{cell['mean_reached']:.0f}"
        return f"{bound} ({cell['reached']}/{cell['n']} seeds)"
    if math.isinf(cell["high"]):
        return f"{cell['mean']:.1f}"
    return f"{cell['mean']:.1f} [{cell['low']:.1f}, {cell['high']:.1f}]"


def table(summary: dict) -> str:
    lines = []
    for what, title in TABLES.items():
        keys = list(next(iter(summary.values()))[what])
        lines.append(f"{title} (mean [95% interval] over seeds; median in brackets)")
        lines.append("| variant | " + " | ".join(keys) + " |")
        lines.append("| --- |" + " --- |" * len(keys))
        for name, row in summary.items():
            cells = []
            for k in keys:
                c = row[what][k]
                mark = {"better": " **better**", "worse": " worse", "same": "", "baseline": ""}[c["vs_baseline"]]
                med = "" if c["median"] is None else f" ({c['median']:.1f})"
                cells.append(shown(c) + med + mark)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The runs


def read_curve(run_dir: Path) -> tuple[list[float], list[float], dict]:
    """(training seconds, FCD) of a run's evaluations, and its last training record (steps, rate)."""
    records = rundir.read_records(run_dir)
    evaluations = [r for r in records if "fcd" in r]
    trained = [r for r in records if rundir.is_training_record(r)]
    return [r["time_s"] for r in evaluations], [r["fcd"] for r in evaluations], (trained[-1] if trained else {})


def finished(run_root: Path) -> Path | None:
    runs = sorted(p for p in run_root.glob("*") if (p / "log.txt").is_file()) if run_root.is_dir() else []
    return runs[-1] if runs and rundir.run_status(runs[-1]) == "finished" else None


def train_command(args, options: str, seed: int, run_root: Path) -> list[str]:
    length = ["--steps", str(args.steps), "--max-train-seconds", "0"] if args.steps else \
        ["--steps", "10000000", "--max-train-seconds", str(args.seconds)]
    return [sys.executable, "-m", "wgan", "train", "--preset", "quick", "--data", args.data, *length, "--train-clock", "cpu",
            "--eval-metrics", "fcd", "--eval-num-samples", str(args.num), "--eval-every-seconds", str(args.eval_every),
            "--seed", str(seed), "--runs-dir", str(run_root), "--no-progress", "--no-tensorboard",
            *shlex.split(options)]


def run_one(args, name: str, options: str, seed: int, slot: int) -> Path:
    run_root = Path(args.out) / "runs" / name / f"seed{seed}"
    done = finished(run_root)
    if done is not None:
        return done
    cmd = train_command(args, options, seed, run_root)
    cores = os.cpu_count() or 1
    if args.jobs <= cores and sys.platform.startswith("linux"):
        cmd = ["taskset", "-c", str(slot % cores), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
    run_root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(run_root / "train.out", "w") as out:
        rc = subprocess.call(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"{name} seed {seed}: wgan train exited {rc}; see {run_root / 'train.out'}")
    print(f"  {name} seed {seed}: {time.perf_counter() - started:.0f} s wall", flush=True)
    return finished(run_root) or run_root


def plot(curves: dict, path: Path, budget_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.linspace(0, budget_s, 200)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in curves.items():
        ys = np.array([[np.nan if fcd_at(t, f, s) is None else fcd_at(t, f, s) for s in grid] for t, f in runs])
        with warnings.catch_warnings():  # before the first evaluation no seed has a value: nothing is drawn there
            warnings.simplefilter("ignore", RuntimeWarning)
            low, mid, high = np.nanmin(ys, axis=0), np.nanmedian(ys, axis=0), np.nanmax(ys, axis=0)
        line, = ax.plot(grid, mid, label=f"{name} ({len(runs)} seeds)")
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
    for thr in THRESHOLDS:
        ax.axhline(thr, color="grey", lw=0.5, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("training seconds (one CPU thread each)")
    ax.set_ylabel("FCD (5,000 samples; lower is better)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="the Fashion-MNIST IDX folder")
    p.add_argument("--variants", default="quick-before,quick", help=f"comma-separated, the baseline first; of: "
                   f"{', '.join(VARIANTS)}")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=OPTIONS",
                   help="another variant: a name and `wgan train` options on top of --preset quick")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=300.0, help="training seconds per run")
    p.add_argument("--steps", type=int, default=0, help="instead of --seconds: generator steps per run (quality at "
                   "equal steps, e.g. bf16 against fp32)")
    p.add_argument("--eval-every", type=float, default=30.0, help="training seconds between evaluations")
    p.add_argument("--num", type=int, default=5000, help="samples per FCD")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="runs at once (default: one per core)")
    p.add_argument("--out", default="runs/time-to-quality")
    args = p.parse_args(argv)
    chosen = {n: VARIANTS[n] for n in args.variants.split(",") if n}
    chosen.update(dict(v.split("=", 1) for v in args.variant))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    queue = [(name, opts, seed) for seed in range(args.seeds) for name, opts in chosen.items()]
    length = f"{args.steps} steps" if args.steps else f"{args.seconds:g} training seconds"
    print(f"{len(queue)} runs of {length}, {args.jobs} at a time", flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        dirs = list(pool.map(lambda item: run_one(args, *item[1], slot=item[0]), enumerate(queue)))
    curves: dict[str, list] = {name: [] for name in chosen}
    steps: dict[str, list] = {name: [] for name in chosen}
    for (name, _, _), run_dir in zip(queue, dirs):
        t, f, last = read_curve(run_dir)
        curves[name].append((t, f))
        steps[name].append(last.get("step"))
    budget_s = math.inf if args.steps else args.seconds
    summary = summarise(curves, budget_s, args.eval_every)
    report = {"budget_s": budget_s, "budget_steps": args.steps or None, "eval_every_s": args.eval_every, "samples": args.num,
              "variants": {n: {"options": chosen[n], "steps": steps[n], "curves": curves[n], **summary[n]}
                           for n in chosen},
              "cpu": cpu_model(), "torch": torch_version()}
    (out / "time_to_quality.json").write_text(json.dumps(strict_json(report), indent=1))
    plot(curves, out / "fcd_vs_time.png", max(t[-1] for runs in curves.values() for t, _ in runs if t))
    print(table(summary))
    print("steps in the budget: " + "; ".join(f"{n} {steps[n]}" for n in chosen))
    print(f"wrote {out / 'time_to_quality.json'} and {out / 'fcd_vs_time.png'}")


def strict_json(value):
    """inf (an interval open above, a threshold never reached) as the string "inf": JSON has no infinity."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return "inf" if isinstance(value, float) and math.isinf(value) else value


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name} ({os.cpu_count()} cores; {' '.join(wanted)})"


def torch_version() -> str:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                         text=True)
    return out.stdout.strip()


if __name__ == "__main__":
    main()
