"""Files that earlier releases wrote, upgraded to today's layout in this one place, so that every other module
reads one layout only.

- Training checkpoints "wgan-checkpoint-1" (0.1.0): those written before the generator's moving average
  existed hold no "ema", those written before class names were kept no "class_names". Format 2 holds both.
- Exported generators "wgan-generator-1" (0.1.0, the shipped generators among them): those written before
  the moving average hold no "weights" (theirs are the trained generator's), those written before class
  names were kept no "class_names". Format 2 holds both.
- Configs in either (and a run's config.json) lack the options added since they were written: each option
  was added with the default that trains as runs did before it, the moving average's half-life aside,
  which a resumed run of such a checkpoint starts (it says so in its log).
- Classifier caches named before caches were named by their data's content.

An upgrade changes the dict or metadata read into memory, never the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from wgan.data import dataset_class_names
from wgan.errors import UserError
from wgan.file_checks import load_torch_file

# In memory only, never written: what upgrading a checkpoint had to say (a resumed run logs it).
NOTES = "notes"


def upgrade_config(config: dict, defaults: dict) -> dict:
    """`config` with every option it lacks (one added after it was written) at its default in `defaults`,
    TrainConfig's (given by the caller: the classifier cache, read here too, comes before the config)."""
    return {**defaults, **config}


def _dataset_names(config: dict, shape: dict) -> list[str]:
    """The class names of a file written before they were kept: as its dataset names its classes, else by
    number; none for an unconditional generator (or a shape too damaged to say, which its checks refuse)."""
    try:
        num_classes = int(shape.get("num_classes", 0) or 0)
    except (TypeError, ValueError, OverflowError):
        return []
    return dataset_class_names(str(config.get("dataset", "")), num_classes) if num_classes > 0 else []


def _started_average(state: dict, config: dict) -> dict | None:
    """A checkpoint written before the moving average existed, of a config that keeps one (as every such config
    does, by its default): the average starts at the generator, as if after the images trained so far."""
    try:
        if not float(config["ema_halflife_kimg"]) > 0:
            return None
        images_per_step = int(config["batch_size_generator"] or config["batch_size"])
        processes = len(state.get("rng_ranks") or [None])  # "rng_ranks": written by that many processes
        return {"generator": state["generator"], "images": float(int(state["step"]) * images_per_step * processes)}
    except (KeyError, TypeError, ValueError, OverflowError):  # a damaged config: its own checks refuse it later
        return None


def _checkpoint_1(state: dict, config: dict, shape: dict, path: Path) -> list[str]:
    notes = []
    if "ema" not in state:
        state["ema"] = _started_average(state, config)
        if state["ema"] is not None:
            notes.append(f"{path} holds no moving average of the generator: it starts from the generator at step "
                         f"{state['step']}")
    if "class_names" not in state:
        state["class_names"] = _dataset_names(config, shape)
    state["format"] = "wgan-checkpoint-2"
    return notes


# Each old format's upgrade to the next: it changes the state in place and returns what it had to say.
CHECKPOINT_UPGRADES: dict[str, Callable[[dict, dict, dict, Path], list[str]]] = {"wgan-checkpoint-1": _checkpoint_1}


def upgrade_checkpoint(state: dict, config: dict, shape: dict, path: Path) -> dict:
    """A loaded checkpoint of any format in today's layout, with state[NOTES] saying what its upgrade did
    (nothing for a checkpoint of today's format). `config` and `shape`: its own, already read, the config
    with every option (upgrade_config)."""
    notes = []
    while state["format"] in CHECKPOINT_UPGRADES:
        notes += CHECKPOINT_UPGRADES[state["format"]](state, config, shape, path)
    state[NOTES] = notes
    return state


def _generator_1(meta: dict) -> dict:
    upgraded = {"weights": "raw", **meta, "format": "wgan-generator-2"}
    if "class_names" not in meta:
        try:
            config, shape = json.loads(meta["config"]), json.loads(meta["shape"])
        except (KeyError, TypeError, ValueError, RecursionError):  # no wgan metadata: the reader says so
            return upgraded
        if isinstance(config, dict) and isinstance(shape, dict):
            upgraded["class_names"] = json.dumps(_dataset_names(config, shape))
    return upgraded


GENERATOR_UPGRADES: dict[str, Callable[[dict], dict]] = {"wgan-generator-1": _generator_1}


def upgrade_generator_metadata(meta: dict) -> dict:
    """An exported generator's metadata of any format in today's layout (foreign metadata as it is)."""
    while isinstance(meta.get("format"), str) and meta["format"] in GENERATOR_UPGRADES:
        meta = GENERATOR_UPGRADES[meta["format"]](meta)
    return meta


def old_classifier_cache(path: Path, fingerprint: str) -> Path | None:
    """`path`, a classifier cached under the name it had before caches were named by content, if it is one and
    was trained on the data of this fingerprint; None otherwise (absent, damaged or foreign: no classifier)."""
    if not Path(path).is_file():
        return None
    try:
        state = load_torch_file(path, "classifier cache")
    except UserError:
        return None
    return path if isinstance(state, dict) and state.get("fingerprint") == fingerprint else None
