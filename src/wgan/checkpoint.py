"""Training checkpoints: their format, atomic writes, verified safe loads, and where and how a run resumes.

A checkpoint holds state_dicts, tensors and primitives only, so it loads with
torch.load(weights_only=True) once its zip archive is verified (file_checks.py): a crafted pickle is refused,
never executed, and a checkpoint damaged mid-file is refused rather than loaded with silently wrong weights.
Writes go to a temporary file in the same folder, are fsynced, then renamed over the target, so a crash
mid-write leaves the last good checkpoint in place. Checkpoints of earlier formats are upgraded as they are
read (legacy.py); everything here sees FORMAT's layout. The generator alone, exported, is exported.py's.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from wgan import legacy, rundir
from wgan.rundir import CHECKPOINT_RE
from wgan.config import TrainConfig, flag
from wgan.errors import UserError
from wgan.file_checks import check_not_special, load_torch_file
from wgan.files import atomic_write


FORMAT = "wgan-checkpoint-2"
TEMP_RE = re.compile(r"^\.step-\d+\.pt\..*\.tmp$")  # what atomic_write leaves behind when killed mid-write
# What a checkpoint of every format holds; FORMAT's also hold the generator's moving average (None where the
# run keeps none) and its class names (none for an unconditional generator).
FIRST_KEYS = ("format", "step", "config", "shape", "generator", "critic", "opt_generator", "opt_critic",
              "fixed_z", "fixed_labels", "rng", "elapsed_s", "pending")
REQUIRED_KEYS = FIRST_KEYS + ("ema", "class_names")
# How long and where a run trains, not what it trains: these may differ between a checkpoint and the
# run that resumes it. Every other option must match.
RESUMABLE_OPTIONS = ("steps", "max_train_seconds", "device", "fast", "precision", "data", "inception_weights")
NOT_COMPARED = RESUMABLE_OPTIONS + ("runs_dir",)  # where the run directory lives says nothing of the model
_CONFIG_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}


def _full_config(config: dict) -> dict:
    """`config` with every option: one added after it was written at its default (legacy.py)."""
    return legacy.upgrade_config(config, _CONFIG_DEFAULTS)


def checkpoint_step(path: Path) -> int:
    match = CHECKPOINT_RE.match(Path(path).name)
    if match is None:
        raise UserError(f"{path}: not a checkpoint name (expected step-NNNNNNNN.pt)")
    return int(match.group(1))


# ---------------------------------------------------------------------------------------------
# Writing


def save_checkpoint(path: Path, state: dict) -> None:
    """Serialised in memory first: torch's zip writer turns a full disk into a RuntimeError ("unexpected pos"),
    an ordinary write into an OSError that says what happened (No space left on device)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in `folder`, oldest first (by step, not by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if CHECKPOINT_RE.match(p.name)), key=checkpoint_step)


def prune_checkpoints(folder: Path, keep: int) -> None:
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)


def remove_stale_temp_files(folder: Path) -> None:
    """Temporary files of writes that a kill interrupted; the checkpoints themselves are untouched."""
    if Path(folder).is_dir():
        for p in Path(folder).iterdir():
            if TEMP_RE.match(p.name):
                p.unlink(missing_ok=True)


def set_aside_newer(folder: Path, step: int) -> list[Path]:
    """Rename the checkpoints past `step` to NAME.superseded[.N]: a run resumed from an earlier
    checkpoint must never mistake them for its newest one, and nothing is deleted."""
    moved = []
    for p in list_checkpoints(folder):
        if checkpoint_step(p) > step:
            target, n = p.with_name(p.name + ".superseded"), 1
            while target.exists():
                target, n = p.with_name(f"{p.name}.superseded.{n}"), n + 1
            p.rename(target)
            moved.append(target)
    return moved


# ---------------------------------------------------------------------------------------------
# Loading


