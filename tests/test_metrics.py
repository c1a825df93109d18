"""Metrics: the Frechet distance and its classifier, class coverage, conditional accuracy, exact W1, and the
`wgan eval` command, on tiny synthetic data."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from synth_idx import NUM_CLASSES, write_dataset
from wgan import metrics
from wgan.cli import main
from wgan.data import DATASETS, Data, DatasetEntry, load_dataset
from wgan.errors import UserError
from wgan.models import ModelShape


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Synthetic Fashion-MNIST-shaped data, a private cache dir, and an evaluator whose classifier is trained
    once for the module."""
    root = tmp_path_factory.mktemp("metrics")
    data_dir = write_dataset(root / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        notes: list[str] = []
        ev = metrics.Evaluator(["fcd", "class-coverage", "cond-accuracy"], dataset="fashion-mnist",
                               data_path=data_dir, note=notes.append)
        assert ev.prepare(points=False, conditional=True) == ["fcd", "class-coverage", "cond-accuracy"]
        yield dict(ev=ev, data_dir=data_dir, root=root, notes=notes)


def test_classifier_learns_the_data_and_reports_its_accuracy(env):
    clf = env["ev"].classifier()
    assert clf.test_accuracy >= 0.9
    assert clf.path is not None and clf.path.is_file()
    assert any("training one" in n for n in env["notes"]) and any("test accuracy" in n for n in env["notes"])
    state = torch.load(clf.path, weights_only=True)
    assert state["dataset"] == "fashion-mnist" and state["num_classes"] == NUM_CLASSES
    assert state["test_accuracy"] == pytest.approx(clf.test_accuracy)


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
    monkeypatch.setattr(metrics, "WEAK_CLASSIFIER_ACCURACY", 1.01)
    monkeypatch.setattr(metrics, "SMALL_TEST_SPLIT", 600)
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


def test_unknown_metric_is_one_clear_error():
    with pytest.raises(UserError, match="unknown metric.*fcdd.*choose from fcd"):
        metrics.parse_metric_names("fcdd,class-coverage")


def test_cached_classifier_is_refused_when_the_data_change(env, tmp_path):
    ev = env["ev"]
    other_dir = write_dataset(tmp_path / "other", n_train=300, n_test=100, seed=5)
    other = load_dataset("fashion-mnist", split="train", data_path=other_dir)
    with pytest.raises(UserError) as info:
        metrics.load_classifier(ev.classifier().path, other)
    msg = str(info.value)
    assert "\n" not in msg and str(ev.classifier().path) in msg
    assert "does not match" in msg and "wgan eval --train-classifier --dataset fashion-mnist" in msg
    # the matching data load it back, with the same features
    same = metrics.load_classifier(ev.classifier().path, ev.train_data())
    x = ev.test_data().x[:50]
    assert np.allclose(same.run(x, torch.device("cpu"))[0], ev.classifier().run(x, torch.device("cpu"))[0])


def test_the_retrain_line_of_a_mismatched_classifier_names_the_data_and_works_as_printed(env, tmp_path, monkeypatch):
    import shlex
    import shutil

    cached = env["ev"].classifier().path
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "wgan" / "classifiers").mkdir(parents=True)
    shutil.copy(cached, metrics.classifier_path("fashion-mnist", 1, 28))
    other_dir = write_dataset(tmp_path / "other data", n_train=300, n_test=100, seed=5)
    ev = metrics.Evaluator(["fcd"], dataset="fashion-mnist", data_path=other_dir, note=lambda msg: None)
    with pytest.raises(UserError) as info:
        ev.prepare(points=False, conditional=False)
    command = str(info.value).split("retrain it: ")[1]
    assert command == f"wgan eval --train-classifier --dataset fashion-mnist --data '{other_dir}'"
    assert main(shlex.split(command)[1:] + ["--epochs", "1"]) == 0
    assert metrics.Evaluator(["fcd"], dataset="fashion-mnist", data_path=other_dir).prepare(
        points=False, conditional=False) == ["fcd"]


def test_a_classifier_cache_holding_code_is_refused(tmp_path, env):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"format": metrics.CLASSIFIER_FORMAT, "x": Evil()}, path, pickle_module=pickle)
    with pytest.raises(UserError, match="unreadable classifier cache"):
        metrics.load_classifier(path, env["ev"].train_data())


def test_training_without_a_cache_refuses_when_told_not_to_train(env, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    ev = metrics.Evaluator(["fcd"], dataset="fashion-mnist", data_path=env["data_dir"],
                           train_classifier_if_missing=False)
    with pytest.raises(UserError, match="wgan eval --train-classifier --dataset fashion-mnist"):
        ev.prepare(points=False, conditional=False)


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_train_classifier_prints_accuracy_and_caches(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["eval", "--train-classifier", "--dataset", "fashion-mnist", "--data", str(env["data_dir"]),
                 "--epochs", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "classifier test accuracy" in out
    assert (tmp_path / "cache" / "wgan" / "classifiers" / "fashion-mnist-1x28x28.pt").is_file()


def test_cli_baselines_put_the_train_split_below_noise(env, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(env["root"] / "cache"))
    assert main(["eval", "--baselines", "--dataset", "fashion-mnist", "--data", str(env["data_dir"]),
                 "--num", "400", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    fcds = [float(line.split()[1]) for line in out.splitlines() if line.startswith("fcd ")]
    assert len(fcds) == 2 and fcds[0] < fcds[1]
    assert "400" in out


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
