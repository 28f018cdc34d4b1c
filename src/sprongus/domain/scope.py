"""Scopes: who a secret belongs to (`user:<id>`, `project:<id>`, `system`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sprongus.domain.errors import ValidationError

OWNER_ID_RULE = "1-128 chars of [A-Za-z0-9._@-], starting with a letter or digit"
_OWNER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")
SYSTEM_URL_ID = "-"


class OwnerType(StrEnum):
    USER = "user"
    PROJECT = "project"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True, order=True)
class Scope:
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
