"""The metrics: each one an entry in METRICS, how to compute it from an Evaluator and a sample set, beside
what it needs (the classifier, Inception, a conditional generator, k + 1 samples), which wgan.metric_rules
declares torch-free. A metric's compute takes the Evaluator (wgan.metrics.evaluator, built on this
registry) for what the metrics share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from wgan.metric_rules import (
    DC_K, METRIC_SPECS, PRC_K, W1_POINTS, MetricSpec, check_sample_count, default_metric_names, min_samples,
    parse_metric_names)
from wgan.metrics.base import MetricUnavailable
from wgan.metrics.distances import COVERED_SHARE, FeatureStats, class_coverage, exact_w1, frechet_distance
from wgan.metrics.inception import INCEPTION_FEATURE
from wgan.metrics.manifold import manifold_scores
from wgan.metrics.samples import Samples

__all__ = ["METRICS", "W1_POINTS", "Metric", "MetricResult", "check_sample_count", "default_metric_names",
           "parse_metric_names"]


@dataclass(frozen=True)
class MetricResult:
    values: dict[str, float]  # what gets logged, e.g. {"fcd": 23.4}
    samples: int  # generated samples behind the values
    reference: str  # what they were compared with


@dataclass(frozen=True, kw_only=True)
class Metric(MetricSpec):
    compute: Callable[["Evaluator", Samples], MetricResult]


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


# Each metric's computation; what it is and needs is its entry in METRIC_SPECS.
_COMPUTES: dict[str, Callable[["Evaluator", Samples], MetricResult]] = {
    "fcd": _fcd,
    "class-coverage": _class_coverage,
    "cond-accuracy": _cond_accuracy,
    "w1-exact": _w1_exact,
    "fid": _pick(("fid",)),
    "kid": _pick(("kid",)),
    "prc": _manifold("classifier", PRC_K, ("precision", "recall")),
    "dc": _manifold("classifier", DC_K, ("density", "coverage")),
    "prc-inception": _manifold("inception", PRC_K, ("precision", "recall")),
    "dc-inception": _manifold("inception", DC_K, ("density", "coverage")),
}
if set(_COMPUTES) != set(METRIC_SPECS):
    raise ImportError(f"metrics without a computation or a spec: {sorted(set(_COMPUTES) ^ set(METRIC_SPECS))}")
METRICS: dict[str, Metric] = {name: Metric(compute=_COMPUTES[name], **vars(spec))
                              for name, spec in METRIC_SPECS.items()}
