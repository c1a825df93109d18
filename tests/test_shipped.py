"""The generators that ship with the package: found by name, loaded through the same checks as any export,
the shape and classes the registry records, samples a classifier recognises, and a user's own files first."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import wgan
from cli_helpers import run_cli
from wgan import exported
from wgan.data.core import to_model_space
from wgan.metrics.classifier import SHIPPED_DIR, SmallCNN
from wgan.shipped import SHIPPED, resolve

SHIP_LIMIT_BYTES = 10 << 20


@pytest.mark.parametrize("name", list(SHIPPED))
def test_each_shipped_generator_loads_by_name_and_samples_its_recorded_shape(name):
    entry = SHIPPED[name]
    assert entry.path.is_file() and entry.path.stat().st_size <= SHIP_LIMIT_BYTES
    g = wgan.load_generator(name)
    assert g.image_shape == entry.sample_shape and len(g.classes) == entry.classes
    x = g.sample(6, seed=0)
    assert x.dtype == torch.uint8 and tuple(x.shape) == (6, *entry.sample_shape)
    assert torch.equal(x, g.sample(6, seed=0)) and x.float().std() > 10  # not a blank or constant image


@pytest.mark.parametrize("name", list(SHIPPED))
def test_each_shipped_generator_of_an_earlier_format_samples_as_it_would_in_today_s(name, tmp_path):
    """The shipped files are 0.1.0's exports (format 1), upgraded as they are read: their weights exactly,
    and the samples of the same generator written in today's format, byte for byte."""
    with safe_open(str(SHIPPED[name].path), framework="pt") as f:
        stored, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    assert meta["format"] == "wgan-generator-1" != exported.GENERATOR_FORMAT
    g = wgan.load_generator(name)
    assert all(torch.equal(v, stored[k]) for k, v in g.module.state_dict().items())
    today = wgan.load_generator(g.export(tmp_path / "today.safetensors"))
    assert (today.step, today.weights, today.classes) == (g.step, g.weights, g.classes) == \
        (int(meta["step"]), meta["weights"], tuple(json.loads(meta["class_names"])))
    labels = list(range(len(g.classes))) * 2 if g.classes else None
    assert torch.equal(g.sample(20, labels=labels, seed=3), today.sample(20, labels=labels, seed=3))


def test_the_conditional_one_samples_a_class_by_name_from_the_command_line(tmp_path):
    out = tmp_path / "sneakers.png"
    code, stdout, err = run_cli("sample", "--weights", "fashion-mnist-cond", "--label", "Sneaker", "--num", 8,
                                "--out", out)
    assert code == 0, err
    assert out.stat().st_size > 0 and "wrote 8 samples" in stdout
    assert wgan.load_generator("fashion-mnist-cond").classes[7] == "Sneaker"


def test_a_file_or_folder_of_the_users_by_that_name_comes_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("fashion-mnist") == SHIPPED["fashion-mnist"].path
    os.mkdir("fashion-mnist")
    assert str(resolve("fashion-mnist")) == "fashion-mnist"
    code, _, err = run_cli("sample", "--weights", "fashion-mnist", "--out", "x.png")
    assert code == 2 and "fashion-mnist: a run directory" in err
    assert resolve("runs/other") == Path("runs/other")  # no shipped name: as given


def _shipped_classifier() -> SmallCNN:
    """The Fashion-MNIST classifier that ships for FCD, read without the training data it is matched to."""
    (path,) = SHIPPED_DIR.glob("fashion-mnist-*.pt")
    model = SmallCNN(1, 10)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    return model.eval()


@torch.no_grad()
def test_the_shipped_generators_make_what_a_classifier_recognises():
    classify = _shipped_classifier()
    cond = wgan.load_generator("fashion-mnist-cond")
    labels = torch.arange(500) % 10
    predicted = classify(to_model_space(cond.sample(500, labels=labels.tolist(), seed=0)))[1].argmax(1)
    assert (predicted == labels).float().mean() > 0.8  # the requested class, most of the time
    predicted = classify(to_model_space(wgan.load_generator("fashion-mnist").sample(500, seed=0)))[1].argmax(1)
    assert (torch.bincount(predicted, minlength=10) >= 10).sum() >= 9  # nearly every class, not one mode


def test_a_truncation_too_small_to_resample_samples_walks_and_sweeps_in_bounded_time(tmp_path):
    import threading

    results = {}

    def work():
        code, _, err = run_cli("sample", "--weights", "fashion-mnist", "--truncation", "1e-300", "--num", 4,
                               "--out", tmp_path / "t.png", "--device", "cpu")
        g = wgan.load_generator("fashion-mnist-cond")
        results.update(code=code, err=err, walk=g.walk(num_points=2, frames=2, truncation=1e-300).shape,
                       sample=g.sample(4, truncation=5e-324, seed=0).shape)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "a tiny truncation still loops"
    assert results["code"] == 0, results["err"]
    assert (tmp_path / "t.png").is_file() and results["sample"] == (4, 1, 28, 28) and results["walk"][0] == 4


def test_long_sampling_shows_a_progress_bar_on_the_command_line_and_none_in_python(tmp_path, capsys):
    code, _, err = run_cli("sample", "--weights", "fashion-mnist", "--num", 2100, "--out", tmp_path / "x.npz",
                           "--device", "cpu")
    assert code == 0 and "sampling" in err and "sample" in err.split("sampling", 1)[1], err
    wgan.load_generator("fashion-mnist").sample(2100, seed=0)
    assert "sampling" not in capsys.readouterr().err
