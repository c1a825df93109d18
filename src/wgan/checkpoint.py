"""Atomic checkpoint writes, safe loads, and where to resume from.

A checkpoint holds state_dicts, tensors and primitives only, so it loads with
torch.load(weights_only=True): a crafted pickle is refused, never executed. Before anything is
unpickled the zip archive's CRC32 checksums are verified, because PyTorch's reader does not check
them: a checkpoint damaged mid-file would otherwise load with silently wrong weights. Writes go to a
temporary file in the same folder, are fsynced, then renamed over the target, so a crash mid-write
leaves the last good checkpoint in place.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from wgan import rundir, shipped
from wgan.rundir import CHECKPOINT_RE
from wgan.classes import class_names_problem
from wgan.config import TrainConfig, flag, validate_model
from wgan.data import dataset_class_names
from wgan.errors import UserError, first_line, writing
from wgan.distributed import resolve_device
from wgan.files import atomic_write, read_head, stored_zip_problem
from wgan.models import ModelShape, generator_for_weights, samples_problem, shape_problem
from wgan.sample_rules import check_export_suffix


FORMAT = "wgan-checkpoint-1"
GENERATOR_FORMAT = "wgan-generator-1"
TEMP_RE = re.compile(r"^\.step-\d+\.pt\..*\.tmp$")  # what atomic_write leaves behind when killed mid-write
REQUIRED_KEYS = ("format", "step", "config", "shape", "generator", "critic", "opt_generator", "opt_critic",
                 "fixed_z", "fixed_labels", "rng", "elapsed_s", "pending")
# How long and where a run trains, not what it trains: these may differ between a checkpoint and the
# run that resumes it. Every other option must match.
RESUMABLE_OPTIONS = ("steps", "max_train_seconds", "device", "fast", "precision", "data", "inception_weights")
NOT_COMPARED = RESUMABLE_OPTIONS + ("runs_dir",)  # where the run directory lives says nothing of the model


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


def _unpickling_problem(exc: pickle.UnpicklingError) -> str:
    global_name = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if global_name:
        return (f"refused to load: it would call {global_name.group(1)}, which a wgan checkpoint never holds "
                "(possibly malicious; nothing was executed)")
    return f"refused to load: it holds objects other than tensors and primitives ({first_line(exc)})"


def load_checkpoint(path: Path) -> dict:
    """Verify and load a checkpoint with weights_only=True; any problem is one UserError naming the file."""
    path = Path(path)
    check_not_special(path, "checkpoint")
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    problem = stored_zip_problem(path)
    if problem:
        raise UserError(f"{path}: {problem}: not a checkpoint that torch.save wrote intact")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path}: {_unpickling_problem(exc)}") from None
    except Exception as exc:  # the archive is intact but its contents are not a checkpoint
        raise UserError(f"{path}: unreadable checkpoint ({first_line(exc)})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a wgan checkpoint (format {FORMAT} expected)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise UserError(f"{path}: incomplete wgan checkpoint (missing {', '.join(missing)})")
    checkpoint_config(state, path)
    checkpoint_shape(state, path)
    return state


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
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    a, b = {**defaults, **a}, {**defaults, **b}
    names = sorted((set(a) | set(b)) - set(ignore))
    return [f"{n} {a.get(n)!r} vs {b.get(n)!r}" for n in names if a.get(n) != b.get(n)]


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


def resume_config(point: ResumePoint, options: dict):
    """The checkpoint's config with the options given on the command line (None: not given).

    Only RESUMABLE_OPTIONS may change; any other option given must equal the stored value, so a
    resumed run trains exactly what it trained before.
    """
    stored = point.config
    allowed = ", ".join(flag(n) for n in RESUMABLE_OPTIONS)
    unknown = sorted(set(options) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise UserError(f"unknown option(s) {unknown}: a run resumes with TrainConfig's options ({allowed} may "
                        "change)")
    for name, value in options.items():
        if value is not None and name not in NOT_COMPARED and value != stored.get(name):
            raise UserError(f"{flag(name)} {value}: {point.run_dir} was trained with "
                            f"{stored.get(name)!r}; on resume only {allowed} may change (start a new run instead)")
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


# ---------------------------------------------------------------------------------------------
# The generator on its own: .safetensors with the config and model shape in its metadata


def save_generator(path: Path, generator_state: dict, config: dict, shape: dict, step: int,
                   weights: str = "raw", class_names: list[str] | None = None) -> None:
    """`weights`: "ema" for the moving average of the generator's weights, "raw" for the trained ones.
    `class_names`: what a conditional generator's classes are called."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator_state.items()}
    meta = {"format": GENERATOR_FORMAT, "config": json.dumps(config), "shape": json.dumps(shape), "step": str(step),
            "weights": weights}
    if class_names is not None:
        meta["class_names"] = json.dumps(list(class_names))
    blob = safetensors_bytes(tensors, metadata=meta)
    atomic_write(path, lambda f: f.write(blob))


def checkpoint_generator(state: dict, raw: bool = False) -> tuple[dict, str]:
    """A checkpoint's generator weights and which they are: the moving average ("ema") where the run kept
    one, unless `raw` asks for the trained generator ("raw")."""
    if raw or state.get("ema") is None:
        return state["generator"], "raw"
    return state["ema"]["generator"], "ema"


