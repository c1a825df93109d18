"""Trained generators that ship with the package, found by name: `wgan sample --weights fashion-mnist-cond`,
`wgan.load_generator("fashion-mnist-cond")`, `wgan eval --run fashion-mnist-cond`.

A name is looked up only where no file or folder of that name exists, so a user's own `fashion-mnist` run
directory still wins. The files are ordinary `wgan export` outputs and load through the same checks as any
other (header first, shapes on the meta device, safetensors: no code is executed); how each was trained and
what it scores is in weights/README.md, and benchmarks/train_shipped.sh retrains them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class Shipped:
    file: str  # under WEIGHTS_DIR
    dataset: str
    sample_shape: tuple[int, ...]  # (C, H, W) of one sample
    classes: int  # 0: unconditional
    description: str

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file


SHIPPED: dict[str, Shipped] = {
    "fashion-mnist-cond": Shipped("fashion-mnist-cond.safetensors", "fashion-mnist", (1, 28, 28), 10,
                                  "conditional WGAN-GP on Fashion-MNIST (--label Sneaker, --label 7)"),
    "fashion-mnist": Shipped("fashion-mnist.safetensors", "fashion-mnist", (1, 28, 28), 0,
                             "unconditional WGAN-GP on Fashion-MNIST"),
}


def resolve(source: str | Path) -> Path:
    """`source` as a path: itself where something of that name exists or it is no shipped name, else the
    shipped generator's file."""
    path = Path(source)
    entry = SHIPPED.get(str(source))
    if entry is None or path.exists():
        return path
    return entry.path


def shipped_names() -> str:
    """The shipped names, for an error line that says what --weights also takes."""
    return ", ".join(SHIPPED)
