"""Registry of generator/critic pairs.

Every generator maps (z, labels) -> samples in [-1, 1] (images) or R^2 (points); every critic maps
(x, labels) -> one unbounded score per sample (no sigmoid: a Wasserstein critic is not a classifier).
Class-conditional variants embed the label into G's input (concatenated to z) and into the
critic's input (one extra input plane for conv critics, concatenated features for MLPs).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn


CRITIC_NORMS = ("none", "layer", "batch")


@dataclass(frozen=True)
class ModelShape:
    """What a model pair needs to know about the data."""

    channels: int = 1
    image_size: int = 28
    latent_dim: int = 128
    width: int = 64
    num_classes: int = 0  # 0 = unconditional
    critic_norm: str = "none"
    point_dim: int = 0  # > 0: the data are points in R^point_dim (toy 2-D data), not images

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def sample_shape(self) -> tuple[int, ...]:
        if self.point_dim:
            return (self.point_dim,)
        return (self.channels, self.image_size, self.image_size)


def _critic_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        # Layer norm over (C, H, W) per sample, as in the WGAN-GP paper: no coupling across the batch.
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class LabelPlane(nn.Module):
    """Embeds a class label as one extra H x W input plane for a conv critic."""

    def __init__(self, num_classes: int, image_size: int):
        super().__init__()
        self.image_size = image_size
        self.embed = nn.Embedding(num_classes, image_size * image_size)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        plane = self.embed(labels).view(-1, 1, self.image_size, self.image_size).to(x.dtype)
        return torch.cat([x, plane], dim=1)


class ConditionalInput(nn.Module):
    """Concatenates a learned label embedding to z (generator side)."""

    def __init__(self, num_classes: int, embed_dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, self.embed(labels).to(z.dtype)], dim=1)


class Generator(nn.Module):
    def __init__(self, shape: ModelShape, body: nn.Module, in_dim_extra: int = 0):
        super().__init__()
        self.shape = shape
        self.cond = ConditionalInput(shape.num_classes, in_dim_extra) if shape.conditional else None
        self.body = body

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            z = self.cond(z, labels)
        return self.body(z)


class Critic(nn.Module):
    def __init__(self, shape: ModelShape, body: nn.Module, cond: nn.Module | None):
        super().__init__()
        self.shape = shape
        self.cond = cond
        self.body = body

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond is not None:
            if labels is None:
                raise ValueError("this critic is class-conditional: pass labels")
            x = self.cond(x, labels)
        return self.body(x).reshape(-1)


class Reshape(nn.Module):
    def __init__(self, *shape: int):
        super().__init__()
        self.shape = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)


class Crop(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, : self.size, : self.size]


# ---------------------------------------------------------------------------------------------
# Architectures


def _cond_dim(shape: ModelShape) -> int:
    return shape.latent_dim if shape.conditional else 0


def build_mlp(shape: ModelShape) -> tuple[Generator, Critic]:
    """The WGAN-GP paper's toy model: three hidden ReLU layers of `width` units (512 in the paper)."""
    out_dim = int(torch.tensor(shape.sample_shape).prod())
    h = shape.width
    extra = _cond_dim(shape)
    g_layers: list[nn.Module] = [
        nn.Linear(shape.latent_dim + extra, h), nn.ReLU(True),
        nn.Linear(h, h), nn.ReLU(True),
        nn.Linear(h, h), nn.ReLU(True),
        nn.Linear(h, out_dim),
    ]
    if not shape.point_dim:
        g_layers += [nn.Tanh(), Reshape(*shape.sample_shape)]
    norm = (lambda n: nn.LayerNorm(n)) if shape.critic_norm == "layer" else (lambda n: nn.Identity())
    c_extra = shape.width if shape.conditional else 0
    c_layers: list[nn.Module] = [
        nn.Flatten(), nn.Linear(out_dim + c_extra, h), norm(h), nn.ReLU(True),
        nn.Linear(h, h), norm(h), nn.ReLU(True),
        nn.Linear(h, h), norm(h), nn.ReLU(True),
        nn.Linear(h, 1),
    ]
    cond = _FlatLabelConcat(shape.num_classes, c_extra) if shape.conditional else None
    return Generator(shape, nn.Sequential(*g_layers), extra), Critic(shape, nn.Sequential(*c_layers), cond)


class _FlatLabelConcat(nn.Module):
    def __init__(self, num_classes: int, embed_dim: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embed_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.flatten(1), self.embed(labels).to(x.dtype)], dim=1)


def _conv_critic_input(shape: ModelShape) -> tuple[int, nn.Module | None]:
    if shape.conditional:
        return shape.channels + 1, LabelPlane(shape.num_classes, shape.image_size)
    return shape.channels, None


def build_dcgan28(shape: ModelShape) -> tuple[Generator, Critic]:
    """The WGAN-GP paper's MNIST model (28x28): no batch norm in G, 5x5 stride-2 convs in the critic."""
    d = shape.width
    extra = _cond_dim(shape)
    g = nn.Sequential(
        nn.Linear(shape.latent_dim + extra, 4 * 4 * 4 * d), nn.ReLU(True), Reshape(4 * d, 4, 4),
        nn.ConvTranspose2d(4 * d, 2 * d, 4, 2, 1), Crop(7), nn.ReLU(True),  # 8 -> 7
        nn.ConvTranspose2d(2 * d, d, 4, 2, 1), nn.ReLU(True),  # 14
        nn.ConvTranspose2d(d, shape.channels, 4, 2, 1), nn.Tanh(),  # 28
    )
    in_ch, cond = _conv_critic_input(shape)
    c = nn.Sequential(
        nn.Conv2d(in_ch, d, 5, 2, 2), nn.LeakyReLU(0.2, True),  # 14
        nn.Conv2d(d, 2 * d, 5, 2, 2), _critic_norm(shape.critic_norm, 2 * d), nn.LeakyReLU(0.2, True),  # 7
        nn.Conv2d(2 * d, 4 * d, 5, 2, 2), _critic_norm(shape.critic_norm, 4 * d), nn.LeakyReLU(0.2, True),  # 4
        nn.Flatten(), nn.Linear(4 * 4 * 4 * d, 1),
    )
    return Generator(shape, g, extra), Critic(shape, c, cond)


