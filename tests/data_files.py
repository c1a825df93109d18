"""Writers of the real dataset formats (IDX, the Kaggle letters CSV, images, CIFAR-10's python batches),
shared by the data tests."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from wgan.data.idx import IDX_FILES


def write_idx(path: Path, array: np.ndarray) -> Path:
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    blob = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(blob)
    else:
        path.write_bytes(blob)
    return path


def letters_rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 26, n), rng.integers(0, 256, (n, 28, 28))


def write_letters_csv(path: Path, labels, images, extra_lines: dict[int, str] | None = None) -> Path:
    """The Kaggle layout; `extra_lines` replaces the given 1-based lines with raw text."""
    lines = [",".join(map(str, [int(lab), *np.asarray(img).ravel().tolist()])) for lab, img in zip(labels, images)]
    for line_no, text in (extra_lines or {}).items():
        lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n")
    return path


def save_image(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


def solid(w: int, h: int, rgb) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


def write_mnist_style(folder: Path, files: dict[str, tuple[str, str]] = IDX_FILES, n: int = 3,
                      labels: int = 1) -> Path:
    for img_stem, lbl_stem in files.values():
        write_idx(folder / (img_stem + ".gz"), np.zeros((n, 28, 28)))
        write_idx(folder / (lbl_stem + ".gz"), np.full(n, labels))
    return folder


def write_faces(folder: Path, n: int = 2) -> Path:
    for i in range(n):
        save_image(folder / f"{i}.jpg", solid(64, 72, (200, 150, 100)))
    return folder


def write_fake_cifar(root: Path, per_batch: int = 2) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    test_data = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
        if name == "test_batch":
            test_data = batch
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    return test_data
