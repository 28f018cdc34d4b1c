"""Local master keys: a small keyring of AES-256 key versions that wraps DEKs with AES-256-GCM.

Used by the env, file and keychain providers, which differ only in where the key versions are kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sprongus.domain.errors import ConfigError, IntegrityError, KeyProviderError
from sprongus.ports.crypto import WrappedKey

NONCE_BYTES = 12
KEY_BYTES = 32
KEYRING_FORMAT = "sprongus.keyring.v1"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NUMBERED = re.compile(r"[vh](\d+)(?:-[0-9a-f]+)?")


@dataclass(frozen=True, repr=False)
class KeyVersions:
    """Key versions, newest (current) first, for master keys and for value-HMAC keys."""

    master: list[tuple[str, bytes]]
    hmac: list[tuple[str, bytes]] = field(default_factory=list)

    def __repr__(self) -> str:
        """The ids only: the generated repr printed the raw keys, for any debug line, assertion message or error
        reporter that records a frame's locals."""
        return f"KeyVersions(master={[kid for kid, _ in self.master]}, hmac={[kid for kid, _ in self.hmac]})"

    @classmethod
    def fresh(cls) -> KeyVersions:
        return cls([(_new_id([], "v"), os.urandom(KEY_BYTES))], [(_new_id([], "h"), os.urandom(KEY_BYTES))])

    def with_new_master(self) -> KeyVersions:
        return KeyVersions([(_new_id(self.master, "v"), os.urandom(KEY_BYTES)), *self.master], self.hmac)

    def with_new_hmac(self) -> KeyVersions:
        return KeyVersions(self.master, [(_new_id(self.hmac, "h"), os.urandom(KEY_BYTES)), *self.hmac])

    def dumps(self) -> str:
        def encode(keys: list[tuple[str, bytes]]) -> list[dict[str, str]]:
            return [{"id": kid, "key": base64.b64encode(key).decode()} for kid, key in keys]

        return json.dumps({"format": KEYRING_FORMAT, "created": datetime.now(UTC).isoformat(),
                           "master": encode(self.master), "hmac": encode(self.hmac)})

    @classmethod
    def loads(cls, text: str, where: str) -> KeyVersions:
        try:
            doc: Any = json.loads(text)
            if doc.get("format") != KEYRING_FORMAT:
                raise ValueError
            master = [(_check_id(e["id"]), _decode_key(e["key"])) for e in doc["master"]]
            hmac = [(_check_id(e["id"]), _decode_key(e["key"])) for e in doc.get("hmac", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise KeyProviderError(f"{where} does not hold a valid sprongus keyring") from None
        if not master:
            raise KeyProviderError(f"{where} holds no master key")
        return cls(master, hmac)


def _new_id(keys: list[tuple[str, bytes]], letter: str) -> str:
    """`v3-9f2c41d0`: the number orders versions for people; the random part makes every new key's id unique,
    so a lost key file replaced by a new one can never pass for the old key (both used to be `v1`)."""
    numbers = [int(m.group(1)) for kid, _ in keys if (m := _NUMBERED.fullmatch(kid)) and kid[0] == letter]
    return f"{letter}{max(numbers, default=0) + 1}-{os.urandom(4).hex()}"


def _check_id(key_id: object) -> str:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ValueError("bad key id")
    return key_id


def _decode_key(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("bad key")
    try:
        key = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("bad key") from None
    if len(key) != KEY_BYTES:
        raise ValueError("bad key")
    return key


def parse_key_list(text: str, setting: str) -> list[tuple[str, bytes]]:
    """Parse `id:base64key[,id:base64key...]`. Errors name the setting and entry, never the key."""
    keys: list[tuple[str, bytes]] = []
    for index, entry in enumerate(part.strip() for part in text.split(",")):
        key_id, sep, encoded = entry.partition(":")
        try:
            if not sep:
                raise ValueError
            keys.append((_check_id(key_id), _decode_key(encoded)))
        except ValueError:
            raise ConfigError(f"{setting}: entry {index + 1} must be id:base64 of a 32-byte key "
                              "(id of [A-Za-z0-9._-])") from None
        if any(kid == key_id for kid, _ in keys[:-1]):
            raise ConfigError(f"{setting}: entry {index + 1} repeats a key id; key ids must be unique")
    return keys


class LocalMasterKeyProvider:
    """Wraps with the newest key version, unwraps with any. Raises IntegrityError on tampering.

    `first_key` makes a provider that holds no key yet (a new vault's file or keychain item does not exist): it
    creates the key only when something asks for the current key (a write), so reads never create keys.
    """

    def __init__(self, provider: str, keys: list[tuple[str, bytes]],
                 first_key: Callable[[], list[tuple[str, bytes]]] | None = None, missing: str = "") -> None:
        if not keys and first_key is None:
            raise ConfigError(f"{provider}: no master key configured")
        self.provider = provider
        self._first_key = first_key
        self._missing = missing or f"the {provider} provider holds no master key"
        self._keys: dict[str, AESGCM] = {}
        self._current: str | None = None
        if keys:
            self.reload(keys)

    @property
    def has_key(self) -> bool:
        return self._current is not None

    def reload(self, keys: list[tuple[str, bytes]]) -> None:
        """Adopt a new list of key versions (newest first), e.g. after a new master key was added."""
        self._keys = {kid: AESGCM(key) for kid, key in keys}
        self._current = keys[0][0]

    def current_key_id(self) -> str:
        return f"{self.provider}:{self._current_version()}"

    def _current_version(self) -> str:
        if self._current is None:
            assert self._first_key is not None  # __init__ allows no keys only with a way to make the first
            self.reload(self._first_key())
        assert self._current is not None
        return self._current

    def wrap(self, dek: bytes, aad: bytes) -> WrappedKey:
        nonce = os.urandom(NONCE_BYTES)
        version = self._current_version()
        return WrappedKey(f"{self.provider}:{version}", nonce + self._keys[version].encrypt(nonce, dek, aad))

    def unwrap(self, wrapped: bytes, key_id: str, aad: bytes) -> bytes:
        version = self._version(key_id)
        try:
            return self._keys[version].decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except (InvalidTag, ValueError):
            raise IntegrityError() from None

    def can_unwrap(self, key_id: str) -> bool:
        provider, _, version = key_id.partition(":")
        return provider == self.provider and version in self._keys

    def _version(self, key_id: str) -> str:
        if self._current is None:
            raise KeyProviderError(f"master key {key_id} is not available: {self._missing}")
        if not self.can_unwrap(key_id):
            raise KeyProviderError(f"master key {key_id} is not available to the {self.provider} provider")
        return key_id.partition(":")[2]


class StaticHmacKeyring:
    """Value-HMAC keys, newest first, ids prefixed by the provider (`file:h1`) so providers never clash.

    An unknown key id is an integrity failure.
    """

    def __init__(self, keys: list[tuple[str, bytes]], namespace: str) -> None:
        self._namespace = namespace
        self.reload(keys)

    def reload(self, keys: list[tuple[str, bytes]]) -> None:
        named = [(f"{self._namespace}:{kid}", key) for kid, key in keys]
        self._current = named[0][0] if named else None
        self._keys = dict(named)

    def current_key_id(self) -> str | None:
        return self._current

    def key(self, key_id: str) -> bytes:
        try:
            return self._keys[key_id]
        except KeyError:
            raise IntegrityError() from None
