"""An exponential moving average of the generator's weights, sampled and evaluated instead of the
generator itself (StyleGAN2-ADA's G_ema; Yazici et al. 2019 on why averaging helps GANs).

After every generator update, G_ema <- beta G_ema + (1 - beta) G with beta = 0.5 ** (images /
half-life): the weights of the generator `half-life` images ago count half. With a ramp-up, the
half-life is capped at `rampup` times the images seen so far, so early in training, when the
generator changes fastest, the average forgets quickly instead of dragging the initial weights
along. Batch-norm statistics (buffers) are copied from the generator, not averaged.

The update is a few foreach kernels on device tensors (the image count included), with no host
sync, so the CUDA graph of the fast step captures it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA:
    def __init__(self, generator: nn.Module, *, halflife_kimg: float, rampup: float, images_per_step: int):
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self.halflife_images = halflife_kimg * 1000.0
        self.rampup = rampup
        self.images_per_step = images_per_step
        self._targets = list(self.module.parameters())
        self._sources = list(generator.parameters())
        self._target_buffers = list(self.module.buffers())
        self._source_buffers = list(generator.buffers())
        # Images the generator has been trained on: float64 stays exact far past any run's length.
        self.images = torch.zeros((), dtype=torch.float64, device=self._targets[0].device)

    def beta(self) -> torch.Tensor:
        """This update's decay, a device scalar: 0.5 ** (images per step / half-life in images)."""
        halflife = torch.full_like(self.images, self.halflife_images)
        if self.rampup > 0:
            halflife = torch.minimum(halflife, self.images * self.rampup)
        return 0.5 ** (self.images_per_step / halflife.clamp_min(1e-8))

    @torch.no_grad()
    def update(self) -> None:
        weight = (1.0 - self.beta()).to(self._targets[0].dtype)
        # G_ema + w (G - G_ema), lerp's formula: _foreach_lerp_ takes its weight only as a host scalar,
        # which would read the device tensor back (a sync the CUDA graph cannot capture).
        step = torch._foreach_sub(self._sources, self._targets)
        torch._foreach_mul_(step, weight)
        torch._foreach_add_(self._targets, step)
        if self._target_buffers:
            torch._foreach_copy_(self._target_buffers, self._source_buffers)
        self.images.add_(self.images_per_step)

    def state_dict(self) -> dict:
        return {"generator": self.module.state_dict(), "images": float(self.images)}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["generator"])
        self.images.fill_(float(state["images"]))
