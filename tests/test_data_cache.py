"""The decoded cache: a damaged cache of the letters CSV or of an image folder is read as absent, the
source read again and the cache rewritten whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from data_files import letters_rows, save_image, solid, write_letters_csv
from wgan.data import images, letters_csv, load_dataset
from wgan.data.cache import decoded_cache_dir


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def forge_header(npy: Path, descr: str, shape: tuple[int, ...]) -> None:
    """Rewrite a .npy file's header in place, at its length, to claim another type or shape."""
    blob = npy.read_bytes()
    length = 10 + int.from_bytes(blob[8:10], "little")
    text = repr({"descr": descr, "fortran_order": False, "shape": shape}).ljust(length - 11) + "\n"
    npy.write_bytes(blob[:10] + text.encode() + blob[length:])


def damage_cache(npy: Path, how: str) -> None:
    """Damage a decoded cache (the images' .npy, the arrays' .npz beside it) the ways a full disk, a killed
    writer, bit rot or a forger leave one."""
    side = npy.with_suffix(".npz")
    blob = npy.read_bytes()
    with open(npy, "rb") as f:
        np.lib.format.read_magic(f)
        shape = np.lib.format.read_array_header_1_0(f)[0]
    if how == "truncated":
        npy.write_bytes(blob[: len(blob) // 2])
    elif how == "one byte short":
        npy.write_bytes(blob[:-1])
    elif how == "empty":
        npy.write_bytes(b"")
    elif how == "claims more rows":
        forge_header(npy, "|u1", (shape[0] * 1000, *shape[1:]))
    elif how == "claims another type":  # the same bytes as float64, flat: only its type gives it away
        forge_header(npy, "<f8", (int(np.prod(shape)) // 8,))
    elif how == "arrays missing":
        side.unlink()
    elif how == "arrays truncated":
        side.write_bytes(side.read_bytes()[:100])
    elif how == "arrays disagree":  # readable, but they no longer describe the images
        with np.load(side) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["shape"] = arrays["shape"] + np.array([1, 0, 0, 0])
        with open(side, "wb") as f:
            np.savez(f, **arrays)
    else:
        raise AssertionError(how)


CACHE_DAMAGE = ["truncated", "one byte short", "empty", "claims more rows", "claims another type", "arrays missing",
                "arrays truncated", "arrays disagree"]


def cache_files(pattern: str) -> list[Path]:
    return sorted(decoded_cache_dir().glob(pattern))


DAMAGED_NOTE = "a decoded cache file that is cut short, has a header other than what this code writes, or lacks its"


@pytest.mark.parametrize("how", CACHE_DAMAGE)
def test_damaged_letters_cache_is_rebuilt(tmp_path, monkeypatch, how):
    labels, images = letters_rows(30)
    path = write_letters_csv(tmp_path / "letters.csv", labels, images)
    first = load_dataset("letters-csv", data_path=path)
    expected_x, expected_y, expected_notes = first.x.clone(), first.y.clone(), first.notes
    del first  # its pages are about to be cut away
    (cache,) = cache_files("letters-csv-*.npy")
    damage_cache(cache, how)
    parses = []
    real_parse = letters_csv.parse_letters_csv
    monkeypatch.setattr(letters_csv, "parse_letters_csv", lambda p, rows: parses.append(p) or real_parse(p, rows))
    again = load_dataset("letters-csv", data_path=path)
    assert parses == [path.resolve()]  # the source was read again
    assert torch.equal(again.x, expected_x) and torch.equal(again.y, expected_y)
    assert again.notes == [f"{cache}: {DAMAGED_NOTE} .npz beside it; decoding again"] + expected_notes
    assert cache_files("letters-csv-*.npy") == [cache]  # ... and the cache rewritten whole
    assert np.load(cache).shape == (30, 1, 28, 28)
    load_dataset("letters-csv", split="test", data_path=path)
    assert len(parses) == 1  # the rebuilt cache serves the next load


@pytest.mark.parametrize("how", CACHE_DAMAGE)
def test_damaged_folder_cache_is_rebuilt(tmp_path, monkeypatch, how):
    root = tmp_path / "imgs"
    for i in range(5):
        save_image(root / f"{i}.png", solid(24, 24, (50 * i, 10, 200)))
    first = load_dataset("image-folder", data_path=root, image_size=16)
    expected = first.x.clone()
    del first
    (cache,) = cache_files("image-folder-*.npy")
    damage_cache(cache, how)
    decoded = []
    real_decode = images.decode_image
    monkeypatch.setattr(images, "decode_image", lambda p, *a: decoded.append(p) or real_decode(p, *a))
    again = load_dataset("image-folder", data_path=root, image_size=16)
    assert len(decoded) == 5 and torch.equal(again.x, expected) and again.mapped_from == str(cache)
    assert any(DAMAGED_NOTE in n for n in again.notes)
    assert np.load(cache).shape == (5, 3, 16, 16)
    load_dataset("image-folder", data_path=root, image_size=16)
    assert len(decoded) == 5  # the rebuilt cache serves the next load


# ---------------------------------------------------------------------------------------------
# The training images shared by a machine's processes: one mapped .npy file per content


def _images(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_shared_images_are_one_mapped_file_per_content():
    from wgan.data import shared

    x = _images()
    mapped, note = shared.share_images(x)
    assert note is None and torch.equal(mapped, x) and mapped.dtype == torch.uint8
    (path,) = decoded_cache_dir().glob(f"{shared.PREFIX}*.npy")
    assert path == shared.shared_path(shared.content_key(x))
    assert mapped.data_ptr() != x.data_ptr()  # the file's pages, not the loader's copy
    written = path.stat().st_mtime_ns
    again, note = shared.share_images(x.clone())  # the same content: mapped, not written again
    assert note is None and torch.equal(again, x) and path.stat().st_mtime_ns == written
    other, _ = shared.share_images(_images(seed=1))
    assert not torch.equal(other, x) and len(list(decoded_cache_dir().glob(f"{shared.PREFIX}*.npy"))) == 2


@pytest.mark.parametrize("cut_bytes", [1, 1000])
def test_a_half_written_shared_file_is_written_again(cut_bytes):
    from wgan.data import shared

    x = _images()
    shared.share_images(x)
    path = shared.shared_path(shared.content_key(x))
    path.write_bytes(path.read_bytes()[:-cut_bytes])  # as a writer on another machine leaves it when it dies
    assert not shared.is_complete(path, x)
    mapped, note = shared.share_images(x)
    assert note == (f"{path}: a half-written or altered cache file (its header or size is not that of these images); "
                    "written again")
    assert torch.equal(mapped, x) and shared.is_complete(path, x)


@pytest.mark.parametrize("forged", [dict(shape=(80, 1, 4, 8)), dict(shape=(40, 8, 8)), dict(dtype=np.int8),
                                    dict(fortran_order=True)])
def test_a_shared_file_whose_header_was_forged_to_another_shape_is_written_again(forged):
    from wgan.data import shared

    x = _images()
    path = shared.shared_path(shared.content_key(x))
    path.parent.mkdir(parents=True, exist_ok=True)
    header = dict(descr=np.lib.format.dtype_to_descr(np.dtype(forged.get("dtype", np.uint8))),
                  fortran_order=forged.get("fortran_order", False), shape=forged.get("shape", tuple(x.shape)))
    with open(path, "wb") as f:  # the right size: the images' bytes under a header that says other images
        np.lib.format.write_array_header_1_0(f, header)
        f.write(x.numpy().tobytes())
    mapped, note = shared.share_images(x)
    assert note is not None and "altered cache file" in note
    assert mapped.shape == x.shape and mapped.dtype == torch.uint8 and torch.equal(mapped, x)
    again, note = shared.share_images(x)
    assert note is None and torch.equal(again, x)


def test_a_forged_shared_file_header_is_refused_and_written_again():
    from wgan.data import shared

    x = _images()
    shared.share_images(x)
    path = shared.shared_path(shared.content_key(x))
    forge_header(path, "<f8", (x.numel() // 8,))  # the right number of bytes, as another type
    assert not shared.is_complete(path)
    mapped, note = shared.share_images(x)
    assert note == (f"{path}: an altered cache file, whose header is not what this code writes for these images "
                    f"(float64 ({x.numel() // 8},)); written again")
    assert torch.equal(mapped, x) and mapped.dtype == torch.uint8 and shared.is_complete(path)


def test_an_unwritable_cache_leaves_each_process_its_own_copy(monkeypatch, tmp_path):
    from wgan.data import shared

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setattr(shared, "decoded_cache_dir", lambda: blocked / "decoded")
    x = _images()
    kept, note = shared.share_images(x)
    assert kept is x and note.startswith(f"could not share the images through the cache {blocked / 'decoded'}")
    assert note.endswith("every process keeps a copy of its own")


def _share_and_report(x: torch.Tensor, report: Path, start) -> None:
    from wgan.data import shared

    start.wait()
    mapped, _ = shared.share_images(x)
    with open(report, "a") as f:
        f.write(f"{int(torch.equal(mapped, x))}\n")


def test_processes_sharing_at_once_write_the_file_once(tmp_path, monkeypatch):
    import multiprocessing

    from wgan.data import shared

    writes = tmp_path / "writes"
    real_write = shared.atomic_write

    def counted(path, write):
        with open(writes, "a") as f:
            f.write(f"{path.name}\n")
        real_write(path, write)

    monkeypatch.setattr(shared, "atomic_write", counted)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(3)
    x = _images()
    procs = [context.Process(target=_share_and_report, args=(x, tmp_path / "report", start)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert (tmp_path / "report").read_text().split() == ["1", "1", "1"]
    assert len(writes.read_text().split()) == 1
