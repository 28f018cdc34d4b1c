"""Who is calling, and which scopes and actions that caller may touch (docs/design.md#api)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sprongus.domain.errors import NotFound, PermissionDenied, ValidationError
from sprongus.domain.scope import OwnerType, Scope


class Permission(StrEnum):
    READ = "secrets:read"
    WRITE = "secrets:write"
    REVEAL = "secrets:reveal"
    ADMIN = "secrets:admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. `owner` is the vault's owner in local mode: every scope, no rate limits."""

    subject: str
    permissions: frozenset[Permission] = frozenset()
    projects: frozenset[str] = frozenset()
    owner: bool = False
    request_id: str | None = None
    client_address: str | None = None

    @classmethod
    def local_owner(cls, os_user: str) -> Principal:
        return cls(subject=os_user, permissions=frozenset(Permission), owner=True)

    @property
    def rate_limited(self) -> bool:
        return not self.owner

    def can_see(self, scope: Scope) -> bool:
        if self.owner:
            return True
        if scope.owner_type is OwnerType.USER:
            return scope.owner_id == self.subject
        if scope.owner_type is OwnerType.PROJECT:
            return scope.owner_id in self.projects
        return Permission.ADMIN in self.permissions

    def has(self, permission: Permission) -> bool:
        return self.owner or permission in self.permissions


class ScopeHidden(NotFound):
    """Raised for out-of-tenant scopes: answers like NotFound, audited as a denial."""


def authorize(principal: Principal, scope: Scope, permission: Permission) -> None:
    """Out-of-tenant scopes look absent (no existence oracle); a missing permission is a plain denial."""
    if not isinstance(scope, Scope):
        raise ValidationError("scope", "must be user:<id>, project:<id> or system")
    if not principal.can_see(scope):
        raise ScopeHidden(f"scope {scope} not found")
    if not principal.has(permission):
        raise PermissionDenied(f"missing permission {permission.value}", required=permission.value)
