"""DiffAugment (Zhao et al. 2020): random, differentiable transformations of every image the critic
sees, real and generated alike, so that a critic trained on few images cannot simply memorise them.

Each transformation is drawn per sample and applied to the batch in model space ([-1, 1]):
- color: brightness + U(-0.5, 0.5); saturation: the deviation from the pixel's channel mean times
  U(0, 2); contrast: the deviation from the image's mean times U(0.5, 1.5);
- translation: a shift by a whole number of pixels up to 1/8 of the side each way, zeros (grey) shifted in;
- cutout: a square of half the side, centred at a random pixel, set to zero.

`draw` and `apply` are separate so a step can draw its random numbers in a fixed order (the fused
step draws every critic step's numbers up front, in the plain step's order) and so that gradients
flow through `apply` to the generator: every operation is a sum, product or index into the images.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _draw_color(n: int, h: int, w: int, device) -> dict[str, torch.Tensor]:
    return {"brightness": torch.rand(n, 1, 1, 1, device=device) - 0.5,
            "saturation": torch.rand(n, 1, 1, 1, device=device) * 2.0,
            "contrast": torch.rand(n, 1, 1, 1, device=device) + 0.5}


def _color(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    x = x + p["brightness"].to(x.dtype)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * p["saturation"].to(x.dtype) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * p["contrast"].to(x.dtype) + mean


def _draw_translation(n: int, h: int, w: int, device) -> dict[str, torch.Tensor]:
    sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    return {"dy": torch.randint(-sy, sy + 1, (n, 1, 1), device=device),
            "dx": torch.randint(-sx, sx + 1, (n, 1, 1), device=device)}


def _translation(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    n, _, h, w = x.shape
    # Output pixel (i, j) of sample b is input pixel (i - dy_b, j - dx_b) of a copy padded with one ring
    # of zeros, where indices outside the image land.
    rows = (torch.arange(h, device=x.device).view(1, h, 1) - p["dy"] + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) - p["dx"] + 1).clamp(0, w + 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    padded = F.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def _draw_cutout(n: int, h: int, w: int, device) -> dict[str, torch.Tensor]:
    size_y, size_x = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    return {"cy": torch.randint(0, h + (1 - size_y % 2), (n, 1, 1), device=device),
            "cx": torch.randint(0, w + (1 - size_x % 2), (n, 1, 1), device=device)}


def _cutout(x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    _, _, h, w = x.shape
    size_y, size_x = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    top, left = p["cy"] - size_y // 2, p["cx"] - size_x // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


AUGMENTATIONS = {"color": (_draw_color, _color), "translation": (_draw_translation, _translation),
                 "cutout": (_draw_cutout, _cutout)}


def draw(names: Sequence[str], shape: Sequence[int], device) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The random parameters of `names`, in order, for a batch of `shape` (N, C, H, W)."""
    n, _, h, w = shape
    return [(name, AUGMENTATIONS[name][0](n, h, w, device)) for name in names]


def apply(x: torch.Tensor, drawn: list[tuple[str, dict[str, torch.Tensor]]]) -> torch.Tensor:
    for name, params in drawn:
        x = AUGMENTATIONS[name][1](x, params)
    return x


def diff_augment(x: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """`x` augmented with fresh draws of `names` (none: `x` itself)."""
    return apply(x, draw(names, x.shape, x.device)) if names else x