def build_dcgan32(shape: ModelShape) -> tuple[Generator, Critic]:
    """DCGAN for 32x32 (CIFAR-10 sized): batch norm in G, 4x4 stride-2 convs."""
    d = shape.width
    extra = _cond_dim(shape)
    g = nn.Sequential(
        nn.Linear(shape.latent_dim + extra, 4 * 4 * 4 * d), nn.BatchNorm1d(4 * 4 * 4 * d), nn.ReLU(True),
        Reshape(4 * d, 4, 4),
        nn.ConvTranspose2d(4 * d, 2 * d, 4, 2, 1), nn.BatchNorm2d(2 * d), nn.ReLU(True),  # 8
        nn.ConvTranspose2d(2 * d, d, 4, 2, 1), nn.BatchNorm2d(d), nn.ReLU(True),  # 16
        nn.ConvTranspose2d(d, shape.channels, 4, 2, 1), nn.Tanh(),  # 32
    )
    in_ch, cond = _conv_critic_input(shape)
    c = nn.Sequential(
        nn.Conv2d(in_ch, d, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 16
        nn.Conv2d(d, 2 * d, 4, 2, 1), _critic_norm(shape.critic_norm, 2 * d), nn.LeakyReLU(0.2, True),  # 8
        nn.Conv2d(2 * d, 4 * d, 4, 2, 1), _critic_norm(shape.critic_norm, 4 * d), nn.LeakyReLU(0.2, True),  # 4
        nn.Flatten(), nn.Linear(4 * 4 * 4 * d, 1),
    )
    return Generator(shape, g, extra), Critic(shape, c, cond)


def build_dcgan64(shape: ModelShape) -> tuple[Generator, Critic]:
    """Radford et al.'s DCGAN at 64x64: transposed convs with batch norm and ReLU in G, Tanh out;
    strided convs with LeakyReLU 0.2 in the critic and no sigmoid."""
    d = shape.width
    extra = _cond_dim(shape)
    g = nn.Sequential(
        Reshape(shape.latent_dim + extra, 1, 1),
        nn.ConvTranspose2d(shape.latent_dim + extra, 8 * d, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * d), nn.ReLU(True),
        nn.ConvTranspose2d(8 * d, 4 * d, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * d), nn.ReLU(True),  # 8
        nn.ConvTranspose2d(4 * d, 2 * d, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * d), nn.ReLU(True),  # 16
        nn.ConvTranspose2d(2 * d, d, 4, 2, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU(True),  # 32
        nn.ConvTranspose2d(d, shape.channels, 4, 2, 1, bias=False), nn.Tanh(),  # 64
    )
    in_ch, cond = _conv_critic_input(shape)
    norm_bias = shape.critic_norm == "none"
    c = nn.Sequential(
        nn.Conv2d(in_ch, d, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 32
        nn.Conv2d(d, 2 * d, 4, 2, 1, bias=norm_bias), _critic_norm(shape.critic_norm, 2 * d), nn.LeakyReLU(0.2, True),
        nn.Conv2d(2 * d, 4 * d, 4, 2, 1, bias=norm_bias), _critic_norm(shape.critic_norm, 4 * d), nn.LeakyReLU(0.2, True),
        nn.Conv2d(4 * d, 8 * d, 4, 2, 1, bias=norm_bias), _critic_norm(shape.critic_norm, 8 * d), nn.LeakyReLU(0.2, True),
        nn.Conv2d(8 * d, 1, 4, 1, 0),  # 4 -> 1
    )
    return Generator(shape, g, extra), Critic(shape, c, cond)


@dataclass(frozen=True)
class ModelEntry:
    build: Callable[[ModelShape], tuple[Generator, Critic]]
    image_sizes: tuple[int, ...] | None  # None: any (the MLP)
    description: str


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(build_mlp, None, "3 hidden ReLU layers (the WGAN-GP paper's toy model); images or 2-D points"),
    "dcgan28": ModelEntry(build_dcgan28, (28,), "the WGAN-GP paper's MNIST model, 28x28"),
    "dcgan32": ModelEntry(build_dcgan32, (32,), "DCGAN for 32x32 (CIFAR-10)"),
    "dcgan64": ModelEntry(build_dcgan64, (64,), "Radford et al. DCGAN, 64x64 (faces)"),
}


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) for convs, N(1, 0.02) for norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_models(name: str, shape: ModelShape) -> tuple[Generator, Critic]:
    """Build the named pair for `shape`, initialised as DCGAN does (conv models). The combination of
    model, data, normalisation and loss is checked by config.validate_model before anything is built."""
    generator, critic = MODELS[name].build(shape)
    if name != "mlp":
        generator.apply(init_weights)
        critic.apply(init_weights)
    return generator, critic


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
