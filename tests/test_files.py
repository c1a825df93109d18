"""The generic file helpers."""

from __future__ import annotations

import pytest

from wgan.files import atomic_write, user_cache_dir


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "step-00000001.pt"
    target.write_bytes(b"old and good")

    def broken(f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old and good"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left behind


def test_atomic_write_gives_the_file_ordinary_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    os.umask(umask)
    target = tmp_path / "config.json"
    atomic_write(target, lambda f: f.write(b"{}"))
    assert target.read_bytes() == b"{}" and (target.stat().st_mode & 0o777) == 0o666 & ~umask


def test_the_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / "wgan"
