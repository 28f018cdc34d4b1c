"""One error tree for the whole product.

The CLI and the API each map these classes to an exit code / HTTP status through one table. No message here ever
contains a secret value: messages name the field and the rule only.
"""

from __future__ import annotations


class SprongusError(Exception):
    """Base of every error the product raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


class ValidationError(SprongusError):
    """Input broke a rule of docs/design.md#names-and-limits. `field` names the field, the message names the rule."""

    def __init__(self, field: str, rule: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(f"{field}: {rule}", field=field)
        self.rule = rule
        self.errors: dict[str, list[str]] = errors if errors is not None else {field: [rule]}


class NotFound(SprongusError):
    """The secret does not exist, or the caller may not know whether it exists."""


class Gone(SprongusError):
    """A single-use reveal token that was used, expired or never existed: all alike (HTTP 410)."""


class PermissionDenied(SprongusError):
    """The caller is known but lacks the permission (token scope) for the action."""

    def __init__(self, message: str, *, required: str | None = None) -> None:
        super().__init__(message)
        self.required = required


class ConfirmationRequired(PermissionDenied):
    """A reveal was not confirmed."""


class Conflict(SprongusError):
    """A concurrent or conditional write lost: the stored version is not the expected one."""

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class RateLimited(SprongusError):
    """The caller exceeded a rate-limit policy."""

    def __init__(self, policy: str, *, limit: int, window_seconds: int, retry_after: int) -> None:
        super().__init__(f"rate limit '{policy}' exceeded; retry after {retry_after} s")
        self.policy = policy
        self.limit = limit
        self.window_seconds = window_seconds
        self.retry_after = retry_after


class IntegrityError(SprongusError):
    """Decryption or an integrity check failed. Deliberately vague, like Fernet's InvalidToken."""

    def __init__(self, message: str = "integrity check failed: data tampered, corrupted or wrong key") -> None:
        super().__init__(message)


class KeyProviderError(SprongusError):
    """The master-key provider could not be used (missing key, locked keychain, KMS down)."""


class KeyProviderUnavailable(KeyProviderError):
    """The provider did not answer in time or is not reachable."""


class KeyAccessDenied(KeyProviderError):
    """The KMS refused this caller (IAM / RBAC / policy): fix the service identity's permissions."""


class KeyDisabled(KeyProviderError):
    """The master key (version) is disabled, scheduled for destruction or destroyed at the KMS."""


class AuditUnavailable(SprongusError):
    """An audit event could not be recorded; the action it guards did not happen (fail closed)."""


class StorageError(SprongusError):
    """The database could not be reached or failed; nothing was changed by the failed transaction."""


class ConfigError(SprongusError):
    """A setting is missing, malformed or not allowed in this profile."""


class Unauthenticated(SprongusError):
    """No, an unknown, a revoked or an expired bearer token: the API answers 401."""


class StepUpRequired(Unauthenticated):
    """The token's authentication is older than the action's max age (RFC 9470 step-up)."""

    def __init__(self, max_age: int) -> None:
        super().__init__(f"authentication older than {max_age} s; authenticate again to reveal")
        self.max_age = max_age


class RemoteUnavailable(SprongusError):
    """The API could not be reached or answered with a server error."""


class PreconditionFailed(Conflict):
    """If-Match named another version (HTTP 412)."""
