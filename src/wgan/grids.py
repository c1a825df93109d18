"""Images tiled into one picture, as torchvision.utils.make_grid tiles them, without importing torchvision:
it adds about 2 s and 150 MB to a process that only writes a grid of samples.

Generic: of ours, only the generic file helpers are imported.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from wgan.files import atomic_write


def make_grid(images: torch.Tensor, nrow: int, padding: int = 2, pad_value: int = 255,
              one_unpadded: bool = True) -> torch.Tensor:
    """uint8 images (N, C, H, W) in rows of `nrow`, `padding` pixels of `pad_value` around each: uint8
    (3, H', W') for grey or RGB images, (C, H', W') otherwise. One image is returned as it is (as torchvision
    does), unless `one_unpadded` is False: grids put side by side need the same padding whatever their count."""
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[0] == 1 and one_unpadded:
        return images[0].clone()
    n, c, h, w = images.shape
    columns = min(nrow, n)
    rows = math.ceil(n / columns)
    cell_h, cell_w = h + padding, w + padding
    grid = images.new_full((c, rows * cell_h + padding, columns * cell_w + padding), pad_value)
    for k in range(n):
        y, x = divmod(k, columns)
        grid[:, y * cell_h + padding:(y + 1) * cell_h, x * cell_w + padding:(x + 1) * cell_w] = images[k]
    return grid


def save_grid(path, images: torch.Tensor, nrow: int) -> None:
    """uint8 images (N, C, H, W) as one PNG grid, `nrow` images a row, white between them; written beside and
    renamed over `path`, so that a grid is never half written, nor written through a link put in its place."""
    grid = make_grid(images.cpu(), nrow=nrow, padding=2, pad_value=255)
    atomic_write(Path(path), lambda f: save_png(f, grid))


def save_png(target, picture: torch.Tensor) -> None:
    """uint8 (C, H, W) as a PNG: `target` a path or a binary file object."""
    from PIL import Image

    array = picture.permute(1, 2, 0).cpu().numpy()
    image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    image.save(target, format="png")
