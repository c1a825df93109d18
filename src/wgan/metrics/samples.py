"""What is scored: a generator's samples, or any set of images / points, such as the baselines that
bracket every score (the real training split below, uniform noise above, one class for a collapsed
generator)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from wgan.data import Data, to_uint8_images
from wgan.latents import draw_latents


@dataclass
class Samples:
    """A sample set to score: uint8 images (N, C, H, W) or float points (N, D), with the labels that were
    asked of a conditional generator (None otherwise). `cache` keeps what several metrics share."""

    x: torch.Tensor
    requested_labels: torch.Tensor | None = None
    cache: dict = field(default_factory=dict)

    @property
    def is_points(self) -> bool:
        return self.x.dtype != torch.uint8

    def __len__(self) -> int:
        return self.x.shape[0]


@torch.no_grad()
def generate_samples(generator: nn.Module, num: int, *, device: torch.device | str, seed: int = 0,
                     batch_size: int = 500, labels: torch.Tensor | None = None,
                     truncation: float | None = None, progress: bool = False) -> Samples:
    """`num` samples from `generator` in eval mode (restored afterwards). The same seed gives the same
    noise, so successive evaluations during training differ only by the generator. Conditional
    generators are asked for `labels` (CPU, one per sample), by default every class equally often.
    `truncation` draws the noise within [-truncation, truncation] (wgan.latents). `progress`: a progress bar
    on stderr (100,000 samples take half a minute on a CPU), gone once they are drawn."""
    shape = generator.shape
    gen = torch.Generator().manual_seed(seed)
    z = draw_latents(num, shape.latent_dim, generator=gen, truncation=truncation)
    if labels is None and shape.conditional:
        labels = torch.arange(num) % shape.num_classes
    was_training = generator.training
    generator.eval()
    bar = tqdm(total=num, unit="sample", desc="sampling", disable=not progress or num <= batch_size, leave=False,
               dynamic_ncols=True)
    try:
        chunks = []
        for start in range(0, num, batch_size):
            zi = z[start:start + batch_size].to(device)
            li = None if labels is None else labels[start:start + batch_size].to(device)
            out = generator(zi, li).float()
            chunks.append(out.cpu() if shape.point_dim else to_uint8_images(out).cpu())
            bar.update(len(zi))
    finally:
        bar.close()
        generator.train(was_training)
    return Samples(torch.cat(chunks), labels)


def baseline_samples(train: Data, num: int, *, seed: int = 0) -> dict[str, Samples]:
    """Reference sample sets: `num` real training samples (what a perfect generator would score: the
    floor), `num` uniform noise samples over the data's range (what no generator should score), and for
    labelled data up to `num` training images of one class (a generator collapsed onto one mode)."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(train), generator=gen)[:num]
    real = train.x[idx.to(train.x.device)].cpu()
    if train.is_points:
        lo, hi = train.x.min(0).values.cpu(), train.x.max(0).values.cpu()
        noise = lo + (hi - lo) * torch.rand(num, train.x.shape[1], generator=gen)
    else:
        noise = torch.randint(0, 256, (num, *train.sample_shape), generator=gen, dtype=torch.uint8)
    sets = {f"{train.name} train split ({len(real)} samples) vs test split": Samples(real),
            f"uniform noise ({num} samples) vs test split": Samples(noise)}
    if train.y is not None:
        sets.update(one_class_samples(train, num, seed=seed))
    return sets


def one_class_samples(train: Data, num: int, *, seed: int = 0, label: int = 0) -> dict[str, Samples]:
    """Up to `num` training images of class `label`, drawn without replacement (duplicates would shrink the
    nearest-neighbour balls of the k-NN metrics to nothing): one mode, perfectly drawn."""
    members = (train.y.cpu() == label).nonzero().flatten()
    if len(members) < 2:  # the class is absent from these data: no such baseline
        return {}
    gen = torch.Generator().manual_seed(seed + 1)
    picked = members[torch.randperm(len(members), generator=gen)[:num]]
    name = train.class_names[label] if label < len(train.class_names) else f"class {label}"
    return {f"one class ({name}: {len(picked)} training images) vs test split":
            Samples(train.x[picked.to(train.x.device)].cpu())}
