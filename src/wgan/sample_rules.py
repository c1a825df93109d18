"""The rules on asking a trained generator for samples and latent walks: counts and the memory they need,
labels by name or number, truncation, seeds, walk sizes and output files.

The Python API (wgan.api) and `wgan sample` both apply them through wgan.sample_request, so a rule is said
once and in the same words; each caller passes the names its user knows (`num=0` from Python, `--num 0`
on the command line). Every refusal is a UserError (a ValueError). Imports no numerical library: the
command line's help shows the defaults below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from wgan.classes import class_index, class_indices
from wgan.config import SEED
from wgan.errors import UserError, named

MAX_GRID_IMAGES = 10_000  # a 100 x 100 grid: more is no longer a picture anyone looks at
SAMPLE_SUFFIXES = (".png", ".npz")
DEFAULT_SAMPLES = 64
DEFAULT_WALKS = 16  # a 4 x 4 grid of walks
DEFAULT_WALK_ROWS = 4  # a conditional generator's walks: each row one walk, shown in every class
DEFAULT_WALK_FRAMES = 16
DEFAULT_FRAME_MS = 80
LEAST_FRAME_MS = 10  # GIF viewers show shorter frames at their own pace


@dataclass(frozen=True)
class Names:
    """What each value is called where the user gave it: a Python argument or a command-line option."""

    num: str = "num"
    label: str = "labels"
    truncation: str = "truncation"
    seed: str = "seed"
    out: str = "path"
    walk: str = "num_points"
    frames: str = "frames"
    frame_ms: str = "frame_ms"
    num_walks: str = "num_walks"


ARGUMENTS = Names()
OPTIONS = Names(num="--num", label="--label", truncation="--truncation", seed="--seed", out="--out", walk="--walk",
                frames="--frames", frame_ms="--frame-ms", num_walks="--num")


# ---------------------------------------------------------------------------------------------
# The rules


def check_count(value, name: str, least: int = 1, why: str = "") -> int:
    """A whole number of things (samples, points, frames) of at least `least`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{named(name, value)}: must be a whole number >= {least}")
    if value < least:
        raise UserError(f"{named(name, value)}: must be >= {least}{why}")
    return value


def check_truncation(psi, name: str) -> float | None:
    """None (no truncation) or a number > 0: each noise coordinate is drawn within [-psi, psi]."""
    if psi is None:
        return None
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not psi > 0:  # NaN too
        raise UserError(f"{named(name, psi)}: must be a number > 0 (noise coordinates are kept within "
                        "[-PSI, PSI]; e.g. 0.7)")
    return float(psi)


def check_seed(seed, name: str) -> int:
    """A seed as a run's config takes it (config.SEED): the same seed, the same noise."""
    if isinstance(seed, bool) or not SEED.accepts(seed):
        raise UserError(f"{named(name, seed)}: {SEED.refusal}")
    return seed


def label_index(label, class_names, name: str) -> int:
    """One label, a class name in any case (Sneaker, a) or a class number, as the class number."""
    try:
        return class_index(label, class_names)
    except ValueError as exc:
        raise UserError(f"{named(name, label)}: {exc}") from None


def sample_labels(labels, class_names, num: int, name: str) -> list[int] | None:
    """The label of each of `num` samples (None: every class in turn): one label for all, or a list of one
    per sample; refused for a generator without classes."""
    if labels is None:
        return None
    if not class_names:
        raise UserError(f"{name}: this generator is not class-conditional")
    if isinstance(labels, (list, tuple)) or getattr(labels, "ndim", 0) == 1:
        try:
            return class_indices(labels, class_names, num)
        except ValueError as exc:
            raise UserError(f"{name}: {exc}") from None
    return [label_index(labels, class_names, name)] * num