def export_run(run: Path, out: Path, raw: bool = False) -> tuple[ResumePoint, str]:
    """Write the generator of `run` (a run directory's newest checkpoint, or one checkpoint file) to `out`;
    returns the checkpoint and which weights were written."""
    out = Path(out)
    check_export_suffix(out, "--out")
    point = open_checkpoint(run, option="--run")
    tensors, weights = checkpoint_generator(point.state, raw)
    _build_generator(point.config, point.shape, tensors, "cpu", point.checkpoint)  # refuse a mismatch
    names = stored_class_names(point.state.get("class_names"), point.config, point.shape, point.checkpoint)
    with writing("--out", out):
        save_generator(out, tensors, point.config, point.shape, point.step, weights, class_names=names)
    return point, weights


def stored_class_names(stored, config: dict, shape: dict, origin: Path) -> list[str]:
    """The class names a checkpoint or an exported generator holds. Files written before they were kept name
    the classes as their dataset does, or by number."""
    num_classes = int(shape.get("num_classes", 0) or 0)
    if num_classes <= 0:
        return []
    if stored is None:
        return dataset_class_names(str(config.get("dataset", "")), num_classes)
    problem = class_names_problem(stored, num_classes)
    if problem:
        raise UserError(f"{origin}: unreadable class names ({problem}): not a file wgan wrote, or one edited since")
    return list(stored)


@dataclass
class LoadedGenerator:
    generator: torch.nn.Module
    config: TrainConfig
    step: int | None  # the training step it was saved at; None for an exported file that does not say
    run_dir: Path | None  # the run it belongs to; None for a file outside a run directory
    weights: str = "raw"  # "ema": the moving average of the generator's weights; "raw": the trained ones
    class_names: list[str] = field(default_factory=list)  # a conditional generator's, one per class


def load_generator(source: Path, device: str | torch.device = "cpu", raw: bool = False,
                   option: str = "--run") -> LoadedGenerator:
    """A generator ready to sample, from a run directory (its newest checkpoint, else its
    generator.safetensors), one checkpoint file, or a .safetensors file written by `wgan export`: the
    moving average of its weights where the run kept one, the trained generator with `raw`. `option`
    names what the user passed it as (--run takes all three, --weights the .safetensors file alone)."""
    device = resolve_device(device, "--device" if option.startswith("--") else "device")
    source = shipped.resolve(source)
    check_not_special(source, option)
    run_dir = None
    if option == "--weights" and (source.is_dir() or _is_zip(source)):
        what = "a run directory" if source.is_dir() else "a training checkpoint"
        raise UserError(f"--weights {source}: {what}, not an exported generator; pass it as --run {source} (or "
                        f"export its generator: wgan export --run {source} --out G.safetensors)")
    if source.is_dir() and not list_checkpoints(source / rundir.CHECKPOINTS):
        if not (source / rundir.GENERATOR).is_file():
            raise UserError(f"{source}: no checkpoints and no {rundir.GENERATOR}: is this a wgan run directory?")
        run_dir, source = source, source / rundir.GENERATOR
    if source.is_dir() or source.suffix == ".pt" or _is_zip(source):
        point = open_checkpoint(source, option=option)
        config, shape, origin, step = point.config, point.shape, point.checkpoint, point.step
        tensors, weights = checkpoint_generator(point.state, raw)
        run_dir = point.run_dir if rundir.is_run_dir(point.run_dir) else None
        stored_names = point.state.get("class_names")
    else:
        config, shape, tensors, step, weights, stored_names = _read_generator_file(source, option)
        origin = source
        if raw and weights == "ema":
            raise UserError(f"{source}: holds the moving average of the generator's weights only; the raw generator "
                            "is in its run's checkpoints: pass --run RUN/checkpoints/step-NNNNNNNN.pt --raw-generator")
    generator = _build_generator(config, shape, tensors, device, origin)  # checks the shape, too
    names = stored_class_names(stored_names, config, shape, origin)
    return LoadedGenerator(generator, TrainConfig.from_dict(config), step, run_dir, weights, names)


def _metadata_class_names(path: Path, meta: dict):
    """The class names in an exported generator's metadata (None: written before they were kept)."""
    text = meta.get("class_names")
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise UserError(f"{path}: unreadable class names in its metadata: not a file `wgan export` wrote, or "
                        "one edited since") from None


def _is_zip(path: Path) -> bool:
    """torch.save's files are zip archives (PK...); a .safetensors file starts with its header's length."""
    return read_head(path, 4) == b"PK\x03\x04"


def check_not_special(path: Path, option: str) -> None:
    """A FIFO, a device or a socket handed over as a file would block its reader or never end: refused by
    name before anything opens it for reading."""
    path = Path(path)
    if path.exists() and not path.is_dir() and not path.is_file():
        raise UserError(f"{option} {path}: not a regular file (a FIFO, a device or a socket), which wgan never reads; "
                        "pass a file or a run directory")


