"""Sources decoded once, in chunks, into the one file every process maps: its memory does not grow with the
dataset, a killed decode leaves nothing trusted, and a full disk, a read-only cache and processes decoding
at once each end as one line with nothing lost."""

from __future__ import annotations

import errno
import gzip
import hashlib
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from data_files import save_image, solid
from wgan.data import decoded, images, load_dataset
from wgan.data.cache import decoded_cache_dir
from wgan.errors import UserError

pytestmark = pytest.mark.usefixtures("isolated_data_dirs")
SRC = Path(__file__).resolve().parents[1] / "src"


def folder_of_images(root: Path, n: int, side: int = 20) -> Path:
    for i in range(n):
        save_image(root / f"{i:05d}.png", solid(side, side, (i % 256, (7 * i) % 256, 100)))
    return root


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def leftovers() -> list[str]:
    """What the decoded cache holds besides lock files (which are only ever empty)."""
    folder = decoded_cache_dir()
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".lock") if folder.is_dir() else []


def test_a_folder_is_decoded_into_one_mapped_file_with_its_arrays_beside_it(tmp_path):
    root = folder_of_images(tmp_path / "imgs", 6)
    (root / "bad.png").write_bytes(b"not an image")
    data = load_dataset("image-folder", data_path=root, image_size=16, skip_bad_images=True)
    stem = Path(data.mapped_from).stem
    assert leftovers() == [f"{stem}.npy", f"{stem}.npz"]  # no second copy of the images anywhere
    on_disk = np.load(data.mapped_from, mmap_mode="r")
    assert on_disk.shape == (6, 3, 16, 16) and np.array_equal(on_disk, data.x.numpy())  # cut to the images kept
    assert int(data.x[3, 0, 0, 0]) == 3 and any("skipped 1 unreadable" in n for n in data.notes)


def run_python(script: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(Path(__file__).parent)]), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_a_decode_killed_halfway_leaves_nothing_trusted_and_the_next_run_says_so(tmp_path):
    root = folder_of_images(tmp_path / "imgs", 12)
    monkey = f"""
        import os, signal
        from wgan.data import images, load_dataset
        images.CHUNK_BYTES = 2 * 16 * 16 * 3  # two images a chunk: some are written before the kill
        real, done = images.decode_image, []
        def dying(*args):
            done.append(1)
            if len(done) == 9:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args)
        images.decode_image = dying
        load_dataset("image-folder", data_path={str(root)!r}, image_size=16)
    """
    killed = run_python(monkey)
    assert killed.returncode == -9
    (partial,) = [p for p in decoded_cache_dir().iterdir() if p.suffix == ".tmp"]
    assert partial.stat().st_size > 0
    data = load_dataset("image-folder", data_path=root, image_size=16)
    stopped = [n for n in data.notes if "stopped before it finished" in n]
    assert stopped == [f"{Path(data.mapped_from).name}: a decode of {root} was stopped before it finished (its "
                       f"partial file {partial.name} is removed); decoding again"]
    assert not partial.exists() and [int(v) for v in data.x[:, 0, 0, 0]] == list(range(12))
    assert not any("stopped" in n for n in load_dataset("image-folder", data_path=root, image_size=16).notes)


@pytest.mark.parametrize("where", ["allocating", "writing"])
def test_a_disk_that_fills_while_decoding_is_one_line_and_removes_the_partial_file(tmp_path, monkeypatch, where):
    root = folder_of_images(tmp_path / "imgs", 8)
    before = digest(root)
    monkeypatch.setattr(images, "CHUNK_BYTES", 2 * 16 * 16 * 3)
    real_pwrite, calls = os.pwrite, []

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fills(fd, data, at):  # the header and the first chunks fit; then the disk is full
        calls.append(at)
        return full() if len(calls) == 3 else real_pwrite(fd, data, at)

    if where == "allocating":
        monkeypatch.setattr(os, "posix_fallocate", full)
    else:
        monkeypatch.setattr(os, "pwrite", fills)
    with pytest.raises(UserError) as err:
        load_dataset("image-folder", data_path=root, image_size=16)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{decoded_cache_dir()}: No space left on device while decoding")
    assert "the partial file is removed and the source untouched" in message and "wgan cache" in message
    assert leftovers() == [] and digest(root) == before
    if where == "writing":
        assert len(calls) == 3
    monkeypatch.undo()  # space freed: the next load decodes and keeps it
    assert len(load_dataset("image-folder", data_path=root, image_size=16)) == 8


