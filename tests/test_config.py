"""TrainConfig: the presets keep the papers' settings, and validate() refuses every bad option or
combination with one line naming it (property-based), before anything is loaded or built."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from wgan import cli
from wgan.config import LOSSES, OPTIMIZERS, PRECISIONS, PRESETS, TrainConfig, flag, preset_config, validate, validate_model
from wgan.data import DATASETS
from wgan.errors import UserError
from wgan.models import CRITIC_NORMS, MODELS


# --- presets ------------------------------------------------------------------------------------


def test_the_product_presets_exist():
    assert {"quick", "mnist-clip", "fashion-clip", "celeba-clip", "letters-cond-gp", "fashion-gp",
            "paper-gp"} <= set(PRESETS)


@pytest.mark.parametrize("name", [n for n, (_, v) in PRESETS.items() if v.get("dataset", "fashion-mnist") in DATASETS])
def test_every_preset_with_a_registered_dataset_validates(name):
    cfg = preset_config(name)
    assert validate(cfg) is cfg and cfg.preset == name


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"quick"}))
def test_presets_keep_the_papers_hyper_parameters(name):
    cfg = preset_config(name)
    assert cfg.critic_steps == 5 and cfg.model in MODELS
    if cfg.loss == "clip":
        assert (cfg.optimizer, cfg.lr_critic, cfg.lr_generator, cfg.clip_value) == ("rmsprop", 5e-5, 5e-5, 0.01)
        assert cfg.batch_size == 64
    elif cfg.model.startswith("resnet"):  # the ResNets' own code: Adam with beta1 = 0
        assert cfg.optimizer == "adam" and (cfg.adam_beta1, cfg.adam_beta2, cfg.gp_weight) == (0.0, 0.9, 10.0)
        assert cfg.batch_size == 64 and cfg.critic_norm != "batch"
    else:
        assert cfg.optimizer == "adam" and (cfg.adam_beta1, cfg.adam_beta2) == (0.5, 0.9)
        assert cfg.critic_norm != "batch", "no batch norm in a penalised critic"
        if not name.startswith("toy-"):
            assert (cfg.lr_critic, cfg.gp_weight, cfg.batch_size) == (1e-4, 10.0, 64)


def test_the_quick_preset_is_the_measured_cpu_demo():
    """Not a paper's setting but the one measured best on a 2-core CPU in five minutes (docs/levers.md)."""
    c = preset_config("quick")
    assert (c.loss, c.gp_weight, c.critic_norm, c.model, c.width, c.conditional) == \
        ("gp", 10.0, "none", "dcgan28", 32, True)
    assert (c.critic_steps, c.batch_size, c.generator_norm, c.lr_critic, c.lr_generator) == (2, 32, "batch", 8e-4, 8e-4)
    assert c.ema_halflife_kimg == 2.0
    assert (c.penalty_target_norm, c.penalty_every_steps, c.penalty_batch_fraction, c.precision) == (0.0, 1, 1.0, "auto")
    assert (c.adam_beta1, c.adam_beta2, c.max_train_seconds) == (0.5, 0.9, 300.0)
    assert c.steps >= 100000, "the five minutes end the demo, not a step cap a fast CPU reaches first"


def test_the_cifar10_resnet_presets_are_the_papers_code_exactly():
    """gan_cifar_resnet.py: width 128, Adam 2e-4 (0, 0.9), linear decay over 100k generator steps, critic
    batch 64 and generator batch 128, 5 critic steps, lambda 10, no critic normalisation; the conditional
    one with an AC-GAN critic, its loss weighted 1 for the critic and 0.1 for the generator."""
    for name in ("cifar10-resnet-gp", "cifar10-resnet-cond-gp"):
        c = preset_config(name)
        assert (c.model, c.width, c.latent_dim, c.image_size, c.channels) == ("resnet32", 128, 128, 32, 3)
        assert (c.lr_critic, c.lr_generator, c.adam_beta1, c.adam_beta2, c.lr_decay, c.steps) == \
            (2e-4, 2e-4, 0.0, 0.9, "linear", 100000)
        assert (c.batch_size, c.generator_batch_size, c.critic_steps, c.gp_weight, c.critic_norm) == \
            (64, 128, 5, 10.0, "none")
    cond = preset_config("cifar10-resnet-cond-gp")
    assert cond.conditional and cond.critic_conditioning == "acgan"
    assert (cond.acgan_weight_critic, cond.acgan_weight_generator) == (1.0, 0.1)
    faces = preset_config("celeba-resnet-gp")
    assert (faces.model, faces.width, faces.lr_critic, faces.adam_beta1, faces.critic_norm) == \
        ("resnet64", 64, 1e-4, 0.0, "layer")


