"""The WGAN-GP paper's 2-D toy data: the mixtures' modes and spread, the Swiss roll's spiral, fixed splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wgan.data import load_dataset
from wgan.data.toy import TOY_TRAIN_POINTS, eight_gaussians_centres, swiss_roll, twenty_five_gaussians_centres


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


@pytest.mark.parametrize("name, centres, std", [
    ("toy-8gaussians", eight_gaussians_centres(), 0.02 / 1.414),
    ("toy-25gaussians", twenty_five_gaussians_centres(), 0.05 / 2.828),
])
def test_gaussian_mixtures_modes_and_spread(name, centres, std):
    data = load_dataset(name)
    x, y = data.x.double().numpy(), data.y.numpy()
    assert data.x.dtype == torch.float32 and data.sample_shape == (2,) and data.num_classes == len(centres)
    counts = np.bincount(y, minlength=len(centres))
    assert counts.min() > 0.8 * len(y) / len(centres)  # every mode is populated about equally
    for k, centre in enumerate(centres):
        pts = x[y == k]
        assert np.allclose(pts.mean(0), centre, atol=3e-3)
        assert np.allclose(pts.std(0), std, rtol=0.08)


def test_mixture_centres_follow_the_paper():
    eight = eight_gaussians_centres()
    assert np.allclose(np.linalg.norm(eight, axis=1), 2 / 1.414)
    assert {tuple(np.round(c * 1.414 / 2, 3)) for c in eight} >= {(1.0, 0.0), (0.0, -1.0), (0.707, 0.707)}
    grid = twenty_five_gaussians_centres() * 2.828
    assert sorted(set(np.round(grid[:, 0], 6))) == [-4, -2, 0, 2, 4] and len(grid) == 25


def test_swiss_roll_lies_on_the_spiral():
    pts = swiss_roll(2000, np.random.default_rng(0), noise=0.0) * 7.5
    t = np.linalg.norm(pts, axis=1)  # without noise, (x, z) = t (cos t, sin t)
    assert t.min() >= 1.5 * math.pi - 1e-9 and t.max() <= 4.5 * math.pi + 1e-9
    assert np.allclose(pts[:, 0], t * np.cos(t)) and np.allclose(pts[:, 1], t * np.sin(t))
    data = load_dataset("toy-swissroll")
    r = np.linalg.norm(data.x.numpy(), axis=1)
    # t is uniform on [1.5 pi, 4.5 pi], so radii are uniform on [0.63, 1.88] (mean 3 pi / 7.5), plus noise 0.25/7.5
    assert data.y is None and abs(r.mean() - 3 * math.pi / 7.5) < 0.01
    sigma = 0.25 / 7.5
    assert 1.5 * math.pi / 7.5 - 7 * sigma < r.min() < 1.5 * math.pi / 7.5
    assert 4.5 * math.pi / 7.5 < r.max() < 4.5 * math.pi / 7.5 + 7 * sigma


def test_toy_splits_are_fixed_and_different():
    a, b = load_dataset("toy-8gaussians", split="test"), load_dataset("toy-8gaussians", split="test")
    assert torch.equal(a.x, b.x)
    train = load_dataset("toy-8gaussians")
    assert len(train) == TOY_TRAIN_POINTS and not torch.equal(train.x[: len(a)], a.x)
