"""The distances on their own: the Frechet distance against scipy's formula and on singular or low-rank
covariances, the class coverage formula, and the exact W1 of shifted point clouds."""

from __future__ import annotations

import numpy as np
import pytest

from wgan.metrics import distances


def test_frechet_distance_matches_scipy_formula():
    from scipy import linalg

    rng = np.random.default_rng(0)
    a_feats = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b_feats = rng.normal(loc=0.5, size=(300, 6)) @ rng.normal(size=(6, 6))
    a, b = distances.FeatureStats.of(a_feats), distances.FeatureStats.of(b_feats)
    covmean = linalg.sqrtm(a.cov @ b.cov).real
    expected = np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov + b.cov - 2 * covmean)
    # both in float64 on a well-conditioned 6 x 6 problem: they agree to ~1e-15 on any CPU's LAPACK
    assert distances.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert distances.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_with_fewer_samples_than_features_takes_the_small_problem_and_the_same_value():
    import dataclasses

    from scipy import linalg

    rng = np.random.default_rng(2)
    few, many = rng.normal(size=(12, 40)), rng.normal(loc=0.3, size=(90, 40)) @ rng.normal(size=(40, 40))
    a, b = distances.FeatureStats.of(few), distances.FeatureStats.of(many)
    assert a.centred is not None and a.centred.shape == (12, 40) and b.centred is None
    full = dataclasses.replace(a, centred=None)  # the 40 x 40 eigen-decomposition
    covmean = linalg.sqrtm(a.cov @ b.cov).real
    expected = np.sum((a.mean - b.mean) ** 2) + np.trace(a.cov + b.cov - 2 * covmean)
    # against the full eigen-decompositions (and scipy's sqrtm), whose square roots of the 28 rounding-level
    # eigenvalues of a rank-12 covariance add up to ~sqrt(1e-16) each: they agree to 1e-9-1e-7, not 1e-15
    for x, y in ((a, b), (b, a), (full, b), (a, distances.FeatureStats.of(few[::-1] * 1.5))):
        assert distances.frechet_distance(x, y) == pytest.approx(distances.frechet_distance(
            dataclasses.replace(x, centred=None), dataclasses.replace(y, centred=None)), rel=1e-6)
    assert distances.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert distances.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_is_stable_on_singular_covariances():
    # dead ReLU units give zero-variance features: the distance must stay real and finite
    rng = np.random.default_rng(1)
    feats = np.maximum(rng.normal(size=(50, 8)), 0)
    feats[:, :3] = 0.0
    stats = distances.FeatureStats.of(feats)
    shifted = distances.FeatureStats.of(feats + np.eye(8)[4] * 2.0)
    assert distances.frechet_distance(stats, stats) == pytest.approx(0.0, abs=1e-8)
    assert distances.frechet_distance(stats, shifted) == pytest.approx(4.0, rel=1e-6)


def test_class_coverage_formula():
    assert distances.class_coverage(np.arange(1000) % 10, 10) == (pytest.approx(1.0), 10)
    assert distances.class_coverage(np.full(100, 4), 10) == (pytest.approx(0.0), 1)
    # 99 of one class and 1 of another: the second is under the 2% bar
    entropy, covered = distances.class_coverage(np.array([0] * 99 + [1]), 10)
    assert covered == 1 and 0 < entropy < 0.1


def test_exact_w1_of_a_shifted_cloud_is_the_shift_length():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2000, 2))
    shift = np.array([3.0, -4.0])
    assert distances.exact_w1(a, a + shift) == pytest.approx(5.0, rel=0.01)
    # independent draws of the same distribution are close, and far from the shifted one
    b = rng.normal(size=(2000, 2))
    assert distances.exact_w1(a, b) < 0.2
