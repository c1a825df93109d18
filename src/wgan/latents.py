"""The generator's latent draws: standard normal, optionally truncated (the truncation trick).

Truncation at psi keeps every coordinate in [-psi, psi] by resampling the ones that fall outside
(Brock et al. 2019, BigGAN), rather than clamping them, so the draws follow the normal distribution
restricted to the box and no mass piles up on its faces. Smaller psi trades diversity for fidelity.
"""

from __future__ import annotations

import torch


def draw_latents(num: int, latent_dim: int, *, generator: torch.Generator | None = None,
                 truncation: float | None = None) -> torch.Tensor:
    """`num` latent vectors (float32, CPU), N(0, I), each coordinate within [-truncation, truncation]
    when truncation is given. The same torch.Generator state gives the same draws."""
    z = torch.randn(num, latent_dim, generator=generator)
    if truncation is None:
        return z
    if not truncation > 0:
        raise ValueError(f"truncation must be > 0, got {truncation}")
    outside = z.abs() > truncation
    # Each round keeps a coordinate with probability P(|z| <= psi) (0.38 at psi 0.5, 0.08 at psi 0.1),
    # so a few dozen rounds leave nothing outside even for tiny psi.
    while bool(outside.any()):
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
        outside = z.abs() > truncation
    return z
