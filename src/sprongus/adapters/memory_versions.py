"""The kept versions, purged version numbers and their undo journal, for InMemorySecretRepository."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sprongus.domain.records import SecretRecord
from sprongus.domain.scope import Scope

_Version = tuple[Scope, str, int]


class InMemoryVersions:
    def __init__(self) -> None:
        self.kept: dict[_Version, SecretRecord] = {}
        self.purged: dict[tuple[Scope, str], int] = {}
        self._undo: list[tuple[_Version, SecretRecord | None]] | None = None
        self._purged_before: dict[tuple[Scope, str], int] | None = None

    def get_any(self, scope: Scope, key: str) -> SecretRecord | None:
        raise NotImplementedError

    def _drop_current(self, scope: Scope, key: str) -> SecretRecord | None:
        raise NotImplementedError

    def save(self, record: SecretRecord, expected_version: int | None) -> None:
        raise NotImplementedError

    def archive(self, record: SecretRecord) -> None:
        place = (record.scope, record.key, record.version)
        if place not in self.kept:
            self._keep(place, self.kept.get(place))
            self.kept[place] = record

    def prune(self, scope: Scope, key: str, below: int) -> list[int]:
        gone = [v for (s, k, v) in self.kept if s == scope and k == key and v < below]
        for version in gone:
            self._keep((scope, key, version), self.kept.pop((scope, key, version)))
        return sorted(gone, reverse=True)

    def purge(self, scope: Scope, key: str, at: datetime) -> list[int]:
        gone = self.prune(scope, key, 2**31)
        current = self._drop_current(scope, key)
        gone = sorted([*gone, *([current.version] if current else [])], reverse=True)
        if gone:
            if self._purged_before is None:
                self._purged_before = dict(self.purged)
            self.purged[(scope, key)] = gone[0]
        return gone

    def last_purged_version(self, scope: Scope, key: str) -> int:
        return self.purged.get((scope, key), 0)

    def versions(self, scope: Scope, key: str) -> list[SecretRecord]:
        return sorted((r for (s, k, _), r in self.kept.items() if s == scope and k == key),
                      key=lambda r: r.version, reverse=True)

    def get_version(self, scope: Scope, key: str, version: int) -> SecretRecord | None:
        return self.kept.get((scope, key, version))

    def save_version(self, record: SecretRecord, expected_checksum: str) -> bool:
        place = (record.scope, record.key, record.version)
        stored = self.kept.get(place)
        if stored is None or stored.checksum != expected_checksum:
            return False
        self._keep(place, stored)
        self.kept[place] = record
        return True

    def rewrap_many(self, rows: list[tuple[SecretRecord, str]], kept: bool) -> int:
        done = 0
        for record, expected in rows:
            stored = (self.kept.get((record.scope, record.key, record.version)) if kept
                      else self.get_any(record.scope, record.key))
            if stored is None or (stored.id, stored.version, stored.checksum) != (record.id, record.version, expected):
                continue
            moved = replace(stored, dek_wrapped=record.dek_wrapped, master_key_id=record.master_key_id,
                            hmac=record.hmac, checksum=record.checksum)  # only the wrap: a delete flag stays
            if kept:
                self.save_version(moved, expected)
            else:
                self.save(moved, stored.version)
            done += 1
        return done

    def scan_versions(self, after: tuple[str, int] | None, limit: int,
                      not_on_master_key: str | None = None) -> list[SecretRecord]:
        found = [r for r in self.kept.values()
                 if (after is None or (r.id, r.version) > after)
                 and (not_on_master_key is None or r.master_key_id != not_on_master_key)]
        return sorted(found, key=lambda r: (r.id, r.version))[:limit]

    def _keep(self, place: _Version, previous: SecretRecord | None) -> None:
        if self._undo is not None:
            self._undo.append((place, previous))

    def _begin_versions(self) -> None:
        self._undo = []
        self._purged_before = None

    def _rollback_versions(self) -> None:
        for place, previous in reversed(self._undo or []):
            if previous is None:
                self.kept.pop(place, None)
            else:
                self.kept[place] = previous
        if self._purged_before is not None:
            self.purged = self._purged_before
        self._undo = None
        self._purged_before = None
