"""Registry of generator/critic pairs (one line each in MODELS).

Every generator maps (z, labels) -> samples in [-1, 1] (images) or R^2 (points); every critic maps
(x, labels) -> one unbounded score per sample (no sigmoid: a Wasserstein critic is not a classifier).
Class-conditional variants embed the label into G's input (concatenated to z) or its batch norm (the
ResNets), and show it to the critic as an input plane, an auxiliary classifier head or a projection.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from wgan.models.core import CRITIC_NORMS, Critic, Generator, ModelShape
from wgan.models.dcgan import build_dcgan28, build_dcgan32, build_dcgan64, build_mlp, init_weights
from wgan.models.resnet import build_resnet32, build_resnet64

__all__ = ["CRITIC_NORMS", "CONDITIONINGS", "MODELS", "Critic", "Generator", "ModelEntry", "ModelShape",
           "build_models", "generator_for_weights", "power_iteration_paused", "shape_problem", "spectral_normalise"]

# How a conditional critic may see the label, per model: the ResNets take all three.
CONDITIONINGS = ("input", "acgan", "projection")


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[[ModelShape], tuple[Generator, Critic]]
    image_sizes: tuple[int, ...] | None  # None: any (the MLP)
    description: str
    conditionings: tuple[str, ...] = ("input",)  # the first is the model's default
    init: Callable[[nn.Module], None] | None = None  # applied to every submodule after the build


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(build_mlp, None, "3 hidden ReLU layers (the WGAN-GP paper's toy model); images or 2-D points"),
    "dcgan28": ModelEntry(build_dcgan28, (28,), "the WGAN-GP paper's MNIST model, 28x28", init=init_weights),
    "dcgan32": ModelEntry(build_dcgan32, (32,), "DCGAN for 32x32 (CIFAR-10)", init=init_weights),
    "dcgan64": ModelEntry(build_dcgan64, (64,), "Radford et al. DCGAN, 64x64 (faces)", init=init_weights),
    "resnet32": ModelEntry(build_resnet32, (32, 28), "the WGAN-GP paper's CIFAR-10 ResNet, 32x32 (28x28: the centre)",
                           conditionings=("acgan", "projection", "input")),
    "resnet64": ModelEntry(build_resnet64, (64,), "the WGAN-GP paper's 64x64 ResNet (faces, folders)",
                           conditionings=("acgan", "projection", "input")),
}


def build_models(name: str, shape: ModelShape) -> tuple[Generator, Critic]:
    """Build the named pair for `shape`, initialised as its paper does. The combination of model, data,
    normalisation and loss is checked by config.validate_model before anything is built."""
    entry = MODELS[name]
    generator, critic = entry.build(shape)
    if entry.init is not None:
        generator.apply(entry.init)
        critic.apply(entry.init)
    return generator, critic


SHAPE_COUNTS = ("channels", "image_size", "latent_dim", "width", "num_classes", "point_dim")
GENERATOR_NORMS = ("none", "batch")


def shape_problem(name: str, shape: ModelShape) -> str | None:
    """Why the named model cannot be built for `shape`, or None. A shape read from a file (a checkpoint, an
    exported generator) is checked here before anything is built from it; the generator itself is run on the
    meta device (sizes only, nothing allocated) to see that it makes the samples the shape states."""
    entry = MODELS[name]
    for key in SHAPE_COUNTS:  # sizes beyond the weights' own are refused by comparing the two, not by a limit
        value = getattr(shape, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"{key} {value!r} is not a whole number >= 0"
    names = (("critic_norm", CRITIC_NORMS), ("generator_norm", GENERATOR_NORMS), ("conditioning", CONDITIONINGS))
    for key, accepted in names:
        if getattr(shape, key) not in accepted:
            return f"{key} {getattr(shape, key)!r} is not one of {', '.join(accepted)}"
    if shape.latent_dim < 1 or shape.width < 1:
        return "latent_dim and width must be at least 1"
    if shape.point_dim == 0 and (shape.channels < 1 or shape.image_size < 1):
        return "an image model needs channels and image_size of at least 1"
    if shape.point_dim == 0 and entry.image_sizes is not None and shape.image_size not in entry.image_sizes:
        return f"image_size {shape.image_size}: {name} makes {' or '.join(map(str, entry.image_sizes))} pixel images"
    if shape.conditional and shape.conditioning not in entry.conditionings:
        return f"conditioning {shape.conditioning}: {name} conditions by {', '.join(entry.conditionings)}"
    with torch.device("meta"):
        generator = build_models(name, shape)[0].eval()
        labels = torch.zeros(1, dtype=torch.int64) if shape.conditional else None
        made = tuple(generator(torch.empty(1, shape.latent_dim), labels).shape[1:])
    if made != shape.sample_shape:
        return f"its generator makes samples of {made}, not the {shape.sample_shape} the shape states"
    return None


def generator_for_weights(name: str, shape: ModelShape, device: str | torch.device = "meta") -> Generator:
    """The named generator on `device` with uninitialised memory, for load_state_dict to fill. The pair is
    built on the meta device, so only the generator is ever given memory: sampling needs no critic."""
    with torch.device("meta"):
        generator, _ = build_models(name, shape)
    return generator if torch.device(device).type == "meta" else generator.to_empty(device=device)


def spectral_normalise(critic: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every convolution and linear layer of a critic: each
    weight is divided by its largest singular value (estimated by one power iteration per training
    forward), which bounds every layer's Lipschitz constant by 1 without a penalty."""
    for m in list(critic.modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(m)
    return critic


@contextlib.contextmanager
def power_iteration_paused(critic: nn.Module) -> Iterator[None]:
    """Forwards of a spectrally normalised critic that reuse its singular-vector estimates (eval mode, which
    changes nothing else in a critic without batch norm): so every critic update runs one power iteration,
    whether real and generated images go through the critic in one call (the fused step) or in two."""
    was_training = critic.training
    critic.eval()
    try:
        yield
    finally:
        critic.train(was_training)
