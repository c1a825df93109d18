"""A sampling request is made once, at the border, and trusted after: every rule of wgan.sample_rules runs
once per `wgan sample` or API call, the drawing code checks nothing again, and the request's modules stay
light (no numerical library before a generator is loaded; no training code or torchvision at all)."""

from __future__ import annotations

import collections
import functools
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import wgan
from cli_helpers import run_cli
from wgan import sample_rules, sampling
from wgan.errors import UserError
from wgan.models import ModelShape
from wgan.sample_request import command_options, sample_options, sample_request, walk_options, walk_request
from wgan.sample_rules import ARGUMENTS, OPTIONS

SRC = Path(__file__).resolve().parents[1] / "src"
RULES = {name: fn for name, fn in vars(sample_rules).items()
         if inspect.isfunction(fn) and fn.__module__ == sample_rules.__name__}


@pytest.fixture
def rule_calls(monkeypatch) -> collections.Counter:
    """Every rule, wherever a wgan module holds it, counted by (rule, the option names and strings it was
    given): a rule checked twice for the same option counts 2."""
    calls = collections.Counter()

    def counted(name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            calls[name, tuple(a for a in args if isinstance(a, str))] += 1
            return fn(*args, **kwargs)
        return wrapper

    wrappers = {fn: counted(name, fn) for name, fn in RULES.items()}
    for module in [m for name, m in sys.modules.items() if name == "wgan" or name.startswith("wgan.")]:
        for attr, value in list(vars(module).items()):
            if inspect.isfunction(value) and value in wrappers:
                monkeypatch.setattr(module, attr, wrappers[value])
    return calls


def assert_each_once(calls: collections.Counter, *expected: str) -> None:
    twice = {key: n for key, n in calls.items() if n > 1}
    assert not twice, f"checked more than once: {twice}"
    called = {name for name, _ in calls}
    assert set(expected) <= called, f"not checked: {set(expected) - called}"


def test_wgan_sample_checks_each_rule_once(rule_calls, tmp_path):
    code, out, err = run_cli("sample", "--weights", "fashion-mnist-cond", "--label", "Sneaker", "--num", 8,
                             "--truncation", "0.7", "--seed", 3, "--out", tmp_path / "s.png")
    assert code == 0 and "wrote 8 samples" in out, err
    assert_each_once(rule_calls, "check_truncation", "check_seed", "check_count", "check_no_walk_options",
                     "check_not_animation", "check_samples_suffix", "check_sample_memory", "check_samples_fit",
                     "sample_labels", "label_index")
    assert rule_calls["check_count", ("--num",)] == 1


def test_wgan_sample_walk_checks_each_rule_once(rule_calls, tmp_path):
    code, out, err = run_cli("sample", "--weights", "fashion-mnist-cond", "--walk", 2, "--frames", 2, "--num", 1,
                             "--label", "bag", "--truncation", "0.7", "--out", tmp_path / "w.gif")
    assert code == 0 and "4 frames (2 points x 2), 1 walk" in out, err
    assert_each_once(rule_calls, "check_truncation", "check_seed", "check_walk_options", "check_animation_file",
                     "check_walk_generator", "label_index", "check_walk_size")
    assert {names for rule, names in rule_calls if rule == "check_count"} == {
        ("--walk", " (a walk loops through at least 2 points)"), ("--frames",), ("--frame-ms",), ("--num",)}


def test_the_api_checks_each_rule_once(rule_calls, tmp_path):
    g = wgan.load_generator("fashion-mnist-cond")
    g.save_samples(tmp_path / "s.npz", 4, labels=["Bag", 7, "coat", 0], truncation=0.5, seed=1)
    assert_each_once(rule_calls, "check_truncation", "check_seed", "check_count", "check_samples_suffix",
                     "check_sample_memory", "check_samples_fit", "sample_labels")
    rule_calls.clear()
    g.save_walk(tmp_path / "w.gif", num_points=2, frames=2, num_walks=1)
    assert_each_once(rule_calls, "check_truncation", "check_seed", "check_walk_options", "check_animation_file",
                     "check_walk_generator", "check_walk_size")


def test_the_drawing_code_holds_no_rule():
    """sampling.py draws what a request says: none of the rules is even in its namespace."""
    held = [name for name, value in vars(sampling).items() if value in RULES.values()]
    assert held == []


def test_a_request_is_frozen_and_filled_in_by_the_generator():
    shape = ModelShape(channels=1, image_size=28, latent_dim=16, num_classes=3)
    request = sample_request(sample_options(6, truncation=1), shape, ["a", "b", "c"], memory=2**30)
    assert (request.options.num, request.labels, request.options.truncation, request.grid_columns) == (6, None, 1.0, 3)
    assert type(request.options.truncation) is float
    with pytest.raises(AttributeError):
        request.options.num = 7  # noqa
    one_class = sample_request(sample_options(6, label="B"), shape, ["a", "b", "c"], memory=2**30)
    assert one_class.labels == (1,) * 6 and one_class.grid_columns == 2
    walks = walk_request(walk_options(3, 2), shape, ["a", "b", "c"], memory=2**30)
    assert (walks.num_walks, walks.classes_per_walk, walks.label) == (4, 3, None)  # 4 rows of every class
    plain = walk_request(walk_options(3, 2, label="c"), shape, ["a", "b", "c"], memory=2**30)
    assert (plain.num_walks, plain.classes_per_walk, plain.label) == (16, 0, 2)  # a 4 x 4 grid
    assert plain.render_options() == dict(num_walks=16, num_points=3, frames_per_segment=2, seed=0,
                                          truncation=None, label=2)


def test_the_command_fills_in_its_defaults_and_dispatches_on_walk():
    samples = command_options(Path("x.png"), walk=None, num=None, label=None, truncation=None, seed=0, frames=None,
                              frame_ms=None)
    assert (samples.num, samples.out, samples.names) == (64, Path("x.png"), OPTIONS)
    walk = command_options(Path("w.gif"), walk=3, num=None, label=None, truncation=None, seed=0, frames=None,
                           frame_ms=None)
    assert (walk.num_points, walk.frames, walk.frame_ms, walk.num_walks) == (3, 16, 80, None)
    with pytest.raises(UserError, match="^--frame-ms: only for a latent walk"):
        command_options(Path("x.png"), walk=None, num=None, label=None, truncation=None, seed=0, frames=None,
                        frame_ms=40)
    with pytest.raises(UserError, match=r"^frames=0: must be >= 1"):
        walk_options(2, 0, names=ARGUMENTS)


def test_the_request_imports_no_numerical_library_and_wgan_sample_no_training_code(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    light = ("import sys, wgan.sample_request; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'matplotlib', 'PIL'}))")
    out = subprocess.run([sys.executable, "-c", light], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    heavy = ("import sys; from wgan.cli import main; "
             f"main(['sample', '--weights', 'fashion-mnist', '--num', '4', '--out', {str(tmp_path / 's.png')!r}]); "
             f"main(['sample', '--weights', 'fashion-mnist', '--walk', '2', '--frames', '1', '--num', '1', "
             f"'--out', {str(tmp_path / 'w.gif')!r}]); "
             "print(sorted({m for m in sys.modules if m.split('.')[0] in ('torchvision', 'matplotlib') "
             "or m.startswith('wgan.training')}))")
    out = subprocess.run([sys.executable, "-c", heavy], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]" and (tmp_path / "s.png").is_file() and (tmp_path / "w.gif").is_file()
