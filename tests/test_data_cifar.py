"""CIFAR-10 through torchvision's reader, on fake batches in the real pickled format."""

from __future__ import annotations

import pytest
import torch

from data_files import write_fake_cifar
from wgan.data import load_dataset
from wgan.errors import UserError


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def test_cifar10_refuses_files_that_fail_torchvision_md5(tmp_path):
    write_fake_cifar(tmp_path)
    with pytest.raises(UserError, match=r"cifar-10-batches-py: Dataset not found or corrupted"):
        load_dataset("cifar10", data_path=tmp_path)


def test_cifar10_pickled_batches_become_uint8_tensors(tmp_path, monkeypatch):
    # Our own fake batches cannot match the real files' md5 sums: skip only that check, keep
    # torchvision's reading of the real format.
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    batch = write_fake_cifar(tmp_path)
    test = load_dataset("cifar10", split="test", data_path=tmp_path / "cifar-10-batches-py")
    assert test.x.shape == (2, 3, 32, 32) and test.x.dtype == torch.uint8
    assert torch.equal(test.x.reshape(2, -1), torch.from_numpy(batch["data"]))  # CIFAR stores C, H, W order
    assert test.y.tolist() == batch["labels"] and test.class_names[0] == "airplane"
    assert len(load_dataset("cifar10", data_path=tmp_path)) == 10