def _read_generator_file(path: Path, option: str = "--weights") -> tuple[dict, dict, dict, int | None, str,
                                                                         list | None]:
    """An exported generator's metadata, and its tensors as meta-device stand-ins (their shapes and dtypes
    from the file's header): the tensors themselves are read by _build_generator once they fit the model,
    so a foreign or edited file is refused having read its header alone."""
    if not path.is_file():
        accepted = ("a generator .safetensors file written by `wgan export`" if option == "--weights" else
                    "a run directory, one of its checkpoints or a generator .safetensors file")
        accepted += f", or a shipped generator's name ({shipped.shipped_names()})"
        raise UserError(f"{option} {path}: not found; pass {accepted}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            sizes = {k: (f.get_slice(k).get_shape(), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None
    try:
        if meta.get("format") != GENERATOR_FORMAT:
            raise ValueError
        config, shape = json.loads(meta["config"]), json.loads(meta["shape"])
        if not isinstance(config, dict) or not isinstance(shape, dict):
            raise ValueError
    except (KeyError, ValueError, RecursionError):
        raise UserError(f"{path}: safetensors file without wgan metadata (config/shape); "
                        "write it with `wgan export`") from None
    unknown = sorted({dtype for _, dtype in sizes.values() if dtype not in SAFETENSORS_DTYPES})
    if unknown:
        raise UserError(f"{path}: holds tensors of type {', '.join(unknown)}, which a wgan generator never has")
    stand_ins = {k: torch.empty(dims, dtype=SAFETENSORS_DTYPES[dtype], device="meta") for k, (dims, dtype) in sizes.items()}
    step = meta.get("step")
    weights = "ema" if meta.get("weights") == "ema" else "raw"  # files written before averaging hold the raw ones
    # "²" is a digit to str.isdigit, and no number to int: only ASCII digits are a step
    step = int(step) if isinstance(step, str) and re.fullmatch(r"[0-9]{1,19}", step) else None
    return (config, shape, stand_ins, step, weights,
            _metadata_class_names(path, meta))


# The header's names of the dtypes torch.save and `wgan export` write.
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                      "BOOL": torch.bool}


def _read_tensors(path: Path, tensors: dict) -> dict:
    """The tensors of the safetensors file `path` whose meta-device stand-ins `tensors` are."""
    if not any(t.is_meta for t in tensors.values()):
        return tensors
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None


def _build_generator(config: dict, shape: dict, tensors: dict, device, origin: Path):
    """The generator that `config` and `shape` describe, loaded with `tensors`: the description is checked,
    and the tensors against the model it makes built on the meta device (sizes only, nothing allocated),
    before any memory is given to it; no critic is built. Edited metadata or foreign tensors are one
    UserError naming `origin`."""
    try:
        cfg = validate_model(TrainConfig.from_dict(config))
    except UserError as exc:
        raise UserError(f"{origin}: {exc}") from None
    try:
        model_shape = ModelShape(**shape)
        problem = shape_problem(cfg.model, model_shape)
        skeleton = None if problem else generator_for_weights(cfg.model, model_shape)
    except Exception as exc:  # a shape edited into nonsense raises from deep inside the layers it builds
        problem = first_line(exc)
    if problem:
        raise UserError(f"{origin}: unreadable model shape ({problem}): not a file `wgan export` wrote, "
                        "or one edited since")
    problem = _weights_problem(skeleton.state_dict(), tensors)
    if problem:
        raise UserError(f"{origin}: {problem}")
    tensors = _read_tensors(origin, tensors)  # only now: their sizes are the model's
    problem = _values_problem(tensors)
    if problem:
        raise UserError(f"{origin}: {problem}")
    generator = skeleton
    generator.load_state_dict(tensors, assign=True)  # the tensors read become its weights: no second copy
    generator.to(device)
    problem = samples_problem(generator)
    if problem:
        raise UserError(f"{origin}: its model shape does not fit its weights ({problem}): not a file `wgan export` "
                        "wrote, or one edited since")
    return generator.eval()


def _listed(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _weights_problem(expected: dict, tensors: dict) -> str | None:
    """Why `tensors` cannot be the weights of a model whose state_dict is `expected` (shapes and dtypes only:
    `tensors` may be meta-device stand-ins), or None."""
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [f"{k} is {tuple(tensors[k].shape)} {tensors[k].dtype}, the model's {tuple(v.shape)} {v.dtype}"
             for k, v in expected.items()
             if k in tensors and (tuple(tensors[k].shape) != tuple(v.shape) or tensors[k].dtype != v.dtype)]
    parts = ([f"missing {_listed(missing)}"] if missing else []) + \
            ([f"unexpected {_listed(unexpected)}"] if unexpected else []) + ([_listed(wrong)] if wrong else [])
    if parts:
        return f"weights do not match the model its config and shape describe: {'; '.join(parts)}"
    return None


def _values_problem(tensors: dict) -> str | None:
    """Why the values of `tensors` cannot be a generator's weights (NaN or infinite ones), or None."""
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        return (f"weights hold NaN or infinite values ({_listed(bad)}): the run diverged before this was written, or "
                "the file is damaged; use an earlier checkpoint")
    return None
