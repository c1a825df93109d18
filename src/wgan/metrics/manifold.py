"""k-nearest-neighbour manifolds of feature sets: precision and recall (Kynkaanniemi et al. 2019), density
and coverage (Naeem et al. 2020), and plain nearest neighbours; pure maths in batched torch.

Each real sample's ball reaches its k-th nearest real neighbour (itself excluded), each generated sample's its
k-th nearest generated one. Precision is the share of generated samples inside some real ball, recall the
share of real samples inside some generated ball; density counts the real balls around each generated sample
(divided by k; 1 on average when the two sets are alike), coverage is the share of real balls that hold a
generated sample. The comparisons are strict, as in the authors' `prdc` package, which the tests compare with.

The distances are never held whole: 10,000 x 10,000 of them in float64 are 800 MB, and the `prdc`
package holds three such matrices at once. Here they are computed a block of rows at a time, at most
`budget` distances per block, on whichever device the features are on.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch

from wgan.metric_rules import DC_K, PRC_K, min_samples  # the papers' k, declared with the metrics

BLOCK_DISTANCES = 1 << 24  # distances per block: 128 MiB in float64


def _row_blocks(a: torch.Tensor, b: torch.Tensor, budget: int) -> Iterator[tuple[slice, torch.Tensor]]:
    """(rows, distances from a[rows] to every row of b), a block of rows at a time."""
    rows = max(1, budget // max(len(b), 1))
    for start in range(0, len(a), rows):
        block = slice(start, min(start + rows, len(a)))
        yield block, torch.cdist(a[block], b)


def _exact(x: torch.Tensor) -> torch.Tensor:
    """x in float64, where the distance's matrix-product form ||a||^2 + ||b||^2 - 2ab loses nothing that
    matters (in float32 it puts an exact copy of a 784-pixel image 0.004 away); MPS has no float64."""
    return x.float() if x.device.type == "mps" else x.double()


def nearest_neighbours(query: torch.Tensor, reference: torch.Tensor, k: int,
                       budget: int = BLOCK_DISTANCES) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, indices), each (len(query), k): the k rows of `reference` nearest to each query row, nearest
    first. Both sets may be of any numeric dtype (uint8 pixels too): they are made float64 a block at a time,
    so 60,000 training images never sit in memory as float64 at once."""
    if not 1 <= k <= len(reference):
        raise ValueError(f"k = {k} nearest neighbours of {len(reference)} reference points")
    ref_rows = min(len(reference), max(k, budget // 256))
    distances, indices = [], []
    for start in range(0, len(query), max(1, budget // ref_rows)):
        q = _exact(query[start:start + max(1, budget // ref_rows)])
        best_d = best_i = None
        for ref_start in range(0, len(reference), ref_rows):
            d = torch.cdist(q, _exact(reference[ref_start:ref_start + ref_rows]))
            top = torch.topk(d, min(k, d.shape[1]), dim=1, largest=False)
            cand_d, cand_i = top.values, top.indices + ref_start
            if best_d is not None:
                cand_d, cand_i = torch.cat([best_d, cand_d], 1), torch.cat([best_i, cand_i], 1)
            order = torch.topk(cand_d, min(k, cand_d.shape[1]), dim=1, largest=False, sorted=True).indices
            best_d, best_i = cand_d.gather(1, order), cand_i.gather(1, order)
        distances.append(best_d)
        indices.append(best_i)
    return torch.cat(distances), torch.cat(indices)


def kth_neighbour_radii(x: torch.Tensor, k: int, budget: int = BLOCK_DISTANCES) -> torch.Tensor:
    """The distance from each row of x to its k-th nearest other row (the k+1-th nearest counting itself)."""
    if len(x) < min_samples(k):
        raise ValueError(f"{len(x)} samples: k = {k} nearest neighbours need at least {min_samples(k)}")
    return nearest_neighbours(x, x, k + 1, budget)[0][:, k]


def manifold_scores(real: torch.Tensor, fake: torch.Tensor, k: int, budget: int = BLOCK_DISTANCES,
                    real_radii: torch.Tensor | None = None) -> dict[str, float]:
    """precision, recall, density and coverage of `fake` against `real` (features, one row per sample), with
    k-NN balls: one pass over the real-to-generated distances, a block of real rows at a time. `real_radii`
    (kth_neighbour_radii(real, k)) may be given, so a fixed real set's balls are drawn once for many calls."""
    if real_radii is None:
        real_radii = kth_neighbour_radii(real, k, budget)
    fake_radii = kth_neighbour_radii(fake, k, budget)
    balls_around_fake = torch.zeros(len(fake), dtype=torch.long, device=fake.device)
    recalled = covered = 0
    for rows, d in _row_blocks(real, fake, budget):
        inside_real = d < real_radii[rows, None]  # generated j in real i's ball
        balls_around_fake += inside_real.sum(0)
        recalled += int((d < fake_radii[None, :]).any(1).sum())
        covered += int(inside_real.any(1).sum())  # = nearest generated sample inside the ball
    return {"precision": float((balls_around_fake > 0).double().mean()),
            "recall": recalled / len(real),
            "density": float(balls_around_fake.double().mean()) / k,
            "coverage": covered / len(real)}


def percentile_share(values: torch.Tensor, reference: torch.Tensor, q: float) -> tuple[float, float]:
    """(the q-th percentile of `reference`, the share of `values` below it)."""
    threshold = float(torch.quantile(reference.double(), q / 100))
    return threshold, float((values.double() < threshold).double().mean())


def median(values: torch.Tensor) -> float:
    """The median as numpy defines it (the mean of the two middle values for an even count)."""
    return float(torch.quantile(values.double(), 0.5)) if len(values) else math.nan
