"""A training run from the options a user gave: the preset and the options over it, validated into one
TrainConfig, or a run to resume (a run directory, one of its checkpoints, or `auto`: the newest run of the
same options); then the loop. `wgan train` and wgan.train / wgan.resume both start runs here.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

from wgan import caches, checkpoint, distributed, rundir
from wgan.config import TrainConfig, preset_config, resolve_sizes, validate
from wgan.errors import UserError
from wgan.training import train


def start_training(options: dict, *, resume: str | Path | None = None, dry_run: bool = False, progress: bool = True,
                   note: Callable[[str], None] = print) -> Path:
    """Train as `options` say (TrainConfig field -> value; None: the preset's) and return the run directory.
    `resume`: a run directory or checkpoint to continue (only its resumable options may change), or "auto"."""
    if resume and dry_run:
        # A dry run trains 2 steps of a new run; in a resumed run it would write into the user's run directory.
        raise UserError(f"--dry-run with --resume {resume}: a dry run starts a new run of 2 steps; drop "
                        "--dry-run to resume, or drop --resume to check the options on a new run")
    options = {f.name: options.get(f.name) for f in dataclasses.fields(TrainConfig)} | options
    for line in caches.prune_to_cap():  # $WGAN_CACHE_MAX_GB: what has long gone unused, before this run adds to it
        if distributed.launched_rank() == 0:
            note(line)
    point = None
    # A group that torchrun restarted (--max-restarts) continues the run its first attempt made, from the
    # newest checkpoint: of the run given to --resume, or of the run this job marked as its own in --runs-dir.
    restarted = distributed.restart_count() > 0
    if resume and str(resume) != "auto":
        target = Path(resume)
        point = checkpoint.open_checkpoint(target.parent.parent if restarted and target.is_file() else target)
        cfg = checkpoint.resume_config(point, options)
    else:
        cfg = new_config(options)
        if resume is not None or restarted:
            point, cfg = _resume_auto(cfg, options, note, job=distributed.job_id() if restarted else None)
    if point is not None:
        if restarted:
            _check_not_stopped(point.run_dir)
        rundir.check_stored_data(cfg.data, point.run_dir, given=options.get("data"))
    return train(absolute_paths(validate(cfg)), resume=point, dry_run=dry_run, progress=progress, say=note)


def _check_not_stopped(run_dir: Path) -> None:
    """torchrun restarts a job when one of its processes exits non-zero, as each does once a signal stopped the
    run: a stop someone asked for is not a failure to recover from, so the restart trains no further."""
    if rundir.run_status(run_dir) == rundir.STATUS_STOPPED:
        raise UserError(f"{run_dir}: stopped by a signal before this restart; torchrun restarts failed processes, "
                        f"and a stop is no failure: to go on, resume it: wgan train --resume {run_dir}")


def new_config(options: dict) -> TrainConfig:
    """The config of a new run: the preset's settings (quick by default; custom: TrainConfig's defaults) with
    the options given over them, validated, the dataset's image size and channels filled in."""
    options = dict(options)
    preset = options.pop("preset", None) or "quick"
    if preset == "custom":
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        bad = sorted(set(options) - known)
        if bad:
            raise UserError(f"unknown option(s) {bad}")
        cfg = TrainConfig(preset="custom", **{k: v for k, v in options.items() if v is not None})
    else:
        cfg = preset_config(preset, **options)
    return resolve_sizes(validate(cfg))


def _resume_auto(cfg: TrainConfig, options: dict, note: Callable[[str], None], job: str | None = None):
    """The newest run of these options in --runs-dir, to resume; `job`: a restarted torchrun job's own run."""
    run = checkpoint.find_resumable_run(Path(cfg.runs_dir), cfg.to_dict(), job=job)
    if distributed.launched_rank() == 0:  # under torchrun, once rather than once per process
        if job is not None:
            note(f"restarted by torchrun: resuming this job's run {run}" if run else
                 f"restarted by torchrun: this job has no run with a checkpoint in {cfg.runs_dir}; starting a new one")
        else:
            note(f"--resume auto: resuming {run}" if run else
                 f"--resume auto: no run of these options with a checkpoint in {cfg.runs_dir} that no other process "
                 "trains; starting a new one")
    if run is None:
        return None, cfg
    point = checkpoint.open_checkpoint(run)
    return point, checkpoint.resume_config(point, options)


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """--data and --inception-weights stored whole (after validate has named them as given), so that the run
    resumes and evaluates from any folder."""
    whole = {name: os.path.abspath(os.path.expanduser(value)) for name in ("data", "inception_weights")
             if (value := getattr(cfg, name))}
    return dataclasses.replace(cfg, **whole)
