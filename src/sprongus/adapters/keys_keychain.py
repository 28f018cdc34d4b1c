"""The `keychain` key provider's storage: the key versions as one item in the OS keychain (via keyring).

Every keyring call runs with a timeout on a daemon thread, so a locked or hung keychain cannot hang the CLI.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sprongus.adapters.keys_file import key_update_lock
from sprongus.adapters.keys_local import KeyVersions
from sprongus.domain.errors import KeyProviderError, KeyProviderUnavailable

T = TypeVar("T")
SERVICE = "sprongus"
DEFAULT_TIMEOUT = 5.0


def call_with_timeout(fn: Callable[[], T], timeout: float, what: str) -> T:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name=f"sprongus-{what}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise KeyProviderUnavailable(f"the OS keychain did not answer within {timeout:g} s ({what}); is it locked?")
    if "error" in box:
        raise KeyProviderUnavailable(f"the OS keychain failed ({what}): {type(box['error']).__name__}") \
            from box["error"]
    return box["result"]  # type: ignore[no-any-return]


def has_real_backend(backend: Any) -> bool:
    """False for keyring's fail/null backends and an empty chainer: nothing would really be kept."""
    from keyring.backends import chainer, fail

    module = type(backend).__module__
    # keyrings.alt keeps passwords in a plain or weakly protected file: no better than our own 0600 key file.
    if isinstance(backend, fail.Keyring) or module.startswith(("keyring.backends.null", "keyrings.alt")):
        return False
    if isinstance(backend, chainer.ChainerBackend):
        return bool(backend.backends)
    return float(getattr(backend, "priority", 0)) > 0


class KeychainKeyStore:
    """Loads the key versions from the keychain, creating them on first use."""

    def __init__(self, backend: Any, vault_id: str, timeout: float = DEFAULT_TIMEOUT,
                 lock_path: Path | None = None) -> None:
        self._backend = backend
        self._lock_path = lock_path
        self._username = f"keyring:{vault_id}"
        self._timeout = timeout

    def load_or_create(self) -> tuple[KeyVersions, bool]:
        text = self._get()
        if text is not None:
            return KeyVersions.loads(text, "the OS keychain item"), False
        versions = KeyVersions.fresh()
        self._set(versions)
        again = self._get()  # read back: another process may have written first, and the keychain must hold it
        if again is None:
            raise KeyProviderError("the OS keychain did not keep the new master key")
        return KeyVersions.loads(again, "the OS keychain item"), again == versions.dumps()

    def load_existing(self) -> KeyVersions:
        text = self._get()
        if text is None:
            raise KeyProviderError("no sprongus keyring in the OS keychain")
        return KeyVersions.loads(text, "the OS keychain item")

    def add_master_key(self) -> KeyVersions:
        lock = key_update_lock(self._lock_path) if self._lock_path else contextlib.nullcontext()
        with lock:
            versions = self.load_existing().with_new_master().with_new_hmac()
            self._set(versions)
            return versions

    def _get(self) -> str | None:
        text = call_with_timeout(lambda: self._backend.get_password(SERVICE, self._username),
                                 self._timeout, "read")
        return text if isinstance(text, str) else None

    def _set(self, versions: KeyVersions) -> None:
        text = versions.dumps()
        call_with_timeout(lambda: self._backend.set_password(SERVICE, self._username, text),
                          self._timeout, "write")
