"""The Kaggle A-Z letters CSV: its splits and cache, and every kind of bad row named by its line and value."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from data_files import letters_rows, write_letters_csv
from wgan.cli import main
from wgan.data import letters_csv, load_dataset
from wgan.data.cache import decoded_cache_dir
from wgan.data.letters_csv import letters_split_indices
from wgan.errors import UserError


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


@pytest.mark.parametrize("chunk_rows", [4096, 3])
def test_letters_csv_splits_cover_the_file_and_match_its_values(tmp_path, monkeypatch, chunk_rows):
    monkeypatch.setattr(letters_csv, "CSV_CHUNK_ROWS", chunk_rows)  # 3: each chunk's rows land all over the file
    labels, images = letters_rows(40)
    path = write_letters_csv(tmp_path / "letters.csv", labels, images)
    train = load_dataset("letters-csv", data_path=path)
    test = load_dataset("letters-csv", split="test", data_path=path)
    assert len(train) == 36 and len(test) == 4  # the seeded 10% hold-out
    assert train.x.shape == (36, 1, 28, 28) and train.x.dtype == torch.uint8 and train.num_classes == 26
    idx_test = letters_split_indices(40, "test")
    assert torch.equal(test.x[:, 0], torch.from_numpy(images[idx_test].astype(np.uint8)))
    assert test.y.tolist() == labels[idx_test].tolist()
    assert sorted(letters_split_indices(40, "train").tolist() + idx_test.tolist()) == list(range(40))
    idx_train = letters_split_indices(40, "train")
    assert torch.equal(train.x[:, 0], torch.from_numpy(images[idx_train].astype(np.uint8)))
    assert train.y.tolist() == labels[idx_train].tolist() and train.mapped_from == test.mapped_from != ""


def test_letters_csv_is_cached_and_reread_when_the_file_changes(tmp_path, monkeypatch):
    labels, images = letters_rows(12)
    path = write_letters_csv(tmp_path / "A_Z Handwritten Data.csv", labels, images)
    first = load_dataset("letters-csv", data_path=tmp_path)  # a folder holding the Kaggle file name
    assert len(list(decoded_cache_dir().glob("letters-csv-*.npz"))) == 1
    real_parse = letters_csv.parse_letters_csv

    def must_not_parse(p):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(letters_csv, "parse_letters_csv", must_not_parse)
    again = load_dataset("letters-csv", data_path=tmp_path)
    assert torch.equal(first.x, again.x) and torch.equal(first.y, again.y)
    del first, again  # mapped no more: their file can go once the source changes

    labels[:] = 7
    write_letters_csv(path, labels, images)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    monkeypatch.setattr(letters_csv, "parse_letters_csv", real_parse)
    changed = load_dataset("letters-csv", data_path=tmp_path)
    assert set(changed.y.tolist()) == {7}
    (cache,) = decoded_cache_dir().glob("letters-csv-*.npz")  # the stale cache is gone
    cache.write_bytes(b"damaged")
    assert torch.equal(load_dataset("letters-csv", data_path=tmp_path).y, changed.y)  # re-read, not an error


GOOD = ",".join(["3"] + ["0"] * 784)


@pytest.mark.parametrize("line_no, text, expected", [
    (5, ",".join(["3"] + ["0"] * 785), r"line 5: 786 columns"),
    (9, ",".join(["3"] + ["0"] * 700), r"line 9: 701 columns"),
    (6, ",".join(["3", "0", "x7"] + ["0"] * 782), r"line 6, column 3: 'x7' is not a whole number"),
    (7, ",".join(["3", "0", "2.5"] + ["0"] * 782), r"line 7, column 3: '2.5' is not a whole number"),
    (10, ",".join(["26"] + ["0"] * 784), r"line 10: label 26 out of range 0-25"),
    (3, ",".join(["-1"] + ["0"] * 784), r"line 3: label -1 out of range 0-25"),
    (8, ",".join(["3"] + ["0"] * 783 + ["256"]), r"line 8, column 785: pixel value 256 out of range 0-255"),
    (1, ",".join(["label"] + [f"p{i}" for i in range(784)]), r"line 1, column 1: 'label' .*no header row"),
    (4, ",".join(["3", "", "0"] + ["0"] * 782), r"line 4, column 2: '' is not a whole number"),
])
def test_bad_letters_csv_names_line_and_value(tmp_path, monkeypatch, line_no, text, expected):
    monkeypatch.setattr(letters_csv, "CSV_CHUNK_ROWS", 3)  # the bad line falls in a later chunk than the first
    lines = [GOOD] * 12
    lines[line_no - 1] = text
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=expected) as err:
        load_dataset("letters-csv", data_path=path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert not list(decoded_cache_dir().glob("*.npz"))  # nothing cached from a bad file


def test_blank_lines_do_not_shift_line_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(letters_csv, "CSV_CHUNK_ROWS", 2)
    path = tmp_path / "blank.csv"
    path.write_text(f"{GOOD}\n\n{GOOD}\n{GOOD}\n\n{GOOD}\n{GOOD.replace('3', '99', 1)}\n")
    with pytest.raises(UserError, match=r"line 7: label 99"):
        load_dataset("letters-csv", data_path=path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_csv(tmp_path, content):
    path = tmp_path / "letters.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=r"letters.csv: the file is empty"):
        load_dataset("letters-csv", data_path=path)


def test_letters_adapted_to_rgb_and_size(tmp_path):
    labels, images = letters_rows(10)
    path = write_letters_csv(tmp_path / "letters.csv", labels, images)
    data = load_dataset("letters-csv", data_path=path, image_size=32, channels=3)
    assert data.x.shape == (9, 3, 32, 32)
    assert torch.equal(data.x[:, 0], data.x[:, 2])  # grayscale copied to the three channels


def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys):
    path = tmp_path / "letters.csv"
    path.write_text(GOOD + "\n" + GOOD.replace("3", "abc", 1) + "\n")
    assert main(["datasets", "--check", "letters-csv", "--data", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "line 2, column 1: 'abc' is not a whole number" in err
    assert "Traceback" not in err and path.read_text().count("\n") == 2  # the user's file is untouched


@pytest.mark.parametrize("index", [False, True])
def test_pandas_default_header_row_is_named_with_the_fix(tmp_path, index):
    labels, images = letters_rows(5)
    table = pd.DataFrame(np.column_stack([labels, images.reshape(5, -1)]))
    path = tmp_path / "letters.csv"
    table.to_csv(path, index=index)  # header=True: the column numbers 0..784 as the first line
    with pytest.raises(UserError) as err:
        load_dataset("letters-csv", data_path=path)
    msg = str(err.value)
    assert f"{path} line 1 is a header row (the column numbers 0,1,...,784" in msg and "\n" not in msg
    assert "tail -n +2" in msg and "header=False, index=False" in msg and "pixel value" not in msg


def test_whole_number_floats_in_the_letters_csv_are_read_as_integers(tmp_path, monkeypatch):
    monkeypatch.setattr(letters_csv, "CSV_CHUNK_ROWS", 4)
    labels, images = letters_rows(10)
    table = pd.DataFrame(np.column_stack([labels, images.reshape(10, -1)]).astype(float))
    path = tmp_path / "floats.csv"
    table.to_csv(path, header=False, index=False)  # every cell written as "22.0"
    text = path.read_text().splitlines()
    text[6] = text[6].replace(".0,", "e+00,", 3)  # and a few in exponent form: "3e+00"
    path.write_text("\n".join(text) + "\n")
    assert "e+00," in path.read_text()
    train = load_dataset("letters-csv", data_path=path)
    test = load_dataset("letters-csv", split="test", data_path=path)
    x = torch.cat([train.x, test.x])[:, 0]
    y = torch.cat([train.y, test.y])
    order = np.concatenate([letters_split_indices(10, "train"), letters_split_indices(10, "test")])
    assert torch.equal(x, torch.from_numpy(images[order].astype(np.uint8)))
    assert y.tolist() == labels[order].tolist()


def test_letters_missing_from_a_split_are_noted_and_too_few_rows_for_a_test_split_is_one_line(tmp_path):
    labels, images = letters_rows(60)
    labels = labels % 3  # only A, B and C
    path = write_letters_csv(tmp_path / "abc.csv", labels, images)
    data = load_dataset("letters-csv", data_path=path)
    assert data.num_classes == 26 and set(data.y.tolist()) == {0, 1, 2}
    assert any(f"{path}: the train split has no rows of letter(s) D, E, F" in n for n in data.notes)
    few = write_letters_csv(tmp_path / "few.csv", *letters_rows(5))
    with pytest.raises(UserError, match=r"5 rows leave no test split .* give at least 10"):
        load_dataset("letters-csv", data_path=few, split="test")
