"""Directories only their owner may enter, parents included.

`Path.mkdir(mode=0o700, parents=True)` gives the mode to the last directory only: the parents it creates get the
process's umask, 0777 under `umask 000`, where any local user could rename a directory above the vault, its key
file or the token file and put their own in its place.
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def make_private_dir(path: Path) -> None:
    """`path` and every missing directory above it, each created 0700; existing ones are left as they are."""
    missing = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=0o700)
