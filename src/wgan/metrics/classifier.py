"""The domain classifier: a small CNN trained on a dataset's own training split, whose penultimate
features the FCD compares and whose predictions give class coverage and conditional accuracy.

It is trained once per dataset and cached under the user cache folder, and refused when the data
it was trained on are not the data at hand.
"""

from __future__ import annotations

import hashlib
import math
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from wgan.data import Data, to_model_space
from wgan.errors import UserError, first_line
from wgan.files import atomic_write, stored_zip_problem, user_cache_dir
from wgan.legacy import old_classifier_cache
from wgan.metrics.base import MetricUnavailable

CLASSIFIER_FORMAT = "wgan-classifier-1"


class SmallCNN(nn.Module):
    """Three narrow conv blocks and a 128-unit penultimate layer: about 91.5% on Fashion-MNIST after 3 epochs,
    a minute on two CPU cores. Narrow on purpose: wider nets gain little accuracy and cost minutes."""

    def __init__(self, channels: int, num_classes: int, feature_dim: int = 128):
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(
            *block(channels, 16), nn.MaxPool2d(2),
            *block(16, 32), nn.MaxPool2d(2),
            *block(32, 64),
            # any image size ends as 7x7, so one architecture serves 28, 32 and 64 pixel data
            nn.AdaptiveAvgPool2d(7), nn.Flatten(),
            nn.Linear(64 * 7 * 7, feature_dim), nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, num_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(penultimate features, class logits) for images in model space [-1, 1]."""
        features = self.body(x)
        return features, self.head(features)


@dataclass
class Classifier:
    model: SmallCNN
    dataset: str
    image_size: int
    channels: int
    num_classes: int
    test_accuracy: float
    fingerprint: str
    path: Path | None = None

    @torch.no_grad()
    def run(self, images: torch.Tensor, device: torch.device, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images -> (float64 features (N, 128), predicted classes (N,))."""
        self.model.to(device).eval()
        feats, preds = [], []
        for chunk in images.split(batch_size):
            x = to_model_space(chunk.to(device))
            f, logits = self.model(x)
            feats.append(f.double().cpu())
            preds.append(logits.argmax(1).cpu())
        return torch.cat(feats).numpy(), torch.cat(preds).numpy()


# Classifiers shipped with the package, trained as `wgan eval --train-classifier` trains them (see the README
# beside them): found like a cached one, for exactly the data they were trained on.
SHIPPED_DIR = Path(__file__).parent / "weights"


def content_hash(data: Data) -> str:
    """A hash of every byte of the images and labels: two sources of one dataset (two letters CSVs) get
    classifiers of their own."""
    h = hashlib.sha256(f"{tuple(data.x.shape)}:{data.x.dtype}".encode())
    h.update(data.x.cpu().contiguous().numpy().tobytes())
    if data.y is not None:
        h.update(data.y.cpu().numpy().astype(np.int64).tobytes())
    return h.hexdigest()[:16]


def _file_name(data: Data, with_hash: bool = True) -> str:
    c, s = data.sample_shape[0], data.sample_shape[1]
    return f"{data.name}-{c}x{s}x{s}" + (f"-{content_hash(data)}" if with_hash else "") + ".pt"


def classifier_path(data: Data) -> Path:
    """Where the classifier of exactly these data is cached: named by their content, so it is never reused
    for other data and training one for other data never replaces it."""
    return user_cache_dir() / "classifiers" / _file_name(data)


def find_classifier(data: Data) -> Path | None:
    """The classifier of these data: cached, shipped with the package, or cached under the name it had before
    caches were named by content (used only if it was trained on these very data); None when there is none."""
    for path in (classifier_path(data), SHIPPED_DIR / _file_name(data)):
        if path.is_file():
            return path
    return old_classifier_cache(user_cache_dir() / "classifiers" / _file_name(data, with_hash=False),
                                data_fingerprint(data))


def data_fingerprint(data: Data) -> str:
    """Count, shape and a hash of 64 evenly spaced samples and labels: cheap, and it changes when the data do."""
    n = len(data)
    idx = torch.linspace(0, n - 1, steps=min(64, n)).long()
    h = hashlib.sha256(f"{n}:{tuple(data.sample_shape)}".encode())
    h.update(data.x[idx.to(data.x.device)].cpu().contiguous().numpy().tobytes())
    if data.y is not None:
        h.update(data.y[idx.to(data.y.device)].cpu().numpy().astype(np.int64).tobytes())
    return f"{n}:{h.hexdigest()[:16]}"


def check_labelled(data: Data, what: str) -> None:
    """Raises MetricUnavailable unless `data` are labelled images, which the classifier needs."""
    if data.is_points:
        raise MetricUnavailable(f"{what} needs images; {data.name} holds points (use w1-exact)")
    if data.y is None or data.num_classes < 2:
        raise MetricUnavailable(
            f"{what} needs a classifier trained on class labels, and {data.name} ({data.source}) has none: "
            "FCD, class coverage and conditional accuracy are not available for unlabelled data "
            "(Inception FID/KID are: pip install torch-fidelity and pass --inception-weights FILE)")


def fit_classifier(train: Data, test: Data, *, device: torch.device, epochs: int = 3, batch_size: int = 128,
                   seed: int = 0, progress: bool = False) -> Classifier:
    """Train the small CNN on `train` (Adam, learning rate decayed linearly to 0) and measure it on `test`."""
    check_labelled(train, "the classifier")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    channels, image_size = train.sample_shape[0], train.sample_shape[1]
    model = SmallCNN(channels, train.num_classes).to(device)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / total)
    x_all, y_all = train.x.to(device), train.y.to(device)
    bar = tqdm(total=total, disable=not progress, unit="batch", desc="classifier", dynamic_ncols=True)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=gen).to(device)
        for idx in order.split(batch_size):
            x = to_model_space(x_all[idx])
            _, logits = model(x)
            loss = F.cross_entropy(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
    bar.close()
    clf = Classifier(model.eval(), train.name, image_size, channels, train.num_classes, 0.0, data_fingerprint(train))
    _, preds = clf.run(test.x, device)
    clf.test_accuracy = float((preds == test.y.cpu().numpy()).mean())
    return clf


def save_classifier(clf: Classifier, path: Path) -> None:
    state = {
        "format": CLASSIFIER_FORMAT, "dataset": clf.dataset, "image_size": clf.image_size, "channels": clf.channels,
        "num_classes": clf.num_classes, "test_accuracy": clf.test_accuracy, "fingerprint": clf.fingerprint,
        "state_dict": {k: v.detach().cpu() for k, v in clf.model.state_dict().items()},
    }
    atomic_write(path, lambda f: torch.save(state, f))
    clf.path = path


def train_classifier_command(dataset: str, data_path=None, image_size: int | None = None,
                             channels: int | None = None) -> str:
    """The `wgan eval --train-classifier` line that trains the classifier of exactly these data."""
    words = ["wgan", "eval", "--train-classifier", "--dataset", dataset]
    words += ["--data", str(data_path)] if data_path else []
    words += ["--image-size", str(image_size)] if image_size else []
    words += ["--channels", str(channels)] if channels else []
    return shlex.join(words)


def load_classifier(path: Path, train: Data, retrain_command: str | None = None) -> Classifier:
    """The cached classifier at `path`, refused (UserError) unless it was trained on exactly these data."""
    retrain = f"retrain it: {retrain_command or train_classifier_command(train.name)}"
    problem = stored_zip_problem(path)
    if problem:
        raise UserError(f"{path}: unreadable classifier cache ({problem}); {retrain}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle with code, a truncated file, a zip error: all mean "do not use it"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise UserError(f"{path}: unreadable classifier cache ({first}); {retrain}") from None
    if not isinstance(state, dict) or state.get("format") != CLASSIFIER_FORMAT:
        raise UserError(f"{path}: not a wgan classifier cache; {retrain}")
    channels, image_size = train.sample_shape[0], train.sample_shape[1]
    want = (train.name, image_size, channels, train.num_classes, data_fingerprint(train))
    try:
        have = (state["dataset"], state["image_size"], state["channels"], state["num_classes"], state["fingerprint"])
        accuracy = float(state["test_accuracy"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: incomplete classifier cache ({first_line(exc, 80)}); {retrain}") from None
    if want != have:
        raise UserError(
            f"{path}: cached classifier does not match the data (it was trained on {have[0]} {have[2]}x{have[1]}px, "
            f"{have[3]} classes, fingerprint {have[4]}; the data are {want[0]} {want[2]}x{want[1]}px, {want[3]} "
            f"classes, fingerprint {want[4]} from {train.source}); {retrain}")
    model = SmallCNN(channels, train.num_classes)
    try:
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise UserError(f"{path}: classifier weights do not fit ({first_line(exc, 120)}); {retrain}") from None
    return Classifier(model.eval(), state["dataset"], image_size, channels, state["num_classes"],
                      accuracy, state["fingerprint"], path)