def load_checkpoint(path: Path) -> dict:
    """Verify and load a checkpoint with weights_only=True, in FORMAT's layout whatever format it was written in
    (state[legacy.NOTES]: what its upgrade had to say); any problem is one UserError naming the file."""
    path = Path(path)
    check_not_special(path, "checkpoint")
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    state = load_torch_file(path, "checkpoint")
    known = (FORMAT, *legacy.CHECKPOINT_UPGRADES)
    if not isinstance(state, dict) or not isinstance(state.get("format"), str) or state["format"] not in known:
        raise UserError(f"{path}: not a wgan checkpoint (format {FORMAT} expected)")
    _check_keys(state, FIRST_KEYS, path)
    config = _full_config(checkpoint_config(state, path))
    state = legacy.upgrade_checkpoint(state, config, checkpoint_shape(state, path), path)
    _check_keys(state, REQUIRED_KEYS, path)
    return state


def _check_keys(state: dict, keys: tuple[str, ...], path: Path) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        raise UserError(f"{path}: incomplete wgan checkpoint (missing {', '.join(missing)})")


def checkpoint_config(state: dict, path: Path) -> dict:
    return _json_field(state, "config", path)


def checkpoint_shape(state: dict, path: Path) -> dict:
    return _json_field(state, "shape", path)


def _json_field(state: dict, key: str, path: Path) -> dict:
    try:
        value = json.loads(state[key])
    except (KeyError, TypeError, ValueError, RecursionError):  # nested past Python's recursion limit too
        value = None
    if not isinstance(value, dict):
        raise UserError(f"{path}: checkpoint holds no readable {key}")
    return value


def config_differences(a: dict, b: dict, ignore: tuple[str, ...] = NOT_COMPARED) -> list[str]:
    """The options (besides `ignore`) whose values differ, as 'name A vs B'. An option missing from one
    side (a run written before the option existed) counts as its default."""
    a, b = _full_config(a), _full_config(b)
    names = sorted((set(a) | set(b)) - set(ignore))
    return [f"{n} {a.get(n)!r} vs {b.get(n)!r}" for n in names if a.get(n) != b.get(n)]


def checkpoint_generator(state: dict, raw: bool = False) -> tuple[dict, str]:
    """A checkpoint's generator weights and which they are: the moving average ("ema") where the run kept
    one, unless `raw` asks for the trained generator ("raw")."""
    if raw or state["ema"] is None:
        return state["generator"], "raw"
    return state["ema"]["generator"], "ema"


# ---------------------------------------------------------------------------------------------
# Resuming


@dataclass
class ResumePoint:
    """A verified checkpoint and the run directory it continues."""

    run_dir: Path
    checkpoint: Path
    state: dict

    @property
    def step(self) -> int:
        return int(self.state["step"])

    @property
    def config(self) -> dict:
        return checkpoint_config(self.state, self.checkpoint)

    @property
    def shape(self) -> dict:
        return checkpoint_shape(self.state, self.checkpoint)


def _load_for_run(path: Path, run_dir: Path) -> dict:
    """Load `path` and check that it belongs to `run_dir` (same options as its config.json)."""
    state = load_checkpoint(path)
    run_config = rundir.read_config(run_dir)
    if run_config is not None:
        diffs = config_differences(checkpoint_config(state, path), run_config)
        if diffs:
            raise UserError(f"{path}: checkpoint of another model/config than {run_dir / rundir.CONFIG} "
                            f"(checkpoint vs run: {'; '.join(diffs[:4])})")
    return state


def previous_good_checkpoint(run_dir: Path, before: Path) -> Path | None:
    """The newest checkpoint older than `before` that loads and belongs to the run."""
    step = checkpoint_step(before)
    for path in reversed(list_checkpoints(Path(run_dir) / rundir.CHECKPOINTS)):
        if checkpoint_step(path) < step:
            try:
                _load_for_run(path, run_dir)
                return path
            except UserError:
                continue
    return None


