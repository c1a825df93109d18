"""Registry of generator/critic pairs (MODELS: each model of wgan.choices.MODEL_SPECS with its code).

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
from torch.overrides import TorchFunctionMode

from wgan.choices import CONDITIONINGS, CRITIC_NORMS, GENERATOR_NORMS, MODEL_SPECS
from wgan.models.core import Critic, Generator, ModelShape
from wgan.models.dcgan import build_dcgan28, build_dcgan32, build_dcgan64, build_mlp, init_weights
from wgan.models.resnet import build_resnet32, build_resnet64

__all__ = ["CRITIC_NORMS", "CONDITIONINGS", "GENERATOR_NORMS", "MODELS", "Critic", "Generator", "ModelEntry",
           "ModelShape", "build_models", "generator_for_weights", "power_iteration_paused", "samples_problem",
           "shape_problem", "spectral_normalise"]


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[[ModelShape], tuple[Generator, Critic]]
    image_sizes: tuple[int, ...] | None  # None: any (the MLP)
    description: str
    conditionings: tuple[str, ...] = ("input",)  # the first is the model's default
    init: Callable[[nn.Module], None] | None = None  # applied to every submodule after the build


# Each model's code, beside what it is (wgan.choices, torch-free, the one list of the models' names).
_CODE: dict[str, tuple[Callable[[ModelShape], tuple[Generator, Critic]], Callable[[nn.Module], None] | None]] = {
    "mlp": (build_mlp, None),
    "dcgan28": (build_dcgan28, init_weights),
    "dcgan32": (build_dcgan32, init_weights),
    "dcgan64": (build_dcgan64, init_weights),
    "resnet32": (build_resnet32, None),
    "resnet64": (build_resnet64, None),
}
if set(_CODE) != set(MODEL_SPECS):
    raise ImportError(f"models without code or without a spec: {sorted(set(_CODE) ^ set(MODEL_SPECS))}")
MODELS: dict[str, ModelEntry] = {
    name: ModelEntry(_CODE[name][0], spec.image_sizes, spec.description, spec.conditionings, init=_CODE[name][1])
    for name, spec in MODEL_SPECS.items()}


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


def shape_problem(name: str, shape: ModelShape) -> str | None:
    """Why the named model cannot be built for `shape`, or None. A shape read from a file (a checkpoint, an
    exported generator) is checked here before anything is built from it."""
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
    return None


def samples_problem(generator: Generator) -> str | None:
    """Why `generator` (its weights loaded) does not make the samples its shape states, or None: one sample,
    so it costs no more than the weights it runs. A dcgan28 said to be 1048576 pixels wide still makes 28."""
    shape = generator.shape
    device = next(generator.parameters()).device
    labels = torch.zeros(1, dtype=torch.int64, device=device) if shape.conditional else None
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            made = tuple(generator(torch.zeros(1, shape.latent_dim, device=device), labels).shape[1:])
    finally:
        generator.train(was_training)
    return None if made == shape.sample_shape else f"it makes samples of {made}, not the {shape.sample_shape} stated"


class _SizesOnly(TorchFunctionMode):
    """Modules built for their sizes alone: nn.init's functions leave the weights as they are. On the meta
    device normal_ has no kernel of its own and would first import torch._dynamo (seconds, 150 MB)."""

    SKIPPED = frozenset(getattr(nn.init, n) for n in ("normal_", "uniform_", "trunc_normal_", "constant_", "zeros_",
                                                      "ones_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                                                      "xavier_normal_", "orthogonal_"))

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.SKIPPED:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def generator_for_weights(name: str, shape: ModelShape) -> Generator:
    """The named generator on the meta device (sizes only, nothing initialised), for
    load_state_dict(weights, assign=True) to give it the weights: the pair is built there, so no critic is
    ever given memory (sampling needs none), and the generator none beyond the weights themselves."""
    with torch.device("meta"), _SizesOnly():
        generator, _ = build_models(name, shape)
    return generator


def parameter_count(name: str, shape: ModelShape) -> int | None:
    """How many parameters the named generator and critic of `shape` hold together, counted on models built on
    the meta device (nothing allocated); None where the sizes are past what torch can build at all."""
    try:
        with torch.device("meta"), _SizesOnly():
            generator, critic = build_models(name, shape)
    except Exception:  # sizes past int64 or torch's limits raise from deep inside the layers
        return None
    return sum(p.numel() for m in (generator, critic) for p in m.parameters())


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
