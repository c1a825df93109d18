"""Latent walks: spherical interpolation (slerp) through fixed latent points, looping back to the first, and
the generator's images along the way as the frames of a grid of walks.

Slerp rather than a straight line, because N(0, I) draws in D dimensions lie near the sphere of radius
sqrt(D): the straight line between two of them passes through a middle of norm about sqrt(D / 2), where the
generator has seen almost no noise; the arc keeps the norm (White 2016, "Sampling generative networks").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from wgan.data import to_uint8_images
from wgan.grids import make_grid
from wgan.latents import draw_latents

# Below this sine of the angle between two points the arc's formula divides by almost nothing, and the arc
# is, to rounding, the straight line (parallel points) or undefined (opposite points): interpolate linearly.
PARALLEL_SINE = 1e-6


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points on the great-circle arc from a to b (..., D) at the fractions t (T,) of the way: (T, ..., D).
    For |a| = |b| every point has that norm; at t = 0 and t = 1 the points are a and b exactly."""
    a_unit = a / a.norm(dim=-1, keepdim=True)
    b_unit = b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_unit * b_unit).sum(-1, keepdim=True).clamp(-1.0, 1.0))  # (..., 1)
    sine = torch.sin(omega)
    t = t.to(a.dtype).reshape(-1, *([1] * a.dim()))  # (T, 1, ..., 1)
    near = sine.abs() < PARALLEL_SINE
    safe = torch.where(near, torch.ones_like(sine), sine)
    weight_a = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / safe)
    weight_b = torch.where(near, t, torch.sin(t * omega) / safe)
    out = weight_a * a + weight_b * b
    # sin((1 - 0) * omega) / sin(omega) is 1 in exact arithmetic, but the vectorised and scalar sines may
    # differ in the last bit: the endpoints are the points themselves, so a loop closes exactly.
    out = torch.where(t == 0, a.expand_as(out), out)
    return torch.where(t == 1, b.expand_as(out), out)


def walk_path(points: torch.Tensor, frames_per_segment: int) -> torch.Tensor:
    """The latent of every frame of walks through `points` (M walks, N points each, D: (M, N, D)) and back to
    their first: N * F frames (T, M, D), F per segment, frame k * F at point k; the frame after the last
    would be the first again, so the animation loops without a jump or a repeated frame."""
    num_points = points.shape[1]
    t = torch.arange(frames_per_segment, dtype=points.dtype) / frames_per_segment
    segments = [slerp(points[:, k], points[:, (k + 1) % num_points], t) for k in range(num_points)]
    return torch.cat(segments)


def draw_walk_points(num_walks: int, num_points: int, latent_dim: int, *, seed: int,
                     truncation: float | None = None) -> torch.Tensor:
    """The fixed points of `num_walks` walks (M, N, D): the same seed, the same walks."""
    gen = torch.Generator().manual_seed(seed)
    z = draw_latents(num_walks * num_points, latent_dim, generator=gen, truncation=truncation)
    return z.reshape(num_walks, num_points, latent_dim)


@dataclass
class Walk:
    """The frames of a grid of walks: uint8 images (T, K, C, H, W), `columns` of them a row."""

    frames: torch.Tensor
    columns: int

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]


def walk_layout(num_classes: int, num_walks: int, label: int | None) -> tuple[int, torch.Tensor | None, int]:
    """(images per walk, their labels, grid columns). A conditional generator without `label` shows each walk
    in every class, one row per walk and one column per class; otherwise a walk is one image, in a square grid."""
    if num_classes and label is None:
        return num_classes, torch.arange(num_classes).repeat(num_walks), num_classes
    labels = torch.full((num_walks,), label) if num_classes else None
    return 1, labels, max(1, int(math.sqrt(num_walks)))


@torch.no_grad()
def render_walk(generator: nn.Module, *, num_walks: int, num_points: int, frames_per_segment: int, seed: int = 0,
                truncation: float | None = None, label: int | None = None,
                device: torch.device | str = "cpu", batch_size: int = 512) -> Walk:
    """The generator's images along `num_walks` walks through `num_points` points each (eval mode, restored)."""
    shape = generator.shape
    points = draw_walk_points(num_walks, num_points, shape.latent_dim, seed=seed, truncation=truncation)
    path = walk_path(points, frames_per_segment)  # (T, M, D)
    per_walk, labels, columns = walk_layout(shape.num_classes, num_walks, label)
    z = path.repeat_interleave(per_walk, dim=1).reshape(-1, shape.latent_dim)  # frame by frame, row by row
    labels = None if labels is None else labels.repeat(path.shape[0])
    was_training = generator.training
    generator.eval()
    try:
        chunks = []
        for start in range(0, z.shape[0], batch_size):
            li = None if labels is None else labels[start:start + batch_size].to(device)
            out = generator(z[start:start + batch_size].to(device), li).float()
            chunks.append(to_uint8_images(out).cpu())
    finally:
        generator.train(was_training)
    images = torch.cat(chunks)
    return Walk(images.reshape(path.shape[0], num_walks * per_walk, *images.shape[1:]), columns)


def walk_rows(walk: Walk, classes_per_walk: int) -> str:
    """What the walks of a picture are: "4 walks", or "2 walks, each in every class" (`classes_per_walk`:
    the number of classes each walk is shown in, side by side; 0: each walk is one image)."""
    if classes_per_walk:
        return f"{walk.frames.shape[1] // classes_per_walk} walks, each in every class"
    num = walk.frames.shape[1]
    return f"{num} walk{'s' * (num > 1)}"


def grid_frames(walk: Walk) -> torch.Tensor:
    """Each frame's images as one grid picture, white between them: uint8 (T, H, W, 3)."""
    grids = [make_grid(frame, nrow=walk.columns, padding=2, pad_value=255) for frame in walk.frames]
    return torch.stack(grids).permute(0, 2, 3, 1).contiguous()
