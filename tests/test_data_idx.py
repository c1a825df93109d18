"""The IDX formats (MNIST, Fashion-MNIST, EMNIST letters) on small files written in every layout and
under every name they come by."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_files import write_idx, write_mnist_style
from wgan.data import load_dataset
from wgan.errors import UserError


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def test_mnist_idx_gz_in_torchvision_raw_layout(tmp_path):
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 10, 7)
    raw = tmp_path / "digits" / "MNIST" / "raw"
    write_idx(raw / "train-images-idx3-ubyte.gz", images)
    write_idx(raw / "train-labels-idx1-ubyte.gz", labels)
    data = load_dataset("mnist", data_path=tmp_path / "digits")
    assert data.x.shape == (7, 1, 28, 28) and data.x.dtype == torch.uint8
    assert torch.equal(data.x[:, 0], torch.from_numpy(images.astype(np.uint8)))
    assert data.y.tolist() == labels.tolist() and data.num_classes == 10


def test_emnist_letters_upright_and_labels_shifted(tmp_path):
    # An asymmetric letter "L": a vertical bar on the left and a foot at the bottom.
    upright = np.zeros((28, 28), np.uint8)
    upright[4:24, 6] = 255
    upright[23, 6:20] = 200
    images = np.stack([upright.T, np.flipud(upright).T])  # EMNIST stores the transpose
    write_idx(tmp_path / "emnist-letters-test-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "emnist-letters-test-labels-idx1-ubyte.gz", np.array([1, 26]))
    data = load_dataset("emnist-letters", split="test", data_path=tmp_path)
    assert torch.equal(data.x[0, 0], torch.from_numpy(upright))
    assert torch.equal(data.x[1, 0], torch.from_numpy(np.flipud(upright).copy()))
    assert data.y.tolist() == [0, 25]
    assert data.class_names[0] == "A" and data.class_names[25] == "Z" and data.num_classes == 26


def test_emnist_letters_in_torchvision_layout_and_bad_label(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"  # what torchvision.datasets.EMNIST(root) leaves behind, uncompressed
    write_idx(raw / "emnist-letters-train-images-idx3-ubyte", np.zeros((2, 28, 28)))
    write_idx(raw / "emnist-letters-train-labels-idx1-ubyte", np.array([3, 0]))
    with pytest.raises(UserError, match=r"emnist-letters-train-labels-idx1-ubyte: label 0 out of range 1-26"):
        load_dataset("emnist-letters", data_path=tmp_path)


def test_idx_files_are_found_in_every_layout_under_the_data_path(tmp_path):
    flat = write_mnist_style(tmp_path / "flat", labels=4)
    assert load_dataset("fashion-mnist", data_path=flat).source == str(flat)
    raw = tmp_path / "tv"
    write_idx(raw / "FashionMNIST" / "raw" / "train-images-idx3-ubyte", np.zeros((2, 28, 28)))
    write_idx(raw / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte", np.array([3, 5]))
    data = load_dataset("fashion-mnist", data_path=raw)
    assert data.y.tolist() == [3, 5] and data.source == str(raw / "FashionMNIST" / "raw")
    with pytest.raises(UserError, match=r"--data .*flat: no fashion-mnist test IDX files \(t10k-images"):
        (flat / "t10k-labels-idx1-ubyte.gz").unlink()  # half a pair is not the test split
        load_dataset("fashion-mnist", split="test", data_path=flat)


def test_idx_files_under_dotted_and_kaggle_nested_names(tmp_path):
    rng = np.random.default_rng(3)
    images, labels = rng.integers(0, 256, (4, 28, 28)), np.array([1, 7, 2, 9])
    dotted = tmp_path / "dotted"
    write_idx(dotted / "train-images.idx3-ubyte", images)
    write_idx(dotted / "train-labels.idx1-ubyte.gz", labels)
    nested = tmp_path / "kaggle"
    write_idx(nested / "t10k-images-idx3-ubyte" / "t10k-images-idx3-ubyte", images[::-1])
    write_idx(nested / "t10k-labels.idx1-ubyte" / "t10k-labels.idx1-ubyte", labels[::-1])
    train = load_dataset("mnist", data_path=dotted)
    assert torch.equal(train.x[:, 0], torch.from_numpy(images.astype(np.uint8))) and train.y.tolist() == [1, 7, 2, 9]
    test = load_dataset("mnist", split="test", data_path=nested)
    assert torch.equal(test.x[:, 0], torch.from_numpy(images[::-1].astype(np.uint8)))
    assert test.y.tolist() == [9, 2, 7, 1]


def test_idx_gzip_is_told_by_its_bytes_not_its_suffix(tmp_path):
    images, labels = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256, np.array([4, 5])
    write_idx(tmp_path / "plain.idx", images).rename(tmp_path / "train-images-idx3-ubyte.gz")  # unpacked by a browser
    write_idx(tmp_path / "packed.gz", labels).rename(tmp_path / "train-labels-idx1-ubyte")  # gzipped, no suffix
    data = load_dataset("fashion-mnist", data_path=tmp_path)
    assert torch.equal(data.x[:, 0], torch.from_numpy(images.astype(np.uint8))) and data.y.tolist() == [4, 5]
