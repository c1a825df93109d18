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

from wgan import checkpoint, sampling
from wgan.sample_rules import DEFAULT_FRAME_MS, DEFAULT_SAMPLES, DEFAULT_WALK_FRAMES, MAX_SEED, label_index
from wgan.walks import render_walk


def load_generator(source: str | Path, device: str | torch.device = "cpu",
                   raw_generator: bool = False) -> "TrainedGenerator":
    """The generator of `source`: a run directory (its newest checkpoint, else its generator.safetensors),
    a checkpoint file of a run, or a .safetensors file written by `wgan export`. The moving average of its
    weights where the run kept one, as `wgan sample` does; the trained weights with `raw_generator=True`."""
    return TrainedGenerator(checkpoint.load_generator(Path(source), device, raw=raw_generator, option="load_generator"))


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
        seed = random.SystemRandom().randrange(MAX_SEED) if seed is None else seed
        samples = sampling.draw_samples(self.module, self.classes, num, labels=labels, truncation=truncation,
                                        seed=seed, device=self.device, batch_size=batch_size)
        return samples.x.to(self.device)

    def walk(self, num_points: int = 4, frames: int = 8, num_walks: int = 1, label=None,
             truncation: float | None = None, seed: int = 0) -> torch.Tensor:
        """The frames of latent walks, uint8 (T, K, C, H, W): `num_walks` walks, each a loop through
        `num_points` fixed noise points, `frames` frames between neighbours (T = num_points * frames). A
        conditional generator shows each walk in every class (K = num_walks * classes, walk by walk), or in
        the one class `label` names."""
        plan = sampling.plan_walk(self.module, self.classes, num_points=num_points, frames=frames,
                                  num_walks=num_walks, label=label, truncation=truncation, seed=seed)
        return render_walk(self.module, device=self.device, **plan).frames.to(self.device)

    def save_samples(self, path: str | Path, num: int = DEFAULT_SAMPLES, labels=None, truncation: float | None = None,
                     seed: int = 0) -> Path:
        """`num` samples written to `path` as `wgan sample` writes them: a .png grid, or a .npz array (uint8
        images and their labels; points for point data). The same seed gives the same file."""
        return sampling.write_samples(self.module, self.classes, Path(path), num, label=labels,
                                      truncation=truncation, seed=seed, device=self.device)

    def save_walk(self, path: str | Path, num_points: int = 4, frames: int = DEFAULT_WALK_FRAMES,
                  num_walks: int | None = None, label=None, truncation: float | None = None, seed: int = 0,
                  frame_ms: int = DEFAULT_FRAME_MS) -> Path:
        """The walks of `walk` as a .gif or .mp4 at `path`, as `wgan sample --walk` writes them; `num_walks`
        None: a 4 x 4 grid, or 4 rows of every class of a conditional generator."""
        sampling.write_walk(self.module, self.classes, Path(path), num_points=num_points, frames=frames,
                            num_walks=num_walks, label=label, truncation=truncation, seed=seed, frame_ms=frame_ms,
                            device=self.device)
        return Path(path)

    def class_index(self, label) -> int:
        """The number of the class `label` names (a name in any case, or a number)."""
        return label_index(label, self.classes, "label")
