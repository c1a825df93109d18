"""Does the generator copy its training images? Nearest neighbours in the training split, and a verdict.

Each generated sample's nearest training image is compared with each held-out real image's (the test split,
which the generator never saw): a generator that draws new images of the same kind sits about as far from
the training set as held-out images do; one that copies sits closer. The numbers: the median nearest-
neighbour distance of each, and the share of generated samples closer to the training set than the 5th
percentile of held-out images (5% for samples as novel as real images; far more for copies). The picture
puts samples beside their nearest training images, so that copies can be seen.

Distances are in the domain classifier's features (what it tells apart, as FCD sees it) or in pixels.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from wgan import rundir
from wgan.errors import UserError
from wgan.files import atomic_write, pyplot
from wgan.grids import make_grid, save_png
from wgan.metrics.base import MetricUnavailable
from wgan.metrics.evaluator import Evaluator
from wgan.metrics.samples import Samples
from wgan.metrics.manifold import median, nearest_neighbours, percentile_share

NEIGHBOURS_SHOWN = 3  # training images beside each sample in the picture
HELD_OUT_PERCENTILE = 5.0
# Memorisation is called when more than twice the held-out share of samples (5%) sit that close: about 25
# standard errors above 5% for 10,000 samples, and still 4 for 500.
SUSPECT_SHARE = 2 * HELD_OUT_PERCENTILE / 100


def _classifier_space(ev: Evaluator, x: torch.Tensor) -> torch.Tensor:
    try:
        features, _ = ev.classifier().run(x, ev.device)
    except MetricUnavailable as exc:
        raise UserError(f"--neighbours-space classifier: {exc}; --neighbours-space pixel needs no classifier") from None
    return ev.as_tensor(features)


def _pixel_space(ev: Evaluator, x: torch.Tensor) -> torch.Tensor:
    # kept uint8: nearest_neighbours makes a block at a time float64, where 60,000 images would be 376 MB
    return x.flatten(1).to(ev.device)


# space -> (features of uint8 images, the factor that turns their distances into the unit named, description)
SPACES: dict[str, tuple[Callable[[Evaluator, torch.Tensor], torch.Tensor], float, str]] = {
    "classifier": (_classifier_space, 1.0, "the domain classifier's features"),
    "pixel": (_pixel_space, 1 / 255, "pixels scaled to [0, 1]"),
}


def prepare_space(ev: Evaluator, space: str) -> None:
    """Build what distances in `space` need (the classifier, trained now if none is cached), so that a
    missing one stops the command before any sample is drawn."""
    SPACES[space][0](ev, ev.test_data().x[:1])


@dataclass(frozen=True)
class NeighbourCheck:
    """What the check found; `record` of it goes to neighbours-SPACE.json."""

    space: str
    samples: int
    held_out: int
    train_images: int
    median_generated: float
    median_held_out: float
    held_out_p5: float
    share_below_p5: float
    memorisation: bool
    verdict: str


@dataclass(frozen=True)
class Neighbours:
    check: NeighbourCheck
    shown: torch.Tensor  # uint8 (shown, 1 + NEIGHBOURS_SHOWN, C, H, W): each sample, then its nearest training images
    shown_distances: torch.Tensor  # (shown, NEIGHBOURS_SHOWN)
    generated_distances: torch.Tensor  # nearest training image of every sample
    held_out_distances: torch.Tensor  # nearest training image of every held-out image


def verdict(median_generated: float, median_held_out: float, share: float) -> tuple[bool, str]:
    """(memorisation suspected, the sentence that says so, with the numbers)."""
    numbers = (f"median distance to the nearest training image {median_generated:.4g} for generated samples, "
               f"{median_held_out:.4g} for held-out real images; {share:.1%} of generated samples are closer than "
               f"the {HELD_OUT_PERCENTILE:g}th percentile of held-out images (about {HELD_OUT_PERCENTILE:g}% if "
               "they are as new as real images)")
    if share > SUSPECT_SHARE:
        return True, f"memorisation suspected: samples sit closer to the training set than held-out images do ({numbers})"
    if median_generated < median_held_out:
        return False, ("no sign of copying: samples sit somewhat closer to the training set than held-out images, "
                       f"without an excess of near-copies ({numbers})")
    return False, f"no sign of memorisation: samples sit no closer to the training set than held-out images ({numbers})"


def find_neighbours(ev: Evaluator, samples: Samples, *, space: str, shown: int) -> Neighbours:
    """The check of `samples` against the evaluator's training split, with as many held-out test images
    (fewer where the split is smaller); the first `shown` samples and their neighbours for the picture."""
    features, unit, _ = SPACES[space]
    train, test = ev.train_data(), ev.test_data()
    train_x = train.x.cpu()
    reference = features(ev, train_x)
    held = ev.test_subset(min(len(samples), len(test)))
    gen_d, gen_i = nearest_neighbours(features(ev, samples.x), reference, NEIGHBOURS_SHOWN)
    held_d, _ = nearest_neighbours(features(ev, test.x.cpu()[held]), reference, 1)
    gen_d, held_d = gen_d.cpu() * unit, held_d[:, 0].cpu() * unit
    p5, share = percentile_share(gen_d[:, 0], held_d, HELD_OUT_PERCENTILE)
    med_gen, med_held = median(gen_d[:, 0]), median(held_d)
    memorised, sentence = verdict(med_gen, med_held, share)
    check = NeighbourCheck(space, len(samples), len(held), len(train), med_gen, med_held, p5, share, memorised,
                           sentence)
    n = min(shown, len(samples))
    rows = torch.cat([samples.x[:n, None], train_x[gen_i[:n].cpu()]], dim=1)
    return Neighbours(check, rows, gen_d[:n], gen_d[:, 0], held_d)


def save_picture(path: Path, rows: torch.Tensor) -> None:
    """Each sample (left), a gap, then its nearest training images, nearest first: one sample a row."""
    n, cols = rows.shape[:2]
    left = make_grid(rows[:, 0], nrow=1, padding=2, pad_value=255, one_unpadded=False)
    right = make_grid(rows[:, 1:].flatten(0, 1), nrow=cols - 1, padding=2, pad_value=255, one_unpadded=False)
    gap = torch.full((left.shape[0], left.shape[1], 6), 255, dtype=torch.uint8)
    gap[:, :, 2:4] = 160  # a grey rule between the samples and their neighbours
    picture = torch.cat([left, gap, right], dim=2)
    atomic_write(path, lambda f: save_png(f, picture))


def plot_distances(path: Path, found: Neighbours, space_description: str) -> None:
    """Histograms of the nearest-training-image distance of generated and of held-out images."""
    plt = pyplot()
    c = found.check
    gen, held = found.generated_distances.double().numpy(), found.held_out_distances.double().numpy()
    fig, ax = plt.subplots(figsize=(8, 4))
    bins = torch.linspace(0, float(max(gen.max(), held.max())) * 1.02 + 1e-12, 50).numpy()
    ax.hist(held, bins=bins, density=True, alpha=0.5, color="tab:blue", label=f"held-out real (test split, {c.held_out:,})")
    ax.hist(gen, bins=bins, density=True, alpha=0.5, color="tab:orange", label=f"generated ({c.samples:,})")
    ax.axvline(c.median_held_out, color="tab:blue", linestyle="--", label=f"median held-out {c.median_held_out:.3g}")
    ax.axvline(c.median_generated, color="tab:orange", linestyle="--", label=f"median generated {c.median_generated:.3g}")
    ax.axvline(c.held_out_p5, color="black", linestyle=":",
               label=f"{HELD_OUT_PERCENTILE:g}th pct held-out: {c.share_below_p5:.1%} of generated below")
    ax.set_xlabel(f"distance to the nearest of {c.train_images:,} training images ({space_description})")
    ax.set_ylabel("density")
    ax.set_title("memorisation suspected" if c.memorisation else "no sign of memorisation", loc="left", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def write_neighbours(run_dir: Path, found: Neighbours, step: int | None) -> dict[str, Path]:
    """The picture, the distance plot and the record, in the run directory; returns their paths."""
    files = {key: Path(run_dir) / name for key, name in rundir.neighbour_files(found.check.space).items()}
    save_picture(files["picture"], found.shown)
    plot_distances(files["distances"], found, SPACES[found.check.space][2])
    record = {"step": step, **asdict(found.check),
              "shown_nearest_distances": [[round(float(d), 6) for d in row] for row in found.shown_distances]}
    atomic_write(files["record"], lambda f: f.write((json.dumps(record, indent=2) + "\n").encode()))
    return files
