"""Samples and latent walks from a trained generator, drawn and written as a request of wgan.sample_request
says: TrainedGenerator (wgan.api) and `wgan sample` both make their requests there, every rule checked
once, and come here to draw them, so the same seed gives the same samples from either. Nothing here checks
a request again; nothing is drawn or written before it is made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from wgan import exported
from wgan.animation import write_animation
from wgan.distributed import memory_bytes, resolve_device
from wgan.errors import UserError, first_line, named, writing
from wgan.metrics.samples import Samples, generate_samples
from wgan.sample_request import (
    OPTIONS, Names, SampleOptions, SampleRequest, WalkOptions, WalkRequest, command_options, sample_request,
    walk_request)
from wgan.walks import Walk, grid_frames, render_walk, walk_rows


def cpu_memory() -> int:
    return memory_bytes(torch.device("cpu"))


def samples_for(generator: nn.Module, class_names, options: SampleOptions) -> SampleRequest:
    """The samples `options` ask of `generator`, checked against it and this machine's memory."""
    return sample_request(options, generator.shape, class_names, cpu_memory())


def walk_for(generator: nn.Module, class_names, options: WalkOptions) -> WalkRequest:
    """The walks `options` ask of `generator`, checked against it and this machine's memory."""
    return walk_request(options, generator.shape, class_names, cpu_memory())


# ---------------------------------------------------------------------------------------------
# Drawing and writing


def draw_samples(generator: nn.Module, request: SampleRequest, *, device, batch_size: int = 500,
                 progress: bool = False) -> Samples:
    """The request's samples (a conditional generator without labels: every class in turn)."""
    labels = None if request.labels is None else torch.tensor(request.labels, dtype=torch.int64)
    asked = request.options
    return generate_samples(generator, asked.num, device=device, seed=asked.seed, batch_size=batch_size,
                            labels=labels, truncation=asked.truncation, progress=progress)


def write_samples(generator: nn.Module, request: SampleRequest, *, device, progress: bool = False) -> Path:
    """The request's samples written to its `out`: a .png grid (a conditional generator's classes one per
    column) or a .npz array (uint8 images N x C x H x W and their labels; float points for point data)."""
    out, name = request.options.out, request.options.names.out
    with writing(name, out):  # before the sampling, which can take minutes
        out.parent.mkdir(parents=True, exist_ok=True)
    samples = draw_samples(generator, request, device=device, batch_size=1024, progress=progress)
    with writing(name, out):
        _save_samples(out, samples, generator.shape, request.grid_columns)
    return out


def _save_samples(out: Path, samples: Samples, shape, nrow: int) -> None:
    if shape.point_dim:
        np.savez_compressed(out, points=samples.x.numpy())
    elif out.suffix == ".npz":
        arrays = {"images": samples.x.numpy()}
        if samples.requested_labels is not None:
            arrays["labels"] = samples.requested_labels.numpy()
        np.savez_compressed(out, **arrays)
    else:
        from wgan.grids import save_grid

        save_grid(out, samples.x, nrow=nrow)


def write_walk(generator: nn.Module, request: WalkRequest, *, device) -> Walk:
    """The request's walks as a GIF or MP4 at its `out`, the walks side by side in a grid."""
    out, name = request.options.out, request.options.names.out
    with writing(name, out):  # before the rendering, which can take minutes
        out.parent.mkdir(parents=True, exist_ok=True)
    walk = render_walk(generator, device=device, **request.render_options())
    try:
        with writing(name, out):
            write_animation(out, grid_frames(walk).numpy(), request.options.frame_ms)
    except RuntimeError as exc:  # ffmpeg's own failures reach us as RuntimeErrors from imageio
        raise UserError(f"{named(name, out)}: could not write the walk ({first_line(exc)}); try a .gif") from None
    return walk


# ---------------------------------------------------------------------------------------------
# `wgan sample`: one call from the options to the file written


def sample_file(source: Path, out: Path, *, walk: int | None = None, num: int | None = None, label=None,
                truncation=None, seed: int = 0, frames: int | None = None, frame_ms: int | None = None,
                device: str = "auto", raw: bool = False, option: str = "--run", names: Names = OPTIONS) -> str:
    """Samples (walk None) or latent walks of the generator at `source` written to `out`; what was written,
    in a line. The options are checked before the generator is loaded, and it before anything is written."""
    options = command_options(Path(out), walk=walk, num=num, label=label, truncation=truncation, seed=seed,
                              frames=frames, frame_ms=frame_ms, names=names)
    device = resolve_device(device)
    loaded = exported.load_generator(Path(source), device, raw=raw, option=option)
    if isinstance(options, SampleOptions):
        request = samples_for(loaded.generator, loaded.class_names, options)
        write_samples(loaded.generator, request, device=device, progress=True)
        return f"wrote {options.num} samples to {options.out}"
    request = walk_for(loaded.generator, loaded.class_names, options)
    drawn = write_walk(loaded.generator, request, device=device)
    return (f"wrote a latent walk to {options.out}: {drawn.num_frames} frames ({options.num_points} points x "
            f"{options.frames}), {walk_rows(drawn, request.classes_per_walk)}")
