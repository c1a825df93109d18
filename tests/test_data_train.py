"""`wgan train` end to end on the datasets users bring: the Kaggle letters CSV, a folder of faces and
the toy 2-D data (tiny files, tiny models, a couple of steps)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from wgan.cli import main

FAST = ["--steps", "2", "--critic-steps", "1", "--batch-size", "8", "--no-tensorboard", "--no-progress"]


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def only_run(runs: Path) -> Path:
    (run,) = list(runs.iterdir())
    assert (run / "generator.safetensors").is_file() and (run / "metrics.jsonl").is_file()
    return run


def generator_shape(run: Path) -> dict:
    with safe_open(str(run / "generator.safetensors"), "pt") as f:
        return json.loads(f.metadata()["shape"])


def test_letters_cond_gp_trains_on_the_kaggle_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = [",".join(map(str, [i % 26, *rng.integers(0, 256, 784).tolist()])) for i in range(52)]
    csv = tmp_path / "letters.csv"
    csv.write_text("\n".join(rows) + "\n")
    assert main(["train", "--preset", "letters-cond-gp", "--data", str(csv), "--width", "8",
                 "--runs-dir", str(tmp_path / "runs"), *FAST]) == 0
    run = only_run(tmp_path / "runs")
    shape = generator_shape(run)
    assert shape["num_classes"] == 26 and shape["image_size"] == 28 and shape["channels"] == 1
    assert "letters.csv" in (run / "log.txt").read_text()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 2


def test_celeba_clip_trains_on_a_folder_of_faces(tmp_path):
    rng = np.random.default_rng(0)
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(8):  # a batch of them
        Image.fromarray(rng.integers(0, 256, (90, 72, 3)).astype(np.uint8)).save(faces / f"{i:06d}.jpg")
    (faces / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    assert main(["train", "--preset", "celeba-clip", "--data", str(faces), "--width", "8", "--skip-bad-images",
                 "--runs-dir", str(tmp_path / "runs"), *FAST]) == 0
    run = only_run(tmp_path / "runs")
    shape = generator_shape(run)
    assert shape["image_size"] == 64 and shape["channels"] == 3 and shape["num_classes"] == 0
    assert "skipped 1 unreadable file(s)" in (run / "log.txt").read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records and all("wasserstein" in r and "penalty" not in r for r in records)  # clipping has no penalty
    grid = Image.open(run / "samples" / "step-00000002.png")
    assert grid.size == (8 * 66 + 2, 8 * 66 + 2)  # 64 faces of 64x64 with 2-pixel padding


def test_toy_8gaussians_trains_and_draws_scatter_plots(tmp_path):
    assert main(["train", "--preset", "toy-8gaussians", "--width", "16", "--runs-dir", str(tmp_path / "runs"),
                 *FAST]) == 0
    run = only_run(tmp_path / "runs")
    assert generator_shape(run)["point_dim"] == 2
    frames = sorted((run / "samples").glob("step-*.png"))
    assert [f.name for f in frames] == ["step-00000000.png", "step-00000002.png"]
    assert Image.open(frames[-1]).size[0] > 200  # a matplotlib figure, not an image grid


def test_conditional_preset_on_unlabelled_data_is_refused(tmp_path, capsys):
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(faces / f"{i}.png")
    code = main(["train", "--preset", "letters-cond-gp", "--dataset", "image-folder", "--data", str(faces),
                 "--image-size", "28", "--channels", "1", "--runs-dir", str(tmp_path / "runs"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "--conditional needs a labelled dataset" in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_conditional_training_on_a_single_class_folder_says_so(tmp_path, capsys):
    only = tmp_path / "faces" / "smiling"
    only.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(only / f"{i}.png")
    code = main(["train", "--preset", "letters-cond-gp", "--dataset", "image-folder", "--data", str(only.parent),
                 "--image-size", "28", "--channels", "1", "--runs-dir", str(tmp_path / "runs"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "has only one class; conditional training needs at least 2" in err
    assert err.count("\n") == 1 and not (tmp_path / "runs").exists()


def write_fashion_idx(folder: Path) -> None:
    """Valid Fashion-MNIST-format files (gzipped IDX, 16 images per split)."""
    import gzip

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        for kind, array in (("images-idx3", rng.integers(0, 256, (16, 28, 28))), ("labels-idx1", np.arange(16) % 10)):
            array = np.asarray(array, dtype=np.uint8)
            header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            with gzip.open(folder / f"{prefix}-{kind}-ubyte.gz", "wb") as f:
                f.write(header + array.tobytes())


def test_train_on_a_data_path_without_the_dataset_is_refused(tmp_path, capsys):
    # Fashion-MNIST is installed system-wide, but the user named a folder of photos: that folder is
    # what they meant, so the run must not quietly train on the system copy.
    write_fashion_idx(tmp_path / "system" / "fashion-mnist")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)).save(photos / f"{i}.jpg")
    code = main(["train", "--data", str(photos), "--dry-run", "--runs-dir", str(tmp_path / "runs"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"--data {photos}: no fashion-mnist train IDX files (train-images-idx3-ubyte[.gz]" in err
    assert "leave --data out to search" in err and not (tmp_path / "runs").exists()
    assert main(["train", "--dry-run", "--width", "8", "--runs-dir", str(tmp_path / "runs"), *FAST]) == 0
    assert str(tmp_path / "system" / "fashion-mnist") in (only_run(tmp_path / "runs") / "log.txt").read_text()


def test_datasets_check_names_the_data_path_not_another_copy(tmp_path, capsys):
    write_fashion_idx(tmp_path / "system" / "fashion-mnist")
    emnist = tmp_path / "fd" / "emnist"
    emnist.mkdir(parents=True)
    code = main(["datasets", "--check", "fashion-mnist", "--data", str(emnist)])
    err = capsys.readouterr().err
    assert code == 2 and f"--data {emnist}: no fashion-mnist train IDX files" in err and err.count("\n") == 1
    assert main(["datasets", "--check", "fashion-mnist"]) == 0
    assert f"from {tmp_path / 'system' / 'fashion-mnist'}" in capsys.readouterr().out
