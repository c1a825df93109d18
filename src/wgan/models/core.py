"""What every model pair shares: the shape they are built for, the generator and critic wrappers that
condition on a label, and the small modules both architectures use."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wgan.choices import CRITIC_NORMS


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
    # How a conditional critic sees the label: "input" (an input plane or features), "acgan" (an auxiliary
    # classifier head, the WGAN-GP paper's CIFAR-10 ResNet) or "projection" (Miyato & Koyama 2018).
    conditioning: str = "input"
    generator_norm: str = "none"  # dcgan28 only: "batch" adds batch norm to its generator

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def sample_shape(self) -> tuple[int, ...]:
        if self.point_dim:
            return (self.point_dim,)
        return (self.channels, self.image_size, self.image_size)


def critic_norm(kind: str, channels: int) -> nn.Module:
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
    """z (and labels) -> samples. A conditional generator either concatenates a label embedding to z
    (`in_dim_extra` > 0), or, with `labelled_body`, hands the labels to its body (conditional batch norm)."""

    def __init__(self, shape: ModelShape, body: nn.Module, in_dim_extra: int = 0, labelled_body: bool = False):
        super().__init__()
        self.shape = shape
        self.labelled_body = labelled_body and shape.conditional
        self.cond = ConditionalInput(shape.num_classes, in_dim_extra) if shape.conditional and not labelled_body \
            else None
        self.body = body

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.shape.conditional and labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        if self.labelled_body:
            return self.body(z, labels)
        if self.cond is not None:
            z = self.cond(z, labels)
        return self.body(z)


class Critic(nn.Module):
    """x (and labels) -> one score per sample. `cond` shows the label at the input (a plane, features);
    a `head` turns the body's features into the score and, for an AC-GAN critic, class logits."""

    def __init__(self, shape: ModelShape, body: nn.Module, cond: nn.Module | None, head: nn.Module | None = None):
        super().__init__()
        self.shape = shape
        self.cond = cond
        self.body = body
        self.head = head

    @property
    def classifies(self) -> bool:
        """Whether the critic also predicts the class (an AC-GAN head), for an auxiliary loss."""
        return self.head is not None and self.head.classes is not None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, with_logits: bool = False):
        """The scores (N,); with `with_logits`, (scores, class logits or None)."""
        needs_labels = self.cond is not None or (self.head is not None and self.head.embed is not None)
        if needs_labels and labels is None:
            raise ValueError("this critic is class-conditional: pass labels")
        if self.cond is not None:
            x = self.cond(x, labels)
        out = self.body(x)
        score, logits = (out.reshape(-1), None) if self.head is None else self.head(out, labels)
        return (score, logits) if with_logits else score


class CriticHead(nn.Module):
    """Features -> score: a linear score; with `conditioning` "projection" plus <embed(label), features>
    (Miyato & Koyama 2018); with "acgan" also class logits, which an auxiliary loss trains (Odena et al.
    2017, the WGAN-GP paper's conditional CIFAR-10 model)."""

    def __init__(self, features: int, num_classes: int, conditioning: str):
        super().__init__()
        self.score = nn.Linear(features, 1)
        self.classes = nn.Linear(features, num_classes) if num_classes and conditioning == "acgan" else None
        self.embed = nn.Embedding(num_classes, features) if num_classes and conditioning == "projection" else None

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = features.flatten(1)
        score = self.score(features).reshape(-1)
        if self.embed is not None:
            score = score + (self.embed(labels).to(features.dtype) * features).sum(1)
        return score, None if self.classes is None else self.classes(features)


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


def cond_dim(shape: ModelShape) -> int:
    """The width of the label embedding concatenated to z by a conditional generator (DCGAN, MLP)."""
    return shape.latent_dim if shape.conditional else 0


def conv_critic_input(shape: ModelShape) -> tuple[int, nn.Module | None]:
    """A conv critic's input channels, and the module that adds the label plane (conditioning "input")."""
    if shape.conditional and shape.conditioning == "input":
        return shape.channels + 1, LabelPlane(shape.num_classes, shape.image_size)
    return shape.channels, None
