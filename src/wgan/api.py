"""The Python API: a trained generator to sample from, loaded from a run directory, one of its checkpoints
or an exported .safetensors file.

    import wgan
    g = wgan.load_generator("runs/00003-fashion-gp")
    images = g.sample(64, labels="Sneaker", truncation=0.8, seed=0)   # uint8 (64, 1, 28, 28) on g.device

Loading goes through the checkpoint module's verified, weights-only loads (nothing in a file is executed),
and sampling through the same code as `wgan sample`, so the same seed gives the same images as
`wgan sample --seed`. Every problem is a ValueError whose message says what to change.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from wgan import checkpoint
from wgan.classes import class_index, class_indices
from wgan.errors import UserError
from wgan.metrics.samples import generate_samples, samples_memory_problem
from wgan.walks import render_walk, walk_memory_problem


def load_generator(source: str | Path, device: str | torch.device = "cpu",
                   raw_generator: bool = False) -> "TrainedGenerator":
    """The generator of `source`: a run directory (its newest checkpoint, else its generator.safetensors),
    a checkpoint file of a run, or a .safetensors file written by `wgan export`. The moving average of its
    weights where the run kept one, as `wgan sample` does; the trained weights with `raw_generator=True`."""
    try:
        return TrainedGenerator(checkpoint.load_generator(Path(source), device, raw=raw_generator,
                                                          option="load_generator"))
    except UserError as exc:
        raise ValueError(str(exc)) from None


class TrainedGenerator:
    """A trained generator and what it makes: `classes`, `latent_dim`, `image_shape`, `device`."""

    def __init__(self, loaded: checkpoint.LoadedGenerator):
        self.module = loaded.generator  # the torch module, in eval mode
        self.config = loaded.config  # the TrainConfig it was trained with
        self.step = loaded.step  # the training step it was saved at (None: the file does not say)
        self.weights = loaded.weights  # "ema": the moving average of its weights; "raw": the trained ones
        self.classes: tuple[str, ...] = tuple(loaded.class_names)  # () for an unconditional generator

    @property
    def latent_dim(self) -> int:
        return self.module.shape.latent_dim

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) of one image; (D,) for a generator of D-dimensional points (the toy data)."""
        return tuple(self.module.shape.sample_shape)

    @property
    def conditional(self) -> bool:
        return bool(self.classes)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def to(self, device: str | torch.device) -> "TrainedGenerator":
        self.module.to(device)
        return self

    def __repr__(self) -> str:
        classes = f", {len(self.classes)} classes" if self.classes else ""
        return (f"TrainedGenerator({self.config.model}, image_shape={self.image_shape}, latent_dim={self.latent_dim}"
                f"{classes}, weights={self.weights!r}, step={self.step}, device={self.device})")

    def sample(self, num: int, labels=None, truncation: float | None = None, seed: int | None = None,
               batch_size: int = 500) -> torch.Tensor:
        """`num` samples, uint8 (N, C, H, W) on the generator's device (float points (N, D) for point data).

        labels: for a conditional generator, a class name (any case) or number for all samples, or a list of
        one per sample; None: every class in turn. truncation: each noise coordinate within
        [-truncation, truncation] (resampled, not clamped). seed: the same seed gives the same samples."""
        _check_count(num, "num")
        _check_held(samples_memory_problem(num, self.module.shape), f"num={num!r}", "sample fewer at a time")
        _check_truncation(truncation)
        label_tensor = self._labels(labels, num)
        seed = random.SystemRandom().randrange(2**62) if seed is None else _check_seed(seed)
        samples = generate_samples(self.module, num, device=self.device, seed=seed, batch_size=batch_size,
                                   labels=label_tensor, truncation=truncation)
        return samples.x.to(self.device)

    def walk(self, num_points: int = 4, frames: int = 8, num_walks: int = 1, label=None,
             truncation: float | None = None, seed: int = 0) -> torch.Tensor:
        """The frames of latent walks, uint8 (T, K, C, H, W): `num_walks` walks, each a loop through
        `num_points` fixed noise points, `frames` frames between neighbours (T = num_points * frames). A
        conditional generator shows each walk in every class (K = num_walks * classes, walk by walk), or in
        the one class `label` names."""
        if len(self.image_shape) != 3:
            raise ValueError("a latent walk is a sequence of images; this generator makes points")
        if not (isinstance(num_points, int) and num_points >= 2):
            raise ValueError(f"num_points={num_points!r}: a walk needs at least 2 points")
        _check_count(frames, "frames")
        _check_count(num_walks, "num_walks")
        _check_truncation(truncation)
        rows = len(self.classes) if self.conditional and label is None else 1  # every class, or the one named
        _check_held(walk_memory_problem(num_points * frames * num_walks * rows, self.module.shape),
                    f"num_points={num_points}, frames={frames}, num_walks={num_walks}", "use fewer")
        index = None if label is None else self._labels(label, 1)[0].item()
        walk = render_walk(self.module, num_walks=num_walks, num_points=num_points, frames_per_segment=frames,
                           seed=_check_seed(seed), truncation=truncation, label=index, device=self.device)
        return walk.frames.to(self.device)

    def _labels(self, labels, num: int) -> torch.Tensor | None:
        if not self.conditional:
            if labels is not None:
                raise ValueError("labels: this generator is not class-conditional; leave labels out")
            return None
        if labels is None:
            return None  # generate_samples asks for every class in turn
        return torch.tensor(class_indices(labels, self.classes, num), dtype=torch.int64)

    def class_index(self, label) -> int:
        """The number of the class `label` names (a name in any case, or a number)."""
        try:
            return class_index(label, self.classes)
        except ValueError as exc:
            raise ValueError(f"label {label!r}: {exc}") from None


def _check_count(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}: must be a whole number >= 1")


def _check_held(problem: str | None, what: str, advice: str) -> None:
    if problem:
        raise ValueError(f"{what}: {problem}; {advice}")


def _check_truncation(truncation) -> None:
    if truncation is None:
        return
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not truncation > 0:  # NaN too
        raise ValueError(f"truncation={truncation!r}: must be a number > 0 (each noise coordinate is kept within "
                         "[-truncation, truncation]; None draws without truncation)")


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"seed={seed!r}: must be a whole number from 0 to 2**63 - 1")
    return seed
