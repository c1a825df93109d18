"""Every list of options a user reads (a --help text, a refusal, a listing) shows every entry of the registry
it comes from: an entry added to a registry and missing from its help or its error fails here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from wgan import choices, claim_options, claims, cli, config, listings, metric_rules
from wgan.config import PRESETS, TrainConfig, validate
from wgan.data import DATASETS
from wgan.errors import UserError
from wgan.metrics import METRICS
from wgan.models import MODELS


def option_help(capsys, monkeypatch, command: str, option: str) -> str:
    """The help of one option of `wgan COMMAND`, on one line (wide enough that no name is broken)."""
    monkeypatch.setenv("COLUMNS", "100000")
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    lines = capsys.readouterr().out.splitlines()
    start = [i for i, line in enumerate(lines) if line.lstrip().startswith(option + " ")]
    assert len(start) == 1, (option, lines)
    end = next((i for i in range(start[0] + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return " ".join(line.strip() for line in lines[start[0]:end])  # a long option's help starts on the next line


def missing(names, text: str) -> list[str]:
    """The names that `text` does not show as a word ("dc" is not shown by "dc-inception")."""
    return [n for n in names if not re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]


# registry -> (command, option): the help that lists it
HELPS = {
    "losses": (choices.LOSSES, "train", "--loss"),
    "models": (choices.MODEL_SPECS, "train", "--model"),
    "critic norms": (choices.CRITIC_NORMS, "train", "--critic-norm"),
    "generator norms": (choices.GENERATOR_NORMS, "train", "--generator-norm"),
    "conditionings": (choices.CONDITIONINGS, "train", "--conditioning"),
    "optimizers": (config.OPTIMIZERS, "train", "--optimizer"),
    "precisions": (config.PRECISIONS, "train", "--precision"),
    "bench precisions": (config.PRECISIONS, "bench", "--precision"),
    "train clocks": (config.TRAIN_CLOCKS, "train", "--train-clock"),
    "lr decays": (config.LR_DECAYS, "train", "--lr-decay"),
    "augmentations": (config.AUGMENTATIONS, "train", "--augment"),
    "metrics": (METRICS, "eval", "--metrics"),
    "claims datasets": (claims.TOY_DATASETS, "claims", "--datasets"),
    "claims losses": (claims.LOSS_SETTINGS, "claims", "--losses"),
}


@pytest.mark.parametrize("registry", sorted(HELPS))
def test_every_entry_of_a_registry_is_in_its_options_help(registry, capsys, monkeypatch):
    names, command, option = HELPS[registry]
    assert names and not missing(names, option_help(capsys, monkeypatch, command, option))


def test_the_implementations_are_the_declared_names():
    assert list(MODELS) == list(choices.MODEL_SPECS)
    assert list(METRICS) == list(metric_rules.METRIC_SPECS)
    for name, metric in METRICS.items():
        assert {k: v for k, v in vars(metric).items() if k != "compute"} == vars(metric_rules.METRIC_SPECS[name])
    assert claims.LOSS_SETTINGS is claim_options.LOSS_SETTINGS and set(claims.LOSS_LABELS) == set(claims.LOSS_SETTINGS)


def test_help_built_at_parse_time_shows_a_new_entry(capsys, monkeypatch):
    """Options whose help the parser builds read their registry then: an entry added shows at once."""
    monkeypatch.setitem(metric_rules.METRIC_SPECS, "new-metric", metric_rules.MetricSpec("a new one"))
    monkeypatch.setattr(claim_options, "TOY_DATASETS", claim_options.TOY_DATASETS + ("toy-new",))
    monkeypatch.setattr(claim_options, "LOSS_LABELS", dict(claim_options.LOSS_LABELS, lp="one-sided penalty"))
    assert "new-metric" in option_help(capsys, monkeypatch, "eval", "--metrics")
    assert "toy-new" in option_help(capsys, monkeypatch, "claims", "--datasets")
    assert "lp" in option_help(capsys, monkeypatch, "claims", "--losses")


# config option -> (registry, a new entry to add): the refusal of an unknown name lists the registry
REFUSALS = {
    "loss": (choices.LOSSES, "wgan-new"),
    "model": (choices.MODEL_SPECS, "model-new"),
    "critic_norm": (choices.CRITIC_NORMS, None),
    "generator_norm": (choices.GENERATOR_NORMS, "group"),
    "optimizer": (config.OPTIMIZERS, None),
    "precision": (config.PRECISIONS, None),
    "train_clock": (config.TRAIN_CLOCKS, None),
    "lr_decay": (config.LR_DECAYS, None),
    "augment": (config.AUGMENTATIONS, None),
    "dataset": (DATASETS, "dataset-new"),
    "eval_metrics": (metric_rules.METRIC_SPECS, "metric-new"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_a_refusal_lists_every_entry_of_its_registry(name, monkeypatch, tmp_path):
    registry, new = REFUSALS[name]
    if new is not None:  # the registries that the check reads when it runs: a new entry is listed too
        entry = next(iter(registry.values()))
        monkeypatch.setitem(registry, new, entry)
        if registry is choices.MODEL_SPECS:
            monkeypatch.setitem(MODELS, new, MODELS["mlp"])
    cfg = dataclasses.replace(TrainConfig(), runs_dir=str(tmp_path), **{name: "bogus"})
    with pytest.raises(UserError) as caught:
        validate(cfg)
    assert str(caught.value).startswith(config.flag(name) + " bogus")
    assert not missing(registry, str(caught.value))


def test_an_unknown_preset_is_refused_naming_every_preset(monkeypatch):
    monkeypatch.setitem(PRESETS, "preset-new", PRESETS["quick"])
    with pytest.raises(UserError) as caught:
        config.preset_config("bogus")
    assert not missing(PRESETS, str(caught.value))


def test_the_listings_the_help_points_to_show_every_entry(monkeypatch):
    """--preset and --dataset say "see `wgan presets`" / "see `wgan datasets`": those tables list every entry."""
    monkeypatch.setitem(PRESETS, "preset-new", PRESETS["quick"])
    monkeypatch.setitem(DATASETS, "dataset-new", DATASETS["mnist"])
    presets = [row.split()[0] for row in listings.presets_table().splitlines()[1:]]
    assert presets == list(PRESETS)
    assert not missing(DATASETS, listings.datasets_table())


@pytest.mark.parametrize("option, registry", [("--datasets", claim_options.TOY_DATASETS),
                                              ("--losses", claim_options.LOSS_SETTINGS)])
def test_the_claims_refusals_list_every_choice(option, registry, tmp_path):
    kwargs = {"datasets": ["bogus"]} if option == "--datasets" else {"loss_names": ["bogus"]}
    with pytest.raises(UserError) as caught:
        claims.run_claims(runs_dir=Path(tmp_path), **kwargs)
    assert str(caught.value).startswith(f"{option} bogus") and not missing(registry, str(caught.value))
