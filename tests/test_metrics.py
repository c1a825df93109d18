"""Metrics through the registry and the evaluator: FCD, class coverage, conditional accuracy and exact W1,
what is skipped and why, and the `wgan eval` command, on tiny synthetic data."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from synth_idx import NUM_CLASSES
from wgan import metrics
from wgan.metrics import evaluator
from wgan.cli import main
from wgan.data import DATASETS, Data, DatasetEntry
from wgan.errors import UserError
from wgan.models import ModelShape


def test_fcd_is_zero_on_the_test_split_itself_and_grows_with_blur_then_noise(env):
    ev = env["ev"]
    test = ev.test_data().x
    gen = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, test.shape, generator=gen, dtype=torch.uint8)
    blurred = gaussian_blur(test.float(), kernel_size=7, sigma=2.0).round().to(torch.uint8)

    def fcd(x):
        return metrics.METRICS["fcd"].compute(ev, metrics.Samples(x)).values["fcd"]

    itself, blur, rand = fcd(test), fcd(blurred), fcd(noise)
    assert itself < 1e-6 * max(blur, 1.0)
    assert itself < blur < rand
    # replacing more and more samples by noise moves the distance up monotonically
    half = test.clone()
    half[: len(test) // 2] = noise[: len(test) // 2]
    quarter = test.clone()
    quarter[: len(test) // 4] = noise[: len(test) // 4]
    assert itself < fcd(quarter) < fcd(half) < rand


def test_class_coverage_low_for_one_class_and_near_one_for_the_test_split(env):
    ev = env["ev"]
    test = ev.test_data()
    cov = metrics.METRICS["class-coverage"].compute
    everything = cov(ev, metrics.Samples(test.x)).values
    one_class = cov(ev, metrics.Samples(test.x[test.y == 3])).values
    assert everything["class_coverage"] > 0.97 and everything["classes_covered"] == NUM_CLASSES
    assert one_class["class_coverage"] < 0.2 and one_class["classes_covered"] == 1


class _LookupGenerator(nn.Module):
    """A 'conditional generator' that returns real test images: of the requested class, or of class 0."""

    def __init__(self, data: Data, obey_labels: bool):
        super().__init__()
        self.shape = ModelShape(num_classes=NUM_CLASSES, latent_dim=4)
        self.by_class = [data.x[data.y == k] for k in range(NUM_CLASSES)]
        self.obey = obey_labels

    def forward(self, z, labels):
        picks = [self.by_class[int(k) if self.obey else 0][i % 20] for i, k in enumerate(labels)]
        return torch.stack(picks).float().mul(2 / 255).sub(1)


def test_cond_accuracy_high_when_labels_are_obeyed_and_low_when_ignored(env):
    ev = env["ev"]
    good = metrics.generate_samples(_LookupGenerator(ev.test_data(), True), 500, device="cpu")
    bad = metrics.generate_samples(_LookupGenerator(ev.test_data(), False), 500, device="cpu")
    assert good.requested_labels.bincount().tolist() == [50] * NUM_CLASSES
    good_acc = ev.evaluate(good)["cond-accuracy"].values["cond_accuracy"]
    bad_acc = ev.evaluate(bad)["cond-accuracy"].values["cond_accuracy"]
    assert good_acc >= 0.9 and bad_acc <= 0.2


def test_cond_accuracy_is_skipped_for_unconditional_models(env):
    ev = metrics.Evaluator(["cond-accuracy", "fcd"], dataset="fashion-mnist", data_path=env["data_dir"],
                           note=(notes := []).append)
    assert ev.prepare(points=False, conditional=False) == ["fcd"]
    assert "cond-accuracy skipped" in notes[0] and "class-conditional" in notes[0]


def _points_entry(points: torch.Tensor) -> DatasetEntry:
    return DatasetEntry(lambda split, path, options=None: Data("toy-test", points.clone()), 0, 0, 0, "test points")


def test_w1_exact_metric_scores_a_point_generator(monkeypatch):
    real = torch.randn(3000, 2, generator=torch.Generator().manual_seed(0))
    monkeypatch.setitem(DATASETS, "toy-test", _points_entry(real))

    class Shifted(nn.Module):
        shape = ModelShape(latent_dim=2, point_dim=2, channels=0, image_size=0)

        def forward(self, z, labels=None):
            return z + torch.tensor([6.0, 8.0])

    ev = metrics.Evaluator(["w1-exact", "fcd"], dataset="toy-test", note=(notes := []).append)
    assert ev.prepare(points=True, conditional=False) == ["w1-exact"]
    assert "fcd skipped" in notes[0]
    result = ev.evaluate(metrics.generate_samples(Shifted(), 2500, device="cpu"))["w1-exact"]
    assert result.samples == metrics.W1_POINTS
    assert result.values["w1_exact"] == pytest.approx(10.0, rel=0.03)


def test_fcd_is_not_available_for_unlabelled_images(monkeypatch):
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    monkeypatch.setitem(DATASETS, "faces-test", DatasetEntry(
        lambda split, path, options=None: Data("faces-test", images.clone(), source="/some/folder"), 28, 1, 0, "unlabelled"))
    ev = metrics.Evaluator(["fcd", "class-coverage"], dataset="faces-test", note=(notes := []).append)
    assert ev.prepare(points=False, conditional=False) == []
    assert len(notes) == 2 and all("not available for unlabelled data" in n for n in notes)


def test_inception_metrics_skip_with_a_note_without_torch_fidelity(env, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import now raises ImportError
    ev = metrics.Evaluator(["fid", "kid", "fcd"], dataset="fashion-mnist", data_path=env["data_dir"],
                           note=(notes := []).append)
    assert ev.prepare(points=False, conditional=False) == ["fcd"]
    skipped = [n for n in notes if "skipped" in n]
    assert len(skipped) == 2 and all("pip install" in n and "torch-fidelity" in n for n in skipped)


def test_the_scores_reference_is_stated_and_a_weak_one_flagged(env, monkeypatch):
    assert any("fcd, class-coverage, cond-accuracy against the fashion-mnist test split (600 images), classifier "
               "test accuracy" in n for n in env["notes"])
    assert any("the test split has only 600 images" in n for n in env["notes"])
    assert not any("right on only" in n for n in env["notes"])  # the synthetic classes are easy
    monkeypatch.setattr(evaluator, "WEAK_CLASSIFIER_ACCURACY", 1.01)
    monkeypatch.setattr(evaluator, "SMALL_TEST_SPLIT", 600)
    ev = metrics.Evaluator(["fcd"], dataset="fashion-mnist", data_path=env["data_dir"], note=(notes := []).append)
    assert ev.prepare(points=False, conditional=False) == ["fcd"]
    assert [n for n in notes if "warning" in n] == [
        f"metrics: warning: the classifier is right on only {ev.classifier().test_accuracy:.0%} of the test split, "
        "so the scores built on it (fcd) say little; it needs more training data or epochs"]


def test_inception_weights_holding_code_are_refused_before_anyone_unpickles_them(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "inception.pth"
    torch.save({"w": Evil()}, path, pickle_module=pickle)
    with pytest.raises(UserError, match="refused: not a plain tensor file"):
        metrics.Evaluator(["fid"], dataset="fashion-mnist", inception_weights=path)
    with pytest.raises(UserError, match="file not found"):
        metrics.Evaluator(["fid"], dataset="fashion-mnist", inception_weights=tmp_path / "missing.pth")


def test_inception_weights_are_checked_when_a_metric_needs_them(tmp_path):
    """A run whose weights file has since moved is still evaluated with the metrics that do not read it."""
    missing = tmp_path / "moved.pth"
    assert metrics.Evaluator(["fcd"], dataset="fashion-mnist", inception_weights=missing).inception.weights == missing
    with pytest.raises(UserError, match="moved.pth: file not found"):
        metrics.Evaluator(["fcd", "prc-inception"], dataset="fashion-mnist", inception_weights=missing)


def test_the_runs_inception_weights_reach_every_evaluator_built_from_it(env, tmp_path, monkeypatch):
    """Training's evaluator, `wgan eval --run`'s for its metrics and for its analyses (--neighbours): each is
    built from the run's config with its --inception-weights; `wgan eval --inception-weights` stands in for it."""
    weights, other = tmp_path / "inception.pth", tmp_path / "other.pth"
    for path in (weights, other):
        torch.save({"w": torch.zeros(1)}, path)
    built = []
    init = metrics.Evaluator.__init__
    monkeypatch.setattr(metrics.Evaluator, "__init__",
                        lambda self, *a, **k: (init(self, *a, **k), built.append(self.inception.weights))[0])
    runs = tmp_path / "runs"
    assert main(["train", "--preset", "quick", "--data", str(env["data_dir"]), "--steps", "2", "--width", "8",
                 "--batch-size", "8", "--eval-metrics", "fcd", "--eval-num-samples", "8", "--inception-weights",
                 str(weights), "--runs-dir", str(runs), "--no-progress", "--sample-every-steps", "0",
                 "--no-tensorboard"]) == 0
    run = str(next(runs.iterdir()))
    assert main(["eval", "--run", run, "--metrics", "fcd", "--num", "8", "--no-append"]) == 0
    assert main(["eval", "--run", run, "--neighbours", "2", "--neighbours-space", "pixel", "--num", "4"]) == 0
    assert main(["eval", "--run", run, "--metrics", "fcd", "--num", "8", "--no-append",
                 "--inception-weights", str(other)]) == 0
    assert built == [weights, weights, weights, other]


