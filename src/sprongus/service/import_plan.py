"""What an import brings per secret, and the version numbers it gets in the target vault."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sprongus.domain.import_item import ImportItem
from sprongus.domain.scope import Scope
from sprongus.service.bundles import OpenedItem


@dataclass(frozen=True, slots=True)
class Incoming:
    """One secret to import: its versions oldest first, the last one to become current. `versions` are the source's
    numbers, given only by a bundle with history."""

    items: list[ImportItem]
    versions: list[int] | None = None

    @property
    def place(self) -> tuple[Scope, str]:
        return self.items[-1].scope, self.items[-1].key

    @property
    def current(self) -> ImportItem:
        return self.items[-1]


def incoming(opened: list[OpenedItem], history: bool) -> list[Incoming]:
    """A bundle's items per secret, in document order (a bundle with history lists each secret's versions oldest
    first, which the bundle parser checked)."""
    if not history:
        return [Incoming([o.item]) for o in opened]
    grouped: dict[tuple[Scope, str], list[OpenedItem]] = {}
    for o in opened:
        grouped.setdefault((o.item.scope, o.item.key), []).append(o)
    return [Incoming([o.item for o in group], [o.version for o in group]) for group in grouped.values()]


def plan_versions(source: list[int] | None, last: int, new: bool) -> list[int]:
    """The target's numbers for a secret's incoming versions.

    A bundle with history recreates the versions under their own numbers when the target has no such secret and
    never used those numbers (`last`: the newest number a purged secret of that name had), so `get --version N`
    means the same on both sides. Otherwise the versions are appended after the target's newest (`last`: its
    current version, or the purged one's) in order, the bundle's current one last: a number is never reused for
    another value. Without history there is one version: the next number, as a plain write would get.
    """
    if source is None:
        return [last + 1]
    if new and source[0] > last:
        return list(source)
    return [last + 1 + i for i in range(len(source))]


def batches(secrets: list[Incoming], size: int) -> Iterator[list[Incoming]]:
    """Whole secrets per batch, about `size` versions each."""
    batch: list[Incoming] = []
    count = 0
    for secret in secrets:
        batch.append(secret)
        count += len(secret.items)
        if count >= size:
            yield batch
            batch, count = [], 0
    if batch:
        yield batch
