"""The WGAN-GP paper's ResNets (Gulrajani et al. 2017, the code's gan_cifar_resnet.py and gan_64x64.py).

resnet32 (CIFAR-10): G = linear to 4x4 x width, three upsampling residual blocks of `width` channels
(batch norm, conditional batch norm for a conditional model, ReLU), batch norm, ReLU, 3x3 conv, tanh.
The critic = an optimised first block with mean-pool, one downsampling block, two plain blocks,
`width` channels, ReLU, global mean pool, linear; no normalisation by default (--critic-norm);
conditional models add the paper's AC-GAN head (or a projection, or the label as an input plane).
At 28x28 (MNIST-like data) the generator makes 32x32 and keeps the centre, and the critic sees its
input padded back to 32x32 with black: the paper's network unchanged.

resnet64 (the paper's 64x64 model): G = linear to 4x4 x 8 width, four upsampling blocks 8w, 8w, 4w,
2w -> w, batch norm, ReLU, 3x3 conv, tanh; the critic = a 3x3 conv to `width`, four downsampling
blocks to 2w, 4w, 8w, 8w (normalised by --critic-norm: the paper uses layer norm with the penalty),
linear on the 4x4 x 8w features.

Residual blocks are pre-activation (norm, ReLU, conv); upsampling is nearest-neighbour then conv,
downsampling conv then 2x2 mean pool, as in the paper's code, whose initialisation they follow
(Glorot-uniform, scaled by sqrt 2 inside the blocks).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wgan.models.core import Critic, CriticHead, Generator, ModelShape, conv_critic_input, critic_norm


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up by class (the paper's cond_batchnorm); unconditional
    (num_classes 0) it is plain batch norm with its own affine parameters."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=not num_classes)
        self.gain = nn.Embedding(num_classes, channels) if num_classes else None
        self.shift = nn.Embedding(num_classes, channels) if num_classes else None
        if num_classes:  # scales near 1 (as DCGAN initialises batch norm), so each class differs from the start
            nn.init.normal_(self.gain.weight, 1.0, 0.02)
            nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = self.norm(x)
        if self.gain is None:
            return out
        return out * self.gain(labels).to(out.dtype)[:, :, None, None] + self.shift(labels).to(out.dtype)[:, :, None, None]


def _conv(c_in: int, c_out: int, kernel: int, gain: float = 1.0, bias: bool = True) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias)
    nn.init.xavier_uniform_(conv.weight, gain)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


def _linear(n_in: int, n_out: int) -> nn.Linear:
    linear = nn.Linear(n_in, n_out)
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)
    return linear


class UpBlock(nn.Module):
    """norm, ReLU, upsample, conv, norm, ReLU, conv; shortcut: upsample, 1x1 conv."""

    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.n1 = ConditionalBatchNorm2d(c_in, num_classes)
        self.conv1 = _conv(c_in, c_out, 3, math.sqrt(2), bias=False)
        self.n2 = ConditionalBatchNorm2d(c_out, num_classes)
        self.conv2 = _conv(c_out, c_out, 3, math.sqrt(2))
        self.shortcut = _conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(self.n1(x, labels)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.n2(self.conv1(h), labels)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))


class DownBlock(nn.Module):
    """The critic's blocks. Downsampling: norm, ReLU, conv, norm, ReLU, conv, mean pool; shortcut: 1x1
    conv and mean pool. Plain: the same without the pools, an identity shortcut where the widths agree.
    The optimised first block (`first`): conv, ReLU, conv, mean pool, with no norm or ReLU before its
    first conv (it sees the image)."""

    def __init__(self, c_in: int, c_out: int, norm: str, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        mid = c_out if first or not down else c_in
        self.n1 = nn.Identity() if first else critic_norm(norm, c_in)
        self.conv1 = _conv(c_in, mid, 3, math.sqrt(2))
        self.n2 = nn.Identity() if first else critic_norm(norm, mid)
        self.conv2 = _conv(mid, c_out, 3, math.sqrt(2))
        self.shortcut = _conv(c_in, c_out, 1) if down or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(self.n1(x))
        h = self.conv2(F.relu(self.n2(self.conv1(h))))
        skip = x if self.shortcut is None else self.shortcut(x)
        if self.down:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


class ResNetGeneratorBody(nn.Module):
    def __init__(self, latent_dim: int, widths: list[int], channels: int, num_classes: int, crop: int):
        super().__init__()
        self.start = widths[0]
        self.input = _linear(latent_dim, 4 * 4 * widths[0])
        self.blocks = nn.ModuleList(UpBlock(a, b, num_classes) for a, b in zip(widths, widths[1:]))
        self.norm = nn.BatchNorm2d(widths[-1])
        self.output = _conv(widths[-1], channels, 3)
        self.crop = crop  # pixels cut from each side (32 -> 28)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.input(z).view(-1, self.start, 4, 4)
        for block in self.blocks:
            h = block(h, labels)
        out = torch.tanh(self.output(F.relu(self.norm(h))))
        c = self.crop
        return out[:, :, c:out.shape[2] - c, c:out.shape[3] - c] if c else out


class ResNetCriticBody(nn.Module):
    """Image -> features: `blocks`, then ReLU and a global mean pool (resnet32) or flattened (resnet64)."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], pad: int, mean_pool: bool):
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.pad, self.mean_pool = pad, mean_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:  # 28 -> 32: black around, for real and generated images alike
            x = F.pad(x, (self.pad,) * 4, value=-1.0)
        h = self.blocks(self.stem(x))
        return F.relu(h).mean(dim=(2, 3)) if self.mean_pool else h.flatten(1)


def _labels_for(shape: ModelShape) -> int:
    return shape.num_classes if shape.conditional else 0


def build_resnet32(shape: ModelShape) -> tuple[Generator, Critic]:
    w = shape.width
    pad = (32 - shape.image_size) // 2
    body = ResNetGeneratorBody(shape.latent_dim, [w, w, w, w], shape.channels, _labels_for(shape), crop=pad)
    in_ch, cond = conv_critic_input(shape)
    blocks = [DownBlock(in_ch, w, shape.critic_norm, down=True, first=True),
              DownBlock(w, w, shape.critic_norm, down=True),
              DownBlock(w, w, shape.critic_norm, down=False),
              DownBlock(w, w, shape.critic_norm, down=False)]
    critic_body = ResNetCriticBody(nn.Identity(), blocks, pad=pad, mean_pool=True)
    head = CriticHead(w, _labels_for(shape), shape.conditioning)
    return Generator(shape, body, labelled_body=True), Critic(shape, critic_body, cond, head)


def build_resnet64(shape: ModelShape) -> tuple[Generator, Critic]:
    w = shape.width
    body = ResNetGeneratorBody(shape.latent_dim, [8 * w, 8 * w, 4 * w, 2 * w, w], shape.channels, _labels_for(shape),
                               crop=0)
    in_ch, cond = conv_critic_input(shape)
    widths = [w, 2 * w, 4 * w, 8 * w, 8 * w]
    blocks = [DownBlock(a, b, shape.critic_norm, down=True) for a, b in zip(widths, widths[1:])]
    critic_body = ResNetCriticBody(_conv(in_ch, w, 3), blocks, pad=0, mean_pool=False)
    head = CriticHead(4 * 4 * 8 * w, _labels_for(shape), shape.conditioning)
    return Generator(shape, body, labelled_body=True), Critic(shape, critic_body, cond, head)