def check_sample_memory(num: int, shape, name: str, memory: int) -> None:
    """Sample counts that cannot be held in `memory` bytes (this machine's) are refused before sampling,
    with the memory they need."""
    need = num * (math.prod(shape.sample_shape) + 4 * shape.latent_dim)  # uint8 samples and their fp32 noise
    if need > memory / 4:
        raise UserError(f"{named(name, num)}: {need / 2**30:.1f} GiB of samples in memory, more than a quarter of "
                        f"this machine's {memory / 2**30:.0f} GiB; write fewer (several files, with other --seed "
                        "values)")


def check_samples_suffix(out: Path, names: Names) -> None:
    if out.suffix not in SAMPLE_SUFFIXES:
        raise UserError(f"{named(names.out, out)}: use a .png (grid) or .npz (array) file name")


def check_samples_file(out: Path, num: int, shape, names: Names) -> None:
    """What a samples file can hold: a grid (.png) of at most MAX_GRID_IMAGES images, or an array (.npz);
    points only as an array."""
    check_samples_suffix(out, names)
    check_samples_fit(out, num, shape, names)


def check_samples_fit(out: Path, num: int, shape, names: Names) -> None:
    """What a samples file of a known suffix (check_samples_suffix) can hold of this generator's samples."""
    if out.suffix == ".png" and num > MAX_GRID_IMAGES:
        raise UserError(f"{named(names.num, num)}: a grid of more than {MAX_GRID_IMAGES:,} images; write them as .npz")
    if shape.point_dim and out.suffix != ".npz":
        raise UserError(f"{names.out}: point data (toy 2-D) can only be written as .npz")


def check_export_suffix(out: Path, name: str) -> None:
    if Path(out).suffix != ".safetensors":
        raise UserError(f"{named(name, out)}: the exported generator is a .safetensors file; name it so")


def check_not_animation(out: Path, names: Names) -> None:
    if out.suffix.lower() in (".gif", ".mp4"):
        raise UserError(f"{named(names.out, out)}: an animation is a latent walk; add {names.walk} N (its number "
                        "of points), or write samples as .png or .npz")


def check_no_walk_options(frames, frame_ms, names: Names) -> None:
    """`wgan sample` without --walk: the options only a walk has are refused, not ignored."""
    given = [n for n, v in ((names.frames, frames), (names.frame_ms, frame_ms)) if v is not None]
    if given:
        raise UserError(f"{given[0]}: only for a latent walk; add {names.walk} N (its number of points)")


def check_walk_options(num_points, frames, frame_ms, num_walks, names: Names) -> None:
    """A walk's sizes, before any generator is loaded: it loops through at least 2 points."""
    check_count(num_points, names.walk, 2, " (a walk loops through at least 2 points)")
    check_count(frames, names.frames)
    if frame_ms is not None:
        check_count(frame_ms, names.frame_ms, LEAST_FRAME_MS)
    if num_walks is not None:
        check_count(num_walks, names.num_walks)


def check_animation_file(out: Path, names: Names) -> None:
    from wgan.animation import animation_problem  # numpy, for writing: not for the command line's help

    problem = animation_problem(out)
    if problem:
        raise UserError(f"{named(names.out, out)}: {problem}")


def check_walk_generator(shape, label, names: Names) -> None:
    """A walk is of images, and in a class only where the generator has classes."""
    if shape.point_dim:
        raise UserError(f"{names.walk}: this generator makes 2-D points; a latent walk is a sequence of images")
    if label is not None and not shape.conditional:
        raise UserError(f"{names.label}: this generator is not class-conditional")


def check_walk_size(images: int, shape, names: Names, memory: int) -> None:
    """A walk whose frames cannot be held in `memory` bytes is refused before rendering, with what it needs."""
    need = images * math.prod(shape.sample_shape) * 4  # the images, and their grids in RGB (uint8)
    if need > memory / 4:
        sizes = "/".join(dict.fromkeys((names.walk, names.frames, names.num_walks)))
        raise UserError(f"{sizes}: {images:,} images, {need / 2**30:.1f} GiB in memory, more than a quarter of this "
                        f"machine's {memory / 2**30:.0f} GiB; use fewer points, frames or walks")
