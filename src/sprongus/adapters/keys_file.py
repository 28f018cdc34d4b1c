"""The `file` key provider's storage: a 0600 keyring file in the user config dir (headless fallback)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sprongus.adapters.keys_local import KeyVersions
from sprongus.adapters.private_dirs import make_private_dir
from sprongus.domain.errors import KeyProviderError

if TYPE_CHECKING:
    from filelock import FileLock


def key_update_lock(path: Path) -> FileLock:
    """An inter-process lock beside the key storage, held while a new key version is added."""
    from filelock import FileLock

    make_private_dir(path.parent)
    return FileLock(str(path.with_name(path.name + ".lock")), timeout=30, mode=0o600)


class FileKeyStore:
    """Loads the key versions, creating them on first use. Refuses a file that others can read."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load_or_create(self) -> tuple[KeyVersions, bool]:
        """(versions, created_now)."""
        try:
            return self.load(), False
        except FileNotFoundError:
            pass
        versions = KeyVersions.fresh()
        try:
            self._write(versions, exclusive=True)
        except FileExistsError:  # another process created it first: use theirs
            return self.load(), False
        return versions, True

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def load_existing(self) -> KeyVersions:
        """Load without ever creating: a missing or unreadable file is a KeyProviderError."""
        try:
            return self.load()
        except FileNotFoundError:
            raise KeyProviderError(f"key file {self.path} does not exist") from None

    def load(self) -> KeyVersions:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise
        except OSError as exc:  # a symlink (O_NOFOLLOW), a directory, no permission
            raise KeyProviderError(f"key file {self.path} cannot be read: {exc.strerror or exc}") from None
        with os.fdopen(fd, "r", encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyProviderError(f"key file {self.path} is accessible by other users "
                                       f"(mode {stat.S_IMODE(mode):o}); run: chmod 600 {self.path}")
            try:
                text = handle.read()
            except UnicodeDecodeError:
                raise KeyProviderError(f"key file {self.path} does not hold a valid sprongus keyring") from None
            return KeyVersions.loads(text, f"key file {self.path}")

    def add_master_key(self) -> KeyVersions:
        return self._update(lambda versions: versions.with_new_master().with_new_hmac())

    def add_hmac_key(self) -> KeyVersions:
        return self._update(KeyVersions.with_new_hmac)

    def _update(self, change: Callable[[KeyVersions], KeyVersions]) -> KeyVersions:
        # Read-modify-write under a lock: two concurrent rotations must not both write a different "v2".
        with key_update_lock(self.path):
            versions = change(self.load_existing())
            self._write(versions, exclusive=False)
            return versions

    def _write(self, versions: KeyVersions, exclusive: bool) -> None:
        import tempfile  # only a write needs it: every read of the key file starts without its imports

        make_private_dir(self.path.parent)
        # A unique 0600 temp file per writer: threads of one process must not share (and truncate) one.
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(versions.dumps())
                handle.flush()
                os.fsync(handle.fileno())
            if exclusive:
                os.link(tmp, self.path)  # atomic create-if-absent: FileExistsError when we lost the race
            else:
                os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
