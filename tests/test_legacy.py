"""Files that 0.1.0 wrote load through legacy.py's upgrades: every layout of its training checkpoints and exported
generators, its configs without the options added since, and its classifier caches of the name before caches were
named by content. Each fixture is written here the way the code of its time wrote it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from cli_helpers import run_cli, train_tiny
from wgan import checkpoint as ckpt
from wgan import exported, legacy, rundir
from wgan.config import TrainConfig
from wgan.data.core import Data
from wgan.data.idx import FASHION_CLASSES
from wgan.errors import UserError
from wgan.metrics import classifier

# The options and model shape fields 0.1.0 had before the generator's moving average was added (commit dde0656).
BEFORE_THE_AVERAGE = ("preset dataset data image_size channels conditional skip_bad_images model latent_dim width "
                      "critic_norm loss clip_value gp_weight optimizer lr_critic lr_generator adam_beta1 adam_beta2 "
                      "batch_size critic_steps critic_steps_boosted boost_first_steps boost_every_steps steps "
                      "log_every_steps sample_every_steps checkpoint_every_steps keep_checkpoints eval_every_steps "
                      "eval_metrics eval_num_samples inception_weights grid_samples seed device precision fast "
                      "deterministic runs_dir tensorboard").split()
SHAPE_BEFORE_THE_AVERAGE = ("channels", "image_size", "latent_dim", "width", "num_classes", "critic_norm", "point_dim")


# The models of then: without the generator's batch norm, which came later (and which the quick preset adds).
THEN = ("--generator-norm", "none")


@pytest.fixture(scope="module")
def conditional(tmp_path_factory, fashion_idx_dir_module) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs-cond"), fashion_idx_dir_module, "--conditional", *THEN)


@pytest.fixture(scope="module")
def unconditional(tmp_path_factory, fashion_idx_dir_module) -> Path:
    return train_tiny(tmp_path_factory.mktemp("runs"), fashion_idx_dir_module, *THEN)


def _copy(run: Path, tmp_path: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


def _before_the_average(config: dict) -> dict:
    return {k: v for k, v in config.items() if k in BEFORE_THE_AVERAGE}


def write_format_1(run: Path, average: bool = True, class_names: bool = True, edit=None) -> Path:
    """The run's newest checkpoint rewritten as 0.1.0 wrote it: format 1; before the moving average (no "ema",
    the options and shape fields of then, config.json too) and before class names were kept (no "class_names")."""
    path = ckpt.list_checkpoints(run / rundir.CHECKPOINTS)[-1]
    state = torch.load(path, weights_only=True)
    state["format"] = "wgan-checkpoint-1"
    if not average:
        del state["ema"]
        state["config"] = json.dumps(_before_the_average(json.loads(state["config"])))
        state["shape"] = json.dumps({k: v for k, v in json.loads(state["shape"]).items()
                                     if k in SHAPE_BEFORE_THE_AVERAGE})
        (run / rundir.CONFIG).write_text(json.dumps(_before_the_average(rundir.read_config(run)), indent=2))
    if not class_names:
        del state["class_names"]
    if edit:
        edit(state)
    torch.save(state, path)
    return path


# ---------------------------------------------------------------------------------------------
# Training checkpoints


def test_a_checkpoint_of_the_last_format_1_layout_resumes_exactly_as_today_s(unconditional, tmp_path):
    ours, old = _copy(unconditional, tmp_path, "ours"), _copy(unconditional, tmp_path, "old")
    path = write_format_1(old)
    state = ckpt.load_checkpoint(path)
    assert state["format"] == ckpt.FORMAT and state[legacy.NOTES] == []
    for run in (ours, old):
        code, _, err = run_cli("train", "--resume", run, "--steps", "3")
        assert code == 0, err
    a, b = (ckpt.load_checkpoint(run / rundir.CHECKPOINTS / rundir.checkpoint_name(3)) for run in (ours, old))
    assert b["format"] == ckpt.FORMAT
    for key in ("generator", "critic"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert all(torch.equal(a["ema"]["generator"][k], b["ema"]["generator"][k]) for k in a["ema"]["generator"])


def test_a_checkpoint_written_before_the_average_resumes_and_starts_one(unconditional, tmp_path):
    run = _copy(unconditional, tmp_path)
    path = write_format_1(run, average=False, class_names=False)
    state = ckpt.load_checkpoint(path)
    assert state["ema"]["images"] == 2 * 8  # as if averaged over the images of its 2 steps of batch 8
    assert all(state["ema"]["generator"][k] is v for k, v in state["generator"].items())
    assert state["class_names"] == []
    code, _, err = run_cli("train", "--resume", run, "--steps", "3")
    assert code == 0, err
    assert "holds no moving average of the generator: it starts from the generator at step 2" in \
        (run / rundir.LOG).read_text()
    resumed = ckpt.load_checkpoint(run / rundir.CHECKPOINTS / rundir.checkpoint_name(3))
    assert resumed["ema"]["images"] == 3 * 8 and resumed["format"] == ckpt.FORMAT and resumed[legacy.NOTES] == []


def test_a_checkpoint_written_before_the_average_samples_its_generator(unconditional, tmp_path):
    run = _copy(unconditional, tmp_path)
    path = write_format_1(run, average=False, class_names=False)
    loaded, trained = exported.load_generator(path), ckpt.load_checkpoint(path)["generator"]
    assert all(torch.equal(v, trained[k]) for k, v in loaded.generator.state_dict().items())
    assert loaded.step == 2 and loaded.weights == "ema"  # its average, which starts at the generator


def test_a_checkpoint_written_before_class_names_were_kept_names_them_as_its_dataset(conditional, tmp_path):
    run = _copy(conditional, tmp_path)
    path = write_format_1(run, class_names=False)
    assert ckpt.load_checkpoint(path)["class_names"] == FASHION_CLASSES
    assert exported.load_generator(run).class_names == FASHION_CLASSES


def test_an_old_checkpoint_of_an_image_folder_numbers_its_classes(conditional, tmp_path):
    run = _copy(conditional, tmp_path)

    def as_folder_run(state):
        state["config"] = json.dumps({**json.loads(state["config"]), "dataset": "image-folder"})
    write_format_1(run, class_names=False, edit=as_folder_run)
    (run / "config.json").write_text(json.dumps({**rundir.read_config(run), "dataset": "image-folder"}))
    assert exported.load_generator(run).class_names == [str(i) for i in range(10)]


def test_an_option_the_checkpoint_predates_given_at_its_default_is_no_change(unconditional, tmp_path):
    run = _copy(unconditional, tmp_path)
    write_format_1(run, average=False)
    point = ckpt.open_checkpoint(run)
    assert "lr_decay" not in point.config
    assert ckpt.resume_config(point, {"lr_decay": "none", "steps": 5}).steps == 5
    with pytest.raises(UserError, match="--lr-decay linear: .* was trained with 'none'; on resume only"):
        ckpt.resume_config(point, {"lr_decay": "linear"})


def test_today_s_format_holds_the_average_and_the_class_names(unconditional, tmp_path):
    run = _copy(unconditional, tmp_path)
    path = ckpt.list_checkpoints(run / rundir.CHECKPOINTS)[-1]
    state = torch.load(path, weights_only=True)
    assert state["format"] == ckpt.FORMAT and legacy.NOTES not in state  # never written
    del state["ema"]
    torch.save(state, path)
    with pytest.raises(UserError, match="incomplete wgan checkpoint .missing ema."):
        ckpt.load_checkpoint(path)
    torch.save({**state, "format": "wgan-checkpoint-3"}, path)
    with pytest.raises(UserError, match=f"not a wgan checkpoint .format {ckpt.FORMAT} expected"):
        ckpt.load_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# Exported generators


def _tensors_and_metadata(path: Path) -> tuple[dict, dict]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def _format_1_export(generator: Path, out: Path, average: bool, class_names: bool) -> Path:
    """`generator` as 0.1.0's `wgan export` wrote it: format 1, and before the average only its format, config,
    shape and step, or with "weights" but before class names were kept."""
    tensors, meta = _tensors_and_metadata(generator)
    meta["format"] = "wgan-generator-1"
    if not average:
        meta = {"format": meta["format"], "config": json.dumps(_before_the_average(json.loads(meta["config"]))),
                "shape": json.dumps({k: v for k, v in json.loads(meta["shape"]).items()
                                     if k in SHAPE_BEFORE_THE_AVERAGE}), "step": meta["step"]}
    elif not class_names:
        del meta["class_names"]
    save_file(tensors, str(out), metadata=meta)
    return out


@pytest.mark.parametrize("average, class_names", [(False, False), (True, False), (True, True)])
def test_every_format_1_export_loads_and_samples_as_today_s(conditional, tmp_path, average, class_names):
    today = conditional / rundir.GENERATOR
    old = _format_1_export(today, tmp_path / "old.safetensors", average, class_names)
    a, b = exported.load_generator(today), exported.load_generator(old)
    assert b.class_names == FASHION_CLASSES and b.step == a.step == 2
    assert b.weights == ("ema" if average else "raw")  # written before averaging: the trained generator's
    assert all(torch.equal(v, a.generator.state_dict()[k]) for k, v in b.generator.state_dict().items())
    z, labels = torch.randn(6, 16, generator=torch.Generator().manual_seed(0)), torch.arange(6) % 10
    with torch.no_grad():
        assert torch.equal(a.generator(z, labels), b.generator(z, labels))


def test_an_export_of_today_s_format_says_which_weights_and_classes_it_holds(conditional, tmp_path):
    tensors, meta = _tensors_and_metadata(conditional / rundir.GENERATOR)
    assert meta["format"] == exported.GENERATOR_FORMAT
    for key, needle in (("weights", "which weights it holds"), ("class_names", "unreadable class names")):
        crafted = tmp_path / f"no-{key}.safetensors"
        save_file(tensors, str(crafted), metadata={k: v for k, v in meta.items() if k != key})
        with pytest.raises(UserError, match=needle):
            exported.load_generator(crafted)


def test_an_unconditional_export_with_no_class_names_given_holds_none(unconditional, tmp_path):
    loaded = exported.load_generator(unconditional)
    out = tmp_path / "G.safetensors"
    exported.save_generator(out, loaded.generator.state_dict(), loaded.config.to_dict(),
                            loaded.generator.shape.__dict__, None)
    assert _tensors_and_metadata(out)[1]["class_names"] == "[]" and exported.load_generator(out).step is None


# ---------------------------------------------------------------------------------------------
# Configs and classifier caches


def test_a_config_without_the_options_added_since_has_their_defaults():
    current = TrainConfig().to_dict()
    older = _before_the_average(current)
    assert legacy.upgrade_config(older, current) == current
    assert ckpt.config_differences(older, {**current, "ema_halflife_kimg": 0.0}) == ["ema_halflife_kimg 10.0 vs 0.0"]


def _tiny_data(seed: int) -> Data:
    x = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    return Data("fashion", x, torch.arange(16) % 10, 10)


def test_a_classifier_cached_under_its_old_name_is_used_for_its_own_data_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = _tiny_data(0)
    old = tmp_path / "wgan" / "classifiers" / "fashion-1x28x28.pt"  # the name before caches were named by content
    old.parent.mkdir(parents=True)
    clf = classifier.Classifier(classifier.SmallCNN(1, 10), "fashion", 28, 1, 10, 0.5,
                                classifier.data_fingerprint(data))
    classifier.save_classifier(clf, old)
    assert classifier.find_classifier(data) == old
    assert classifier.load_classifier(old, data).fingerprint == clf.fingerprint
    assert classifier.find_classifier(_tiny_data(1)) is None  # other data: never theirs
    old.write_bytes(old.read_bytes()[:100])  # damaged: as good as none
    assert classifier.find_classifier(data) is None
