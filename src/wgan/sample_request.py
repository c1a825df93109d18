"""What `wgan sample` and TrainedGenerator ask of a generator, checked once, at the border: first each
option on its own, before any generator is loaded (SampleOptions, WalkOptions), then against the generator
that draws them (SampleRequest, WalkRequest). wgan.sampling draws and writes a request as it is and checks
nothing again. Both the command line and the Python API make their requests through the functions below,
so a rule refuses the same thing in the same words, naming the value as the caller's user gave it.
Imports no numerical library, as the rules it applies (wgan.sample_rules).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wgan.sample_rules import (
    ARGUMENTS, DEFAULT_FRAME_MS, DEFAULT_SAMPLES, DEFAULT_WALK_FRAMES, DEFAULT_WALK_ROWS, DEFAULT_WALKS, OPTIONS,
    Names, check_animation_file, check_count, check_no_walk_options, check_not_animation, check_sample_memory,
    check_samples_fit, check_samples_suffix, check_seed, check_truncation, check_walk_generator,
    check_walk_options, check_walk_size, label_index, sample_labels)


@dataclass(frozen=True, kw_only=True)
class Asked:
    """What samples and walks both ask, each option checked on its own; the label is left to the generator's
    classes, which are not known before it is loaded."""

    label: object  # a class name or number, (samples only) a list of one per sample, or None
    truncation: float | None
    seed: int
    out: Path | None  # None: drawn, not written
    names: Names


@dataclass(frozen=True, kw_only=True)
class SampleOptions(Asked):
    num: int  # out: a .png or .npz file


@dataclass(frozen=True, kw_only=True)
class WalkOptions(Asked):
    num_points: int  # out: a .gif or .mp4 file
    frames: int  # per segment, between neighbouring points
    frame_ms: int | None  # None: frames only, no animation written
    num_walks: int | None  # None: the generator's default (DEFAULT_WALKS, or DEFAULT_WALK_ROWS of every class)


@dataclass(frozen=True)
class SampleRequest:
    """Samples that this generator can draw and `out` can hold, every rule checked: trusted as they are."""

    options: SampleOptions
    labels: tuple[int, ...] | None  # the class of each sample; None: every class in turn, or no classes
    grid_columns: int  # of the .png grid: a conditional generator's classes, one a column, else a square


@dataclass(frozen=True)
class WalkRequest:
    """Latent walks that this generator can render and this machine can hold, every rule checked."""

    options: WalkOptions
    num_walks: int
    label: int | None  # the class of every walk; None: each walk in every class, or no classes
    classes_per_walk: int  # each walk shown side by side in this many classes; 0: each walk one image

    def render_options(self) -> dict:
        """wgan.walks.render_walk's arguments (the generator and the device aside)."""
        o = self.options
        return dict(num_walks=self.num_walks, num_points=o.num_points, frames_per_segment=o.frames, seed=o.seed,
                    truncation=o.truncation, label=self.label)


# ---------------------------------------------------------------------------------------------
# The options on their own, before any generator is loaded


def sample_options(num, *, label=None, truncation=None, seed=0, out=None, names: Names = ARGUMENTS) -> SampleOptions:
    truncation = check_truncation(truncation, names.truncation)
    check_seed(seed, names.seed)
    check_count(num, names.num)
    if out is not None:
        out = Path(out)
        check_samples_suffix(out, names)
    return SampleOptions(num=num, label=label, truncation=truncation, seed=seed, out=out, names=names)


def walk_options(num_points, frames, *, frame_ms=None, num_walks=None, label=None, truncation=None, seed=0, out=None,
                 names: Names = ARGUMENTS) -> WalkOptions:
    """Walks through `num_points` points (at least 2), `frames` frames between neighbours; written to `out`
    (a .gif or .mp4 this machine can write) with `frame_ms` a frame, unless `out` is None."""
    truncation = check_truncation(truncation, names.truncation)
    check_seed(seed, names.seed)
    check_walk_options(num_points, frames, frame_ms, num_walks, names)
    if out is not None:
        out = Path(out)
        check_animation_file(out, names)
    return WalkOptions(num_points=num_points, frames=frames, frame_ms=frame_ms, num_walks=num_walks, label=label,
                       truncation=truncation, seed=seed, out=out, names=names)


def command_options(out: Path, *, walk: int | None, num: int | None, label, truncation, seed, frames: int | None,
                    frame_ms: int | None, names: Names = OPTIONS) -> SampleOptions | WalkOptions:
    """`wgan sample`'s options: samples (walk None) or a walk of `walk` points, their defaults filled in
    (a walk's number None: the generator decides)."""
    if walk is None:
        check_no_walk_options(frames, frame_ms, names)
        check_not_animation(Path(out), names)
        return sample_options(DEFAULT_SAMPLES if num is None else num, label=label, truncation=truncation, seed=seed,
                              out=out, names=names)
    return walk_options(walk, DEFAULT_WALK_FRAMES if frames is None else frames,
                        frame_ms=DEFAULT_FRAME_MS if frame_ms is None else frame_ms, num_walks=num, label=label,
                        truncation=truncation, seed=seed, out=out, names=names)


# ---------------------------------------------------------------------------------------------
# The options against the generator (its ModelShape and class names) and this machine's memory in bytes


def sample_request(options: SampleOptions, shape, class_names, memory: int) -> SampleRequest:
    names = options.names
    check_sample_memory(options.num, shape, names.num, memory)
    if options.out is not None:
        check_samples_fit(options.out, options.num, shape, names)
    labels = sample_labels(options.label, class_names, options.num, names.label)
    columns = shape.num_classes if shape.conditional and labels is None else max(1, int(options.num ** 0.5))
    return SampleRequest(options, None if labels is None else tuple(labels), columns)


def walk_request(options: WalkOptions, shape, class_names, memory: int) -> WalkRequest:
    """A conditional generator shows each walk in every class, or in the one the label names; the number
    of walks, where not given, is a 4 x 4 grid, or 4 rows of every class."""
    names = options.names
    check_walk_generator(shape, options.label, names)
    label = None if options.label is None else label_index(options.label, class_names, names.label)
    classes_per_walk = shape.num_classes if shape.conditional and label is None else 0
    num_walks = options.num_walks or (DEFAULT_WALK_ROWS if classes_per_walk else DEFAULT_WALKS)
    check_walk_size(options.num_points * options.frames * num_walks * max(1, classes_per_walk), shape, names, memory)
    return WalkRequest(options, num_walks, label, classes_per_walk)
