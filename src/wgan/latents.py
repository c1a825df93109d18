"""The generator's latent draws: standard normal, optionally truncated (the truncation trick).

Truncation at psi keeps every coordinate in [-psi, psi] by resampling the ones that fall outside
(Brock et al. 2019, BigGAN), rather than clamping them, so the draws follow the normal distribution
restricted to the box and no mass piles up on its faces. Smaller psi trades diversity for fidelity.
"""

from __future__ import annotations

import math

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
    # Each round keeps a coordinate with probability P(|z| <= psi) (0.38 at psi 0.5, 0.08 at psi 0.1), so a few
    # dozen rounds leave nothing outside for any psi a user means; a psi too small for rounds to end (1e-300
    # keeps one draw in 1e300) has the rest drawn from the truncated normal's inverse CDF instead: bounded work.
    for _ in range(RESAMPLING_ROUNDS):
        if not bool(outside.any()):
            return z
        z[outside] = torch.randn(int(outside.sum()), generator=generator)
        outside = z.abs() > truncation
    if bool(outside.any()):
        z[outside] = _truncated_normal(int(outside.sum()), truncation, generator)
    return z


RESAMPLING_ROUNDS = 64


def _truncated_normal(num: int, psi: float, generator: torch.Generator | None) -> torch.Tensor:
    """`num` draws of N(0, 1) restricted to [-psi, psi] by its inverse CDF, in float64: z = sqrt(2) erfinv(u),
    u uniform within +-erf(psi / sqrt(2)); clamped, since float32 rounding may carry a draw just past psi."""
    bound = math.erf(min(psi, 40.0) / math.sqrt(2.0))
    u = (torch.rand(num, generator=generator, dtype=torch.float64) * 2 - 1) * bound
    z = math.sqrt(2.0) * torch.special.erfinv(u)
    return z.clamp_(-psi, psi).float().clamp_(-psi, psi)
