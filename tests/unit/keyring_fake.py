"""In-memory keyring backends for tests: a working keychain and a hung one.

keyring registers every concrete backend class it sees; these are taken back out of that registry so that
`keyring.get_keyring()` elsewhere in the test run never picks a fake by accident.
"""

from __future__ import annotations

import threading
import time

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked, PasswordDeleteError


class InMemoryKeyring(KeyringBackend):
    """A real KeyringBackend that keeps passwords in a dict."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}
        self.writes = 0
        self._lock = threading.Lock()

    def get_password(self, service: str, username: str) -> str | None:
        with self._lock:
            return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        with self._lock:
            self.items[(service, username)] = password
            self.writes += 1

    def delete_password(self, service: str, username: str) -> None:
        with self._lock:
            if self.items.pop((service, username), None) is None:
                raise PasswordDeleteError(username)


class HungKeyring(InMemoryKeyring):
    """A locked keychain whose prompt nobody answers: every read blocks for `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def get_password(self, service: str, username: str) -> str | None:
        time.sleep(self.delay)
        return super().get_password(service, username)


class LockedKeyring(InMemoryKeyring):
    """A keychain that refuses every read, as a locked macOS keychain does when the user clicks Deny."""

    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("the keychain is locked")


class UnrankedKeyring(InMemoryKeyring):
    """A backend keyring itself would never choose (priority 0): it does not count as a keychain."""

    priority = 0  # type: ignore[assignment]


for _fake in (InMemoryKeyring, HungKeyring, LockedKeyring, UnrankedKeyring):
    KeyringBackend._classes.discard(_fake)
