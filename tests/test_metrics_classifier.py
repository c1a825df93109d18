"""The domain classifier: trained once and cached, refused when its cache does not match the data or
holds code, and the `wgan eval --train-classifier` line that retrains it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth_idx import NUM_CLASSES, write_dataset
from wgan import metrics
from wgan.cli import main
from wgan.data import load_dataset
from wgan.errors import UserError
from wgan.metrics import classifier


def test_classifier_learns_the_data_and_reports_its_accuracy(env):
    clf = env["ev"].classifier()
    assert clf.test_accuracy >= 0.9
    assert clf.path is not None and clf.path.is_file()
    assert any("training one" in n for n in env["notes"]) and any("test accuracy" in n for n in env["notes"])
    state = torch.load(clf.path, weights_only=True)
    assert state["dataset"] == "fashion-mnist" and state["num_classes"] == NUM_CLASSES
    assert state["test_accuracy"] == pytest.approx(clf.test_accuracy)


def test_cached_classifier_is_refused_when_the_data_change(env, tmp_path):
    ev = env["ev"]
    other_dir = write_dataset(tmp_path / "other", n_train=300, n_test=100, seed=5)
    other = load_dataset("fashion-mnist", split="train", data_path=other_dir)
    with pytest.raises(UserError) as info:
        classifier.load_classifier(ev.classifier().path, other)
    msg = str(info.value)
    assert "\n" not in msg and str(ev.classifier().path) in msg
    assert "does not match" in msg and "wgan eval --train-classifier --dataset fashion-mnist" in msg
    # the matching data load it back, with the same features
    same = classifier.load_classifier(ev.classifier().path, ev.train_data())
    x = ev.test_data().x[:50]
    assert np.allclose(same.run(x, torch.device("cpu"))[0], ev.classifier().run(x, torch.device("cpu"))[0])


def test_the_retrain_line_of_a_mismatched_classifier_names_the_data_and_works_as_printed(env, tmp_path, monkeypatch):
    import shlex
    import shutil

    cached = env["ev"].classifier().path
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "wgan" / "classifiers").mkdir(parents=True)
    other_dir = write_dataset(tmp_path / "other data", n_train=300, n_test=100, seed=5)
    # another classifier's file where these data's belongs (copied there by hand): refused, with the fix
    shutil.copy(cached, classifier.classifier_path(load_dataset("fashion-mnist", data_path=other_dir)))
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
    torch.save({"format": classifier.CLASSIFIER_FORMAT, "x": Evil()}, path, pickle_module=pickle)
    with pytest.raises(UserError, match="unreadable classifier cache"):
        classifier.load_classifier(path, env["ev"].train_data())


def test_training_without_a_cache_refuses_when_told_not_to_train(env, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    ev = metrics.Evaluator(["fcd"], dataset="fashion-mnist", data_path=env["data_dir"],
                           train_classifier_if_missing=False)
    with pytest.raises(UserError, match="wgan eval --train-classifier --dataset fashion-mnist"):
        ev.prepare(points=False, conditional=False)


def test_cli_train_classifier_prints_accuracy_and_caches(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["eval", "--train-classifier", "--dataset", "fashion-mnist", "--data", str(env["data_dir"]),
                 "--epochs", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "classifier test accuracy" in out
    cached = tmp_path / "cache" / "wgan" / "classifiers" / f"fashion-mnist-1x28x28-{classifier.content_hash(env['ev'].train_data())}.pt"
    assert cached.is_file() and str(cached) in out


def test_two_sources_of_one_dataset_keep_classifiers_of_their_own(env, tmp_path, monkeypatch):
    """Named by the data's content: training one for a second source leaves the first one's in place."""
    first = env["ev"].classifier()
    second_dir = write_dataset(tmp_path / "second", n_train=300, n_test=100, seed=7)
    monkeypatch.setenv("XDG_CACHE_HOME", str(env["root"] / "cache"))
    ev = metrics.Evaluator(["fcd"], dataset="fashion-mnist", data_path=second_dir, note=lambda msg: None)
    assert ev.prepare(points=False, conditional=False) == ["fcd"]
    second = ev.classifier()
    assert second.path != first.path and first.path.is_file() and second.path.is_file()
    again = metrics.Evaluator(["fcd"], dataset="fashion-mnist", data_path=env["data_dir"], note=lambda msg: None)
    assert again.classifier().path == first.path and again.classifier().fingerprint == first.fingerprint


def test_a_shipped_classifier_is_found_for_exactly_its_data(env, tmp_path, monkeypatch):
    """A classifier in the package's weights folder, named by its data's content, spares the training."""
    trained = env["ev"].classifier()
    data = env["ev"].train_data()
    shipped = tmp_path / "weights"
    shipped.mkdir()
    import shutil

    shutil.copy(trained.path, shipped / classifier.classifier_path(data).name)
    monkeypatch.setattr(classifier, "SHIPPED_DIR", shipped)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty cache"))
    notes: list[str] = []
    ev = metrics.Evaluator(["fcd"], dataset="fashion-mnist", data_path=env["data_dir"], note=notes.append)
    assert ev.prepare(points=False, conditional=False) == ["fcd"]
    assert ev.classifier().path.parent == shipped and not any("training one" in n for n in notes)
    other = write_dataset(tmp_path / "other", n_train=300, n_test=100, seed=11)
    assert classifier.find_classifier(load_dataset("fashion-mnist", data_path=other)) is None
