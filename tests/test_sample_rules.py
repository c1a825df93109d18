"""The rules on samples and walks, as pure functions: what each accepts, and the one message it refuses with,
naming the value as the caller's user gave it (a command-line option or a Python argument)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wgan.errors import UserError
from wgan.models import ModelShape
from wgan.sample_rules import (
    ARGUMENTS, OPTIONS, check_count, check_export_suffix, check_sample_memory, check_samples_file, check_seed,
    check_truncation, check_walk_size, label_index, sample_labels)

SRC = Path(__file__).resolve().parents[1] / "src"
SHAPE = ModelShape(channels=1, image_size=28, latent_dim=16)  # 784 bytes an image, 64 bytes of noise
CLASSES = ["T-shirt/top", "Trouser", "Bag"]


@pytest.mark.parametrize("call, option_message, argument_message", [
    (lambda n: check_count(0, n.num), "--num 0: must be >= 1", "num=0: must be >= 1"),
    (lambda n: check_count(2.5, n.num), "--num 2.5: must be a whole number >= 1", "num=2.5: must be a whole number >= 1"),
    (lambda n: check_count(True, n.num), "--num True: must be a whole number >= 1", "num=True: must be a whole number >= 1"),
    (lambda n: check_truncation(math.nan, n.truncation), "--truncation nan: must be a number > 0",
     "truncation=nan: must be a number > 0"),
    (lambda n: check_seed(2**62 + 1, n.seed), f"--seed {2**62 + 1}: must be a whole number from 0 to 2**62",
     f"seed={2**62 + 1}: must be a whole number from 0 to 2**62"),
    (lambda n: label_index("hat", CLASSES, n.label), "--label hat: not a class of this generator",
     "labels='hat': not a class of this generator"),
    (lambda n: check_samples_file(Path("x.jpg"), 4, SHAPE, n), "--out x.jpg: use a .png (grid) or .npz",
     "path=PosixPath('x.jpg'): use a .png (grid) or .npz"),
    (lambda n: check_export_suffix(Path("G.pt"), n.out), "--out G.pt: the exported generator is a .safetensors",
     "path=PosixPath('G.pt'): the exported generator is a .safetensors"),
])
def test_a_rule_says_one_thing_naming_the_value_as_given(call, option_message, argument_message):
    for names, message in ((OPTIONS, option_message), (ARGUMENTS, argument_message)):
        with pytest.raises(ValueError) as info:
            call(names)
        assert isinstance(info.value, UserError) and str(info.value).startswith(message)


def test_what_the_rules_accept():
    assert check_count(3, "num") == 3 and check_truncation(None, "t") is None and check_truncation(1, "t") == 1.0
    assert check_seed(0, "seed") == 0 and check_seed(2**62, "seed") == 2**62
    assert label_index("bag", CLASSES, "label") == 2 and label_index(1, CLASSES, "label") == 1
    assert sample_labels(None, CLASSES, 4, "labels") is None
    assert sample_labels("Bag", CLASSES, 3, "labels") == [2, 2, 2]
    assert sample_labels(["bag", 0], CLASSES, 2, "labels") == [2, 0]
    with pytest.raises(UserError, match="^labels: this generator is not class-conditional$"):
        sample_labels(1, [], 2, "labels")
    with pytest.raises(UserError, match="^labels: 1 labels for 2 samples"):
        sample_labels([1], CLASSES, 2, "labels")


def test_memory_is_a_quarter_of_the_machines_with_the_need_said():
    per_sample = 784 + 4 * 16
    check_sample_memory(1000, SHAPE, "--num", memory=4 * 1000 * per_sample)  # exactly a quarter: allowed
    with pytest.raises(UserError, match=r"^--num 1001: 0\.0 GiB of samples in memory, more than a quarter"):
        check_sample_memory(1001, SHAPE, "--num", memory=4 * 1000 * per_sample)
    check_walk_size(1000, SHAPE, OPTIONS, memory=4 * 1000 * 784 * 4)
    with pytest.raises(UserError, match=r"^--walk/--frames/--num: 1,001 images"):
        check_walk_size(1001, SHAPE, OPTIONS, memory=4 * 1000 * 784 * 4)
    with pytest.raises(UserError, match=r"^num_points/frames/num_walks: 1,001 images"):
        check_walk_size(1001, SHAPE, ARGUMENTS, memory=4 * 1000 * 784 * 4)


def test_a_grid_of_more_than_ten_thousand_images_is_refused_and_points_are_arrays():
    check_samples_file(Path("x.png"), 10_000, SHAPE, OPTIONS)
    with pytest.raises(UserError, match="^--num 10001: a grid of more than 10,000 images; write them as .npz"):
        check_samples_file(Path("x.png"), 10_001, SHAPE, OPTIONS)
    points = ModelShape(latent_dim=2, point_dim=2, channels=0, image_size=0)
    with pytest.raises(UserError, match=r"^--out: point data \(toy 2-D\) can only be written as .npz"):
        check_samples_file(Path("x.png"), 4, points, OPTIONS)


def test_the_rules_import_no_numerical_library():
    """The command line's help shows the rules' defaults: importing them must stay light."""
    code = ("import sys, wgan.sample_rules; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'matplotlib', 'PIL'}))")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(SRC)),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
