"""The Wasserstein GAN objectives as small pure functions.

Sign convention: the critic D maximises E[D(real)] - E[D(fake)], so its loss to *minimise* is
E[D(fake)] - E[D(real)]; the generator minimises -E[D(G(z))].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return fake_scores.mean() - real_scores.mean()


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def class_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The AC-GAN auxiliary loss: cross-entropy of the critic's class logits against the labels (Odena et
    al. 2017). The critic minimises it on real images, the generator on its own (the WGAN-GP paper's code)."""
    return F.cross_entropy(logits, labels)


def wasserstein_estimate(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """The critic's estimate of W1 (up to the Lipschitz constant): E[D(real)] - E[D(fake)]."""
    return real_scores.mean() - fake_scores.mean()


def upcast(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast) results as fp32, for losses and the penalty; fp32 and fp64 stay as they are."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """x_hat = eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample (Algorithm 1, line 4)."""
    if eps is None:
        eps = torch.rand(real.shape[0], device=real.device, dtype=real.dtype)
    eps = eps.reshape(-1, *([1] * (real.dim() - 1)))
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    one_sided: bool = False,
    eps: torch.Tensor | None = None,
    target_norm: float = 1.0,
) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates (WGAN-GP); one-sided: max(0, .)^2 (WGAN-LP).
    `target_norm` 0: E[||grad||^2], the zero-centred penalty (Thanh-Tung et al. 2019).

    The norm runs over every non-batch dimension. The graph is kept (create_graph=True) so the
    penalty's gradient reaches the critic's parameters: this is a double backward, which is why the
    penalty must never sit inside a torch.compile region.
    """
    x_hat = interpolate(upcast(real.detach()), upcast(fake.detach()), eps).requires_grad_(True)
    scores = critic(x_hat) if labels is None else critic(x_hat, labels)
    (grad,) = torch.autograd.grad(upcast(scores).sum(), x_hat, create_graph=True)
    # Where the critic ran under bf16 autocast, the norm of its input gradient is still taken in fp32:
    # it is compared with 1, and bf16 keeps only 3 significant digits.
    with torch.autocast(grad.device.type, enabled=False):
        return penalty_from_gradient(upcast(grad), one_sided=one_sided, target_norm=target_norm)


def penalty_from_gradient(grad: torch.Tensor, *, one_sided: bool = False, target_norm: float = 1.0) -> torch.Tensor:
    """(||g|| - t)^2 (or max(0, ||g|| - t)^2) averaged over the batch, the norm over all non-batch dims;
    t = target_norm, 1 for WGAN-GP."""
    squared = grad.flatten(1).pow(2).sum(dim=1)
    if target_norm == 0:  # ||g||^2 itself: no square root, whose gradient at g = 0 is undefined
        return squared.mean()
    # The tiny constant keeps sqrt differentiable where the gradient is exactly zero.
    norm = torch.sqrt(squared + 1e-12)
    excess = norm - target_norm
    if one_sided:
        excess = excess.clamp(min=0.0)
    return excess.pow(2).mean()


@torch.no_grad()
def clip_weights(critic: nn.Module, clip_value: float) -> None:
    """Clamp every critic parameter to [-c, c]. Call *after* the critic's optimizer step."""
    params = [p for p in critic.parameters()]
    # one fused kernel pair for all parameters instead of two per tensor
    torch._foreach_clamp_min_(params, -clip_value)
    torch._foreach_clamp_max_(params, clip_value)
