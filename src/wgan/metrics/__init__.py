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

Every metric is an entry in METRICS (registry); an Evaluator (evaluator) prepares what they share (the
classifier, the test split's features) once, then scores any number of generators or sample sets;
results turns its scores into a table and a metrics.jsonl record. The parts they are built from have a
module each: classifier (the domain classifier and its cache), distances (the maths), manifold
(k-nearest-neighbour maths), inception (torch-fidelity) and samples (what is scored). Built on this
package: neighbours (the memorisation check) and truncation (the truncation sweep).
"""

from wgan.metrics.evaluator import (  # noqa: F401
    METRICS, SMALL_TEST_SPLIT, W1_POINTS, WEAK_CLASSIFIER_ACCURACY, Classifier, Evaluator, FeatureStats, Metric,
    MetricResult, MetricUnavailable, Samples, __all__, baseline_samples, check_sample_count, class_coverage,
    classifier_path, default_metric_names, exact_w1, find_classifier, fit_classifier, flatten_results, format_table,
    frechet_distance, generate_samples, load_classifier, manifold_scores, parse_metric_names, run_time_at,
    save_classifier, training_evaluator)
