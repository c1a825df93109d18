"""CIFAR-10: torchvision's python batches are pickles; torchvision reads them after checking their md5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wgan.data.core import Data, LoadOptions
from wgan.data.search import candidate_dirs, download_root, not_there, refuse_file, try_download
from wgan.errors import UserError, first_line


# The order of its batches.meta, which the loader reads; the registry names them without loading anything.
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_cifar10(split: str, data_path, options: LoadOptions = LoadOptions()) -> Data:
    import torchvision  # here, not at the top: seconds to import, needed only for CIFAR-10

    refuse_file(data_path, "cifar10", "cifar-10-batches-py/")
    dirs = candidate_dirs("cifar10", data_path)

    def find() -> Path | None:
        return next((d.parent if d.name == "cifar-10-batches-py" else d for d in dirs
                     if (d / "cifar-10-batches-py").is_dir() or (d.name == "cifar-10-batches-py" and d.is_dir())),
                    None)

    root = find()
    if root is None:
        if try_download(lambda r: torchvision.datasets.CIFAR10(str(r), train=True, download=True),
                         download_root("cifar10", data_path)):
            root = find()
    if root is None:
        raise not_there("cifar10", data_path, "cifar-10-batches-py/ folder (CIFAR-10's python batch files)", dirs,
                         None, hint=" (the folder holding cifar-10-batches-py)")
    try:
        ds = torchvision.datasets.CIFAR10(str(root), train=(split == "train"), download=False)
    except RuntimeError as exc:  # torchvision's md5 check: missing or damaged batch files
        raise UserError(f"{root / 'cifar-10-batches-py'}: {first_line(exc, None)} (re-download it)") from None
    except Exception as exc:  # a damaged pickle raises anything from EOFError to KeyError
        raise UserError(f"{root / 'cifar-10-batches-py'}: cannot be read ({type(exc).__name__}: {exc}); "
                        "re-download it") from None
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(ds.data, dtype=np.uint8).transpose(0, 3, 1, 2)))
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    return Data("cifar10", x, y, len(ds.classes), list(ds.classes), source=str(root / "cifar-10-batches-py"))
