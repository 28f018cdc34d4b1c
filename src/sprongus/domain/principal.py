"""Who is calling, and which scopes and actions that caller may touch (docs/design.md#api)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sprongus.domain.errors import NotFound, PermissionDenied, ValidationError
from sprongus.domain.scope import OwnerType, Scope


class TokenKind(StrEnum):
    """Who holds a token: an operator minted it by hand, a service or CI job exchanged its own identity for it
    (exempt from the recent-auth rule, with its own reveal limit), or a person signed in with the IdP."""

    OPERATOR = "operator"
    WORKLOAD = "workload"
    USER = "user"


class Permission(StrEnum):
    READ = "secrets:read"
    WRITE = "secrets:write"
    REVEAL = "secrets:reveal"
    ADMIN = "secrets:admin"


ANONYMOUS = "anonymous"  # the subject of a caller without a token (a refused request, a redeem, an exchange)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. `owner` is the vault's owner in local mode: every scope, no rate limits."""

    subject: str
    permissions: frozenset[Permission] = frozenset()
    projects: frozenset[str] = frozenset()
    owner: bool = False
    request_id: str | None = None
    client_address: str | None = None
    kind: TokenKind = TokenKind.OPERATOR
    key_prefix: str = ""  # only keys starting with it exist for this caller (others answer 404)
    # Whether user:<subject> is this caller's own scope. Not for a workload's exchanged token: its subject is what
    # an IdP put in a JWT, and one equal to a person's id (a trust with no subject prefix, `sub=alice`) handed that
    # person's secrets to a CI job. A token an operator minted, or a person's exchanged one, owns it.
    personal_scope: bool = True

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
            return self.personal_scope and scope.owner_id == self.subject
        if scope.owner_type is OwnerType.PROJECT:
            return scope.owner_id in self.projects
        return Permission.ADMIN in self.permissions

    def has(self, permission: Permission) -> bool:
        return self.owner or permission in self.permissions

    def can_see_key(self, key: str) -> bool:
        return key.startswith(self.key_prefix)

    def narrow(self, prefix: str) -> str | None:
        """The prefix a listing under `prefix` really covers for this caller; None when it covers nothing."""
        if prefix.startswith(self.key_prefix):
            return prefix
        if self.key_prefix.startswith(prefix):
            return self.key_prefix
        return None


class ScopeHidden(NotFound):
    """Raised for out-of-tenant scopes: answers like NotFound, audited as a denial."""


def authorize(principal: Principal, scope: Scope, permission: Permission, key: str | None = None) -> None:
    """Out-of-tenant scopes, and keys outside the caller's key prefix, look absent (no existence oracle); a
    missing permission is a plain denial."""
    if not isinstance(scope, Scope):
        raise ValidationError("scope", "must be user:<id>, project:<id> or system")
    if not principal.can_see(scope):
        raise ScopeHidden(f"scope {scope} not found")
    if key is not None and not principal.can_see_key(key):
        raise ScopeHidden(f"secret {key} not found in {scope}")
    if not principal.has(permission):
        raise PermissionDenied(f"missing permission {permission.value}", required=permission.value)
