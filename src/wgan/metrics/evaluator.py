"""The Evaluator: scores sample sets with the named metrics against one dataset's test split, building
what they share (the classifier, the test split's features, its k-NN radii) once; and the training
loop's hook built on it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from wgan.data import Data, load_dataset
from wgan.errors import UserError
from wgan.metrics.base import MetricUnavailable
from wgan.metrics.classifier import (
    Classifier, check_labelled, classifier_path, find_classifier, fit_classifier, load_classifier, save_classifier,
    train_classifier_command)
from wgan.metrics.distances import FeatureStats
from wgan.metrics.inception import InceptionScorer
from wgan.metrics.manifold import kth_neighbour_radii
from wgan.metrics.registry import METRICS, MetricResult, parse_metric_names
from wgan.metrics.results import flatten_results
from wgan.metrics.samples import Samples, generate_samples

WEAK_CLASSIFIER_ACCURACY = 0.5  # below this, classifier-based scores are flagged (Fashion-MNIST's: 91%)
SMALL_TEST_SPLIT = 1000  # below this many test images, Frechet distances are flagged as noisy


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
        if any(METRICS[name].needs_inception for name in self.names):  # refused now, before any work
            self.inception.check_weights()
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
# The Evaluator of a run, and the training loop's hook built on it


def evaluator_for(cfg, names: Sequence[str], *, device: torch.device | str, note: Callable[[str], None],
                  seed: int | None = None, data_path=None, inception_weights: str | Path | None = None,
                  train_data: Data | None = None) -> Evaluator:
    """The Evaluator of a run from its config: every option of it that the metrics read (dataset, data, image
    size, channels, load options, Inception weights, seed) is passed here, once for training and `wgan eval`
    alike. `seed`, `data_path` and `inception_weights`, where given, stand in for the run's (wgan eval's --seed,
    --data and --inception-weights); `train_data` is the training split already loaded, if any."""
    return Evaluator(names, dataset=cfg.dataset, data_path=data_path or cfg.data, image_size=cfg.image_size or None,
                     channels=cfg.channels or None, device=device, seed=cfg.seed if seed is None else seed,
                     train_data=train_data, inception_weights=inception_weights or cfg.inception_weights,
                     note=note, load_options=cfg.load_options)


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
    ev = evaluator_for(cfg, names, device=device, note=note, train_data=data)
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