def test_a_cache_that_cannot_be_written_keeps_the_images_in_memory_with_a_note(tmp_path, monkeypatch):
    root = folder_of_images(tmp_path / "imgs", 5)
    blocked = tmp_path / "cache-is-a-file"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    data = load_dataset("image-folder", data_path=root, image_size=16)
    assert data.mapped_from == "" and [int(v) for v in data.x[:, 0, 0, 0]] == list(range(5))
    (note,) = [n for n in data.notes if "decoded cache" in n]
    assert note.startswith(f"could not write the decoded cache {blocked / 'wgan' / 'decoded'} (")
    assert note.endswith(f"the images of {root} are kept in this process's memory and decoded again next time; "
                         "set XDG_CACHE_HOME to a writable folder to keep them")


def _load_and_report(root: Path, counts: Path, report: Path, start) -> None:
    real = images.decode_image

    def counted(*args):
        with open(counts, "a") as f:
            f.write("1\n")
        return real(*args)

    images.decode_image = counted
    start.wait()
    data = load_dataset("image-folder", data_path=root, image_size=16)
    with open(report, "a") as f:
        f.write(f"{data.mapped_from} {hashlib.sha256(data.x.numpy().tobytes()).hexdigest()}\n")


def test_processes_decoding_one_source_at_once_decode_it_once(tmp_path):
    root = folder_of_images(tmp_path / "imgs", 10)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(3)
    procs = [context.Process(target=_load_and_report, args=(root, tmp_path / "counts", tmp_path / "report", start))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len((tmp_path / "counts").read_text().split()) == 10  # one decode of each image, in all
    lines = set((tmp_path / "report").read_text().splitlines())
    assert len(lines) == 1 and len([p for p in leftovers() if p.endswith(".npy")]) == 1


def test_a_file_a_process_maps_is_never_removed_and_one_nobody_maps_is(tmp_path):
    root = folder_of_images(tmp_path / "imgs", 3)
    data = load_dataset("image-folder", data_path=root, image_size=16)
    path = Path(data.mapped_from)
    assert decoded.in_use(path) and not decoded.remove_entry(path) and path.exists()
    tail = data.x[1:]  # a view keeps the mapping, and its lock, alive
    del data
    assert decoded.in_use(path)
    del tail
    assert not decoded.in_use(path) and decoded.remove_entry(path) and leftovers() == []


def test_a_source_edited_since_is_decoded_again_and_its_old_file_removed(tmp_path):
    root = folder_of_images(tmp_path / "imgs", 4)
    first = load_dataset("image-folder", data_path=root, image_size=16)
    old, old_x = Path(first.mapped_from), first.x.clone()
    del first
    save_image(root / "00002.png", solid(20, 20, (250, 0, 0)))  # same name, other pixels
    os.utime(root / "00002.png", ns=(0, (root / "00002.png").stat().st_mtime_ns + 10**9))
    again = load_dataset("image-folder", data_path=root, image_size=16)
    assert Path(again.mapped_from) != old and not old.exists() and len(leftovers()) == 2
    assert int(again.x[2, 0, 0, 0]) == 250 and torch.equal(again.x[:2], old_x[:2])


def test_gzipped_and_transposed_idx_decode_into_the_cache_as_the_mapped_ones_read(tmp_path):
    from data_files import write_idx

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), (np.arange(300) % 26 + 1).astype(np.uint8)
    for suffix in ("", ".gz"):
        folder = tmp_path / f"emnist{suffix or '-plain'}"
        write_idx(folder / f"emnist-letters-train-images-idx3-ubyte{suffix}", x)
        write_idx(folder / f"emnist-letters-train-labels-idx1-ubyte{suffix}", y)
        data = load_dataset("emnist-letters", data_path=folder)
        assert Path(data.mapped_from).parent == decoded_cache_dir()
        assert np.array_equal(data.x[:, 0].numpy(), x.transpose(0, 2, 1)) and data.y.tolist() == (y - 1).tolist()
    cut = tmp_path / "cut"
    write_idx(cut / "emnist-letters-train-labels-idx1-ubyte.gz", y)
    blob = gzip.decompress(gzip.compress(b"\0\0\x08\x03" + b"".join(int(d).to_bytes(4, "big") for d in x.shape)
                                         + x.tobytes()))[:-100]
    (cut / "emnist-letters-train-images-idx3-ubyte.gz").write_bytes(gzip.compress(blob))
    with pytest.raises(UserError, match=r"IDX file ends after 235100 data bytes, its header says 235200"):
        load_dataset("emnist-letters", data_path=cut)
    assert len([p for p in leftovers() if p.endswith(".npy")]) == 2 and not [p for p in leftovers() if p.endswith(".tmp")]