def open_checkpoint(target: Path, option: str = "--resume") -> ResumePoint:
    """`target` is a run directory (its newest checkpoint) or one of its checkpoint files.

    A damaged, unsafe or foreign checkpoint is one UserError naming it, and the previous good
    checkpoint of the run with the exact `option` that uses it: nothing falls back silently.
    """
    target = Path(target)
    check_not_special(target, option)
    if target.is_dir():
        run_dir = target
        found = list_checkpoints(run_dir / rundir.CHECKPOINTS)
        if not found:
            raise UserError(f"{option} {target}: no checkpoints in {run_dir / rundir.CHECKPOINTS}; "
                            "pass a wgan run directory that has written at least one")
        path = found[-1]
    elif target.is_file():
        if not CHECKPOINT_RE.match(target.name) or target.parent.name != rundir.CHECKPOINTS:
            raise UserError(f"{option} {target}: not a run's checkpoint (expected RUN/checkpoints/step-NNNNNNNN.pt)")
        run_dir, path = target.parent.parent, target
    else:
        raise UserError(f"{option} {target}: no such run directory or checkpoint file")
    try:
        return ResumePoint(run_dir, path, _load_for_run(path, run_dir))
    except UserError as exc:
        good = previous_good_checkpoint(run_dir, path)
        offer = (f"; the previous good checkpoint is {good}: use it with {option} {good}" if good
                 else "; this run has no earlier good checkpoint")
        raise UserError(f"{exc}{offer}") from None


# The one rule of resuming: only RESUMABLE_OPTIONS may change, so a resumed run trains exactly what it trained
# before. Said here once for the options a user gives (resume_config) and the config a run resumes with.
ON_RESUME = "on resume only " + ", ".join(flag(n) for n in RESUMABLE_OPTIONS) + " may change"


def fixed_option_changes(stored: dict, options: dict) -> list[tuple[str, object, object]]:
    """(name, stored value, given value) of each option given in `options` (None: not given) that differs from
    `stored`, a checkpoint's config, and may not change on resume; in the order of `options`."""
    stored = _full_config(stored)
    return [(name, stored.get(name), value) for name, value in options.items()
            if value is not None and name not in NOT_COMPARED and value != stored.get(name)]


def config_change_problem(point: ResumePoint, config: dict) -> str | None:
    """Why the run `config` describes cannot resume from `point` (it changes an option that may not change),
    or None."""
    changes = sorted(fixed_option_changes(point.config, config))
    if not changes:
        return None
    listed = "; ".join(f"{name} {had!r} vs {given!r}" for name, had, given in changes[:4])
    return f"{point.checkpoint}: written with other options ({listed}); {ON_RESUME}"


def resume_config(point: ResumePoint, options: dict):
    """The checkpoint's config with the options given on the command line (None: not given): any option
    given that may not change must equal the stored value."""
    stored = point.config
    allowed = ", ".join(flag(n) for n in RESUMABLE_OPTIONS)
    unknown = sorted(set(options) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise UserError(f"unknown option(s) {unknown}: a run resumes with TrainConfig's options ({allowed} may "
                        "change)")
    changes = fixed_option_changes(stored, options)
    if changes:
        name, had, given = changes[0]
        raise UserError(f"{flag(name)} {given}: {point.run_dir} was trained with {had!r}; {ON_RESUME} "
                        "(start a new run instead)")
    changed = {k: v for k, v in options.items() if v is not None and k in RESUMABLE_OPTIONS}
    try:
        return TrainConfig.from_dict({**stored, **changed})
    except (UserError, TypeError) as exc:
        raise UserError(f"{point.checkpoint}: {exc}") from None


def find_resumable_run(runs_dir: Path, config: dict, job: str | None = None) -> Path | None:
    """The newest run in `runs_dir` with the same options as `config` (run length and execution
    options aside) and at least one checkpoint; dry runs are never picked, nor a run that a live process
    trains (its lock is held: another job's). `job`: only the run that torchrun job marked as its own
    (rundir.mark_job), for its restarted attempts, which must never take another job's run of the same
    options."""
    for run in rundir.numbered_runs(runs_dir):
        if run.name.endswith(rundir.DRY_RUN_SUFFIX):  # two steps to check options: never what is meant to go on
            continue
        if job is not None and rundir.marked_job(run) != job:
            continue
        stored = rundir.read_config(run)
        if stored is not None and list_checkpoints(run / rundir.CHECKPOINTS) and \
                not config_differences(stored, config) and rundir.lock_holder(run) is None:
            return run
    return None
