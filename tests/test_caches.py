"""`wgan cache`: what the decoded cache and the classifier cache hold (source, size, last used), --clear and
--keep-gb, and training's pruning past $WGAN_CACHE_MAX_GB; a file that a live process maps is never removed."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from cli_helpers import TINY, run_cli
from data_files import letters_rows, save_image, solid, write_letters_csv
from wgan import caches
from wgan.data import load_dataset
from wgan.data.cache import decoded_cache_dir

pytestmark = pytest.mark.usefixtures("isolated_data_dirs")
DAY_S = 86400


def folder(root: Path, n: int = 4, side: int = 16) -> Path:
    for i in range(n):
        save_image(root / f"{i}.png", solid(side, side, (i, 50, 50)))
    return root


def age(npy_path: str | Path, days: float) -> None:
    """Make a decoded entry look last used `days` ago."""
    then = time.time() - days * DAY_S
    os.utime(Path(npy_path).with_suffix(".npz"), (then, then))


def fill_cache(tmp_path: Path) -> dict[str, Path]:
    """A folder and a letters CSV decoded (and dropped), a classifier, and a partial file a killed decode left."""
    images = load_dataset("image-folder", data_path=folder(tmp_path / "faces"), image_size=16)
    labels, pixels = letters_rows(20)
    letters = load_dataset("letters-csv", data_path=write_letters_csv(tmp_path / "letters.csv", labels, pixels))
    classifiers = caches.classifier_cache_dir()
    classifiers.mkdir(parents=True)
    (classifiers / "emnist-letters-1x28x28-0123456789abcdef.pt").write_bytes(b"\0" * 5000)
    partial = decoded_cache_dir() / f".{Path(images.mapped_from).name}.abc123.tmp"
    partial.write_bytes(b"\0" * 100)
    return {"images": Path(images.mapped_from), "letters": Path(letters.mapped_from), "partial": partial}


def test_the_listing_names_each_entrys_kind_source_size_and_last_use(tmp_path):
    paths = fill_cache(tmp_path)
    age(paths["letters"], 40)
    code, out, err = run_cli("cache")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["kind", "size", "last", "used", "source", "file"]
    by_file = {line.split()[-1]: line for line in lines[1:-1]}
    assert set(by_file) == {paths["images"].name, paths["letters"].name, paths["partial"].name,
                            "emnist-letters-1x28x28-0123456789abcdef.pt"}
    assert by_file[paths["images"].name].startswith("decoded ") and str(tmp_path / "faces") in by_file[paths["images"].name]
    assert str(tmp_path / "letters.csv") in by_file[paths["letters"].name]
    assert "(40 days ago)" in by_file[paths["letters"].name]
    assert "emnist-letters 1x28x28" in by_file["emnist-letters-1x28x28-0123456789abcdef.pt"]
    assert "5 kB" in by_file["emnist-letters-1x28x28-0123456789abcdef.pt"]
    assert "a decode stopped before it finished" in by_file[paths["partial"].name]
    assert lines[-1].startswith("4 entries, ")


def test_keep_gb_removes_the_least_recently_used_first_and_spares_what_a_process_maps(tmp_path):
    small = folder(tmp_path / "small", 2)
    mapped = load_dataset("image-folder", data_path=small, image_size=16)  # held: in use however old
    paths = fill_cache(tmp_path)
    age(mapped.mapped_from, 300)
    age(paths["letters"], 200)
    age(paths["images"], 100)
    keep = caches.cache_entries()
    # room for all but the letters: the oldest, the mapped one, stays; the next oldest, the letters, goes
    room = sum(e.size_bytes for e in keep if e.path != paths["letters"])
    code, out, _ = run_cli("cache", "--keep-gb", (room + 1000) / 1e9)
    assert code == 0 and out.startswith("removed 1 entries") and "kept 1 in use by a live process" in out
    assert not paths["letters"].exists() and not paths["letters"].with_suffix(".npz").exists()
    assert Path(mapped.mapped_from).exists() and paths["images"].exists()
    assert int(mapped.x[1, 0, 0, 0]) == 1  # its pages still read


def _hold(path: Path, ready, done) -> None:
    data = load_dataset("image-folder", data_path=path, image_size=16)
    ready.set()
    done.wait(60)
    assert data.x.shape[0] == 3


def test_clear_removes_everything_but_what_another_live_process_maps(tmp_path):
    paths = fill_cache(tmp_path)
    held = folder(tmp_path / "held", 3)
    context = multiprocessing.get_context("fork")
    ready, done = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(held, ready, done))
    holder.start()
    try:
        assert ready.wait(60)
        code, out, _ = run_cli("cache", "--clear")
        assert code == 0 and out.startswith("removed 4 entries") and "kept 1 in use by a live process" in out
        left = caches.cache_entries()
        assert [e.source for e in left] == [str(held)] and left[0].in_use
        assert not any(p.exists() for p in paths.values())
    finally:
        done.set()
        holder.join(60)
    assert holder.exitcode == 0
    code, out, _ = run_cli("cache", "--clear")  # its process has ended: nothing holds it now
    assert out.startswith("removed 1 entries") and caches.cache_entries() == []
    assert run_cli("cache")[1].startswith("the cache (")


def test_training_prunes_what_has_long_gone_unused_once_the_cache_passes_its_cap(tmp_path, monkeypatch):
    paths = fill_cache(tmp_path)
    age(paths["letters"], caches.PRUNE_UNUSED_DAYS + 1)
    age(paths["images"], caches.PRUNE_UNUSED_DAYS - 1)  # old, but not long enough to go
    monkeypatch.delenv(caches.CAP_VARIABLE, raising=False)
    assert caches.prune_to_cap() == [] and paths["letters"].exists()  # no cap, no pruning
    monkeypatch.setenv(caches.CAP_VARIABLE, "1")
    assert caches.prune_to_cap() == [] and paths["letters"].exists()  # under the cap
    monkeypatch.setenv(caches.CAP_VARIABLE, "0.000001")
    (line,) = caches.prune_to_cap()
    assert f"more than {caches.CAP_VARIABLE}=1e-06: removed 1 file(s) unused for 30 days or more" in line
    assert not paths["letters"].exists() and paths["images"].exists()


@pytest.mark.parametrize("argv, env, expected", [
    (["cache", "--keep-gb", "-1"], None, "wgan cache: error: --keep-gb -1: must be a size in GB >= 0"),
    (["cache", "--clear", "--keep-gb", "2"], None, "wgan cache: error: --clear with --keep-gb 2"),
    (["train", *TINY, "--steps", "1"], "lots", "wgan train: error: WGAN_CACHE_MAX_GB='lots': not a size in GB"),
])
def test_bad_sizes_are_one_line(tmp_path, monkeypatch, argv, env, expected):
    if env is not None:
        monkeypatch.setenv(caches.CAP_VARIABLE, env)
    code, out, err = run_cli(*argv)
    assert code == 2 and err.startswith(expected) and err.count("\n") == 1