PEAK_SCRIPT = """
    import gzip, struct, sys
    from pathlib import Path
    import numpy as np
    from data_files import save_image, solid
    from wgan.data import load_dataset

    def peak_kib():  # the process's peak resident set since the last reset
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    def grown(load):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
        before = peak_kib()
        data = load()
        return peak_kib() - before, data.x.shape, data.mapped_from

    tmp, n_files, n_idx = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for i in range(n_files):
        save_image(tmp / "big" / f"{i:05d}.png", solid(128, 128, (i % 256, 9, 9)))
    for i in range(8):
        save_image(tmp / "small" / f"{i}.png", solid(128, 128, (i, 9, 9)))
    with gzip.open(tmp / "idx" / "train-images-idx3-ubyte.gz", "wb", compresslevel=1) as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n_idx, 28, 28))
        for start in range(0, n_idx, 10000):  # written a part at a time: this process's peak stays low too
            f.write((np.arange(min(10000, n_idx - start) * 784) % 251).astype(np.uint8).tobytes())
    with gzip.open(tmp / "idx" / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n_idx) + (np.arange(n_idx) % 10).astype(np.uint8).tobytes())
    load_dataset("image-folder", data_path=tmp / "small", image_size=128)  # imports, threads: paid first
    print(*grown(lambda: load_dataset("image-folder", data_path=tmp / "big", image_size=128)))
    print(*grown(lambda: load_dataset("fashion-mnist", data_path=tmp / "idx")))
"""


def test_decoding_takes_memory_that_does_not_grow_with_the_dataset(tmp_path):
    """144 MiB of decoded images from a folder and 125 MiB from a gzipped IDX file, each decoded while the
    process's peak resident set grows by less than 24 MiB: a chunk's worth, not the dataset."""
    (tmp_path / "idx").mkdir()
    n_files, n_idx = 3000, 160_000
    proc = run_python(f"import sys; sys.argv[1:] = {[str(tmp_path), str(n_files), str(n_idx)]!r}\n"
                      + textwrap.dedent(PEAK_SCRIPT), timeout=600)
    assert proc.returncode == 0, proc.stderr
    (folder_kib, *folder_rest), (idx_kib, *idx_rest) = (line.split(" ", 1) for line in proc.stdout.splitlines())
    assert folder_rest[0].startswith(f"torch.Size([{n_files}, 3, 128, 128])") and ".npy" in folder_rest[0]
    assert idx_rest[0].startswith(f"torch.Size([{n_idx}, 1, 28, 28])") and ".npy" in idx_rest[0]
    for name, kib, mib in (("folder", folder_kib, n_files * 128 * 128 * 3 >> 20), ("idx", idx_kib, n_idx * 784 >> 20)):
        assert int(kib) < 24 * 1024, f"{name}: the peak grew {int(kib) >> 10} MiB while decoding {mib} MiB"