def test_preset_options_override_and_none_keeps_the_preset():
    cfg = preset_config("fashion-gp", width=8, steps=None)
    assert cfg.width == 8 and cfg.steps == preset_config("fashion-gp").steps
    with pytest.raises(UserError, match="unknown option"):
        preset_config("quick", learning_rate=1.0)


# --- validate(), property-based --------------------------------------------------------------------

POSITIVE_INTS = ("critic_steps", "steps", "batch_size", "latent_dim", "width", "log_every_steps", "eval_num_samples",
                 "keep_checkpoints")
NON_NEGATIVE_INTS = ("sample_every_steps", "checkpoint_every_steps", "eval_every_steps")
LEARNING_RATES = ("lr_critic", "lr_generator")
QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _refused(cfg: TrainConfig, name: str) -> str:
    with pytest.raises(UserError) as err:
        validate(cfg)
    msg = str(err.value)
    assert msg.startswith(flag(name) + " ") and "\n" not in msg
    return msg


@QUICK
@given(name=st.sampled_from(LEARNING_RATES),
       lr=st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(math.nan)))
def test_any_learning_rate_outside_zero_one_is_refused(name, lr):
    _refused(TrainConfig(**{name: lr}), name)


@QUICK
@given(name=st.sampled_from(POSITIVE_INTS), value=st.integers(max_value=0))
def test_any_non_positive_count_is_refused(name, value):
    _refused(TrainConfig(**{name: value}), name)


@QUICK
@given(name=st.sampled_from(NON_NEGATIVE_INTS), value=st.integers(max_value=-1))
def test_any_negative_interval_is_refused(name, value):
    _refused(TrainConfig(**{name: value}), name)


@QUICK
@given(name=st.sampled_from(("adam_beta1", "adam_beta2")),
       value=st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0), st.just(math.nan)))
def test_any_beta_outside_zero_one_is_refused(name, value):
    _refused(TrainConfig(**{name: value}), name)


@QUICK
@given(value=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=12),
       name=st.sampled_from(("dataset", "model", "loss", "optimizer", "precision", "critic_norm")))
def test_any_unknown_name_is_refused(value, name):
    known = {"dataset": DATASETS, "model": MODELS, "loss": LOSSES, "optimizer": OPTIMIZERS,
             "precision": PRECISIONS, "critic_norm": CRITIC_NORMS}[name]
    assume(value not in known)
    msg = _refused(TrainConfig(**{name: value}), name)
    assert value in msg


@QUICK
@given(model=st.sampled_from([m for m in sorted(MODELS) if MODELS[m].image_sizes]),
       size=st.integers(min_value=1, max_value=4096))
def test_any_image_size_a_model_cannot_make_is_refused(model, size):
    assume(size not in MODELS[model].image_sizes)
    msg = _refused(TrainConfig(model=model, image_size=size), "image_size")
    assert f"--image-size {MODELS[model].image_sizes[0]}" in msg


def _valid_configs():
    unit = st.floats(min_value=1e-8, max_value=1.0, exclude_max=True)
    beta = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
    count = st.integers(min_value=1, max_value=10**6)
    interval = st.integers(min_value=0, max_value=10**6)

    @st.composite
    def build(draw):
        loss = draw(st.sampled_from(sorted(LOSSES)))
        dataset = draw(st.sampled_from(sorted(DATASETS)))
        points = DATASETS[dataset].image_size == 0
        model = "mlp" if points else draw(st.sampled_from(sorted(MODELS)))
        norms = [n for n in CRITIC_NORMS if (loss == "clip" and model != "mlp") or n != "batch"]
        sizes = MODELS[model].image_sizes or (8, 28, 64)
        native = DATASETS[dataset].image_size
        values = dict(
            dataset=dataset, model=model,
            loss=loss, critic_norm=draw(st.sampled_from(norms)), optimizer=draw(st.sampled_from(OPTIMIZERS)),
            precision=draw(st.sampled_from(PRECISIONS)), lr_critic=draw(unit), lr_generator=draw(unit),
            adam_beta1=draw(beta), adam_beta2=draw(beta),
            clip_value=draw(st.floats(min_value=1e-6, max_value=1e6)), gp_weight=draw(st.floats(0.0, 1e6)),
            # 0: the dataset's own size, where the model makes it
            image_size=draw(st.sampled_from([*([0] if points or native in sizes else []), *sizes])),
            channels=draw(st.sampled_from([0, 1, 3])),
            device=draw(st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "cuda:3"])),
            **{n: draw(count) for n in POSITIVE_INTS}, **{n: draw(interval) for n in NON_NEGATIVE_INTS},
            grid_samples=draw(st.integers(1, 1024)), seed=draw(st.integers(0, 2**62)),
        )
        return TrainConfig(**values)

    return build()


