"""OS keychain access (via keyring) for everything sprongus keeps there: key versions and API tokens.

Every keyring call runs with a timeout on a daemon thread, so a locked or hung keychain cannot hang the CLI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sprongus.domain.errors import KeyProviderUnavailable

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
        kind = type(box["error"]).__name__
        hint = "; unlock it (or allow sprongus to use it) and try again" if kind in _REFUSALS else ""
        raise KeyProviderUnavailable(f"the OS keychain failed ({what}): {kind}{hint}") from box["error"]
    return box["result"]  # type: ignore[no-any-return]


# keyring's and SecretStorage's names for a keychain that is locked or whose prompt was dismissed: still an outage to
# wait out (exit 8), but one the user ends, so the message says how.
_REFUSALS = frozenset({"KeyringLocked", "LockedException", "PromptDismissedException", "PermissionError"})


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


def real_backend(timeout: float) -> Any | None:
    """keyring's chosen backend, or None when it would keep nothing (headless box, fail/null backends)."""
    import keyring

    backend = call_with_timeout(keyring.get_keyring, timeout, "open")
    return backend if has_real_backend(backend) else None


class KeychainItem:
    """One named secret in the keychain, read and written with a bounded wait."""

    def __init__(self, backend: Any, username: str, timeout: float) -> None:
        self._backend = backend
        self._username = username
        self._timeout = timeout

    def get(self) -> str | None:
        text = call_with_timeout(lambda: self._backend.get_password(SERVICE, self._username), self._timeout, "read")
        return text if isinstance(text, str) else None

    def set(self, text: str) -> None:
        call_with_timeout(lambda: self._backend.set_password(SERVICE, self._username, text), self._timeout, "write")


def api_token_item(api_url: str, timeout: float = 5.0) -> KeychainItem | None:
    """Where `sprongus login` keeps the token for one API; None without a real keychain."""
    backend = real_backend(timeout)
    api = api_url.rstrip("/").removesuffix("/v1").rstrip("/")  # with or without /v1: one API, one token
    return None if backend is None else KeychainItem(backend, f"api-token:{api}", timeout)


def stored_api_token(api_url: str) -> str | None:
    item = api_token_item(api_url)
    return None if item is None else item.get()
