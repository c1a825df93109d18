"""Distances between feature sets and point clouds: pure maths on numpy arrays, nothing learnt.

The Frechet distance (FID's formula, through symmetric eigen-solvers), the class coverage of predicted
labels, and the exact Wasserstein-1 distance between two point clouds (POT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wgan.errors import UserError

COVERED_SHARE = 0.02  # a class counts as covered when at least 2% of the samples fall in it


@dataclass(frozen=True)
class FeatureStats:
    mean: np.ndarray
    cov: np.ndarray
    count: int
    # The centred features, kept when there are fewer samples than features: the covariance then has rank
    # below its size, and the Frechet distance's cross term is a count x count problem (see below).
    centred: np.ndarray | None = None

    @classmethod
    def of(cls, features: np.ndarray) -> "FeatureStats":
        features = np.asarray(features, dtype=np.float64)
        n, dim = features.shape
        if n < 2:
            raise UserError(f"a Frechet distance needs at least 2 samples, got {n}")
        mean = features.mean(0)
        return cls(mean, np.cov(features, rowvar=False), n, features - mean if n < dim else None)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _trace_sqrt_product(a: FeatureStats, b: FeatureStats) -> float:
    """tr((C_a C_b)^(1/2)): the sum of the square roots of the eigenvalues of C_a^(1/2) C_b C_a^(1/2), which is
    symmetric positive semi-definite, so symmetric eigen-solvers in float64 stay real and stable where a
    general matrix square root can turn complex on near-singular covariances (dead ReLU units, few samples).

    With C_a = X^T X / (n - 1) for n < dim centred samples X, the same non-zero eigenvalues are those of the
    n x n matrix X C_b X^T / (n - 1): a few hundred samples of Inception's 2048 features then cost
    milliseconds instead of a 2048 x 2048 eigen-decomposition.
    """
    if a.centred is None and b.centred is not None:
        a, b = b, a
    if a.centred is not None:
        middle = a.centred @ b.cov @ a.centred.T / (a.count - 1)
    else:
        root_a = _psd_sqrt(a.cov)
        middle = root_a @ b.cov @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(eig, 0, None)).sum())


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """||mu_a - mu_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)), FID's formula."""
    diff = a.mean - b.mean
    return max(0.0, float(diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2.0 * _trace_sqrt_product(a, b)))


def class_coverage(predicted: np.ndarray, num_classes: int) -> tuple[float, int]:
    """(entropy of the predicted-class histogram / log(num_classes), classes holding >= 2% of the samples)."""
    counts = np.bincount(np.asarray(predicted, dtype=np.int64), minlength=num_classes)[:num_classes]
    p = counts / max(counts.sum(), 1)
    nz = p[p > 0]
    entropy = max(0.0, float(-(nz * np.log(nz)).sum() / math.log(num_classes)))  # no "-0.0" for one class
    return entropy, int((p >= COVERED_SHARE).sum())


def exact_w1(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Wasserstein-1 between two equally weighted point clouds (POT's network simplex)."""
    import ot  # here, not at the top: POT adds ~1.5 s to a process, and only the 2-D point metric needs it

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cost = ot.dist(a, b, metric="euclidean")
    return float(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), cost, numItermax=10_000_000))
