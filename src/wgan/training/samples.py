"""The picture of a 2-D point generator's samples: the WGAN-GP paper's toy figure (real and generated points
over the critic's contours). Grids of images are wgan.grids'."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wgan.files import atomic_write, pyplot


def save_points_figure(path: Path, state, fake: torch.Tensor) -> None:
    """The WGAN-GP paper's toy figure: real points, generated points, and the critic's contours."""
    plt = pyplot()
    # Its own generator: drawing from the global one would change the training run's random stream.
    idx = torch.randint(len(state.data), (1000,), generator=torch.Generator().manual_seed(0))
    real = state.data.x[idx.to(state.data.x.device)].float().cpu().numpy()
    fake = fake.float().cpu().numpy()
    lo = np.minimum(real.min(0), fake.min(0)) - 0.5
    hi = np.maximum(real.max(0), fake.max(0)) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 100), np.linspace(lo[1], hi[1], 100))
    grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1)).float().to(state.device)
    with torch.no_grad():
        scores = state.critic(grid).float().cpu().numpy().reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.contour(gx, gy, scores, levels=12, cmap="viridis", linewidths=0.8)
    ax.scatter(real[:, 0], real[:, 1], s=4, c="tab:orange", label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c="tab:green", label="generated")
    ax.set_title(f"step {state.step}")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_aspect("equal")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))  # never through a link in its place
    plt.close(fig)