def test_unknown_metric_is_one_clear_error():
    with pytest.raises(UserError, match="unknown metric.*fcdd.*choose from fcd"):
        metrics.parse_metric_names("fcdd,class-coverage")


# ---------------------------------------------------------------------------------------------
# Precision/recall, density/coverage in the classifier's features


def _manifold_values(ev, x) -> dict:
    samples = metrics.Samples(x)
    out = {}
    for name in ("prc", "dc"):
        result = metrics.METRICS[name].compute(ev, samples)
        out.update(result.values, samples=result.samples)
    return out


def test_prc_and_dc_on_the_test_split_itself_are_one(env):
    ev = env["ev"]
    values = _manifold_values(ev, ev.test_data().x.clone())
    assert values["precision"] == values["recall"] == values["coverage"] == 1.0
    assert 0.9 < values["density"] < 1.5
    assert values["samples"] == len(ev.test_data())


def test_prc_and_dc_equal_the_definitions_on_an_equal_sized_part_of_the_test_split(env):
    """The registry's values are manifold_scores of the classifier's features of the samples against as many
    test images, drawn once per evaluator: checked against the formulas in NumPy."""
    from test_metrics_manifold import brute_force

    ev = env["ev"]
    train = metrics.baseline_samples(ev.train_data(), 150, seed=1)
    samples = next(iter(train.values()))
    values = _manifold_values(ev, samples.x)
    real = ev.test_features()[ev.test_subset(150)]
    fake, _ = ev.classify(samples)
    for k, keys in ((3, ("precision", "recall")), (5, ("density", "coverage"))):
        expected = brute_force(real, fake, k)
        for key in keys:
            assert values[key] == pytest.approx(expected[key], rel=1e-12), key
    assert values["samples"] == 150
    assert ev.test_subset(150).tolist() == ev.test_subset(150).tolist(), "the same real set every evaluation"


