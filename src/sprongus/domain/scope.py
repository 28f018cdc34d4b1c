"""Scopes: who a secret belongs to (`user:<id>`, `project:<id>`, `system`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sprongus.domain.errors import ValidationError

OWNER_ID_RULE = "1-128 chars of [A-Za-z0-9._@-], starting with a letter or digit"
_OWNER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
SYSTEM_URL_ID = "-"
# What people type for `user:` and `project:` (abbreviations, plurals), and between kind and id besides ':'.
_KIND_WORDS = {"u": "user", "usr": "user", "users": "user", "p": "project", "prj": "project", "proj": "project",
               "projects": "project"}
_MISTYPED_SEPARATOR = re.compile(r"[:/=\\]")


class OwnerType(StrEnum):
    USER = "user"
    PROJECT = "project"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """Who a secret belongs to: a user, a project, or the system; validated when built."""

    owner_type: OwnerType
    owner_id: str | None

    def __post_init__(self) -> None:
        if self.owner_type is OwnerType.SYSTEM:
            if self.owner_id is not None:
                raise ValidationError("ownerId", "must be empty for the system scope")
        elif self.owner_id is None or not _OWNER_ID.fullmatch(self.owner_id):
            raise ValidationError("ownerId", OWNER_ID_RULE)

    @classmethod
    def of(cls, owner_type: str, owner_id: str | None) -> Scope:
        """Build from API-style parts; `-` or empty stands for no owner id (system)."""
        try:
            kind = OwnerType(owner_type)
        except ValueError:
            raise ValidationError("ownerType", "must be one of user, project, system") from None
        if owner_id in ("", SYSTEM_URL_ID):
            owner_id = None
        return cls(kind, owner_id)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """Parse the text form used by the CLI and docs: `user:<id>`, `project:<id>` or `system`."""
        if text == OwnerType.SYSTEM.value:
            return cls(OwnerType.SYSTEM, None)
        kind, sep, owner_id = text.partition(":")
        if not sep or kind not in (OwnerType.USER.value, OwnerType.PROJECT.value):
            raise ValidationError("scope", "must be user:<id>, project:<id> or system")
        try:
            return cls(OwnerType(kind), owner_id)
        except ValidationError:
            raise ValidationError("scope", f"owner id: {OWNER_ID_RULE}") from None

    @classmethod
    def system(cls) -> Scope:
        return cls(OwnerType.SYSTEM, None)

    @classmethod
    def user(cls, owner_id: str) -> Scope:
        return cls(OwnerType.USER, owner_id)

    @classmethod
    def project(cls, owner_id: str) -> Scope:
        return cls(OwnerType.PROJECT, owner_id)

    @property
    def url_owner_id(self) -> str:
        return self.owner_id if self.owner_id is not None else SYSTEM_URL_ID

    def __str__(self) -> str:
        if self.owner_type is OwnerType.SYSTEM:
            return "system"
        return f"{self.owner_type.value}:{self.owner_id}"


def suggest_scope(text: str) -> str | None:
    """The valid scope a mistyped one most likely meant, for an error's "did you mean": `proj:p1`, `project/p1`,
    `projects:p1`, `Project:p1` and a bare `p1` all mean `project:p1`; None when there is no clear guess (`team:x`).

    A guess is only offered when it parses, so the hint never suggests another mistake.
    """
    if not isinstance(text, str) or len(text) > 256:
        return None
    cleaned = text.strip()
    if cleaned.lower().rstrip(":") == OwnerType.SYSTEM.value:
        return OwnerType.SYSTEM.value if text != OwnerType.SYSTEM.value else None
    separator = _MISTYPED_SEPARATOR.search(cleaned)
    if separator is None:
        if cleaned.lower() in (*_KIND_WORDS, OwnerType.USER.value, OwnerType.PROJECT.value):
            return None  # a kind without an id: nothing to put after the colon
        # A bare id: an e-mail address is most likely a person. `notion.api_token` or `API_KEY` is more likely a
        # key name typed without its scope than a project, and `project:notion.api_token` would mislead.
        if "@" in cleaned:
            kind: str | None = OwnerType.USER.value
        elif "." in cleaned or "_" in cleaned:
            return None
        else:
            kind = OwnerType.PROJECT.value
        owner_id = cleaned
    else:
        kind = _kind_of(cleaned[:separator.start()].strip().lower())
        owner_id = cleaned[separator.end():].strip()
    if kind is None:
        return None
    guess = f"{kind}:{owner_id}"
    try:
        Scope.parse(guess)
    except ValidationError:
        return None
    return guess if guess != text else None


def _kind_of(word: str) -> str | None:
    kinds = (OwnerType.USER.value, OwnerType.PROJECT.value)
    if word in kinds or word in _KIND_WORDS:
        return _KIND_WORDS.get(word, word)
    if len(word) >= 3:  # `pro`, `projec`: a start of one kind only
        starts = [kind for kind in kinds if kind.startswith(word)]
        if len(starts) == 1:
            return starts[0]
    import difflib  # only on the error path: a typo such as `porject` or `uesr`

    close = difflib.get_close_matches(word, kinds, n=1, cutoff=0.7)
    return close[0] if close else None
