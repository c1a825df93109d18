"""How good is a generator, in numbers that mean something on MNIST-like data.

Inception networks see 28x28 grayscale clothes through the eyes of ImageNet, and no Inception
weights can be downloaded everywhere, so the main number here is the FCD: FID's Frechet distance,
computed in the penultimate features of a small CNN trained on the dataset's own training split,
between generated samples and the real test split. The same classifier gives class coverage (mode
collapse in one number) and, for conditional models, the accuracy on the requested labels. Precision
and recall (k = 3) and density and coverage (k = 5) compare k-nearest-neighbour manifolds of the same
features (or of Inception's) with those of an equal-sized random part of the test split. 2-D toy
data get the exact Wasserstein-1 distance (POT). Inception FID/KID come through torch-fidelity when
it is installed and its weights are at hand.

Every metric is an entry in METRICS; an Evaluator prepares what they share (the classifier, the test
split's features) once, then scores any number of generators or sample sets. Both are here; the parts
they are built from have a module each: classifier (the domain classifier and its cache), distances
(the maths), manifold (k-nearest-neighbour maths), inception (torch-fidelity) and samples (what is scored).
Built on this package: neighbours (the memorisation check) and truncation (the truncation sweep).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from wgan import rundir
from wgan.data import Data, load_dataset
from wgan.errors import UserError
from wgan.metrics.base import MetricUnavailable
from wgan.metrics.classifier import (
    Classifier, check_labelled, classifier_path, find_classifier, fit_classifier, load_classifier, save_classifier,
    train_classifier_command)
from wgan.metrics.distances import COVERED_SHARE, FeatureStats, class_coverage, exact_w1, frechet_distance
from wgan.metrics.inception import INCEPTION_FEATURE, InceptionScorer
from wgan.metrics.manifold import DC_K, PRC_K, kth_neighbour_radii, manifold_scores, min_samples
from wgan.metrics.samples import Samples, baseline_samples, generate_samples

W1_POINTS = 2000  # points per side for the exact W1: the paper's toy evaluation size
WEAK_CLASSIFIER_ACCURACY = 0.5  # below this, classifier-based scores are flagged (Fashion-MNIST's: 91%)
SMALL_TEST_SPLIT = 1000  # below this many test images, Frechet distances are flagged as noisy

__all__ = [
    "METRICS", "Metric", "MetricResult", "parse_metric_names", "default_metric_names",
    "Evaluator", "training_evaluator", "flatten_results", "format_table", "run_time_at",
    "MetricUnavailable", "Samples", "generate_samples", "baseline_samples",
    "Classifier", "classifier_path", "find_classifier", "fit_classifier", "load_classifier", "save_classifier",
    "FeatureStats", "frechet_distance", "class_coverage", "exact_w1", "check_sample_count", "manifold_scores",
]


# ---------------------------------------------------------------------------------------------
# The registry


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
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}: choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------
# The evaluator


class Evaluator:
    """Scores sample sets with the named metrics against one dataset's test split.

    `train_data` (the training split, adapted to the model's size) is only needed for metrics that use
    the classifier: to check the cached classifier against it, or to train one when none is cached.
    """

    def __init__(self, names: Sequence[str], *, dataset: str, data_path=None, image_size: int | None = None,
                 channels: int | None = None, device: torch.device | str = "cpu", seed: int = 0,
                 train_data: Data | None = None, inception_weights: str | Path | None = None,
                 train_classifier_if_missing: bool = True, note: Callable[[str], None] = print,
                 load_options: dict | None = None):
        """`load_options`: more of load_dataset's options for both splits (skip_bad_images, max_image_megapixels)."""
        self.names = parse_metric_names(names)
        self.dataset, self.data_path = dataset, data_path
        self.image_size, self.channels = image_size, channels
        self.load_options = load_options or {}
        self.device = torch.device(device)
        self.seed = seed
        self.inception = InceptionScorer(Path(inception_weights) if inception_weights else None, self.device,
                                         self.test_data)
        self.train_classifier_if_missing = train_classifier_if_missing
        self.note = note
        self._train = train_data
        self._test: Data | None = None
        self._classifier: Classifier | None = None
        self._test_stats: FeatureStats | None = None
        self._test_features: np.ndarray | None = None
        self._test_subsets: dict[int, np.ndarray] = {}
        self._real_radii: dict[tuple, torch.Tensor] = {}

    # --- shared resources, built once ------------------------------------------------------
    def train_data(self) -> Data:
        if self._train is None:
            self._train = load_dataset(self.dataset, split="train", data_path=self.data_path,
                                       image_size=self.image_size, channels=self.channels, **self.load_options)
        return self._train

    def test_data(self) -> Data:
        if self._test is None:
            self._test = load_dataset(self.dataset, split="test", data_path=self.data_path,
                                      image_size=self.image_size, channels=self.channels, **self.load_options)
            for data_note in self._test.notes:  # e.g. classes the test split lacks: they skew every score
                self.note(f"metrics: test split: {data_note}")
        return self._test

    def classifier(self) -> Classifier:
        if self._classifier is None:
            train = self.train_data()
            check_labelled(train, "this metric")
            path = find_classifier(train)
            command = train_classifier_command(self.dataset, self.data_path, self.image_size, self.channels)
            if path is not None:
                self._classifier = load_classifier(path, train, command)
            elif self.train_classifier_if_missing:
                path = classifier_path(train)
                self.note(f"metrics: no classifier cached for {train.name}; training one on its {len(train)} training "
                          f"images (once; a few minutes on a CPU) -> {path}")
                self._classifier = fit_classifier(train, self.test_data(), device=self.device, seed=self.seed)
                save_classifier(self._classifier, path)
                self.note(f"metrics: classifier test accuracy {self._classifier.test_accuracy:.2%}")
            else:
                raise UserError(f"no classifier cached for {train.name} ({classifier_path(train)}); train it first: "
                                f"{command}")
        return self._classifier

    def test_stats(self) -> FeatureStats:
        if self._test_stats is None:
            self._test_stats = FeatureStats.of(self.test_features())
        return self._test_stats

    def test_features(self) -> np.ndarray:
        """The classifier's features of the test split (float64, one row per image)."""
        if self._test_features is None:
            self._test_features, _ = self.classifier().run(self.test_data().x, self.device)
        return self._test_features

    def test_subset(self, n: int) -> np.ndarray:
        """Indices of n test images drawn without replacement, the same for every evaluation of this
        evaluator (so that successive evaluations during training differ only by the generator)."""
        if n not in self._test_subsets:
            gen = torch.Generator().manual_seed(self.seed + 2)
            self._test_subsets[n] = torch.randperm(len(self.test_data()), generator=gen)[:n].numpy()
        return self._test_subsets[n]

    def real_radii(self, space: str, k: int, real: torch.Tensor) -> torch.Tensor:
        """The k-NN radii of the fixed test subset `real` in feature space `space`: drawn once per evaluator,
        not at every evaluation of a training run (they are half the cost of the k-NN metrics)."""
        key = (space, k, len(real))
        if key not in self._real_radii:
            self._real_radii[key] = kth_neighbour_radii(real, k)
        return self._real_radii[key]

    def as_tensor(self, features: np.ndarray) -> torch.Tensor:
        """Features on the evaluator's device, in float64 where it has it (MPS has not)."""
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        return torch.from_numpy(np.ascontiguousarray(features)).to(self.device, dtype)

    def inception_features(self, s: Samples) -> tuple[dict, dict]:
        """torch-fidelity's feature dicts of the samples and of the test split, computed once per sample set
        for FID, KID and the k-NN metrics; a failure is remembered too, so it is not retried."""
        if "inception_features" not in s.cache:
            try:
                s.cache["inception_features"] = self.inception.features(s.x)
            except MetricUnavailable as exc:
                s.cache["inception_features"] = exc
        if isinstance(s.cache["inception_features"], MetricUnavailable):
            raise s.cache["inception_features"]
        return s.cache["inception_features"]

    def test_description(self) -> str:
        return (f"{self.dataset} test split ({len(self.test_data())} images), classifier test accuracy "
                f"{self.classifier().test_accuracy:.1%}")

    def classify(self, s: Samples) -> tuple[np.ndarray, np.ndarray]:
        if "classified" not in s.cache:
            s.cache["classified"] = self.classifier().run(s.x, self.device)
        return s.cache["classified"]

    # --- checks -----------------------------------------------------------------------------
    def unavailable_reason(self, name: str, *, points: bool, conditional: bool) -> str | None:
        """Why metric `name` cannot score this kind of sample, or None; prepares what it needs."""
        metric = METRICS[name]
        if metric.points != points:
            return f"{name} is for {'2-D points' if metric.points else 'images'}; this model makes " \
                   f"{'points' if points else 'images'}"
        if metric.conditional_only and not conditional:
            return f"{name} needs a class-conditional generator"
        try:
            if metric.needs_classifier:
                self.test_stats()
            if metric.needs_inception:
                self.inception.network()  # its weights load (or download) now, not at the first evaluation
        except MetricUnavailable as exc:
            return str(exc)
        return None

    def prepare(self, *, points: bool, conditional: bool) -> list[str]:
        """Keep the metrics that apply (building the classifier and test features now, so that errors
        show before any training); note each one dropped. Returns the names kept."""
        kept = []
        self.dropped: dict[str, str] = {}
        for name in self.names:
            reason = self.unavailable_reason(name, points=points, conditional=conditional)
            if reason is None:
                kept.append(name)
            else:
                self.dropped[name] = reason
                self.note(f"metrics: {name} skipped: {reason}")
        self.names = kept
        classified = [n for n in kept if METRICS[n].needs_classifier]
        if classified:
            # The numbers are only as good as their reference: say what it is, and when it is weak.
            self.note(f"metrics: {', '.join(classified)} against the {self.test_description()}")
            accuracy, n_test = self.classifier().test_accuracy, len(self.test_data())
            if accuracy < WEAK_CLASSIFIER_ACCURACY:
                self.note(f"metrics: warning: the classifier is right on only {accuracy:.0%} of the test split, so the "
                          f"scores built on it ({', '.join(classified)}) say little; it needs more training data "
                          "or epochs")
            if n_test < SMALL_TEST_SPLIT:
                self.note(f"metrics: warning: the test split has only {n_test} images; distances to so few are "
                          "mostly noise")
        return kept

    # --- scoring ----------------------------------------------------------------------------
    def evaluate(self, samples: Samples) -> dict[str, MetricResult]:
        results = {}
        for name in self.names:
            try:
                results[name] = METRICS[name].compute(self, samples)
            except MetricUnavailable as exc:
                self.note(f"metrics: {name} skipped: {exc}")
        return results


# ---------------------------------------------------------------------------------------------
# What the command line and metrics.jsonl need


def flatten_results(results: dict[str, MetricResult]) -> dict:
    """Metric results as one metrics.jsonl record: the values, and the sample count behind each."""
    record: dict = {}
    counts: dict[str, int] = {}
    for r in results.values():
        for k, v in r.values.items():
            record[k] = v if isinstance(v, int) else round(float(v), 6)
            counts[k] = r.samples
    if counts:
        record["samples"] = counts
    return record


def format_table(results: dict[str, MetricResult]) -> str:
    rows = [("metric", "value", "samples", "compared with")]
    for r in results.values():
        for k, v in r.values.items():
            rows.append((k, f"{v:.4g}" if isinstance(v, float) else str(v), str(r.samples), r.reference))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows)


