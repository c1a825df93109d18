"""A training run from the options a user gave: the preset and the options over it, validated into one
TrainConfig, or a run to resume (a run directory, one of its checkpoints, or `auto`: the newest run of the
same options), planned once (training/plan.py); then the process group and the loop. `wgan train` and
wgan.train / wgan.resume both start runs here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from wgan import caches, checkpoint, distributed, rundir
from wgan.config import TrainConfig, preset_config
from wgan.errors import UserError
from wgan.training import train
from wgan.training.plan import RunPlan, in_process_group, make_plan


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
    with in_process_group(plan_run(options, resume, dry_run, note)) as plan:
        return train(plan, progress=progress, say=note)


def plan_run(options: dict, resume: str | Path | None, dry_run: bool, note: Callable[[str], None]) -> RunPlan:
    """The plan of the run `options` and `resume` ask for: a new run, or the run resumed from its checkpoint."""
    # A group that torchrun restarted (--max-restarts) continues the run its first attempt made, from the
    # newest checkpoint: of the run given to --resume, or of the run this job marked as its own in --runs-dir.
    restarted = distributed.restart_count() > 0
    if resume and str(resume) != "auto":
        target = Path(resume)
        point = checkpoint.open_checkpoint(target.parent.parent if restarted and target.is_file() else target)
    else:
        plan = make_plan(new_config(options), dry_run=dry_run)
        if resume is None and not restarted:
            return plan
        point = _resume_auto(plan.cfg, note, job=distributed.job_id() if restarted else None)
        if point is None:
            return plan
    cfg = checkpoint.resume_config(point, options)
    if restarted:
        _check_not_stopped(point.run_dir)
    rundir.check_stored_data(cfg.data, point.run_dir, given=options.get("data"))
    return make_plan(cfg, resume=point, dry_run=dry_run)


def _check_not_stopped(run_dir: Path) -> None:
    """torchrun restarts a job when one of its processes exits non-zero, as each does once a signal stopped the
    run: a stop someone asked for is not a failure to recover from, so the restart trains no further."""
    if rundir.run_status(run_dir) == rundir.STATUS_STOPPED:
        raise UserError(f"{run_dir}: stopped by a signal before this restart; torchrun restarts failed processes, "
                        f"and a stop is no failure: to go on, resume it: wgan train --resume {run_dir}")


def new_config(options: dict) -> TrainConfig:
    """The config of a new run: the preset's settings (quick by default; custom: TrainConfig's defaults) with
    the options given over them (make_plan checks them)."""
    options = dict(options)
    preset = options.pop("preset", None) or "quick"
    if preset == "custom":
        known = {f.name for f in dataclasses.fields(TrainConfig)}
        bad = sorted(set(options) - known)
        if bad:
            raise UserError(f"unknown option(s) {bad}")
        return TrainConfig(preset="custom", **{k: v for k, v in options.items() if v is not None})
    return preset_config(preset, **options)


def _resume_auto(cfg: TrainConfig, note: Callable[[str], None],
                 job: str | None = None) -> checkpoint.ResumePoint | None:
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
    return None if run is None else checkpoint.open_checkpoint(run)
