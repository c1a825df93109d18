"""Where files are looked for: --data PATH alone when given, else every default place, in order; the
download into --data or the user cache; and the one-line messages for files that are not there or a
file where a folder is needed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from data_files import letters_rows, write_faces, write_fake_cifar, write_idx, write_letters_csv, write_mnist_style
from wgan.cli import main
from wgan.data import load_dataset
from wgan.data.idx import EMNIST_LETTERS_FILES
from wgan.errors import UserError


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def test_missing_files_name_the_places_searched(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as err:
        load_dataset("emnist-letters", data_path=tmp_path / "empty")
    msg = str(err.value)
    assert "emnist-letters-train-images-idx3-ubyte" in msg and str(tmp_path / "empty") in msg
    assert str(tmp_path / "cache" / "wgan" / "emnist-letters") in msg and "\n" not in msg
    with pytest.raises(UserError, match="no such file or folder"):
        load_dataset("letters-csv", data_path=tmp_path / "nowhere.csv")


# Each dataset that reads files, with a writer of a valid copy into a folder of the default search.
DEFAULT_COPIES = {
    "mnist": write_mnist_style,
    "fashion-mnist": write_mnist_style,
    "emnist-letters": lambda d: write_mnist_style(d, EMNIST_LETTERS_FILES),
    "letters-csv": lambda d: (d.mkdir(parents=True), write_letters_csv(d / "letters.csv", *letters_rows(20))),
    "celeba": lambda d: write_faces(d / "img_align_celeba"),
    "cifar10": lambda d: write_fake_cifar(d),
}


@pytest.mark.parametrize("name", sorted(DEFAULT_COPIES))
def test_data_path_is_the_only_place_searched(tmp_path, monkeypatch, name):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)  # fake batches, real reader
    DEFAULT_COPIES[name](tmp_path / "system" / name)
    assert str(tmp_path / "system") in load_dataset(name).source  # found there without --data
    wrong = tmp_path / "my data"
    if name == "celeba":  # to celeba any image below --data is a face, so here the wrong data is not images
        write_idx(wrong / "elsewhere" / "train-images-idx3-ubyte", np.zeros((2, 28, 28)))
    else:
        write_faces(wrong / "elsewhere")  # something, but not this dataset
    (wrong / "readme.txt").write_text("hi")
    with pytest.raises(UserError) as err:
        load_dataset(name, data_path=wrong)
    msg = str(err.value)
    assert msg.startswith(f"--data {wrong}: no ") and "\n" not in msg
    assert msg.endswith(f"leave --data out to search $WGAN_DATA, {tmp_path / 'cache' / 'wgan' / name}, "
                        f"{tmp_path / 'system' / name}")


def test_without_data_path_every_default_place_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("WGAN_DATA", str(tmp_path / "shared"))
    with pytest.raises(UserError) as err:
        load_dataset("mnist")
    msg = str(err.value)
    for place in (tmp_path / "shared" / "mnist", tmp_path / "shared", tmp_path / "cache" / "wgan" / "mnist",
                  tmp_path / "system" / "mnist"):
        assert f"{place}," in msg or f"{place};" in msg
    assert msg.startswith("mnist: no mnist train IDX files") and "Pass --data DIR or set WGAN_DATA" in msg


class FakeFashionMNIST:
    """Stands in for torchvision's downloader: writes the files where torchvision would, under root."""

    roots: list[Path] = []
    fail = False

    def __init__(self, root, train=True, download=False):
        FakeFashionMNIST.roots.append(Path(root))
        if FakeFashionMNIST.fail:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")
        write_mnist_style(Path(root) / "FashionMNIST" / "raw", labels=7)


@pytest.fixture
def fake_download(monkeypatch):
    import torchvision

    monkeypatch.delenv("WGAN_OFFLINE")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    monkeypatch.setattr(FakeFashionMNIST, "roots", [])
    return FakeFashionMNIST


def test_download_goes_into_the_data_path(tmp_path, fake_download):
    mine = tmp_path / "mine"
    mine.mkdir()
    data = load_dataset("fashion-mnist", data_path=mine)
    assert fake_download.roots == [mine] and set(data.y.tolist()) == {7}
    # nothing downloaded into the user cache (which holds only the images decoded from the gzipped files)
    assert data.source == str(mine / "FashionMNIST" / "raw") and not (tmp_path / "cache" / "wgan" / "fashion-mnist").exists()
    load_dataset("fashion-mnist", data_path=mine)
    assert len(fake_download.roots) == 1  # downloaded once, then found there


def test_download_without_data_path_goes_to_the_user_cache(tmp_path, fake_download):
    data = load_dataset("fashion-mnist")
    cache = tmp_path / "cache" / "wgan" / "fashion-mnist"
    assert fake_download.roots == [cache] and data.source == str(cache / "FashionMNIST" / "raw")


def test_failed_download_into_the_data_path_says_so(tmp_path, fake_download, monkeypatch):
    monkeypatch.setattr(fake_download, "fail", True)
    write_mnist_style(tmp_path / "system" / "fashion-mnist")  # must not be used instead
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(UserError, match=r"mine: no fashion-mnist train IDX files .* there; the download into it "
                                        r"failed; point --data at the folder"):
        load_dataset("fashion-mnist", data_path=mine)
    assert fake_download.roots == [mine]


@pytest.mark.parametrize("name, expected", [
    ("image-folder", r"is a file, not a folder of images; pass --data FOLDER.*\(the letters CSV is --dataset "
                     r"letters-csv\)$"),
    ("fashion-mnist", r"is a file; for fashion-mnist pass the folder that holds train-images-idx3-ubyte\[.gz\]$"),
    ("celeba", r"is a file; for celeba pass the folder that holds img_align_celeba/"),
    ("cifar10", r"is a file; for cifar10 pass the folder that holds cifar-10-batches-py/$"),
])
def test_a_file_where_a_folder_is_needed(tmp_path, capsys, name, expected):
    path = write_letters_csv(tmp_path / "A_Z Handwritten Data.csv", *letters_rows(3))
    before = path.read_bytes()
    assert main(["datasets", "--check", name, "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f": --data {path}: is a file" in err and "Traceback" not in err
    assert re.search(expected, err.strip()) and path.read_bytes() == before
