"""Inception FID and KID through torch-fidelity (0.4 or later), an optional dependency, with weights checked
before use.

The test split's Inception features are computed once per evaluator and cached on disk for other
runs, under a name that every byte of the split and of the weights goes into.
"""

from __future__ import annotations

import glob
import hashlib
import zipfile
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from wgan.data import Data
from wgan.errors import UserError
from wgan.files import stored_zip_problem, user_cache_dir
from wgan.metrics.base import MetricUnavailable
from wgan.metrics.distances import FeatureStats, frechet_distance

INCEPTION_FEATURE = "2048"  # the pool features FID and KID are defined on


class InceptionScorer:
    """Scores uint8 images against one test split in torch-fidelity's Inception-v3, which it builds once;
    `weights` is a torch-fidelity weights file, or None for the one torch-fidelity downloads."""

    def __init__(self, weights: Path | None, device: torch.device, test_data: Callable[[], Data]):
        self.weights = weights
        self._weights_checked = weights is None
        self.device = device
        self.test_data = test_data
        self._tag: str | None = None
        self._network: nn.Module | None = None
        self._test_features: dict[str, torch.Tensor] | None = None

    def check_weights(self) -> None:
        """Refuses (UserError) a weights file that is missing or more than plain tensors, before anything reads
        it; once. Called when a metric needs the network, so that a run whose file has since moved can still
        be evaluated with the metrics that do not."""
        if not self._weights_checked:
            _check_weights_file(self.weights)
            self._weights_checked = True

    def scores(self, x: torch.Tensor, features: tuple[dict, dict] | None = None) -> dict[str, float]:
        """FID and KID in the 2048 pool features of torch-fidelity's Inception-v3 (the TF-FID network).

        torch-fidelity extracts the features and computes KID. FID is this package's frechet_distance on those
        features: the same value (to 1e-14), but through symmetric eigen-solvers, which took 1.6 s for 10,000
        x 2048 features on a 2-core CPU where scipy's general matrix square root (torch-fidelity's FID) took
        11 s, and which stay real on the near-singular covariances of a few hundred samples, where the
        general square root can fail.
        """
        fidelity = import_fidelity()
        real = self.test_data()
        samples, test = features or self.features(x)
        try:
            kid = fidelity.metric_kid.kid_featuresdict_to_metric(
                samples, test, INCEPTION_FEATURE, kid_subset_size=min(1000, len(x), len(real)),
                verbose=False)[fidelity.KEY_METRIC_KID_MEAN]
        except Exception as exc:  # weights of another network
            raise self._unavailable("compute Inception metrics", exc) from None
        fid = frechet_distance(*(FeatureStats.of(f[INCEPTION_FEATURE].numpy()) for f in (samples, test)))
        return {"fid": fid, "kid": float(kid)}

    def features(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(the Inception features of x, those of the test split) as torch-fidelity's feature dicts; what FID,
        KID and precision/recall in Inception features share."""
        fidelity = import_fidelity()
        try:
            if self._test_features is None:  # kept for the evaluations to come, and on disk for other runs
                self._test_features = self._features(fidelity, 2, self.test_data().x)
            return self._features(fidelity, 1, x), self._test_features
        except Exception as exc:  # weights not downloadable offline, or weights of another network
            raise self._unavailable("compute Inception metrics", exc) from None

    def _unavailable(self, what: str, exc: Exception) -> MetricUnavailable:
        hint = ("is it torch-fidelity's weights-inception-2015-12-05 file?" if self.weights else
                "offline, pass --inception-weights FILE (torch-fidelity's weights-inception-2015-12-05 file)")
        return MetricUnavailable(f"torch-fidelity could not {what} ({str(exc).strip()[:160]}); {hint}")

    def _features(self, fidelity, slot: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Slot 1: the samples, computed every time. Slot 2: the test split, computed once and cached, since
        during training it would otherwise go through Inception-v3 again at every evaluation."""
        cuda = self.device.type == "cuda"
        cache = dict(cache=False)
        if slot == 2:
            cache = dict(cache=True, cache_root=str(inception_cache_dir()),
                         input2_cache_name=self.test_cache_name())
            _drop_damaged_inception_cache(cache["input2_cache_name"])
        # torch-fidelity moves its network and batches with .cuda(), which means the current CUDA device:
        # make that ours (cuda:1 with --device cuda:1 or under torchrun), not cuda:0.
        with torch.cuda.device(self.device) if cuda else nullcontext():
            self.network()
            # save_cpu_ram: no DataLoader worker processes; the images are in memory already, and workers
            # only compete with the network for the cores.
            return fidelity.utils.extract_featuresdict_from_input_id_cached(
                slot, self._network, **{f"input{slot}": _UInt8RGB(x)}, cuda=cuda, verbose=False,
                save_cpu_ram=True, **cache)

    def network(self) -> nn.Module:
        """torch-fidelity's Inception-v3 with its weights (the file given, else torch-fidelity's download),
        built once; MetricUnavailable when torch-fidelity or the weights cannot be had."""
        if self._network is None:
            self.check_weights()
            fidelity = import_fidelity()
            cuda = self.device.type == "cuda"
            weights = {"feature_extractor_weights_path": str(self.weights)} if self.weights else {}
            try:
                with torch.cuda.device(self.device) if cuda else nullcontext():
                    self._network = fidelity.utils.create_feature_extractor(
                        "inception-v3-compat", [INCEPTION_FEATURE], cuda=cuda, verbose=False, **weights)
            except Exception as exc:  # no network to download the weights, or a file of another network
                raise self._unavailable("load Inception-v3", exc) from None
        return self._network

    def test_cache_name(self) -> str:
        """Names the test split's cached Inception features by every byte of the split and of the weights,
        so that other data or other weights never reuse them."""
        if self._tag is None:
            self.check_weights()
            real = self.test_data()
            h = hashlib.sha256(f"{tuple(real.x.shape)}".encode())
            h.update(real.x.cpu().contiguous().numpy().tobytes())
            weights = _file_sha256(self.weights) if self.weights else "torch-fidelity-default"
            h.update(weights.encode())
            self._tag = f"wgan-{real.name}-test-{h.hexdigest()[:16]}"
        return self._tag


def inception_cache_dir() -> Path:
    return user_cache_dir() / "inception"


def _drop_damaged_inception_cache(name: str) -> None:
    """Removes every cached file of `name` that is not plain tensors (damaged by a crash or a full disk, or not
    written by us), so that torch-fidelity computes it again instead of failing on it, and never unpickles
    anything else from the cache: torch-fidelity 0.4 reads it with torch.load(weights_only=False)."""
    for f in inception_cache_dir().glob(glob.escape(name) + "-*.pt"):
        try:
            torch.load(f, map_location="cpu", weights_only=True)
        except Exception:
            f.unlink(missing_ok=True)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_weights_file(path: Path) -> None:
    """torch-fidelity unpickles the weights file in full (0.4 loads it with weights_only=False, whatever torch's
    default); load it safely first so that a file holding code is refused here rather than run there."""
    if not path.is_file():
        raise UserError(f"--inception-weights {path}: file not found")
    # A compressed entry could unpack to far more than the file holds; torch.save's archives never have one.
    problem = stored_zip_problem(path) if zipfile.is_zipfile(path) else None
    if problem:
        raise UserError(f"--inception-weights {path}: refused: {problem}; nothing in it was unpacked or run")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise UserError(f"--inception-weights {path}: refused: not a plain tensor file (torch.load with "
                        "weights_only=True failed; nothing in it was run)") from None


def import_fidelity():
    """The torch_fidelity module, or MetricUnavailable saying how to install it."""
    try:
        import torch_fidelity  # here, not at the top: it is optional, and its absence is a note, not a crash
    except ImportError:
        raise MetricUnavailable("Inception FID/KID need torch-fidelity: pip install 'wgan[inception]'") from None
    return torch_fidelity


class _UInt8RGB(torch.utils.data.Dataset):
    """uint8 images as torch-fidelity wants them: 3 x H x W."""

    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        img = self.x[i]
        return img.expand(3, -1, -1).contiguous() if img.shape[0] == 1 else img
