"""The parts an option picks by name (a loss, a model, a normalisation, a way of conditioning), each with
what it is: the one list that the implementations (losses, models), config's validation and the command
line's help and errors all read. Torch-free, so that `wgan --help` shows them without loading torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping


def one_of(names: Iterable[str]) -> str:
    """Names as a sentence lists them: "a, b or c"."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def described(entries: Mapping[str, str]) -> str:
    """Names with what each is, as a help text lists them: "a (what a is), b (...) or c (...)"."""
    return one_of(f"{name} ({what})" for name, what in entries.items())


# The Lipschitz methods of the critic (--loss); the training step implements each.
LOSSES: dict[str, str] = {
    "clip": "WGAN: weight clipping, Arjovsky et al. 2017",
    "gp": "WGAN-GP: two-sided gradient penalty, Gulrajani et al. 2017",
    "lp": "WGAN-LP: one-sided penalty max(0, ||grad|| - 1)^2, Petzka et al. 2018",
    "sn": "spectral normalisation: every critic layer's largest singular value held at 1, no penalty; Miyato et "
          "al. 2018",
}

CRITIC_NORMS = ("none", "layer", "batch")
GENERATOR_NORMS: dict[str, str] = {
    "none": "the WGAN-GP paper's MNIST model",
    "batch": "DCGAN's batch norm",
}
CONDITIONINGS: dict[str, str] = {
    "input": "an extra input plane",
    "acgan": "an auxiliary classifier head, the WGAN-GP paper's CIFAR-10 ResNet",
    "projection": "Miyato & Koyama 2018",
}


@dataclass(frozen=True)
class ModelSpec:
    """What a generator/critic pair is and what it accepts; wgan.models gives each its code."""

    image_sizes: tuple[int, ...] | None  # None: any (the MLP); the first is the size it is made for
    description: str
    conditionings: tuple[str, ...] = ("input",)  # the first is the model's default


_RESNET_CONDITIONINGS = ("acgan", "projection", "input")
MODEL_SPECS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(None, "3 hidden ReLU layers (the WGAN-GP paper's toy model); images or 2-D points"),
    "dcgan28": ModelSpec((28,), "the WGAN-GP paper's MNIST model, 28x28"),
    "dcgan32": ModelSpec((32,), "DCGAN for 32x32 (CIFAR-10)"),
    "dcgan64": ModelSpec((64,), "Radford et al. DCGAN, 64x64 (faces)"),
    "resnet32": ModelSpec((32, 28), "the WGAN-GP paper's CIFAR-10 ResNet, 32x32 (28x28: the centre)",
                          _RESNET_CONDITIONINGS),
    "resnet64": ModelSpec((64,), "the WGAN-GP paper's 64x64 ResNet (faces, folders)", _RESNET_CONDITIONINGS),
}


def model_list() -> str:
    """The models as --model's help lists them, with the sizes each makes besides its own."""
    return ", ".join(name + "".join(f" (also {s}x{s})" for s in (spec.image_sizes or ())[1:])
                     for name, spec in MODEL_SPECS.items())


def default_conditionings() -> str:
    """Which models condition how by default, for --conditioning auto's help: "acgan: resnet32, resnet64; ..."."""
    by_default: dict[str, list[str]] = {}
    for name, spec in MODEL_SPECS.items():
        by_default.setdefault(spec.conditionings[0], []).append(name)
    return "; ".join(f"{way}: {', '.join(names)}" for way, names in by_default.items())
