"""Precision/recall and density/coverage (k-NN manifolds) and nearest neighbours: the batched torch code against
a brute-force NumPy computation and the authors' `prdc` package, the cases whose answer is known, and the
block size that keeps 10,000 x 10,000 distances out of memory."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from wgan.metrics import manifold
from wgan.metrics.manifold import DC_K, PRC_K, kth_neighbour_radii, manifold_scores, nearest_neighbours


def brute_force(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """The definitions, written out on the full distance matrices."""
    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    real_radii = np.sort(dist(real, real), axis=1)[:, k]  # column 0 is each point itself
    fake_radii = np.sort(dist(fake, fake), axis=1)[:, k]
    d = dist(real, fake)
    inside_real = d < real_radii[:, None]
    return {"precision": inside_real.any(0).mean(), "recall": (d < fake_radii[None, :]).any(1).mean(),
            "density": inside_real.sum(0).mean() / k, "coverage": (d.min(1) < real_radii).mean()}


def gaussians(n: int, dim: int, seed: int, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, scale, size=(n, dim))


def scores(real: np.ndarray, fake: np.ndarray, k: int, **kw) -> dict[str, float]:
    return manifold_scores(torch.from_numpy(real), torch.from_numpy(fake), k, **kw)


@pytest.mark.parametrize("k", [PRC_K, DC_K])
@pytest.mark.parametrize("n_real, n_fake, shift", [(60, 60, 0.0), (50, 70, 0.5), (80, 40, 1.5)])
def test_batched_scores_equal_the_brute_force_definitions(k, n_real, n_fake, shift):
    real = gaussians(n_real, 8, seed=1)
    fake = gaussians(n_fake, 8, seed=2, loc=shift, scale=1.3)
    expected = brute_force(real, fake, k)
    # a block budget far below one row's distances: every block is one row, the other extreme from one block
    for budget in (7, 1 << 24):
        got = scores(real, fake, k, budget=budget)
        assert got.keys() == expected.keys()
        for key in got:
            assert got[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-15), (key, budget)
    assert 0 < expected["precision"] < 1 or shift == 0.0  # the cases are not all trivial


@pytest.mark.parametrize("k", [PRC_K, DC_K])
def test_scores_equal_the_prdc_package(k):
    prdc = pytest.importorskip("prdc")
    real = gaussians(200, 16, seed=3)
    fake = gaussians(200, 16, seed=4, loc=0.3, scale=0.8)
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
        theirs = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    ours = scores(real, fake, k, budget=1000)
    for key in theirs:
        assert ours[key] == pytest.approx(float(theirs[key]), rel=1e-12), key


def test_identical_sets_have_full_precision_recall_and_coverage():
    x = gaussians(300, 10, seed=5)
    s = scores(x, x.copy(), PRC_K)
    assert s["precision"] == 1.0 and s["recall"] == 1.0 and s["coverage"] == 1.0
    # each point lies in its own ball and in about k others: density near 1 (k + 1 neighbours' balls / k)
    assert 0.9 < s["density"] < 1.6


def ten_modes(n: int, seed: int, only: int | None = None) -> np.ndarray:
    """n points from ten well-separated Gaussian modes in 2-D (or all from mode `only`)."""
    rng = np.random.default_rng(seed)
    modes = rng.integers(0, 10, n) if only is None else np.full(n, only)
    centres = 10.0 * np.stack([np.cos(2 * np.pi * modes / 10), np.sin(2 * np.pi * modes / 10)], 1)
    return centres + rng.normal(0, 0.5, size=(n, 2))


def test_one_collapsed_mode_has_high_precision_and_low_recall():
    real = ten_modes(1000, seed=6)
    s = scores(real, ten_modes(1000, seed=7, only=3), PRC_K)
    assert s["precision"] > 0.9 and s["recall"] < 0.2
    assert scores(real, ten_modes(1000, seed=7, only=3), DC_K)["coverage"] < 0.2


def test_noise_has_low_precision_and_density():
    real = ten_modes(1000, seed=8)
    noise = np.random.default_rng(9).uniform(-15, 15, size=(1000, 2))
    s = scores(real, noise, PRC_K)
    d = scores(real, noise, DC_K)
    assert s["precision"] < 0.2 and d["density"] < 0.2
    fine = scores(real, ten_modes(1000, seed=10), PRC_K)
    assert fine["precision"] > 0.9 and fine["recall"] > 0.9, "the same distribution scores high"


def test_nearest_neighbours_equal_an_argsort_of_all_distances():
    query, reference = gaussians(37, 5, seed=11), gaussians(90, 5, seed=12)
    d = np.sqrt(((query[:, None] - reference[None]) ** 2).sum(-1))
    order = np.argsort(d, axis=1)[:, :4]
    dist, idx = nearest_neighbours(torch.from_numpy(query), torch.from_numpy(reference), 4, budget=100)
    assert np.array_equal(idx.numpy(), order)
    np.testing.assert_allclose(dist.numpy(), np.take_along_axis(d, order, 1), rtol=1e-12)
    radii = kth_neighbour_radii(torch.from_numpy(reference), 3)
    np.testing.assert_allclose(radii.numpy(), np.sort(np.sqrt(((reference[:, None] - reference[None]) ** 2).sum(-1)),
                                                       1)[:, 3], rtol=1e-12)


def test_no_block_holds_more_distances_than_the_budget(monkeypatch):
    """10,000 x 10,000 float64 distances are 800 MB: blocks of rows keep each one under the budget."""
    shapes = []
    cdist = torch.cdist
    monkeypatch.setattr(torch, "cdist", lambda a, b: (shapes.append((len(a), len(b))), cdist(a, b))[1])
    real, fake = torch.randn(300, 4, dtype=torch.float64), torch.randn(200, 4, dtype=torch.float64)
    manifold_scores(real, fake, PRC_K, budget=5000)
    assert shapes and max(a * b for a, b in shapes) <= 5000
    assert sum(a * b for a, b in shapes) == 300 * 300 + 200 * 200 + 300 * 200, "every pair once"
    # the default budget: a 10,000 x 10,000 problem in blocks of 1,677 rows (128 MiB of float64 each)
    assert manifold.BLOCK_DISTANCES // 10_000 * 10_000 * 8 <= 128 * 2**20


@pytest.mark.parametrize("k", [PRC_K, DC_K])
def test_fewer_than_k_plus_one_samples_have_no_balls(k):
    assert manifold.min_samples(k) == k + 1
    with pytest.raises(ValueError, match=f"need at least {k + 1}"):
        kth_neighbour_radii(torch.randn(k, 3), k)
    assert kth_neighbour_radii(torch.randn(k + 1, 3), k).shape == (k + 1,)
