"""Image folders and CelebA: flat folders and class subfolders, split folders, the usual CelebA layouts
and partitions, and the files a folder holds besides images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from data_files import save_image, solid
from wgan.data import images, load_dataset
from wgan.errors import UserError


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


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
    data = load_dataset("image-folder", data_path=tmp_path / "faces", image_size=16, channels=3)
    assert data.x.shape == (3, 3, 16, 16) and data.y is None and data.num_classes == 0
    assert data.x[:, 1].min() >= 250 and data.x[:, 0].max() <= 5 and data.x[:, 2].max() <= 5
    gray = load_dataset("image-folder", data_path=tmp_path / "faces", image_size=8, channels=1)
    assert gray.x.shape == (3, 1, 8, 8)
    assert abs(int(gray.x.float().mean()) - round(0.587 * 255)) <= 2  # Pillow's L = 0.299R + 0.587G + 0.114B


def test_class_subfolders_become_sorted_labels(tmp_path):
    root = tmp_path / "pets"
    save_image(root / "dogs" / "a.jpg", solid(20, 20, (250, 250, 250)))
    save_image(root / "dogs" / "deeper" / "b.jpg", solid(20, 20, (250, 250, 250)))
    save_image(root / "cats" / "c.jpg", solid(20, 20, (5, 5, 5)))
    data = load_dataset("image-folder", data_path=root, image_size=16)
    assert data.class_names == ["cats", "dogs"] and data.num_classes == 2
    assert data.y.tolist() == [0, 1, 1]
    assert data.x[0].float().mean() < 20 and data.x[1:].float().mean() > 230


def test_train_and_test_subfolders_are_the_splits(tmp_path):
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            save_image(tmp_path / "ds" / split / "x" / f"{i}.png", solid(16, 16, (i * 40, 0, 0)))
            save_image(tmp_path / "ds" / split / "y" / f"{i}.png", solid(16, 16, (0, i * 40, 0)))
    assert len(load_dataset("image-folder", data_path=tmp_path / "ds", image_size=16)) == 6
    test = load_dataset("image-folder", split="test", data_path=tmp_path / "ds", image_size=16)
    assert len(test) == 4 and test.class_names == ["x", "y"] and not test.notes


def test_folder_cache_is_used_then_refreshed(tmp_path, monkeypatch):
    root = tmp_path / "imgs"
    for i in range(4):
        save_image(root / f"{i}.png", solid(20, 20, (60 * i, 0, 0)))
    first = load_dataset("image-folder", data_path=root, image_size=16)

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    real_decode = images.decode_image
    monkeypatch.setattr(images, "decode_image", must_not_decode)
    assert torch.equal(load_dataset("image-folder", data_path=root, image_size=16).x, first.x)
    monkeypatch.setattr(images, "decode_image", real_decode)
    save_image(root / "4.png", solid(20, 20, (0, 0, 255)))  # a new file: the listing changed
    assert len(load_dataset("image-folder", data_path=root, image_size=16)) == 5


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
        load_dataset("image-folder", data_path=root, image_size=8)


def test_image_folder_needs_data():
    with pytest.raises(UserError, match=r"image-folder needs --data FOLDER"):
        load_dataset("image-folder")


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
    train = load_dataset("celeba", data_path=tmp_path / "root", image_size=64, channels=3)
    test = load_dataset("celeba", split="test", data_path=tmp_path / "root", image_size=64, channels=3)
    assert train.x.shape == (3, 3, 64, 64) and len(test) == 1 and train.y is None
    assert train.x.float().mean() > 245  # only the white centre square survived the crop


def test_celeba_accepts_any_folder_of_faces(tmp_path):
    for i in range(2):
        save_image(tmp_path / "my faces" / f"{i}.png", solid(70, 80, (200, 100, 50)))
    data = load_dataset("celeba", data_path=tmp_path / "my faces", image_size=64)
    assert data.x.shape == (2, 3, 64, 64)
    test = load_dataset("celeba", split="test", data_path=tmp_path / "my faces", image_size=64)
    assert any("test split is the training images" in n for n in test.notes)


def test_split_folders_share_class_numbers(tmp_path):
    colours = {"apple": (250, 0, 0), "banana": (250, 250, 0), "cherry": (120, 0, 40), "durian": (0, 200, 0)}
    for split, names in (("train", ["apple", "banana", "cherry"]), ("test", ["apple", "cherry", "durian"])):
        for name in names:
            save_image(tmp_path / "fruit" / split / name / "0.png", solid(16, 16, colours[name]))
    (tmp_path / "fruit" / "test" / "banana").mkdir()  # there, but empty
    train = load_dataset("image-folder", data_path=tmp_path / "fruit", image_size=16)
    test = load_dataset("image-folder", split="test", data_path=tmp_path / "fruit", image_size=16)
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
    data = load_dataset("image-folder", data_path=root, image_size=16)
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
    data = load_dataset("image-folder", data_path=root, image_size=16)
    assert data.class_names == ["cats", "dogs"] and data.y.tolist() == [0, 1, 1]
    assert [int(v) for v in data.x[:, 0, 0, 0]] == [10, 120, 240]
    assert f"{root}: subfolder(s) birds hold no images and are not classes" in data.notes


def test_a_single_class_folder_says_conditional_training_needs_two(tmp_path):
    save_image(tmp_path / "one" / "only" / "a.png", solid(16, 16, (1, 2, 3)))
    data = load_dataset("image-folder", data_path=tmp_path / "one", image_size=16)
    assert data.num_classes == 1 and data.y.tolist() == [0]
    assert any("single class folder (only); conditional training needs at least 2" in n for n in data.notes)


def test_celeba_takes_faces_from_subfolders(tmp_path):
    faces = tmp_path / "faces"
    save_image(faces / "part1" / "000001.jpg", solid(64, 64, (250, 250, 250)))
    save_image(faces / "part2" / "deeper" / "000002.jpg", solid(64, 64, (5, 5, 5)))
    save_image(faces / "part2" / "000003.png", solid(64, 64, (128, 128, 128)))
    (faces / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.png 2\n")
    train = load_dataset("celeba", data_path=faces, image_size=64)
    assert train.y is None and train.source == str(faces) and not train.notes
    assert [round(v) for v in train.x.float().mean((1, 2, 3)).tolist()] == [250, 5]
    test = load_dataset("celeba", split="test", data_path=faces, image_size=64)
    assert test.x.float().mean().round() == 128
