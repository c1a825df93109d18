"""The WGAN papers' own models: the WGAN-GP paper's toy MLP and MNIST model, and DCGANs at 32 and 64
pixels (Radford et al.), with DCGAN's initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from wgan.models.core import Critic, Crop, Generator, ModelShape, Reshape, cond_dim, conv_critic_input, critic_norm


def build_mlp(shape: ModelShape) -> tuple[Generator, Critic]:
    """The WGAN-GP paper's toy model: three hidden ReLU layers of `width` units (512 in the paper)."""
    out_dim = math.prod(shape.sample_shape)
    h = shape.width
    extra = cond_dim(shape)
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


def _generator_norm(kind: str, channels: int, flat: bool = False) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(channels) if flat else nn.BatchNorm2d(channels)
    return nn.Identity()


def build_dcgan28(shape: ModelShape) -> tuple[Generator, Critic]:
    """The WGAN-GP paper's MNIST model (28x28): no batch norm in G (--generator-norm batch adds DCGAN's),
    5x5 stride-2 convs in the critic."""
    d, norm = shape.width, shape.generator_norm
    extra = cond_dim(shape)
    g = nn.Sequential(
        nn.Linear(shape.latent_dim + extra, 4 * 4 * 4 * d), _generator_norm(norm, 4 * 4 * 4 * d, flat=True),
        nn.ReLU(True), Reshape(4 * d, 4, 4),
        nn.ConvTranspose2d(4 * d, 2 * d, 4, 2, 1), Crop(7), _generator_norm(norm, 2 * d), nn.ReLU(True),  # 8 -> 7
        nn.ConvTranspose2d(2 * d, d, 4, 2, 1), _generator_norm(norm, d), nn.ReLU(True),  # 14
        nn.ConvTranspose2d(d, shape.channels, 4, 2, 1), nn.Tanh(),  # 28
    )
    in_ch, cond = conv_critic_input(shape)
    c = nn.Sequential(
        nn.Conv2d(in_ch, d, 5, 2, 2), nn.LeakyReLU(0.2, True),  # 14
        nn.Conv2d(d, 2 * d, 5, 2, 2), critic_norm(shape.critic_norm, 2 * d), nn.LeakyReLU(0.2, True),  # 7
        nn.Conv2d(2 * d, 4 * d, 5, 2, 2), critic_norm(shape.critic_norm, 4 * d), nn.LeakyReLU(0.2, True),  # 4
        nn.Flatten(), nn.Linear(4 * 4 * 4 * d, 1),
    )
    return Generator(shape, g, extra), Critic(shape, c, cond)


def build_dcgan32(shape: ModelShape) -> tuple[Generator, Critic]:
    """DCGAN for 32x32 (CIFAR-10 sized): batch norm in G, 4x4 stride-2 convs."""
    d = shape.width
    extra = cond_dim(shape)
    g = nn.Sequential(
        nn.Linear(shape.latent_dim + extra, 4 * 4 * 4 * d), nn.BatchNorm1d(4 * 4 * 4 * d), nn.ReLU(True),
        Reshape(4 * d, 4, 4),
        nn.ConvTranspose2d(4 * d, 2 * d, 4, 2, 1), nn.BatchNorm2d(2 * d), nn.ReLU(True),  # 8
        nn.ConvTranspose2d(2 * d, d, 4, 2, 1), nn.BatchNorm2d(d), nn.ReLU(True),  # 16
        nn.ConvTranspose2d(d, shape.channels, 4, 2, 1), nn.Tanh(),  # 32
    )
    in_ch, cond = conv_critic_input(shape)
    c = nn.Sequential(
        nn.Conv2d(in_ch, d, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 16
        nn.Conv2d(d, 2 * d, 4, 2, 1), critic_norm(shape.critic_norm, 2 * d), nn.LeakyReLU(0.2, True),  # 8
        nn.Conv2d(2 * d, 4 * d, 4, 2, 1), critic_norm(shape.critic_norm, 4 * d), nn.LeakyReLU(0.2, True),  # 4
        nn.Flatten(), nn.Linear(4 * 4 * 4 * d, 1),
    )
    return Generator(shape, g, extra), Critic(shape, c, cond)


def build_dcgan64(shape: ModelShape) -> tuple[Generator, Critic]:
    """Radford et al.'s DCGAN at 64x64: transposed convs with batch norm and ReLU in G, Tanh out;
    strided convs with LeakyReLU 0.2 in the critic and no sigmoid."""
    d = shape.width
    extra = cond_dim(shape)
    g = nn.Sequential(
        Reshape(shape.latent_dim + extra, 1, 1),
        nn.ConvTranspose2d(shape.latent_dim + extra, 8 * d, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * d), nn.ReLU(True),
        nn.ConvTranspose2d(8 * d, 4 * d, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * d), nn.ReLU(True),  # 8
        nn.ConvTranspose2d(4 * d, 2 * d, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * d), nn.ReLU(True),  # 16
        nn.ConvTranspose2d(2 * d, d, 4, 2, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU(True),  # 32
        nn.ConvTranspose2d(d, shape.channels, 4, 2, 1, bias=False), nn.Tanh(),  # 64
    )
    in_ch, cond = conv_critic_input(shape)
    norm_bias = shape.critic_norm == "none"
    c = nn.Sequential(
        nn.Conv2d(in_ch, d, 4, 2, 1), nn.LeakyReLU(0.2, True),  # 32
        nn.Conv2d(d, 2 * d, 4, 2, 1, bias=norm_bias), critic_norm(shape.critic_norm, 2 * d), nn.LeakyReLU(0.2, True),
        nn.Conv2d(2 * d, 4 * d, 4, 2, 1, bias=norm_bias), critic_norm(shape.critic_norm, 4 * d), nn.LeakyReLU(0.2, True),
        nn.Conv2d(4 * d, 8 * d, 4, 2, 1, bias=norm_bias), critic_norm(shape.critic_norm, 8 * d), nn.LeakyReLU(0.2, True),
        nn.Conv2d(8 * d, 1, 4, 1, 0),  # 4 -> 1
    )
    return Generator(shape, g, extra), Critic(shape, c, cond)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) for convs, N(1, 0.02) for norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
