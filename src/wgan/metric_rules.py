"""The metrics by name: what each measures and needs, and the rules on a list of their names (which exist,
how many samples a k-nearest-neighbour metric needs), said once for config's validation, the command
line's help and the metrics' registry (wgan.metrics.registry, which gives each its computation).
Torch-free, and outside the metrics package, so that reading them loads neither."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from wgan.errors import UserError

W1_POINTS = 2000  # points per side for the exact W1: the paper's toy evaluation size
PRC_K = 3  # Kynkaanniemi et al. 2019: k = 3
DC_K = 5  # Naeem et al. 2020: k = 5


def min_samples(k: int) -> int:
    """The fewest samples a k-NN ball can be drawn around: each needs k neighbours besides itself."""
    return k + 1


@dataclass(frozen=True)
class MetricSpec:
    description: str
    points: bool = False  # True: for 2-D point data; False: for images
    needs_classifier: bool = False
    needs_inception: bool = False
    conditional_only: bool = False
    nearest_k: int = 0  # k of a k-nearest-neighbour metric (which needs k + 1 samples per set); 0: none


METRIC_SPECS: dict[str, MetricSpec] = {
    "fcd": MetricSpec("Frechet distance to the test split in the domain classifier's features (lower is better)",
                      needs_classifier=True),
    "class-coverage": MetricSpec("entropy of the predicted-class histogram, 1.0 = all classes equally often; and "
                                 "classes with >= 2% of samples", needs_classifier=True),
    "cond-accuracy": MetricSpec("classifier accuracy against the labels a conditional generator was asked for",
                                needs_classifier=True, conditional_only=True),
    "w1-exact": MetricSpec(f"exact Wasserstein-1 between {W1_POINTS} generated and {W1_POINTS} real 2-D points (POT)",
                           points=True),
    "fid": MetricSpec("Inception FID through torch-fidelity (needs its weights)", needs_inception=True),
    "kid": MetricSpec("Inception KID through torch-fidelity (needs its weights)", needs_inception=True),
    "prc": MetricSpec(f"precision and recall (Kynkaanniemi et al. 2019, k = {PRC_K}) against as many test images, in "
                      "the domain classifier's features (higher is better)", needs_classifier=True, nearest_k=PRC_K),
    "dc": MetricSpec(f"density and coverage (Naeem et al. 2020, k = {DC_K}) against as many test images, in the "
                     "domain classifier's features", needs_classifier=True, nearest_k=DC_K),
    "prc-inception": MetricSpec("precision and recall in Inception features (needs its weights); logs "
                                "precision_inception, recall_inception", needs_inception=True, nearest_k=PRC_K),
    "dc-inception": MetricSpec("density and coverage in Inception features (needs its weights); logs "
                               "density_inception, coverage_inception", needs_inception=True, nearest_k=DC_K),
}


def check_sample_count(names: Sequence[str], num: int, option: str) -> None:
    """k-NN metrics draw a ball around each sample out to its k-th nearest neighbour: fewer than k + 1 samples
    have none, so such a count is refused before any work."""
    for name in names:
        k = METRIC_SPECS[name].nearest_k
        if k and num < min_samples(k):
            raise UserError(f"{option} {num}: {name} needs at least {min_samples(k)} samples (k = {k} nearest "
                            "neighbours of each, besides itself); pass more")


def parse_metric_names(text: str | Sequence[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else text
    if not isinstance(items, (list, tuple)) or not all(isinstance(n, str) for n in items):
        raise UserError(f"metrics={text!r}: a comma-separated string or a list of metric names (strings)")
    names = [n.strip() for n in items if n.strip()]
    unknown = [n for n in names if n not in METRIC_SPECS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}: choose from {', '.join(METRIC_SPECS)}")
    return list(dict.fromkeys(names))


def default_metric_names(*, points: bool, conditional: bool) -> list[str]:
    if points:
        return ["w1-exact"]
    return ["fcd", "class-coverage", "prc", "dc"] + (["cond-accuracy"] if conditional else [])
