"""The tables `wgan presets` and `wgan datasets` print, and what `wgan datasets --check` found."""

from __future__ import annotations

from wgan.config import PRESETS, preset_config
from wgan.files import user_cache_dir


def presets_table() -> str:
    """Every preset, one row each: its dataset, model, loss, optimiser, learning rates, critic steps, batch,
    steps and what it is."""
    wide = max(map(len, PRESETS))
    rows = [f"{'preset':<{wide}} {'dataset':<15} {'model':<8} {'loss':<5} {'optimizer':<9} {'lr (C/G)':<15} "
            f"{'n_critic':<8} {'batch':<6} {'steps':<7} description"]
    for name, (description, _) in PRESETS.items():
        c = preset_config(name)
        reg = f"c={c.clip_value}" if c.loss == "clip" else f"lambda={c.gp_weight}"
        lr = f"{c.lr_critic:g}/{c.lr_generator:g}"
        rows.append(f"{name:<{wide}} {c.dataset:<15} {c.model:<8} {c.loss:<5} {c.optimizer:<9} "
                    f"{lr:<15} {c.critic_steps:<8} {c.batch_size:<6} {c.steps:<7} "
                    f"{description} ({reg}{', conditional' if c.conditional else ''})")
    return "\n".join(rows)


def datasets_table() -> str:
    """Every dataset: its shape, classes, description and files; then where files are looked for."""
    from wgan.data import DATASETS  # imports torch: not for `wgan presets`

    rows = [f"{'dataset':<16} {'shape':<12} {'classes':<8} description"]
    for name, entry in DATASETS.items():
        shape = f"{entry.channels}x{entry.image_size}x{entry.image_size}" if entry.image_size else "2-D points"
        classes = "folders" if entry.num_classes < 0 else (entry.num_classes or "-")
        rows.append(f"{name:<16} {shape:<12} {classes:<8} {entry.description}")
        if entry.files:
            rows.append(f"{'':<16} {'':<12} {'':<8} files: {entry.files}")
    rows.append("\nFiles are looked for in --data PATH alone when it is given, else in $WGAN_DATA[/NAME], "
                f"{user_cache_dir() / 'NAME'}, /usr/share/datasets/NAME; then torchvision downloads them (network; "
                "not with $WGAN_OFFLINE) into --data PATH or the user cache.\nImage datasets are resized to the "
                "model's --image-size and converted to its --channels (grayscale <-> RGB).")
    return "\n".join(rows)


def check_dataset(name: str, split: str = "train", **load_options) -> str:
    """Load dataset `name` (load_dataset's options) and say what was found: samples, shape, classes, source."""
    from wgan.data import load_dataset

    data = load_dataset(name, split=split, **load_options)
    classes = f"{data.num_classes} classes" if data.num_classes else "no labels"
    lines = [f"{name} ({split}): {len(data)} samples of shape {tuple(data.sample_shape)} ({data.x.dtype}), "
             f"{classes}, from {data.source}"]
    lines += [f"  note: {note}" for note in data.notes]
    return "\n".join(lines)