def test_one_class_is_precise_but_recalls_little_and_noise_is_imprecise(env):
    ev = env["ev"]
    test = ev.test_data()
    one = _manifold_values(ev, test.x[test.y == 3])
    noise = _manifold_values(ev, torch.randint(0, 256, (300, 1, 28, 28), dtype=torch.uint8,
                                                generator=torch.Generator().manual_seed(0)))
    assert one["precision"] > 0.8 and one["recall"] < 0.25 and one["coverage"] < 0.25
    assert noise["precision"] < 0.1 and noise["density"] < 0.1


@pytest.mark.parametrize("name, k", [("prc", 3), ("dc", 5)])
def test_k_nn_metrics_refuse_fewer_than_k_plus_one_samples(name, k):
    metrics.check_sample_count([name, "fcd"], k + 1, "--num")
    with pytest.raises(UserError, match=f"--num {k}: {name} needs at least {k + 1} samples"):
        metrics.check_sample_count(["fcd", name], k, "--num")
    metrics.check_sample_count(["fcd", "class-coverage"], 2, "--num")  # no k-NN metric: 2 will do


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_baselines_put_the_train_split_below_noise(env, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(env["root"] / "cache"))
    assert main(["eval", "--baselines", "--dataset", "fashion-mnist", "--data", str(env["data_dir"]),
                 "--num", "400", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    def column(name):
        return [float(line.split()[1]) for line in out.splitlines() if line.startswith(name + " ")]

    # the train split, noise, one class: FCD lowest for the train split, highest for noise
    fcds = column("fcd")
    assert len(fcds) == 3 and fcds[0] < fcds[2] < fcds[1]
    precision, recall, coverage = column("precision"), column("recall"), column("coverage")
    assert len(precision) == len(recall) == len(coverage) == 3
    assert precision[0] > 0.5 and recall[0] > 0.5 and precision[1] < 0.1, "the train split is near, noise far"
    assert recall[2] < recall[0] / 2 and coverage[2] < coverage[0] / 2, "one class reaches a tenth of the test split"
    assert "400" in out and "one class (" in out and ": 120 training images) vs test split" in out


@pytest.mark.parametrize("argv, message", [
    (["eval", "--run", "/nonexistent/run"], "/nonexistent/run"),
    (["eval", "--train-classifier"], "--dataset NAME"),
    (["eval", "--baselines", "--dataset", "fashion-mnist", "--metrics", "nope"], "unknown metric"),
    (["eval", "--run", "x", "--num", "0"], "--num 0"),
    (["report", "--run", "/nonexistent/run"], "no config.json"),
])
def test_cli_user_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
