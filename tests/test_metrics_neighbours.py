"""The memorisation check and the truncation sweep on tiny synthetic data: a generator that copies its training
images is caught, one that draws new images of the same kind is not, and the sweep scores each psi."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from wgan import metrics, rundir
from wgan.metrics import neighbours, truncation
from wgan.models import ModelShape


class _Lookup(nn.Module):
    """A 'generator' whose samples are images of a fixed set, picked by the noise (so a truncation changes them)."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.shape = ModelShape(latent_dim=4)
        self.images = images

    def forward(self, z, labels=None):
        pick = (z[:, 0].abs() * 1000).long() % len(self.images)
        return self.images[pick].float().mul(2 / 255).sub(1)


def _check(ev, images: torch.Tensor, space: str, num: int = 200) -> neighbours.Neighbours:
    samples = metrics.generate_samples(_Lookup(images), num, device="cpu", seed=1)
    return neighbours.find_neighbours(ev, samples, space=space, shown=5)


@pytest.mark.parametrize("space", ["classifier", "pixel"])
def test_copies_of_training_images_are_called_memorised_and_new_images_are_not(env, space):
    ev = env["ev"]
    copies = _check(ev, ev.train_data().x, space)
    assert copies.check.memorisation and copies.check.verdict.startswith("memorisation suspected")
    assert copies.check.median_generated < 1e-6 and copies.check.share_below_p5 > 0.9
    # test images are as new to the training set as the held-out ones (from the same split): about 5% below p5
    new = _check(ev, ev.test_data().x, space)
    assert not new.check.memorisation and new.check.share_below_p5 < neighbours.SUSPECT_SHARE
    assert new.check.median_generated == pytest.approx(new.check.median_held_out, rel=0.25)
    assert new.check.held_out == 200 and new.check.train_images == len(ev.train_data())


def test_the_neighbours_shown_are_the_nearest_training_images(env):
    ev = env["ev"]
    found = _check(ev, ev.test_data().x, "pixel", num=50)
    train = ev.train_data().x.flatten(1).double() / 255
    assert found.shown.shape == (5, 1 + neighbours.NEIGHBOURS_SHOWN, 1, 28, 28)
    for row, distances in zip(found.shown, found.shown_distances):
        d = torch.cdist(row[0].flatten()[None].double() / 255, train)[0]
        nearest = torch.argsort(d)[:neighbours.NEIGHBOURS_SHOWN]
        assert torch.equal(row[1:], ev.train_data().x[nearest])
        np.testing.assert_allclose(distances.double().numpy(), d[nearest].numpy(), rtol=1e-12)


def test_the_verdict_names_its_numbers():
    suspect, text = neighbours.verdict(0.5, 2.0, 0.4)
    assert suspect and "40.0%" in text and "0.5" in text and "2" in text
    assert not neighbours.verdict(2.5, 2.0, 0.01)[0]
    assert neighbours.verdict(1.9, 2.0, 0.06)[1].startswith("no sign of copying")


def test_write_neighbours_leaves_a_picture_a_plot_and_a_record(env, tmp_path):
    ev = env["ev"]
    found = _check(ev, ev.train_data().x, "classifier", num=40)
    files = neighbours.write_neighbours(tmp_path, found, step=7)
    assert [p.name for p in files.values()] == list(rundir.neighbour_files("classifier").values())
    with Image.open(files["picture"]) as picture:
        # 5 rows of 28 + 2 pixels; one sample, a 6-pixel rule, three neighbours
        assert picture.size == ((28 + 4) + 6 + (3 * 30 + 2), 5 * 30 + 2)
    record = json.loads(files["record"].read_text())
    assert record["step"] == 7 and record["memorisation"] and record["space"] == "classifier"
    assert len(record["shown_nearest_distances"]) == 5


def test_the_truncation_sweep_scores_each_psi_from_the_same_noise(env, tmp_path):
    ev = metrics.Evaluator(list(truncation.SWEEP_METRICS), dataset="fashion-mnist", data_path=env["data_dir"])
    assert ev.prepare(points=False, conditional=False) == list(truncation.SWEEP_METRICS)
    generator = _Lookup(ev.test_data().x)
    rows = truncation.sweep(generator, ev, [0.01, 1.0, None], num=100, device="cpu", seed=3)
    assert [r["truncation"] for r in rows] == [0.01, 1.0, None]
    for r in rows:
        assert set(truncation.COLUMNS) <= r.keys() and r["samples"]["precision"] == 100
    # psi 0.01 keeps |z| < 0.01: the lookup picks among 10 images, so recall collapses
    assert rows[0]["recall"] < rows[2]["recall"] / 2
    direct = ev.evaluate(metrics.generate_samples(generator, 100, device="cpu", seed=3))
    assert rows[2]["fcd"] == metrics.flatten_results(direct)["fcd"], "none: the plain draw"
    table = truncation.format_sweep(rows)
    assert table.splitlines()[0].split() == ["psi", *truncation.COLUMNS] and "none" in table.splitlines()[-1]
    files = truncation.write_sweep(tmp_path, rows, num=100, step=5)
    assert json.loads(files["record"].read_text())["rows"][2]["truncation"] is None
    with Image.open(files["plot"]) as plot:
        assert plot.format == "PNG"


@pytest.mark.parametrize("samples,nearest", [(1, 3), (1, 1), (3, 1)])
def test_one_sample_or_one_neighbour_is_framed_as_many_are(tmp_path, samples, nearest):
    # a lone image used to come back unpadded, two pixels shorter than its padded neighbours: no picture
    rows = torch.randint(0, 255, (samples, 1 + nearest, 1, 28, 28), dtype=torch.uint8)
    neighbours.save_picture(tmp_path / "n.png", rows)
    with Image.open(tmp_path / "n.png") as picture:
        assert picture.size == ((28 + 4) + 6 + (nearest * 30 + 2), samples * 30 + 2)
