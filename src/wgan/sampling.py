"""Samples and latent walks from a trained generator, drawn and written after every rule of
wgan.sample_rules is checked: TrainedGenerator (wgan.api) and `wgan sample` both come here, so the same seed
gives the same samples from either. Nothing is drawn or written before the options are checked.
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
from wgan.sample_rules import (
    ARGUMENTS, DEFAULT_FRAME_MS, DEFAULT_WALK_FRAMES, DEFAULT_WALK_ROWS, DEFAULT_WALKS, OPTIONS, Names,
    check_animation_file, check_count, check_sample_memory, check_sample_options, check_samples_file,
    check_samples_suffix, check_seed, check_truncation, check_walk_options, check_walk_size, label_index,
    sample_labels)
from wgan.walks import Walk, grid_frames, render_walk


def cpu_memory() -> int:
    return memory_bytes(torch.device("cpu"))


def labels_tensor(labels, class_names, num: int, name: str) -> torch.Tensor | None:
    indices = sample_labels(labels, class_names, num, name)
    return None if indices is None else torch.tensor(indices, dtype=torch.int64)


# ---------------------------------------------------------------------------------------------
# Drawing and writing


def check_draw(generator: nn.Module, class_names, num: int, labels, truncation, seed,
               names: Names) -> torch.Tensor | None:
    """Every rule on drawing `num` samples; the label of each (None: every class in turn)."""
    check_count(num, names.num)
    check_truncation(truncation, names.truncation)
    check_seed(seed, names.seed)
    label_tensor = labels_tensor(labels, class_names, num, names.label)
    check_sample_memory(num, generator.shape, names.num, cpu_memory())
    return label_tensor


def draw_samples(generator: nn.Module, class_names, num: int, *, labels=None, truncation=None, seed: int = 0,
                 device, batch_size: int = 500, names: Names = ARGUMENTS, progress: bool = False) -> Samples:
    """`num` samples, every rule checked first (a conditional generator without labels: every class in turn)."""
    label_tensor = check_draw(generator, class_names, num, labels, truncation, seed, names)
    return generate_samples(generator, num, device=device, seed=seed, batch_size=batch_size, labels=label_tensor,
                            truncation=truncation, progress=progress)


def write_samples(generator: nn.Module, class_names, out: Path, num: int, *, label=None, truncation=None,
                  seed: int = 0, device, names: Names = ARGUMENTS, progress: bool = False) -> Path:
    """`num` samples written to `out`: a .png grid (a conditional generator's classes one per column) or
    a .npz array (uint8 images N x C x H x W and their labels; float points for point data)."""
    out, shape = Path(out), generator.shape
    check_count(num, names.num)
    check_samples_suffix(out, names)
    check_sample_memory(num, shape, names.num, cpu_memory())
    check_samples_file(out, num, shape, names)
    check_draw(generator, class_names, num, label, truncation, seed, names)  # all refused before the folder is made
    with writing(names.out, out):  # before the sampling, which can take minutes
        out.parent.mkdir(parents=True, exist_ok=True)
    samples = draw_samples(generator, class_names, num, labels=label, truncation=truncation, seed=seed,
                           device=device, batch_size=1024, names=names, progress=progress)
    nrow = shape.num_classes if shape.conditional and label is None else max(1, int(num ** 0.5))
    with writing(names.out, out):
        _save_samples(out, samples, shape, nrow)
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


def plan_walk(generator: nn.Module, class_names, *, num_points: int, frames: int, num_walks: int | None = None,
              label=None, truncation=None, seed: int = 0, names: Names = ARGUMENTS) -> dict:
    """render_walk's arguments for latent walks, each a loop through `num_points` fixed noise points, every
    rule checked; a conditional generator shows each walk in every class, or in the one `label` names.
    `num_walks` None: a 4 x 4 grid of walks, or 4 rows of every class."""
    shape = generator.shape
    check_walk_options(num_points, frames, None, num_walks, names)
    check_truncation(truncation, names.truncation)
    check_seed(seed, names.seed)
    if shape.point_dim:
        raise UserError(f"{names.walk}: this generator makes 2-D points; a latent walk is a sequence of images")
    if label is not None and not shape.conditional:
        raise UserError(f"{names.label}: this generator is not class-conditional")
    index = None if label is None else label_index(label, class_names, names.label)
    every_class = shape.conditional and index is None
    num_walks = num_walks or (DEFAULT_WALK_ROWS if every_class else DEFAULT_WALKS)
    check_walk_size(num_points * frames * num_walks * (shape.num_classes if every_class else 1), shape, names,
                    cpu_memory())
    return dict(num_walks=num_walks, num_points=num_points, frames_per_segment=frames, seed=seed,
                truncation=truncation, label=index)


def write_walk(generator: nn.Module, class_names, out: Path, *, num_points: int, frames: int = DEFAULT_WALK_FRAMES,
               num_walks: int | None = None, label=None, truncation=None, seed: int = 0,
               frame_ms: int = DEFAULT_FRAME_MS, device, names: Names = ARGUMENTS) -> Walk:
    """Latent walks (plan_walk) as a GIF or MP4 at `out`, the walks side by side in a grid."""
    out = Path(out)
    check_walk_options(num_points, frames, frame_ms, num_walks, names)
    check_animation_file(out, names)
    plan = plan_walk(generator, class_names, num_points=num_points, frames=frames, num_walks=num_walks, label=label,
                     truncation=truncation, seed=seed, names=names)
    with writing(names.out, out):  # before the rendering, which can take minutes
        out.parent.mkdir(parents=True, exist_ok=True)
    walk = render_walk(generator, device=device, **plan)
    try:
        with writing(names.out, out):
            write_animation(out, grid_frames(walk).numpy(), frame_ms)
    except RuntimeError as exc:  # ffmpeg's own failures reach us as RuntimeErrors from imageio
        raise UserError(f"{named(names.out, out)}: could not write the walk ({first_line(exc)}); try a .gif") from None
    return walk


# ---------------------------------------------------------------------------------------------
# `wgan sample`: one call from the options to the file written


def sample_file(source: Path, out: Path, *, walk: int | None = None, num: int | None = None, label=None,
                truncation=None, seed: int = 0, frames: int | None = None, frame_ms: int | None = None,
                device: str = "auto", raw: bool = False, option: str = "--run", names: Names = OPTIONS) -> str:
    """Samples (walk None) or latent walks of the generator at `source` written to `out`; what was written,
    in a line. The options are checked before the generator is loaded, and it before anything is written."""
    out = Path(out)
    num, frames, frame_ms = check_sample_options(out, walk=walk, num=num, truncation=truncation, seed=seed,
                                                 frames=frames, frame_ms=frame_ms, names=names)
    device = resolve_device(device)
    loaded = exported.load_generator(Path(source), device, raw=raw, option=option)
    if walk is None:
        write_samples(loaded.generator, loaded.class_names, out, num, label=label, truncation=truncation, seed=seed,
                      device=device, names=names, progress=True)
        return f"wrote {num} samples to {out}"
    drawn = write_walk(loaded.generator, loaded.class_names, out, num_points=walk, frames=frames, num_walks=num,
                       label=label, truncation=truncation, seed=seed, frame_ms=frame_ms, device=device, names=names)
    every_class = loaded.generator.shape.conditional and label is None
    return (f"wrote a latent walk to {out}: {drawn.num_frames} frames ({walk} points x {frames}), "
            f"{walk_rows(drawn, loaded.generator.shape.num_classes if every_class else 0)}")


def walk_rows(walk: Walk, every_class: int) -> str:
    """What the walks of a picture are: "4 walks", or "2 walks, each in every class" (`every_class`: the
    number of classes each walk is shown in; 0: walks of one image)."""
    if every_class:
        return f"{walk.frames.shape[1] // every_class} walks, each in every class"
    num = walk.frames.shape[1]
    return f"{num} walk{'s' * (num > 1)}"
