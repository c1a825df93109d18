"""Class names and the labels a user gives: a name in any case, or a number; and the registry's names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wgan.classes import (LISTED_CLASSES, class_index, class_indices, class_names_problem, describe_classes,
                          names_or_numbers, numbered)
from wgan.data import DATASETS, dataset_class_names, load_dataset
from wgan.data.idx import FASHION_CLASSES, LETTER_CLASSES


def test_a_label_is_a_name_in_any_case_or_a_number():
    assert [class_index(x, FASHION_CLASSES) for x in ("Sneaker", "sneaker", " SNEAKER ", "7", 7)] == [7] * 5
    assert class_index("t-shirt/top", FASHION_CLASSES) == 0 and class_index("ankle boot", FASHION_CLASSES) == 9
    assert [class_index(x, LETTER_CLASSES) for x in ("A", "b", "Z", "7")] == [0, 1, 25, 7]
    assert class_index(np.int64(3), FASHION_CLASSES) == 3 and class_index(torch.tensor(4), FASHION_CLASSES) == 4


def test_names_come_before_numbers():
    names = ["10", "2", "x"]  # a folder of classes called by numbers: "2" is the class named 2, number 1
    assert class_index("2", names) == 1 and class_index(2, names) == 2 and class_index("0", names) == 0


def test_names_that_differ_only_in_case_must_be_given_exactly():
    names = ["cat", "Cat", "dog"]
    assert class_index("Cat", names) == 1 and class_index("cat", names) == 0
    with pytest.raises(ValueError, match="differ only in case"):
        class_index("CAT", names)


@pytest.mark.parametrize("label, needle", [("Sneakers", "not a class"), (10, "no class number 10"),
                                           ("-1", "no class number -1"), (True, "class name or number"),
                                           (2.0, "class name or number"), ("²", "not a class")])
def test_an_unknown_label_lists_the_classes(label, needle):
    with pytest.raises(ValueError, match=needle) as info:
        class_index(label, FASHION_CLASSES)
    assert "T-shirt/top, Trouser" in str(info.value) and "0-9" in str(info.value)


def test_a_long_list_of_classes_is_cut_short():
    names = [f"c{i}" for i in range(100)]
    text = describe_classes(names)
    assert text.startswith("c0, c1") and f"and {100 - LISTED_CLASSES} more" in text and "0-99" in text
    assert f"c{LISTED_CLASSES}" not in text.split(" and ")[0].split(", ")


def test_one_label_per_sample_or_one_for_all():
    assert class_indices("Bag", FASHION_CLASSES, 3) == [8, 8, 8]
    assert class_indices(["Bag", 0, "coat"], FASHION_CLASSES, 3) == [8, 0, 4]
    assert class_indices(np.array([1, 2]), FASHION_CLASSES, 2) == [1, 2]
    with pytest.raises(ValueError, match="2 labels for 3 samples"):
        class_indices(["Bag", 0], FASHION_CLASSES, 3)
    with pytest.raises(ValueError, match="label 'Hat': not a class"):
        class_indices(["Bag", "Hat"], FASHION_CLASSES, 2)


def test_names_or_numbers_and_the_problems_of_stored_names():
    assert names_or_numbers(["a", "b"], 2) == ["a", "b"] and names_or_numbers(["a"], 2) == numbered(2) == ["0", "1"]
    assert class_names_problem(["a", "b"], 2) is None
    assert "3 class names for 2 classes" in class_names_problem(["a", "b", "c"], 2)
    assert "not a list of strings" in class_names_problem("ab", 2)
    assert "not a list of strings" in class_names_problem(["a", 1], 2)


def test_every_labelled_dataset_in_the_registry_names_each_class():
    for name, entry in DATASETS.items():
        if entry.num_classes > 0:
            assert len(entry.class_names) == entry.num_classes, name
            assert len(set(entry.class_names)) == entry.num_classes, name
    assert dataset_class_names("fashion-mnist", 10)[7] == "Sneaker"
    assert dataset_class_names("mnist", 10) == [str(i) for i in range(10)]
    assert dataset_class_names("letters-csv", 26)[0] == "A" and dataset_class_names("emnist-letters", 26)[-1] == "Z"
    assert dataset_class_names("cifar10", 10)[:2] == ["airplane", "automobile"]
    assert dataset_class_names("image-folder", 3) == ["0", "1", "2"], "a folder's names are known once loaded"


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "toy-8gaussians", "toy-25gaussians"])
def test_the_registry_names_the_classes_as_the_loader_does(name, fashion_idx_dir):
    data = load_dataset(name, split="test", data_path=None if name.startswith("toy") else fashion_idx_dir)
    assert data.class_names == list(DATASETS[name].class_names)


def test_an_image_folders_classes_are_its_subfolders(tmp_path, isolated_data_dirs):
    from PIL import Image

    for cls in ("cats", "dogs"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (32, 32), (i * 50, 0, 0)).save(tmp_path / "images" / cls / f"{i}.png")
    data = load_dataset("image-folder", data_path=tmp_path / "images", image_size=32, channels=3)
    assert data.class_names == ["cats", "dogs"] and data.num_classes == 2


def test_a_class_name_given_twice_is_a_problem_of_the_stored_names():
    assert "class name 'Bag' names two classes" in class_names_problem(["Bag", "Coat", "Bag"], 3)
    assert "class name 'a' names two classes" in class_names_problem(["a", "a"], 2)
    assert class_names_problem(["cat", "Cat"], 2) is None  # told apart by a label given exactly
