"""Atomic checkpoint writes and safe loads.

A checkpoint holds state_dicts, tensors and primitives only, so it loads with
torch.load(weights_only=True): a crafted pickle is refused, never executed. Writes go to a temporary
file in the same folder, are fsynced, then renamed over the target, so a crash mid-write leaves the
last good checkpoint in place.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path

import torch

from wgan.errors import UserError

CHECKPOINT_RE = re.compile(r"^step-(\d{8})\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}.pt"


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_checkpoint(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with weights_only=True; any problem becomes one UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise UserError(f"{path}: refused to load: it holds objects other than tensors and primitives "
                        f"(possibly malicious; nothing was executed): {first[:200]}") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: corrupt or truncated checkpoint ({msg[:200]}); resume from an earlier one") from None
    if not isinstance(state, dict) or "generator" not in state or "step" not in state:
        raise UserError(f"{path}: not a wgan checkpoint (missing generator/step)")
    return state


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CHECKPOINT_RE.match(p.name))


def prune_checkpoints(folder: Path, keep: int) -> None:
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)


def load_generator(source: Path, device: str | torch.device = "cpu"):
    """A generator ready to sample, from a run directory (its generator.safetensors, else its newest
    checkpoint) or from a .safetensors file written by `wgan export`. Returns (generator, config)."""
    import json

    from wgan.config import TrainConfig
    from wgan.models import ModelShape, build_models

    source = Path(source)
    if source.is_dir():
        weights = source / "generator.safetensors"
        if not weights.exists():
            checkpoints = list_checkpoints(source / "checkpoints")
            if not checkpoints:
                raise UserError(f"{source}: no generator.safetensors and no checkpoints: is this a wgan run directory?")
            state = load_checkpoint(checkpoints[-1])
            cfg = TrainConfig.from_dict(json.loads(state["config"]))
            return _build_generator(cfg, _shape_from_state(state, cfg), state["generator"], device), cfg
        source = weights
    if not source.is_file():
        raise UserError(f"{source}: not found; pass a run directory or a generator .safetensors file")
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(source), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{source}: not a readable safetensors file ({str(exc)[:160]})") from None
    if meta.get("format") != "wgan-generator-1" or "config" not in meta or "shape" not in meta:
        raise UserError(f"{source}: safetensors file without wgan metadata (config/shape); export it with `wgan export`")
    cfg = TrainConfig.from_dict(json.loads(meta["config"]))
    shape = ModelShape(**json.loads(meta["shape"]))
    return _build_generator(cfg, shape, tensors, device), cfg


def _shape_from_state(state: dict, cfg) -> "ModelShape":
    import json

    from wgan.models import ModelShape

    if "shape" in state:
        return ModelShape(**json.loads(state["shape"]))
    raise UserError("checkpoint has no model shape: it was written by another version of wgan")


def _build_generator(cfg, shape, tensors: dict, device):
    from wgan.models import build_models

    generator, _ = build_models(cfg.model, shape, penalty=False)
    try:
        generator.load_state_dict(tensors)
    except RuntimeError as exc:
        raise UserError(f"weights do not match model '{cfg.model}' ({str(exc).splitlines()[0][:160]})") from None
    return generator.to(device).eval()
