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

Every metric is an entry in METRICS (registry), declared with what it needs in wgan.metric_rules (torch-free,
which config and the command line read); an Evaluator (evaluator) prepares what they share (the
classifier, the test split's features) once, then scores any number of generators or sample sets;
results turns its scores into a table and a metrics.jsonl record. The parts they are built from have a
module each: classifier (the domain classifier and its cache), distances (the maths), manifold
(k-nearest-neighbour maths), inception (torch-fidelity) and samples (what is scored). Built on this
package: neighbours (the memorisation check) and truncation (the truncation sweep).
"""

from wgan.metrics.base import MetricUnavailable
from wgan.metrics.classifier import (
    Classifier, classifier_path, find_classifier, fit_classifier, load_classifier, save_classifier)
from wgan.metrics.distances import FeatureStats, class_coverage, exact_w1, frechet_distance
from wgan.metrics.evaluator import (
    SMALL_TEST_SPLIT, WEAK_CLASSIFIER_ACCURACY, Evaluator, evaluator_for, training_evaluator)
from wgan.metrics.manifold import manifold_scores
from wgan.metrics.registry import (
    METRICS, W1_POINTS, Metric, MetricResult, check_sample_count, default_metric_names, parse_metric_names)
from wgan.metrics.results import flatten_results, format_table, run_time_at
from wgan.metrics.samples import Samples, baseline_samples, generate_samples

__all__ = [
    "METRICS", "Metric", "MetricResult", "parse_metric_names", "default_metric_names",
    "Evaluator", "evaluator_for", "training_evaluator", "flatten_results", "format_table", "run_time_at",
    "MetricUnavailable", "Samples", "generate_samples", "baseline_samples",
    "Classifier", "classifier_path", "find_classifier", "fit_classifier", "load_classifier", "save_classifier",
    "FeatureStats", "frechet_distance", "class_coverage", "exact_w1", "check_sample_count", "manifold_scores",
]
