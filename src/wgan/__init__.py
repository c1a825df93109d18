"""wgan: Wasserstein GANs (weight clipping and gradient penalty), unconditional and conditional."""

__version__ = "0.1.0"

# The Python API, imported on first use: `wgan --help` and the command line's parser import no torch.
_LAZY = {name: "wgan.api" for name in ("train", "resume", "evaluate", "report", "load_generator", "Run",
                                       "TrainedGenerator")}
_LAZY["UserError"] = "wgan.errors"


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wgan' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
