"""The WGAN-GP paper's 2-D toy data (gan_toy.py): 8 Gaussians, 25 Gaussians and the Swiss roll,
pre-generated with a fixed seed per split."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from wgan.data.core import Data, LoadOptions

TOY_TRAIN_POINTS = 100_000
TOY_TEST_POINTS = 20_000
TOY_SEEDS = {"train": 0, "test": 1}


def eight_gaussians_centres() -> np.ndarray:
    d = 1.0 / math.sqrt(2.0)
    unit = [(1, 0), (-1, 0), (0, 1), (0, -1), (d, d), (d, -d), (-d, d), (-d, -d)]
    return 2.0 * np.array(unit) / 1.414  # scale 2, then the paper's division by 1.414


def twenty_five_gaussians_centres() -> np.ndarray:
    return np.array([(2.0 * i, 2.0 * j) for i in range(-2, 3) for j in range(-2, 3)]) / 2.828


def sample_8gaussians(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = eight_gaussians_centres()
    mode = rng.integers(len(centres), size=n)
    return centres[mode] + rng.standard_normal((n, 2)) * 0.02 / 1.414, mode


def sample_25gaussians(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    centres = twenty_five_gaussians_centres()
    mode = rng.integers(len(centres), size=n)
    return centres[mode] + rng.standard_normal((n, 2)) * 0.05 / 2.828, mode


def swiss_roll(n: int, rng: np.random.Generator, noise: float = 0.25) -> np.ndarray:
    """scikit-learn's make_swiss_roll, columns (x, z), divided by 7.5 as in the paper."""
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    height = 21 * rng.uniform(size=n)
    xyz = np.stack([t * np.cos(t), height, t * np.sin(t)]) + noise * rng.standard_normal((3, n))
    return xyz[[0, 2]].T / 7.5


def centre_names(centres: Callable[[], np.ndarray]) -> list[str]:
    """A mixture's class names: its components' centres."""
    return [f"({cx:.2f}, {cy:.2f})" for cx, cy in centres()]


def toy_loader(name: str, make: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray | None]],
               centres: Callable[[], np.ndarray] | None):
    def load(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
        n = TOY_TRAIN_POINTS if split == "train" else TOY_TEST_POINTS
        points, mode = make(n, np.random.default_rng(TOY_SEEDS[split]))
        x = torch.from_numpy(points.astype(np.float32))
        if mode is None:
            return Data(name, x, source=f"generated (seed {TOY_SEEDS[split]})")
        # The mixture component is a natural label: it lets metrics count covered modes.
        names = centre_names(centres)
        return Data(name, x, torch.from_numpy(mode.astype(np.int64)), len(names), names,
                    source=f"generated (seed {TOY_SEEDS[split]})")

    return load
