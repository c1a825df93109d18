"""The metrics: each one an entry in METRICS, how to compute it from an Evaluator and a sample set, and
what it needs (the classifier, Inception, a conditional generator, k + 1 samples). A metric's compute
takes the Evaluator (wgan.metrics.evaluator, built on this registry) for what the metrics share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from wgan.errors import UserError
from wgan.metrics.base import MetricUnavailable
from wgan.metrics.distances import COVERED_SHARE, FeatureStats, class_coverage, exact_w1, frechet_distance
from wgan.metrics.inception import INCEPTION_FEATURE
from wgan.metrics.manifold import DC_K, PRC_K, manifold_scores, min_samples
from wgan.metrics.samples import Samples

W1_POINTS = 2000  # points per side for the exact W1: the paper's toy evaluation size

@dataclass(frozen=True)
class MetricResult:
    values: dict[str, float]  # what gets logged, e.g. {"fcd": 23.4}
    samples: int  # generated samples behind the values
    reference: str  # what they were compared with


@dataclass(frozen=True)
class Metric:
    compute: Callable[["Evaluator", Samples], MetricResult]
    description: str
    points: bool = False  # True: for 2-D point data; False: for images
    needs_classifier: bool = False
    needs_inception: bool = False
    conditional_only: bool = False
    nearest_k: int = 0  # k of a k-nearest-neighbour metric (which needs k + 1 samples per set); 0: none


def _fcd(ev: "Evaluator", s: Samples) -> MetricResult:
    feats, _ = ev.classify(s)
    real = ev.test_stats()
    return MetricResult({"fcd": frechet_distance(FeatureStats.of(feats), real)}, len(s), ev.test_description())


def _class_coverage(ev: "Evaluator", s: Samples) -> MetricResult:
    _, preds = ev.classify(s)
    entropy, covered = class_coverage(preds, ev.classifier().num_classes)
    return MetricResult({"class_coverage": entropy, "classes_covered": covered}, len(s),
                        f"{ev.classifier().num_classes} classes, covered = at least {COVERED_SHARE:.0%} of samples")


def _cond_accuracy(ev: "Evaluator", s: Samples) -> MetricResult:
    if s.requested_labels is None:
        raise MetricUnavailable("cond-accuracy needs a class-conditional generator")
    _, preds = ev.classify(s)
    acc = float((preds == s.requested_labels.numpy()).mean())
    real_acc = ev.classifier().test_accuracy
    return MetricResult({"cond_accuracy": acc}, len(s),
                        f"requested labels; the classifier scores {real_acc:.1%} on real test images")


def _w1_exact(ev: "Evaluator", s: Samples) -> MetricResult:
    real = ev.test_data().x
    gen = torch.Generator().manual_seed(ev.seed + 1)
    n = min(W1_POINTS, len(s), len(real))
    fake = s.x[torch.randperm(len(s), generator=gen)[:n]].numpy()
    real = real[torch.randperm(len(real), generator=gen)[:n].to(real.device)].float().cpu().numpy()
    return MetricResult({"w1_exact": exact_w1(fake, real)}, n, f"{n} real points, POT ot.emd2, euclidean")


def _inception(ev: "Evaluator", s: Samples) -> MetricResult:
    """FID and KID come from one torch-fidelity pass; a failure is remembered too, so it is not retried."""
    if "inception" not in s.cache:
        try:
            values = ev.inception.scores(s.x, ev.inception_features(s))
            reference = f"{ev.dataset} test split ({len(ev.test_data())} images), Inception-v3 (torch-fidelity)"
            s.cache["inception"] = MetricResult(values, len(s), reference)
        except MetricUnavailable as exc:
            s.cache["inception"] = exc
    if isinstance(s.cache["inception"], MetricUnavailable):
        raise s.cache["inception"]
    return s.cache["inception"]


def _pick(keys: tuple[str, ...]) -> Callable[["Evaluator", Samples], MetricResult]:
    def compute(ev: "Evaluator", s: Samples) -> MetricResult:
        r = _inception(ev, s)
        return MetricResult({k: r.values[k] for k in keys}, r.samples, r.reference)

    return compute


# ---------------------------------------------------------------------------------------------
# Precision/recall and density/coverage: k-NN manifolds in one feature space or another


def _classifier_features(ev: "Evaluator", s: Samples) -> tuple[np.ndarray, np.ndarray]:
    return ev.classify(s)[0], ev.test_features()


def _inception_features(ev: "Evaluator", s: Samples) -> tuple[np.ndarray, np.ndarray]:
    samples, test = ev.inception_features(s)
    return samples[INCEPTION_FEATURE].numpy(), test[INCEPTION_FEATURE].numpy()


# feature space -> ((sample features, test-split features), the suffix of its logged names, its description)
FEATURE_SPACES: dict[str, tuple[Callable, str, str]] = {
    "classifier": (_classifier_features, "", "the domain classifier's features"),
    "inception": (_inception_features, "_inception", "Inception-v3 pool features (torch-fidelity)"),
}


def _manifold(space: str, k: int, keys: tuple[str, str]) -> Callable[["Evaluator", Samples], MetricResult]:
    """A metric from manifold_scores: `keys` of it, with k-NN balls of radius the k-th neighbour distance,
    against as many test-split images as there are samples (the estimates assume equal-sized sets)."""
    features, suffix, description = FEATURE_SPACES[space]

    def compute(ev: "Evaluator", s: Samples) -> MetricResult:
        fake, test = features(ev, s)
        n = min(len(fake), len(test))
        if n < min_samples(k):
            raise MetricUnavailable(f"{'/'.join(keys)} need at least {min_samples(k)} samples and as many test "
                                    f"images (k = {k}); got {len(fake)} and {len(test)}")
        real = ev.as_tensor(test[ev.test_subset(n)])
        scores = manifold_scores(real, ev.as_tensor(fake[:n]), k, real_radii=ev.real_radii(space, k, real))
        return MetricResult({key + suffix: scores[key] for key in keys}, n,
                            f"{n} images of the {ev.dataset} test split, k = {k}, {description}")

    return compute


METRICS: dict[str, Metric] = {
    "fcd": Metric(_fcd, "Frechet distance to the test split in the domain classifier's features (lower is better)",
                  needs_classifier=True),
    "class-coverage": Metric(_class_coverage, "entropy of the predicted-class histogram, 1.0 = all classes equally "
                             "often; and classes with >= 2% of samples", needs_classifier=True),
    "cond-accuracy": Metric(_cond_accuracy, "classifier accuracy against the labels a conditional generator was "
                            "asked for", needs_classifier=True, conditional_only=True),
    "w1-exact": Metric(_w1_exact, f"exact Wasserstein-1 between {W1_POINTS} generated and {W1_POINTS} real 2-D "
                       "points (POT)", points=True),
    "fid": Metric(_pick(("fid",)), "Inception FID through torch-fidelity (needs its weights)", needs_inception=True),
    "kid": Metric(_pick(("kid",)), "Inception KID through torch-fidelity (needs its weights)", needs_inception=True),
    "prc": Metric(_manifold("classifier", PRC_K, ("precision", "recall")),
                  f"precision and recall (Kynkaanniemi et al. 2019, k = {PRC_K}) against as many test images, in the "
                  "domain classifier's features (higher is better)", needs_classifier=True, nearest_k=PRC_K),
    "dc": Metric(_manifold("classifier", DC_K, ("density", "coverage")),
                 f"density and coverage (Naeem et al. 2020, k = {DC_K}) against as many test images, in the domain "
                 "classifier's features", needs_classifier=True, nearest_k=DC_K),
    "prc-inception": Metric(_manifold("inception", PRC_K, ("precision", "recall")),
                            "precision and recall in Inception features (needs its weights); logs "
                            "precision_inception, recall_inception", needs_inception=True, nearest_k=PRC_K),
    "dc-inception": Metric(_manifold("inception", DC_K, ("density", "coverage")),
                           "density and coverage in Inception features (needs its weights); logs density_inception, "
                           "coverage_inception", needs_inception=True, nearest_k=DC_K),
}


def check_sample_count(names: Sequence[str], num: int, option: str) -> None:
    """k-NN metrics draw a ball around each sample out to its k-th nearest neighbour: fewer than k + 1 samples
    have none, so such a count is refused before any work."""
    for name in names:
        k = METRICS[name].nearest_k
        if k and num < min_samples(k):
            raise UserError(f"{option} {num}: {name} needs at least {min_samples(k)} samples (k = {k} nearest "
                            "neighbours of each, besides itself); pass more")


def parse_metric_names(text: str | Sequence[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else text
    if not isinstance(items, (list, tuple)) or not all(isinstance(n, str) for n in items):
        raise UserError(f"metrics={text!r}: a comma-separated string or a list of metric names (strings)")
    names = [n.strip() for n in items if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}: choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def default_metric_names(*, points: bool, conditional: bool) -> list[str]:
    if points:
        return ["w1-exact"]
    return ["fcd", "class-coverage", "prc", "dc"] + (["cond-accuracy"] if conditional else [])
