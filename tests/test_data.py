"""The dataset layer: every loader on small files written here in the real formats, the toy generators'
statistics, and every kind of bad input ending as one clear UserError."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_files import (letters_rows, save_image, solid, write_faces, write_fake_cifar, write_idx,
                        write_letters_csv, write_mnist_style)
from wgan import data as D
from wgan.cli import main
from wgan.data.idx import EMNIST_LETTERS_FILES
from wgan.errors import UserError


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def test_missing_files_name_the_places_searched(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as err:
        D.load_dataset("emnist-letters", data_path=tmp_path / "empty")
    msg = str(err.value)
    assert "emnist-letters-train-images-idx3-ubyte" in msg and str(tmp_path / "empty") in msg
    assert str(tmp_path / "cache" / "wgan" / "emnist-letters") in msg and "\n" not in msg
    with pytest.raises(UserError, match="no such file or folder"):
        D.load_dataset("letters-csv", data_path=tmp_path / "nowhere.csv")


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
    assert str(tmp_path / "system") in D.load_dataset(name).source  # found there without --data
    wrong = tmp_path / "my data"
    if name == "celeba":  # to celeba any image below --data is a face, so here the wrong data is not images
        write_idx(wrong / "elsewhere" / "train-images-idx3-ubyte", np.zeros((2, 28, 28)))
    else:
        write_faces(wrong / "elsewhere")  # something, but not this dataset
    (wrong / "readme.txt").write_text("hi")
    with pytest.raises(UserError) as err:
        D.load_dataset(name, data_path=wrong)
    msg = str(err.value)
    assert msg.startswith(f"--data {wrong}: no ") and "\n" not in msg
    assert msg.endswith(f"leave --data out to search $WGAN_DATA, {tmp_path / 'cache' / 'wgan' / name}, "
                        f"{tmp_path / 'system' / name}")


def test_without_data_path_every_default_place_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("WGAN_DATA", str(tmp_path / "shared"))
    with pytest.raises(UserError) as err:
        D.load_dataset("mnist")
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
    data = D.load_dataset("fashion-mnist", data_path=mine)
    assert fake_download.roots == [mine] and set(data.y.tolist()) == {7}
    assert data.source == str(mine / "FashionMNIST" / "raw") and not (tmp_path / "cache" / "wgan").exists()
    D.load_dataset("fashion-mnist", data_path=mine)
    assert len(fake_download.roots) == 1  # downloaded once, then found there


def test_download_without_data_path_goes_to_the_user_cache(tmp_path, fake_download):
    data = D.load_dataset("fashion-mnist")
    cache = tmp_path / "cache" / "wgan" / "fashion-mnist"
    assert fake_download.roots == [cache] and data.source == str(cache / "FashionMNIST" / "raw")


def test_failed_download_into_the_data_path_says_so(tmp_path, fake_download, monkeypatch):
    monkeypatch.setattr(fake_download, "fail", True)
    write_mnist_style(tmp_path / "system" / "fashion-mnist")  # must not be used instead
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(UserError, match=r"mine: no fashion-mnist train IDX files .* there; the download into it "
                                        r"failed; point --data at the folder"):
        D.load_dataset("fashion-mnist", data_path=mine)
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


# ---------------------------------------------------------------------------------------------
# Image folders and CelebA


def stripes(w: int, h: int) -> np.ndarray:
    """Red | green | blue vertical bands: a centre square crop keeps only green."""
    img = solid(w, h, (0, 255, 0))
    side = (w - h) // 2
    img[:, :side] = (255, 0, 0)
    img[:, w - side:] = (0, 0, 255)
    return img


def test_flat_folder_is_centre_cropped_and_resized(tmp_path):
    for i in range(3):
        save_image(tmp_path / "faces" / f"{i}.png", stripes(48, 24))
    (tmp_path / "faces" / "notes.txt").write_text("not an image, ignored")
    data = D.load_dataset("image-folder", data_path=tmp_path / "faces", image_size=16, channels=3)
    assert data.x.shape == (3, 3, 16, 16) and data.y is None and data.num_classes == 0
    assert data.x[:, 1].min() >= 250 and data.x[:, 0].max() <= 5 and data.x[:, 2].max() <= 5
    gray = D.load_dataset("image-folder", data_path=tmp_path / "faces", image_size=8, channels=1)
    assert gray.x.shape == (3, 1, 8, 8)
    assert abs(int(gray.x.float().mean()) - round(0.587 * 255)) <= 2  # Pillow's L = 0.299R + 0.587G + 0.114B


def test_class_subfolders_become_sorted_labels(tmp_path):
    root = tmp_path / "pets"
    save_image(root / "dogs" / "a.jpg", solid(20, 20, (250, 250, 250)))
    save_image(root / "dogs" / "deeper" / "b.jpg", solid(20, 20, (250, 250, 250)))
    save_image(root / "cats" / "c.jpg", solid(20, 20, (5, 5, 5)))
    data = D.load_dataset("image-folder", data_path=root, image_size=16)
    assert data.class_names == ["cats", "dogs"] and data.num_classes == 2
    assert data.y.tolist() == [0, 1, 1]
    assert data.x[0].float().mean() < 20 and data.x[1:].float().mean() > 230


def test_train_and_test_subfolders_are_the_splits(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            save_image(tmp_path / "ds" / split / "x" / f"{i}.png", solid(16, 16, (i * 40, 0, 0)))
            save_image(tmp_path / "ds" / split / "y" / f"{i}.png", solid(16, 16, (0, i * 40, 0)))
    assert len(D.load_dataset("image-folder", data_path=tmp_path / "ds", image_size=16)) == 6
    test = D.load_dataset("image-folder", split="test", data_path=tmp_path / "ds", image_size=16)
    assert len(test) == 4 and test.class_names == ["x", "y"] and not test.notes


def test_folder_cache_is_used_then_refreshed(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    for i in range(4):
        save_image(root / f"{i}.png", solid(20, 20, (60 * i, 0, 0)))
    first = D.load_dataset("image-folder", data_path=root, image_size=16)

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    real_decode = D.decode_image
    monkeypatch.setattr(D, "decode_image", must_not_decode)
    assert torch.equal(D.load_dataset("image-folder", data_path=root, image_size=16).x, first.x)
    monkeypatch.setattr(D, "decode_image", real_decode)
    save_image(root / "4.png", solid(20, 20, (0, 0, 255)))  # a new file: the listing changed
    assert len(D.load_dataset("image-folder", data_path=root, image_size=16)) == 5


def test_unreadable_image_is_an_error_or_skipped_with_a_count(tmp_path):
    root = tmp_path / "imgs"
    for i in range(3):
        save_image(root / f"{i}.png", solid(20, 20, (1, 2, 3)))
    (root / "1b.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(UserError, match=r"1b.jpg: not a readable image .*--skip-bad-images"):
        D.load_dataset("image-folder", data_path=root, image_size=16)
    data = D.load_dataset("image-folder", data_path=root, image_size=16, skip_bad_images=True)
    assert len(data) == 3 and any("skipped 1 unreadable" in n and "1b.jpg" in n for n in data.notes)
    again = D.load_dataset("image-folder", data_path=root, image_size=16, skip_bad_images=True)
    assert again.notes == data.notes  # the count survives the cache


def test_truncated_image_is_unreadable(tmp_path):
    root = tmp_path / "imgs"
    good = save_image(root / "a.png", np.random.default_rng(0).integers(0, 256, (32, 32, 3)))
    (root / "b.png").write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match=r"b.png: not a readable image"):
        D.load_dataset("image-folder", data_path=root, image_size=16)


def test_too_small_image_names_the_file_and_both_sizes(tmp_path):
    root = tmp_path / "imgs"
    save_image(root / "big.png", solid(64, 64, (9, 9, 9)))
    save_image(root / "tiny.png", solid(30, 40, (9, 9, 9)))
    with pytest.raises(UserError, match=r"tiny.png is 30x40, smaller than the model's 64x64 images"):
        D.load_dataset("image-folder", data_path=root, image_size=64)
    data = D.load_dataset("image-folder", data_path=root, image_size=64, skip_bad_images=True)
    assert len(data) == 1 and "smaller than 64x64" in data.notes[0]


@pytest.mark.parametrize("make, expected", [
    (lambda root: root.mkdir(), r"no images found"),
    (lambda root: (root.mkdir(), (root / "readme.txt").write_text("hi")), r"no images found"),
    (lambda root: (save_image(root / "loose.png", solid(8, 8, (0, 0, 0))),
                   save_image(root / "cls" / "a.png", solid(8, 8, (0, 0, 0)))), r"both loose images \(loose.png"),
])
def test_bad_folders(tmp_path, make, expected):
    root = tmp_path / "imgs"
    make(root)
    with pytest.raises(UserError, match=expected):
        D.load_dataset("image-folder", data_path=root, image_size=8)


def test_image_folder_needs_data():
    with pytest.raises(UserError, match=r"image-folder needs --data FOLDER"):
        D.load_dataset("image-folder")


def test_celeba_torchvision_layout_with_partition_and_178_crop(tmp_path):
    base = tmp_path / "root" / "celeba"
    # 178x218 like img_align_celeba: the 20-row bands above and below the centre 178x178 are black.
    face = solid(178, 218, (255, 255, 255))
    face[:20] = 0
    face[-20:] = 0
    for i in range(5):
        save_image(base / "img_align_celeba" / f"{i + 1:06d}.jpg", face)
    (base / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 0\n000004.jpg 1\n"
                                                  "000005.jpg 2\n")
    train = D.load_dataset("celeba", data_path=tmp_path / "root", image_size=64, channels=3)
    test = D.load_dataset("celeba", split="test", data_path=tmp_path / "root", image_size=64, channels=3)
    assert train.x.shape == (3, 3, 64, 64) and len(test) == 1 and train.y is None
    assert train.x.float().mean() > 245  # only the white centre square survived the crop


def test_celeba_accepts_any_folder_of_faces(tmp_path):
    for i in range(2):
        save_image(tmp_path / "my faces" / f"{i}.png", solid(70, 80, (200, 100, 50)))
    data = D.load_dataset("celeba", data_path=tmp_path / "my faces", image_size=64)
    assert data.x.shape == (2, 3, 64, 64)
    test = D.load_dataset("celeba", split="test", data_path=tmp_path / "my faces", image_size=64)
    assert any("test split is the training images" in n for n in test.notes)


# ---------------------------------------------------------------------------------------------
# CIFAR-10 through torchvision's reader


def test_cifar10_refuses_files_that_fail_torchvision_md5(tmp_path):
    write_fake_cifar(tmp_path)
    with pytest.raises(UserError, match=r"cifar-10-batches-py: Dataset not found or corrupted"):
        D.load_dataset("cifar10", data_path=tmp_path)


def test_cifar10_pickled_batches_become_uint8_tensors(tmp_path, monkeypatch):
    # Our own fake batches cannot match the real files' md5 sums: skip only that check, keep
    # torchvision's reading of the real format.
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    batch = write_fake_cifar(tmp_path)
    test = D.load_dataset("cifar10", split="test", data_path=tmp_path / "cifar-10-batches-py")
    assert test.x.shape == (2, 3, 32, 32) and test.x.dtype == torch.uint8
    assert torch.equal(test.x.reshape(2, -1), torch.from_numpy(batch["data"]))  # CIFAR stores C, H, W order
    assert test.y.tolist() == batch["labels"] and test.class_names[0] == "airplane"
    assert len(D.load_dataset("cifar10", data_path=tmp_path)) == 10


# ---------------------------------------------------------------------------------------------
# The WGAN-GP paper's toy data


@pytest.mark.parametrize("name, centres, std", [
    ("toy-8gaussians", D.eight_gaussians_centres(), 0.02 / 1.414),
    ("toy-25gaussians", D.twenty_five_gaussians_centres(), 0.05 / 2.828),
])
def test_gaussian_mixtures_modes_and_spread(name, centres, std):
    data = D.load_dataset(name)
    x, y = data.x.double().numpy(), data.y.numpy()
    assert data.x.dtype == torch.float32 and data.sample_shape == (2,) and data.num_classes == len(centres)
    counts = np.bincount(y, minlength=len(centres))
    assert counts.min() > 0.8 * len(y) / len(centres)  # every mode is populated about equally
    for k, centre in enumerate(centres):
        pts = x[y == k]
        assert np.allclose(pts.mean(0), centre, atol=3e-3)
        assert np.allclose(pts.std(0), std, rtol=0.08)


def test_mixture_centres_follow_the_paper():
    eight = D.eight_gaussians_centres()
    assert np.allclose(np.linalg.norm(eight, axis=1), 2 / 1.414)
    assert {tuple(np.round(c * 1.414 / 2, 3)) for c in eight} >= {(1.0, 0.0), (0.0, -1.0), (0.707, 0.707)}
    grid = D.twenty_five_gaussians_centres() * 2.828
    assert sorted(set(np.round(grid[:, 0], 6))) == [-4, -2, 0, 2, 4] and len(grid) == 25


def test_swiss_roll_lies_on_the_spiral():
    pts = D.swiss_roll(2000, np.random.default_rng(0), noise=0.0) * 7.5
    t = np.linalg.norm(pts, axis=1)  # without noise, (x, z) = t (cos t, sin t)
    assert t.min() >= 1.5 * math.pi - 1e-9 and t.max() <= 4.5 * math.pi + 1e-9
    assert np.allclose(pts[:, 0], t * np.cos(t)) and np.allclose(pts[:, 1], t * np.sin(t))
    data = D.load_dataset("toy-swissroll")
    r = np.linalg.norm(data.x.numpy(), axis=1)
    # t is uniform on [1.5 pi, 4.5 pi], so radii are uniform on [0.63, 1.88] (mean 3 pi / 7.5), plus noise 0.25/7.5
    assert data.y is None and abs(r.mean() - 3 * math.pi / 7.5) < 0.01
    sigma = 0.25 / 7.5
    assert 1.5 * math.pi / 7.5 - 7 * sigma < r.min() < 1.5 * math.pi / 7.5
    assert 4.5 * math.pi / 7.5 < r.max() < 4.5 * math.pi / 7.5 + 7 * sigma


def test_toy_splits_are_fixed_and_different():
    a, b = D.load_dataset("toy-8gaussians", split="test"), D.load_dataset("toy-8gaussians", split="test")
    assert torch.equal(a.x, b.x)
    train = D.load_dataset("toy-8gaussians")
    assert len(train) == D.TOY_TRAIN_POINTS and not torch.equal(train.x[: len(a)], a.x)


# ---------------------------------------------------------------------------------------------
# The command line


def test_datasets_lists_every_dataset(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in D.DATASETS:
        assert f"\n{name} " in out
    assert "img_align_celeba" in out and "A_Z Handwritten Data.csv" in out and "$WGAN_DATA" in out


def test_datasets_check_reports_counts_and_notes(tmp_path, capsys):
    root = tmp_path / "imgs"
    save_image(root / "a.png", solid(20, 20, (1, 2, 3)))
    (root / "b.png").write_bytes(b"garbage")
    assert main(["datasets", "--check", "image-folder", "--data", str(root), "--image-size", "16",
                 "--skip-bad-images"]) == 0
    out = capsys.readouterr().out
    assert "1 samples of shape (3, 16, 16)" in out and "skipped 1 unreadable" in out


# ---------------------------------------------------------------------------------------------
# Odd but valid files: alternative names and layouts, orientation, transparency, bit depths


def exif_jpeg(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    return path


@pytest.mark.parametrize("name", ["image-folder", "celeba"])
def test_exif_orientation_turns_phone_photos_upright(tmp_path, name):
    stored = solid(40, 40, (230, 0, 0))
    stored[20:] = (0, 0, 230)  # red above blue as stored; Orientation 6 shows it turned 90 degrees clockwise
    exif_jpeg(tmp_path / "photos" / "phone.jpg", stored, orientation=6)
    data = D.load_dataset(name, data_path=tmp_path / "photos", image_size=16, channels=3)
    img = data.x[0].int()
    left, right = img[:, :, :6].float().mean((1, 2)), img[:, :, -6:].float().mean((1, 2))
    assert left[2] > 200 and left[0] < 30  # blue on the left
    assert right[0] > 200 and right[2] < 30  # red on the right


def transparent_image(mode: str) -> Image.Image:
    """Left half opaque, right half fully transparent over black (what exporters store under alpha 0)."""
    if mode == "P":
        img = Image.new("P", (32, 32), 1)
        img.putpalette([0, 0, 0, 200, 40, 40])
        img.paste(0, (16, 0, 32, 32))
        img.info["transparency"] = 0
        return img
    if mode == "LA":
        gray = np.full((32, 32, 2), (90, 255), np.uint8)
        gray[:, 16:] = (0, 0)
        return Image.fromarray(gray, "LA")
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, :16] = (200, 40, 40, 255)
    rgba[:16, 16:] = (255, 0, 0, 128)  # half-transparent red: pink on white
    return Image.fromarray(rgba, "RGBA")


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pixels_load_as_white(tmp_path, mode):
    img = transparent_image(mode)
    (tmp_path / "imgs").mkdir()
    img.save(tmp_path / "imgs" / "a.png", transparency=img.info.get("transparency"))
    rgb = D.load_dataset("image-folder", data_path=tmp_path / "imgs", image_size=32, channels=3).x[0]
    gray = D.load_dataset("image-folder", data_path=tmp_path / "imgs", image_size=32, channels=1).x[0]
    opaque = (90, 90, 90) if mode == "LA" else (200, 40, 40)
    assert rgb[:, 16:, 2:14].tolist() == [[[opaque[c]] * 12] * 16 for c in range(3)]
    assert (rgb[:, 16:, 20:] == 255).all() and (gray[:, 16:, 20:] == 255).all()
    if mode == "RGBA":
        assert rgb[:, 4, 24].tolist() == [255, 127, 127]


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    root = tmp_path / "scans"
    root.mkdir()
    values = {"black": 0, "dim": 1000, "middle": 128 * 257, "white": 65535}
    for stem, v in values.items():
        Image.fromarray(np.full((20, 20), v, np.uint16)).save(root / f"{stem}.png")  # mode I;16
    Image.frombytes("I;16B", (20, 20), np.full((20, 20), 200 * 257, ">u2").tobytes()).save(root / "big.tif")
    (root / "deep.pgm").write_bytes(b"P5 20 20 65535\n" + np.full(400, 50 * 257, ">u2").tobytes())  # mode I
    data = D.load_dataset("image-folder", data_path=root, image_size=16, channels=1)
    means = [int(v) for v in data.x.float().mean((1, 2, 3)).round()]
    # Sorted names: big.tif, black, deep.pgm, dim, middle, white.
    assert means == [200, 0, 50, 4, 128, 255]


def test_float_images_on_0_1_or_0_255_are_scaled_others_refused(tmp_path):
    root = tmp_path / "floats"
    root.mkdir()
    Image.fromarray(np.full((20, 20), 0.5, np.float32)).save(root / "a_unit.tif")
    Image.fromarray(np.full((20, 20), 200.0, np.float32)).save(root / "b_bytes.tif")
    data = D.load_dataset("image-folder", data_path=root, image_size=16, channels=1)
    assert [int(v) for v in data.x.float().mean((1, 2, 3))] == [128, 200]
    Image.fromarray(np.linspace(-1, 3, 400, dtype=np.float32).reshape(20, 20)).save(root / "c_odd.tif")
    with pytest.raises(UserError, match=r"c_odd.tif: float pixels run from -1 to 3, neither 0-1 nor 0-255"):
        D.load_dataset("image-folder", data_path=root, image_size=16, channels=1)
    assert len(D.load_dataset("image-folder", data_path=root, image_size=16, channels=1, skip_bad_images=True)) == 2


def test_split_folders_share_class_numbers(tmp_path):
    colours = {"apple": (250, 0, 0), "banana": (250, 250, 0), "cherry": (120, 0, 40), "durian": (0, 200, 0)}
    for split, names in (("train", ["apple", "banana", "cherry"]), ("test", ["apple", "cherry", "durian"])):
        for name in names:
            save_image(tmp_path / "fruit" / split / name / "0.png", solid(16, 16, colours[name]))
    (tmp_path / "fruit" / "test" / "banana").mkdir()  # there, but empty
    train = D.load_dataset("image-folder", data_path=tmp_path / "fruit", image_size=16)
    test = D.load_dataset("image-folder", split="test", data_path=tmp_path / "fruit", image_size=16)
    names = ["apple", "banana", "cherry", "durian"]
    assert train.class_names == test.class_names == names and train.num_classes == test.num_classes == 4
    assert train.y.tolist() == [0, 1, 2] and test.y.tolist() == [0, 2, 3]
    for data in (train, test):  # each label's images are that class's colour
        for img, label in zip(data.x, data.y.tolist()):
            assert img[:, 8, 8].tolist() == list(colours[names[label]])
    assert [n for n in test.notes if "no images of class" in n] == \
        [f"{tmp_path / 'fruit' / 'test'} has no images of class(es) banana, which the other split has; "
         "the class numbers are those of both splits"]
    assert any("no images of class(es) durian" in n for n in train.notes)
    assert not any("not classes" in n for n in test.notes)  # the empty banana/ is covered by the note above


def test_jpeg_suffixes_load_and_other_files_are_counted(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i, suffix in enumerate((".jfif", ".jpe", ".JPG", ".tif")):
        Image.fromarray(solid(20, 20, (40 * i, 100, 200))).save(root / f"{i}{suffix}", format="JPEG" if i < 3
                                                                else "TIFF")
    (root / "photo.heic").write_bytes(b"not for Pillow")
    (root / "notes.txt").write_text("hi")
    (root / "more.txt").write_text("hi")
    data = D.load_dataset("image-folder", data_path=root, image_size=16)
    reds = data.x[:, 0].float().mean((1, 2)).tolist()  # JPEG: within a few levels
    assert all(abs(r - want) <= 3 for r, want in zip(reds, [0, 40, 80, 120])) and len(reds) == 4
    assert f"ignored 3 file(s) without an image suffix (.txt 2, .heic 1; first: {root / 'more.txt'})" in data.notes


def test_symlinked_subfolders_are_followed_without_looping(tmp_path):
    root = tmp_path / "pets"
    save_image(root / "cats" / "a.png", solid(16, 16, (10, 10, 10)))
    save_image(tmp_path / "elsewhere" / "b.png", solid(16, 16, (240, 240, 240)))
    save_image(root / "dogs" / "c.png", solid(16, 16, (120, 120, 120)))
    (root / "dogs" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (root / "dogs" / "loop").symlink_to(root / "dogs", target_is_directory=True)  # a link back up
    (root / "birds").mkdir()
    data = D.load_dataset("image-folder", data_path=root, image_size=16)
    assert data.class_names == ["cats", "dogs"] and data.y.tolist() == [0, 1, 1]
    assert [int(v) for v in data.x[:, 0, 0, 0]] == [10, 120, 240]
    assert f"{root}: subfolder(s) birds hold no images and are not classes" in data.notes


def test_a_single_class_folder_says_conditional_training_needs_two(tmp_path):
    save_image(tmp_path / "one" / "only" / "a.png", solid(16, 16, (1, 2, 3)))
    data = D.load_dataset("image-folder", data_path=tmp_path / "one", image_size=16)
    assert data.num_classes == 1 and data.y.tolist() == [0]
    assert any("single class folder (only); conditional training needs at least 2" in n for n in data.notes)


def test_celeba_takes_faces_from_subfolders(tmp_path):
    faces = tmp_path / "faces"
    save_image(faces / "part1" / "000001.jpg", solid(64, 64, (250, 250, 250)))
    save_image(faces / "part2" / "deeper" / "000002.jpg", solid(64, 64, (5, 5, 5)))
    save_image(faces / "part2" / "000003.png", solid(64, 64, (128, 128, 128)))
    (faces / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.png 2\n")
    train = D.load_dataset("celeba", data_path=faces, image_size=64)
    assert train.y is None and train.source == str(faces) and not train.notes
    assert [round(v) for v in train.x.float().mean((1, 2, 3)).tolist()] == [250, 5]
    test = D.load_dataset("celeba", split="test", data_path=faces, image_size=64)
    assert test.x.float().mean().round() == 128
