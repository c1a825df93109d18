"""What every dataset format shares: the in-memory dataset (Data), the conversions between its uint8
images and the model's [-1, 1] space, the adaptation of images to the model's size and channels, and
what the model asks of a loader (LoadOptions)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from wgan.errors import UserError


@dataclass
class Data:
    """A whole dataset in one tensor."""

    name: str
    x: torch.Tensor  # uint8 (N, C, H, W) images, or float32 (N, D) points
    y: torch.Tensor | None = None  # int64 (N,), or None for unlabelled data
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    source: str = ""  # where it was loaded from, for the log
    notes: list[str] = field(default_factory=list)  # what the user should know (skipped files, splits)
    # The file that `x` maps as it is (the page cache holds it, shared by the processes that map it): no copy
    # in process memory, and none to share. "" where `x` is the process's own memory.
    mapped_from: str = ""

    @property
    def is_points(self) -> bool:
        return self.x.dtype != torch.uint8

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> "Data":
        y = None if self.y is None else self.y.to(device)
        x = self.x.to(device)
        return dataclasses.replace(self, x=x, y=y, mapped_from=self.mapped_from if x is self.x else "")

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A uniformly drawn batch (with replacement), in model space, on the data's device."""
        idx = torch.randint(len(self), (batch_size,), device=self.x.device, generator=generator)
        y = None if self.y is None else self.y[idx]
        return to_model_space(self.x[idx]), y


def to_model_space(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the generator's Tanh range); points pass through. In torch's
    default float type (float32; float64 where a test compares two code paths beyond rounding)."""
    dtype = torch.get_default_dtype()
    if x.dtype == torch.uint8:
        return x.to(dtype).mul_(2.0 / 255.0).sub_(1.0)
    return x.to(dtype)


def to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """Model space [-1, 1] -> uint8 [0, 255]."""
    return x.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------------------
# Shape adaptation: the model decides size and channels; conversions are explicit.


def adapt_images(x: torch.Tensor, image_size: int | None, channels: int | None) -> torch.Tensor:
    """Resize (N, C, H, W) uint8 images to image_size and convert grayscale <-> RGB as asked."""
    if channels is not None and channels != x.shape[1]:
        if x.shape[1] == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        elif x.shape[1] == 3 and channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
        else:
            raise UserError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
    if image_size is not None and image_size != x.shape[-1]:
        out = []
        for chunk in x.split(4096):
            chunk = F.interpolate(chunk.float(), size=(image_size, image_size), mode="bilinear",
                                  antialias=True, align_corners=False)
            out.append(chunk.round_().clamp_(0, 255).to(torch.uint8))
        x = torch.cat(out)
    return x


@dataclass(frozen=True)
class LoadOptions:
    """What the model asks of the data. Loaders of fixed-size datasets ignore size and channels
    (load_dataset adapts them afterwards); folder loaders decode straight to them."""

    image_size: int | None = None
    channels: int | None = None
    skip_bad_images: bool = False
    max_image_megapixels: float = 40.0  # larger images are refused, not decoded (see data/images.py)
