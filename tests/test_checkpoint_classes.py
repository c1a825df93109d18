"""Class names travel with a trained generator: in its checkpoints, in generator.safetensors and in what
`wgan export` writes (files written before they did: test_legacy.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from cli_helpers import TINY, run_cli, train_tiny
from wgan import checkpoint as ckpt
from wgan import exported
from wgan.data.idx import FASHION_CLASSES
from wgan.errors import UserError


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fashion_idx_dir_module) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs"), fashion_idx_dir_module, "--conditional")


@pytest.fixture
def run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / trained.name))


def metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def rewrite_newest(run: Path, change) -> Path:
    """The newest checkpoint, loaded, changed by `change(state)` and written back as training writes it."""
    path = ckpt.list_checkpoints(run / "checkpoints")[-1]
    state = torch.load(path, weights_only=True)
    change(state)
    ckpt.save_checkpoint(path, state)
    return path


def test_checkpoints_and_exports_hold_the_class_names(trained, tmp_path):
    state = ckpt.load_checkpoint(ckpt.list_checkpoints(trained / "checkpoints")[-1])
    assert state["class_names"] == FASHION_CLASSES
    assert json.loads(metadata(trained / "generator.safetensors")["class_names"]) == FASHION_CLASSES
    code, _, err = run_cli("export", "--run", trained, "--out", tmp_path / "G.safetensors")
    assert code == 0, err
    assert json.loads(metadata(tmp_path / "G.safetensors")["class_names"]) == FASHION_CLASSES
    assert exported.load_generator(tmp_path / "G.safetensors").class_names == FASHION_CLASSES


def test_an_unconditional_generator_has_no_class_names(tmp_path, fashion_idx_dir):
    code, _, err = run_cli("train", *TINY, "--data", fashion_idx_dir, "--runs-dir", tmp_path / "runs", "--steps", "1")
    assert code == 0, err
    (run,) = (tmp_path / "runs").iterdir()
    assert exported.load_generator(run).class_names == []
    assert json.loads(metadata(run / "generator.safetensors")["class_names"]) == []


@pytest.mark.parametrize("names, needle", [(["a", "b"], "2 class names for 10 classes"),
                                           ("T-shirt", "not a list of strings")])
def test_edited_class_names_are_refused_naming_the_file(run, names, needle):
    path = rewrite_newest(run, lambda state: state.update(class_names=names))
    with pytest.raises(UserError, match=needle) as info:
        exported.load_generator(run)
    assert str(path) in str(info.value)
    code, _, err = run_cli("sample", "--run", run, "--num", "2", "--out", run / "x.npz")
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (run / "x.npz").exists()


def test_unreadable_class_names_in_an_export_are_refused(trained, tmp_path):
    from safetensors.torch import load_file, save_file

    meta = metadata(trained / "generator.safetensors")
    bad = tmp_path / "bad.safetensors"
    save_file(load_file(trained / "generator.safetensors"), bad, metadata={**meta, "class_names": "[not json"})
    with pytest.raises(UserError, match="unreadable class names"):
        exported.load_generator(bad)
