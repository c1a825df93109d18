"""Where a dataset's files are looked for: --data PATH alone when it is given; otherwise, in order,
$WGAN_DATA (and $WGAN_DATA/<name>), the user cache dir (~/.cache/wgan/<name>) and the system dataset
directories (/usr/share/datasets/<name>). Then torchvision's download, unless $WGAN_OFFLINE is set, and
the one-line messages for files that are not there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from wgan.errors import UserError
from wgan.files import user_cache_dir

SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"),)


def downloads_allowed() -> bool:
    return not os.environ.get("WGAN_OFFLINE")


def candidate_dirs(name: str, data_path: str | Path | None, torchvision_folder: str | None = None) -> list[Path]:
    """Where a dataset's files are looked for, in order: an explicit data path alone, else the
    default places."""
    if data_path:
        dirs = [Path(data_path).expanduser()]
    else:
        dirs = []
        env = os.environ.get("WGAN_DATA")
        if env:
            dirs += [Path(env).expanduser() / name, Path(env).expanduser()]
        dirs.append(user_cache_dir() / name)
        dirs += [d / name for d in SYSTEM_DATA_DIRS]
    if torchvision_folder:
        dirs += [d / torchvision_folder for d in list(dirs)]
    return dirs


def download_root(name: str, data_path) -> Path:
    """Where torchvision downloads to: the user's --data folder (as torchvision's own root= does),
    else the user cache dir, which the default search covers."""
    return Path(data_path).expanduser() if data_path else user_cache_dir() / name


def searched(dirs: list[Path], torchvision_folder: str | None) -> str:
    """The places searched, for an error message (the torchvision sub-folders are implied)."""
    shown = dirs[: len(dirs) // 2] if torchvision_folder else dirs
    return ", ".join(str(d) for d in shown)


def try_download(download: Callable[[Path], object] | None, root: Path) -> bool:
    """Whether a download was tried (then the caller searches again); a failed one is not an error here."""
    if download is None or not downloads_allowed():
        return False
    try:
        download(root)
    except Exception:  # no network, mirror down, ...: the caller falls through to its clear message
        pass
    return True


def default_places(name: str) -> str:
    env = "" if os.environ.get("WGAN_DATA") else "$WGAN_DATA, "
    return env + searched(candidate_dirs(name, None), None)


def not_there(name: str, data_path, what: str, dirs: list[Path], torchvision_folder: str | None,
               downloadable: bool = True, hint: str = "") -> UserError:
    """One line for files not found: with --data, names that path alone; otherwise every place searched."""
    if data_path:
        fetched = "; the download into it failed" if downloadable and downloads_allowed() else ""
        return UserError(f"--data {data_path}: no {what} there{fetched}; point --data at the folder that holds "
                         f"them, or leave --data out to search {default_places(name)}")
    fetched = "; download failed, was offline or not tried" if downloadable else ""
    return UserError(f"{name}: no {what} in: {searched(dirs, torchvision_folder)}{fetched}. "
                     f"Pass --data DIR or set WGAN_DATA{hint}")


def refuse_file(data_path, name: str, holds: str) -> None:
    if data_path and Path(data_path).expanduser().is_file():
        raise UserError(f"--data {data_path}: is a file; for {name} pass the folder that holds {holds}")