@QUICK
@given(cfg=_valid_configs())
def test_any_valid_combination_passes_validate(cfg):
    assert validate(cfg) is cfg


@settings(max_examples=25, deadline=None)
@given(cfg=_valid_configs())
def test_command_line_options_reach_the_config_unchanged(cfg):
    """Every config field has a --flag with its unit in the name; parsing the flags rebuilds the config."""
    argv = ["train", "--preset", "custom"]
    for name, value in cfg.to_dict().items():
        if name == "preset" or value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag(name) if value else "--no-" + flag(name)[2:])
        else:
            argv += [flag(name), repr(value) if isinstance(value, float) else str(value)]
    args = cli.build_parser().parse_args(argv)
    parsed = {k: getattr(args, k) for k in cfg.to_dict() if k != "preset"}
    assert TrainConfig(**parsed) == cfg


# --- what a model can be built from: refused before any data are loaded -------------------------


def _refused_config(**values) -> str:
    with pytest.raises(UserError) as err:
        validate(TrainConfig(**values))
    msg = str(err.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("loss", ["gp", "lp"])
def test_batch_norm_critic_with_a_penalty_is_refused(name, loss):
    size = (MODELS[name].image_sizes or (28,))[0]
    msg = _refused_config(model=name, image_size=size, critic_norm="batch", loss=loss)
    assert msg.startswith("--critic-norm batch") and "batch norm" in msg and "--critic-norm layer" in msg


def test_the_mlp_refuses_a_batch_norm_critic_naming_the_option():
    msg = _refused_config(model="mlp", critic_norm="batch", loss="clip", optimizer="rmsprop")
    assert msg.startswith("--critic-norm batch") and "--critic-norm layer" in msg


@pytest.mark.parametrize("name, wrong", [("dcgan28", 32), ("dcgan32", 28), ("dcgan64", 32)])
def test_wrong_image_size_is_refused_with_the_size_to_use(name, wrong):
    right = MODELS[name].image_sizes[0]
    msg = _refused_config(model=name, image_size=wrong)
    assert msg.startswith(f"--image-size {wrong}") and f"{right}x{right}" in msg and f"--image-size {right}" in msg


@pytest.mark.parametrize("dataset, model", [("fashion-mnist", "dcgan64"), ("image-folder", "dcgan28"),
                                            ("cifar10", "dcgan28")])
def test_image_size_zero_is_the_datasets_own_size_and_refused_where_the_model_makes_another(dataset, model):
    """--image-size 0 keeps the dataset's size: refused at once where the model cannot make it, not after
    the data are loaded and the model is built."""
    msg = _refused_config(dataset=dataset, model=model, image_size=0, channels=0)
    assert msg.startswith("--image-size 0") and f"--image-size {MODELS[model].image_sizes[0]}" in msg
    assert validate(TrainConfig(dataset="fashion-mnist", model="dcgan28", image_size=0)).image_size == 0


@pytest.mark.parametrize("model", ["dcgan28", "dcgan32", "dcgan64"])
def test_conv_models_refuse_point_data(model):
    msg = _refused_config(dataset="toy-8gaussians", model=model, image_size=0, channels=0)
    assert msg.startswith(f"--model {model}") and "--model mlp" in msg


def test_the_train_clock_names_are_the_loops_clocks():
    from wgan.config import TRAIN_CLOCKS
    from wgan.training.loop import CLOCKS

    assert tuple(CLOCKS) == TRAIN_CLOCKS
    with pytest.raises(UserError, match="--train-clock sundial: choose one of wall, cpu"):
        validate_model(TrainConfig(train_clock="sundial"))


@pytest.mark.parametrize("option, value, says", [
    ("penalty_every_steps", 0, "--penalty-every-steps 0: must be a whole number >= 1"),
    ("penalty_batch_fraction", 0.0, "--penalty-batch-fraction 0.0: must be a fraction in (0, 1]"),
    ("penalty_batch_fraction", 1.5, "--penalty-batch-fraction 1.5: must be a fraction in (0, 1]"),
    ("penalty_target_norm", -1.0, "--penalty-target-norm -1.0: must be a finite number >= 0"),
])
def test_the_penalty_estimates_refuse_what_they_cannot_mean(option, value, says):
    with pytest.raises(UserError, match=re.escape(says)):
        validate_model(TrainConfig(**{option: value}))
