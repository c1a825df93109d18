"""Image decoding: unreadable, truncated and too small files (an error, or skipped and counted), EXIF
orientation, transparency and 16-bit and float pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_files import save_image, solid
from wgan.cli import main
from wgan.data import load_dataset
from wgan.errors import UserError


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def test_unreadable_image_is_an_error_or_skipped_with_a_count(tmp_path):
    root = tmp_path / "imgs"
    for i in range(3):
        save_image(root / f"{i}.png", solid(20, 20, (1, 2, 3)))
    (root / "1b.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(UserError, match=r"1b.jpg: not a readable image .*--skip-bad-images"):
        load_dataset("image-folder", data_path=root, image_size=16)
    data = load_dataset("image-folder", data_path=root, image_size=16, skip_bad_images=True)
    assert len(data) == 3 and any("skipped 1 unreadable" in n and "1b.jpg" in n for n in data.notes)
    again = load_dataset("image-folder", data_path=root, image_size=16, skip_bad_images=True)
    assert again.notes == data.notes  # the count survives the cache


def test_truncated_image_is_unreadable(tmp_path):
    root = tmp_path / "imgs"
    good = save_image(root / "a.png", np.random.default_rng(0).integers(0, 256, (32, 32, 3)))
    (root / "b.png").write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match=r"b.png: not a readable image"):
        load_dataset("image-folder", data_path=root, image_size=16)


def test_too_small_image_names_the_file_and_both_sizes(tmp_path):
    root = tmp_path / "imgs"
    save_image(root / "big.png", solid(64, 64, (9, 9, 9)))
    save_image(root / "tiny.png", solid(30, 40, (9, 9, 9)))
    with pytest.raises(UserError, match=r"tiny.png is 30x40, smaller than the model's 64x64 images"):
        load_dataset("image-folder", data_path=root, image_size=64)
    data = load_dataset("image-folder", data_path=root, image_size=64, skip_bad_images=True)
    assert len(data) == 1 and "smaller than 64x64" in data.notes[0]


def test_datasets_check_reports_counts_and_notes(tmp_path, capsys):
    root = tmp_path / "imgs"
    save_image(root / "a.png", solid(20, 20, (1, 2, 3)))
    (root / "b.png").write_bytes(b"garbage")
    assert main(["datasets", "--check", "image-folder", "--data", str(root), "--image-size", "16",
                 "--skip-bad-images"]) == 0
    out = capsys.readouterr().out
    assert "1 samples of shape (3, 16, 16)" in out and "skipped 1 unreadable" in out


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
    data = load_dataset(name, data_path=tmp_path / "photos", image_size=16, channels=3)
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
    rgb = load_dataset("image-folder", data_path=tmp_path / "imgs", image_size=32, channels=3).x[0]
    gray = load_dataset("image-folder", data_path=tmp_path / "imgs", image_size=32, channels=1).x[0]
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
    data = load_dataset("image-folder", data_path=root, image_size=16, channels=1)
    means = [int(v) for v in data.x.float().mean((1, 2, 3)).round()]
    # Sorted names: big.tif, black, deep.pgm, dim, middle, white.
    assert means == [200, 0, 50, 4, 128, 255]


def test_float_images_on_0_1_or_0_255_are_scaled_others_refused(tmp_path):
    root = tmp_path / "floats"
    root.mkdir()
    Image.fromarray(np.full((20, 20), 0.5, np.float32)).save(root / "a_unit.tif")
    Image.fromarray(np.full((20, 20), 200.0, np.float32)).save(root / "b_bytes.tif")
    data = load_dataset("image-folder", data_path=root, image_size=16, channels=1)
    assert [int(v) for v in data.x.float().mean((1, 2, 3))] == [128, 200]
    Image.fromarray(np.linspace(-1, 3, 400, dtype=np.float32).reshape(20, 20)).save(root / "c_odd.tif")
    with pytest.raises(UserError, match=r"c_odd.tif: float pixels run from -1 to 3, neither 0-1 nor 0-255"):
        load_dataset("image-folder", data_path=root, image_size=16, channels=1)
    assert len(load_dataset("image-folder", data_path=root, image_size=16, channels=1, skip_bad_images=True)) == 2
