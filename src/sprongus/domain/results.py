"""What the everyday secret use cases answer: a page of a listing, and a write's result. The rarer use cases'
answers are in domain/reports.py: a command loads only the ones it uses."""

from __future__ import annotations

from dataclasses import dataclass

from sprongus.domain.records import SecretView


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing, and the cursor of the next (None on the last page)."""

    items: list[SecretView]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SetResult:
    """What a write stored, and whether it created the secret."""

    view: SecretView
    created: bool
