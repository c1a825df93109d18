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


# ---------------------------------------------------------------------------------------------
# Headers that lie: read the header first, then no more than it claims


def _peak_growth_mib(code: str) -> tuple[str, float]:
    """`code` run in a fresh process after wgan.data.idx is imported: (its last line of output, how far its
    peak RSS rose above what the imports took, MiB)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    script = ("import resource; from wgan.data.idx import read_idx; from pathlib import Path; "
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              f"{code}\n"
              "print('PEAK_GROWTH_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines and lines[-1].startswith("PEAK_GROWTH_KB"), done.stderr[-2000:]
    return (lines[-2] if len(lines) > 1 else ""), int(lines[-1].split()[1]) / 1024


def _gzip_bomb(path, header: bytes, unpacked_mib: int) -> None:
    import gzip

    zeros = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        for _ in range(unpacked_mib):
            f.write(zeros)


@pytest.mark.parametrize("dims", [(1, 28, 28), (3, 28, 28)])
def test_a_gzip_bomb_is_unpacked_no_further_than_its_header_claims(tmp_path, dims):
    import struct

    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_bomb(bomb, struct.pack(">BBBB3I", 0, 0, 8, 3, *dims), unpacked_mib=400)
    assert bomb.stat().st_size < 2 << 20
    line, growth = _peak_growth_mib(f"""
try:
    read_idx(Path({str(bomb)!r}))
except ValueError as exc:
    print(exc)""")
    assert f"holds more than {int(np.prod(dims))} data bytes, its header says {int(np.prod(dims))}" in line, line
    assert growth < 40, f"{growth:.0f} MiB unpacked for a header of {dims}"


def test_a_header_claiming_more_than_memory_is_refused_before_unpacking(tmp_path):
    import struct

    small = tmp_path / "train-images-idx3-ubyte.gz"
    _gzip_bomb(small, struct.pack(">BBBB3I", 0, 0, 8, 3, 2**31, 2**16, 2**16), unpacked_mib=8)
    line, growth = _peak_growth_mib(f"""
try:
    read_idx(Path({str(small)!r}))
except ValueError as exc:
    print(exc)""")
    assert "GiB of data, more than half this machine's" in line, line
    assert growth < 16


def test_idx_dims_whose_product_overflows_are_one_error(tmp_path):
    import struct

    from wgan.data.idx import read_idx

    for name, dims in (("plain", (2**32 - 1,) * 3), ("wraps", (2**32 - 1, 2**32 - 1, 2**32 - 1, 2**32 - 1))):
        path = tmp_path / name
        path.write_bytes(struct.pack(f">BBBB{len(dims)}I", 0, 0, 8, len(dims), *dims) + bytes(784))
        with pytest.raises(UserError, match=r"IDX file holds 784 data bytes, its header says \d{20,}"):
            read_idx(path)
