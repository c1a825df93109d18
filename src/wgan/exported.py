"""Exported generators: the .safetensors file `wgan export` writes (the generator's weights, with its config,
model shape, step, which weights they are and its class names in the metadata), and a generator ready to
sample loaded from one, from a run directory or from one of its checkpoints.

A file is checked before memory is given to what it claims: its header first, then the generator it
describes built on the meta device against the tensor sizes in the header, and only then are its tensors
read. Files of earlier formats (the shipped generators among them) are upgraded as they are read
(legacy.py); everything here sees GENERATOR_FORMAT's layout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from wgan import legacy, rundir, shipped
from wgan.checkpoint import ResumePoint, checkpoint_generator, list_checkpoints, open_checkpoint
from wgan.classes import class_names_problem
from wgan.config import TrainConfig, validate_model
from wgan.data import dataset_class_names
from wgan.distributed import resolve_device
from wgan.errors import UserError, first_line, writing
from wgan.file_checks import check_not_special, is_zip
from wgan.files import atomic_write
from wgan.models import ModelShape, generator_for_weights, samples_problem, shape_problem
from wgan.sample_rules import check_export_suffix

GENERATOR_FORMAT = "wgan-generator-2"
WEIGHTS = ("ema", "raw")  # the moving average of the generator's weights, or the trained ones


def save_generator(path: Path, generator_state: dict, config: dict, shape: dict, step: int | None,
                   weights: str = "raw", class_names: list[str] | None = None) -> None:
    """`weights`: "ema" for the moving average of the generator's weights, "raw" for the trained ones.
    `class_names`: what a conditional generator's classes are called (None: as its dataset calls them)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in generator_state.items()}
    if class_names is None:  # none for an unconditional generator
        class_names = dataset_class_names(str(config.get("dataset", "")), int(shape.get("num_classes", 0) or 0))
    meta = {"format": GENERATOR_FORMAT, "config": json.dumps(config), "shape": json.dumps(shape), "step": str(step),
            "weights": weights, "class_names": json.dumps(list(class_names))}
    blob = safetensors_bytes(tensors, metadata=meta)
    atomic_write(path, lambda f: f.write(blob))


def export_run(run: Path, out: Path, raw: bool = False) -> tuple[ResumePoint, str]:
    """Write the generator of `run` (a run directory's newest checkpoint, or one checkpoint file) to `out`;
    returns the checkpoint and which weights were written."""
    out = Path(out)
    check_export_suffix(out, "--out")
    point = open_checkpoint(run, option="--run")
    tensors, weights = checkpoint_generator(point.state, raw)
    _build_generator(point.config, point.shape, tensors, "cpu", point.checkpoint)  # refuse a mismatch
    names = stored_class_names(point.state["class_names"], point.config, point.shape, point.checkpoint)
    with writing("--out", out):
        save_generator(out, tensors, point.config, point.shape, point.step, weights, class_names=names)
    return point, weights


def stored_class_names(stored, config: dict, shape: dict, origin: Path) -> list[str]:
    """The class names a checkpoint or an exported generator holds, checked: one per class, printable."""
    num_classes = int(shape.get("num_classes", 0) or 0)
    if num_classes <= 0:
        return []
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
    if option == "--weights" and (source.is_dir() or is_zip(source)):
        what = "a run directory" if source.is_dir() else "a training checkpoint"
        raise UserError(f"--weights {source}: {what}, not an exported generator; pass it as --run {source} (or "
                        f"export its generator: wgan export --run {source} --out G.safetensors)")
    if source.is_dir() and not list_checkpoints(source / rundir.CHECKPOINTS):
        if not (source / rundir.GENERATOR).is_file():
            raise UserError(f"{source}: no checkpoints and no {rundir.GENERATOR}: is this a wgan run directory?")
        run_dir, source = source, source / rundir.GENERATOR
    if source.is_dir() or source.suffix == ".pt" or is_zip(source):
        point = open_checkpoint(source, option=option)
        config, shape, origin, step = point.config, point.shape, point.checkpoint, point.step
        tensors, weights = checkpoint_generator(point.state, raw)
        run_dir = point.run_dir if rundir.is_run_dir(point.run_dir) else None
        stored_names = point.state["class_names"]
    else:
        config, shape, tensors, step, weights, stored_names = _read_generator_file(source, option)
        origin = source
        if raw and weights == "ema":
            raise UserError(f"{source}: holds the moving average of the generator's weights only; the raw generator "
                            "is in its run's checkpoints: pass --run RUN/checkpoints/step-NNNNNNNN.pt --raw-generator")
    generator = _build_generator(config, shape, tensors, device, origin)  # checks the shape, too
    names = stored_class_names(stored_names, config, shape, origin)
    return LoadedGenerator(generator, TrainConfig.from_dict(config), step, run_dir, weights, names)


def _read_metadata(path: Path, meta: dict) -> tuple[dict, dict, str, list]:
    """The config, model shape, weights ("ema" or "raw") and class names of an exported generator's metadata,
    which an older format's upgrade has brought to GENERATOR_FORMAT's layout."""
    meta = legacy.upgrade_generator_metadata(meta)
    try:
        if meta.get("format") != GENERATOR_FORMAT:
            raise ValueError
        config, shape = json.loads(meta["config"]), json.loads(meta["shape"])
        if not isinstance(config, dict) or not isinstance(shape, dict):
            raise ValueError
    except (KeyError, ValueError, RecursionError):
        raise UserError(f"{path}: safetensors file without wgan metadata (config/shape); "
                        "write it with `wgan export`") from None
    edited = "not a file `wgan export` wrote, or one edited since"
    if meta.get("weights") not in WEIGHTS:
        raise UserError(f"{path}: its metadata does not say which weights it holds (ema or raw): {edited}")
    try:
        class_names = json.loads(meta["class_names"])
    except (KeyError, TypeError, ValueError, RecursionError):
        raise UserError(f"{path}: unreadable class names in its metadata: {edited}") from None
    return config, shape, meta["weights"], class_names


def _read_generator_file(path: Path, option: str = "--weights") -> tuple[dict, dict, dict, int | None, str, list]:
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
    config, shape, weights, class_names = _read_metadata(path, meta)
    unknown = sorted({dtype for _, dtype in sizes.values() if dtype not in SAFETENSORS_DTYPES})
    if unknown:
        raise UserError(f"{path}: holds tensors of type {', '.join(unknown)}, which a wgan generator never has")
    stand_ins = {k: torch.empty(dims, dtype=SAFETENSORS_DTYPES[dtype], device="meta") for k, (dims, dtype) in sizes.items()}
    step = meta.get("step")  # "None" where the one who exported it did not know it
    # "²" is a digit to str.isdigit, and no number to int: only ASCII digits are a step
    step = int(step) if isinstance(step, str) and re.fullmatch(r"[0-9]{1,19}", step) else None
    return config, shape, stand_ins, step, weights, class_names


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
