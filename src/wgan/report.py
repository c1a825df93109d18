"""Pictures and curves of a run, rebuilt from its directory at any time (also mid-training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill mid-write
    return records


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Exponential moving average, bias-corrected so the first points are not pulled to zero."""
    if len(values) == 0:
        return values
    alpha = 2.0 / (max(window, 1) + 1.0)
    out = np.empty_like(values, dtype=float)
    acc, norm = 0.0, 0.0
    for i, v in enumerate(values):
        acc = (1 - alpha) * acc + alpha * v
        norm = (1 - alpha) * norm + alpha
        out[i] = acc / norm
    return out


def plot_losses(records: list[dict], path: Path) -> bool:
    train = [r for r in records if "loss_critic" in r]
    if not train:
        return False
    plt = _mpl()
    steps = np.array([r["step"] for r in train])
    window = max(1, len(train) // 30)
    fig, (ax1, ax3) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    ax2 = ax1.twinx()
    for ax, key, color, label in ((ax1, "loss_generator", "tab:blue", "generator loss"),
                                  (ax2, "loss_critic", "tab:red", "critic loss")):
        v = np.array([r[key] for r in train], dtype=float)
        ax.plot(steps, v, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, smooth(v, window), color=color, label=label, linewidth=1.6)
        ax.set_ylabel(label, color=color)
        ax.tick_params(axis="y", labelcolor=color)
    ax1.set_title("Generator and critic loss")
    w = np.array([r["wasserstein"] for r in train], dtype=float)
    ax3.plot(steps, w, color="tab:green", alpha=0.25, linewidth=0.8)
    ax3.plot(steps, smooth(w, window), color="tab:green", linewidth=1.6, label="critic's W estimate E[D(x)] - E[D(G(z))]")
    exact = [r for r in records if "w1_exact" in r]
    if exact:
        ax3.plot([r["step"] for r in exact], [r["w1_exact"] for r in exact], "o-", color="black", markersize=3,
                 label="exact W1 (POT)")
    pen = np.array([r.get("penalty", 0.0) for r in train], dtype=float)
    if np.any(pen != 0):
        ax4 = ax3.twinx()
        ax4.plot(steps, smooth(pen, window), color="tab:purple", linewidth=1.0, label="gradient penalty")
        ax4.set_ylabel("penalty", color="tab:purple")
        ax4.tick_params(axis="y", labelcolor="tab:purple")
    ax3.set_ylabel("Wasserstein estimate")
    ax3.set_xlabel("generator step")
    ax3.legend(loc="upper right", fontsize=8)
    ax3.set_title("Wasserstein estimate and penalty")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def sample_frames(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / "samples").glob("step-*.png"))


def make_timelapse(frames: list[Path], path: Path, frame_ms: int = 250, last_frame_ms: int = 2000) -> bool:
    """One GIF frame per sample grid, in order, with the step number burnt in; loops forever."""
    if not frames:
        return False
    from PIL import Image, ImageDraw

    images = []
    for frame in frames:
        img = Image.open(frame).convert("RGB")
        step = int(frame.stem.split("-")[1])
        banner = Image.new("RGB", (img.width, 18), "white")
        ImageDraw.Draw(banner).text((4, 3), f"step {step}", fill="black")
        canvas = Image.new("RGB", (img.width, img.height + 18), "white")
        canvas.paste(banner, (0, 0))
        canvas.paste(img, (0, 18))
        images.append(canvas.quantize(colors=255))
    durations = [frame_ms] * (len(images) - 1) + [last_frame_ms]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False,
                   disposal=1)
    return True


def save_points_figure(path: Path, trainer, fake) -> None:
    """The WGAN-GP paper's toy figure: real points, generated points, and the critic's contours."""
    import torch

    plt = _mpl()
    real = trainer.data.x[torch.randint(len(trainer.data), (1000,), device=trainer.data.x.device)].float().cpu().numpy()
    fake = fake.float().cpu().numpy()
    lo = np.minimum(real.min(0), fake.min(0)) - 0.5
    hi = np.maximum(real.max(0), fake.max(0)) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 100), np.linspace(lo[1], hi[1], 100))
    grid = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1)).float().to(trainer.device)
    with torch.no_grad():
        scores = trainer.critic(grid).float().cpu().numpy().reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.contour(gx, gy, scores, levels=12, cmap="viridis", linewidths=0.8)
    ax.scatter(real[:, 0], real[:, 1], s=4, c="tab:orange", label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=4, c="tab:green", label="generated")
    ax.set_title(f"step {trainer.step}")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_report(run_dir: Path) -> dict[str, Path]:
    """Rebuild losses.png and timelapse.gif from the run directory; returns what was written."""
    run_dir = Path(run_dir)
    written = {}
    records = read_metrics(run_dir)
    if plot_losses(records, run_dir / "losses.png"):
        written["losses"] = run_dir / "losses.png"
    if make_timelapse(sample_frames(run_dir), run_dir / "timelapse.gif"):
        written["timelapse"] = run_dir / "timelapse.gif"
    return written
