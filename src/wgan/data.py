"""Dataset registry. Every dataset becomes one in-memory tensor: uint8 images (N, C, H, W) or float32
points (N, D), plus int64 labels where the dataset has classes. Batches are index draws on whatever
device the tensor lives on, so on a GPU there is no DataLoader and no host round trip per step.

Where files are looked for, in order: --data PATH; $WGAN_DATA (and $WGAN_DATA/<name>); the user
cache dir (~/.cache/wgan/<name>); the system dataset directories Linux distributions install
(/usr/share/datasets/<name>); then torchvision's download, which needs a network.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from wgan.errors import UserError

SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wgan"


@dataclass
class Data:
    """A whole dataset in one tensor."""

    name: str
    x: torch.Tensor  # uint8 (N, C, H, W) images, or float32 (N, D) points
    y: torch.Tensor | None = None  # int64 (N,), or None for unlabelled data
    num_classes: int = 0
    class_names: list[str] = field(default_factory=list)
    source: str = ""  # where it was loaded from, for the log

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
        return Data(self.name, self.x.to(device), y, self.num_classes, self.class_names, self.source)

    def to_model_space(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] -> float [-1, 1] (the generator's Tanh range); points pass through."""
        if x.dtype == torch.uint8:
            return x.float().mul_(2.0 / 255.0).sub_(1.0)
        return x.float()

    def batch(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A uniformly drawn batch (with replacement), in model space, on the data's device."""
        idx = torch.randint(len(self), (batch_size,), device=self.x.device, generator=generator)
        y = None if self.y is None else self.y[idx]
        return self.to_model_space(self.x[idx]), y


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


# ---------------------------------------------------------------------------------------------
# IDX files (MNIST, Fashion-MNIST, EMNIST)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array, with clear errors on bad files."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read IDX file ({exc}); re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"{path}: not an IDX file (bad magic number); re-download it")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path}: truncated IDX header; re-download it")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise UserError(f"{path}: IDX file holds {len(raw) - header} data bytes, its header says {expected}; re-download it")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_file(dirs: list[Path], stem: str) -> Path | None:
    for d in dirs:
        for sub in ("", "raw"):
            for suffix in ("", ".gz"):
                p = d / sub / (stem + suffix)
                if p.is_file():
                    return p
    return None


def candidate_dirs(name: str, data_path: str | Path | None, torchvision_folder: str | None = None) -> list[Path]:
    """Where a dataset's files are looked for, in order."""
    dirs: list[Path] = []
    if data_path:
        dirs.append(Path(data_path).expanduser())
    env = os.environ.get("WGAN_DATA")
    if env:
        dirs += [Path(env).expanduser() / name, Path(env).expanduser()]
    dirs.append(user_cache_dir() / name)
    dirs += [d / name for d in SYSTEM_DATA_DIRS]
    if torchvision_folder:
        dirs += [d / torchvision_folder for d in list(dirs)]
    return dirs


def load_idx_dataset(name: str, *, split: str, data_path, torchvision_cls: str, class_names: list[str],
                     download: bool = True) -> Data:
    dirs = candidate_dirs(name, data_path, torchvision_cls)
    img_stem, lbl_stem = IDX_FILES[split]
    images, labels = _find_file(dirs, img_stem), _find_file(dirs, lbl_stem)
    if data_path and (images is None or labels is None) and Path(data_path).expanduser().is_file():
        raise UserError(f"--data {data_path}: for {name} pass the folder that holds {img_stem}(.gz), not a file")
    if images is None or labels is None:
        if download:
            tv_root = user_cache_dir() / name
            try:
                import torchvision

                getattr(torchvision.datasets, torchvision_cls)(str(tv_root), train=(split == "train"), download=True)
            except Exception:  # no network, mirror down, ...: fall through to the clear message below
                pass
            images, labels = _find_file(dirs, img_stem), _find_file(dirs, lbl_stem)
        if images is None or labels is None:
            searched = ", ".join(str(d) for d in dirs[: len(dirs) // 2 or None])
            hint = " (Debian: apt-get install dataset-fashion-mnist)" if name == "fashion-mnist" else ""
            raise UserError(
                f"{name} {split} files ({img_stem}[.gz]) not found in: {searched}; download failed or was offline. "
                f"Pass --data DIR or set WGAN_DATA{hint}"
            )
    x = read_idx(images)
    y = read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise UserError(f"{images}: expected N x H x W images with N labels in {labels}, got {x.shape} and {y.shape}")
    if y.size and int(y.max()) >= len(class_names):
        raise UserError(f"{labels}: label {int(y.max())} out of range 0-{len(class_names) - 1}")
    x_t = torch.from_numpy(x.copy()).unsqueeze(1)
    y_t = torch.from_numpy(y.astype(np.int64))
    return Data(name, x_t, y_t, len(class_names), list(class_names), source=str(images.parent))


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]


def load_mnist(split: str, data_path) -> Data:
    return load_idx_dataset("mnist", split=split, data_path=data_path, torchvision_cls="MNIST",
                            class_names=[str(i) for i in range(10)])


def load_fashion_mnist(split: str, data_path) -> Data:
    return load_idx_dataset("fashion-mnist", split=split, data_path=data_path, torchvision_cls="FashionMNIST",
                            class_names=FASHION_CLASSES)


# ---------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class DatasetEntry:
    load: Callable[[str, object], Data]  # (split, data_path) -> Data at native size
    image_size: int  # native size (0 for points)
    channels: int  # native channels (0 for points)
    num_classes: int
    description: str


DATASETS: dict[str, DatasetEntry] = {
    "mnist": DatasetEntry(load_mnist, 28, 1, 10, "MNIST digits, 60k train / 10k test (IDX files)"),
    "fashion-mnist": DatasetEntry(load_fashion_mnist, 28, 1, 10, "Fashion-MNIST, 60k train / 10k test (IDX files)"),
}


def load_dataset(name: str, *, split: str = "train", data_path: str | Path | None = None,
                 image_size: int | None = None, channels: int | None = None) -> Data:
    """Load a registered dataset, adapted to the model's image size and channels."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)} (see `wgan datasets`)")
    if split not in ("train", "test"):
        raise UserError(f"unknown split '{split}': use train or test")
    data = DATASETS[name].load(split, data_path)
    if len(data) == 0:
        raise UserError(f"{name} ({data.source}): the dataset is empty")
    if not data.is_points:
        data.x = adapt_images(data.x, image_size, channels)
    return data
