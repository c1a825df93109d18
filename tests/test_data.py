"""The dataset registry: `wgan datasets` lists every registered dataset and the files it looks for."""

from __future__ import annotations

import pytest

from wgan.cli import main
from wgan.data import DATASETS


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def test_datasets_lists_every_dataset(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in DATASETS:
        assert f"\n{name} " in out
    assert "img_align_celeba" in out and "A_Z Handwritten Data.csv" in out and "$WGAN_DATA" in out