def default_metric_names(*, points: bool, conditional: bool) -> list[str]:
    if points:
        return ["w1-exact"]
    return ["fcd", "class-coverage", "prc", "dc"] + (["cond-accuracy"] if conditional else [])


def run_time_at(run_dir: Path, step: int | None) -> dict:
    """{"time_s": training seconds when the run reached `step`} from its log, or {} when unknown: an
    evaluation made after training then sits at the right place on the wall-clock axis."""
    times = [r["time_s"] for r in rundir.read_records(run_dir)
             if rundir.is_training_record(r) and "time_s" in r and step is not None and r["step"] <= step]
    return {"time_s": times[-1]} if times else {}


# ---------------------------------------------------------------------------------------------
# The training loop's hook


def training_evaluator(cfg, data: Data, shape, device: torch.device,
                       note: Callable[[str], None]) -> Callable[[nn.Module], dict] | None:
    """For a training run: a function generator -> metrics.jsonl fields, or None when no metric applies.

    Everything the metrics share (the classifier, trained now if none is cached, and the test split's
    features) is built here, before the first step, so a missing test split or a mismatched cache
    stops the run at once rather than after hours.
    """
    names = parse_metric_names(cfg.eval_metrics)
    if not names:
        return None
    ev = Evaluator(names, dataset=cfg.dataset, data_path=cfg.data, image_size=cfg.image_size or None,
                   channels=cfg.channels or None, device=device, seed=cfg.seed, train_data=data,
                   inception_weights=cfg.inception_weights, note=note, load_options=cfg.load_options)
    kept = ev.prepare(points=bool(shape.point_dim), conditional=shape.conditional)
    # Inception metrics asked for but without their network (offline, no weights file): refused now, not
    # logged as skipped at every evaluation of a run trained for them.
    unreachable = {n: why for n, why in ev.dropped.items() if METRICS[n].needs_inception}
    if unreachable:
        name, why = next(iter(unreachable.items()))
        raise UserError(f"--eval-metrics {cfg.eval_metrics}: {name} cannot be computed: {why}")
    if not kept:
        return None

    def evaluate(generator: nn.Module) -> dict:
        t0 = time.perf_counter()
        samples = generate_samples(generator, cfg.eval_num_samples, device=device, seed=cfg.seed + 777)
        record = flatten_results(ev.evaluate(samples))
        record["eval_s"] = round(time.perf_counter() - t0, 3)
        return record

    return evaluate
