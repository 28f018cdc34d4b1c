"""One error tree for the whole product.

The CLI and the API each map these classes to an exit code / HTTP status through one table. No message here ever
contains a secret value: messages name the field and the rule only.
"""

from __future__ import annotations

from typing import ClassVar


class SprongusError(Exception):
    """Base of every error the product raises on purpose."""

    # What an API answer says instead of the message, for classes whose messages may repeat request text (a key
    # name, a scope, a key id from a bundle) or a driver's or vendor's words. An answer that echoed the request let
    # a probe test guesses against whatever the scrubber masked; the local CLI keeps the full message, which shows
    # the user only their own input.
    public: ClassVar[str | None] = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message

    @property
    def public_detail(self) -> str:
        return self.message if self.public is None else self.public


class ValidationError(SprongusError):
    """Input broke a rule of docs/design.md#names-and-limits. `field` names the field, the message names the rule."""

    def __init__(self, field: str, rule: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(f"{field}: {rule}", field=field)
        self.rule = rule
        self.errors: dict[str, list[str]] = errors if errors is not None else {field: [rule]}


class NotFound(SprongusError):
    """The secret does not exist, or the caller may not know whether it exists."""

    # One text for an absent secret and a hidden scope: the answer must not tell them apart.
    public = "no such secret, or a scope this token may not act on"


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

    public: ClassVar[str | None] = "the secret changed while this request ran; read it again and retry"

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class ReplayOutdated(Conflict):
    """An Idempotency-Key replay of a write whose secret has been deleted since (HTTP 409)."""

    public: ClassVar[str | None] = None  # a fixed message


class RateLimited(SprongusError):
    """The caller exceeded a rate-limit policy."""

    def __init__(self, policy: str, *, limit: int, window_seconds: int, retry_after: int) -> None:
        super().__init__(f"rate limit '{policy}' exceeded; retry after {retry_after} s")
        self.policy = policy
        self.limit = limit
        self.window_seconds = window_seconds
        self.retry_after = retry_after


INTEGRITY_FAILED = "integrity check failed: data tampered, corrupted or wrong key"


class IntegrityError(SprongusError):
    """Decryption or an integrity check failed. Deliberately vague, like Fernet's InvalidToken."""

    public = INTEGRITY_FAILED

    def __init__(self, message: str = INTEGRITY_FAILED) -> None:
        super().__init__(message)


class VaultKeyMismatch(IntegrityError):
    """The configured master key is not one this vault has used (a lost, replaced or wrong key), found before
    anything is written: writing on would leave secrets no other key opens."""

    public = "the master key does not match this vault"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class Unavailable(SprongusError):
    """A dependency is unavailable (database, key provider, audit store, rate-limit store, the API, a full disk):
    the action did not happen and may succeed later. Never a finding about the data: an outage is not tampering."""

    public: ClassVar[str | None] = "a service this request needs is unavailable; try again later"


class KeyProviderError(SprongusError):
    """The master-key provider could not be used (missing key, locked keychain, KMS down)."""

    public = "the master key could not be used; the server log has the cause"


class KeyProviderUnavailable(KeyProviderError, Unavailable):
    """The provider did not answer in time or is not reachable."""

    public = "the key provider is unavailable; try again later"


class MasterKeyChanged(KeyProviderUnavailable):
    """Another process rotated the master key while this sealed or wrapped with the old one: what used it was not
    stored (a rotation's earlier pages were: run it again)."""

    public = "the master key changed while this ran; what used the old key was not stored: try again"


class KeyAccessDenied(KeyProviderError):
    """The KMS refused this caller (IAM / RBAC / policy): fix the service identity's permissions."""

    public = "the key provider refused the server's identity; the server log has the cause"


class KeyDisabled(KeyProviderError):
    """The master key (version) is disabled, scheduled for destruction or destroyed at the KMS."""

    public = "the master key is disabled or destroyed at the key provider"


class AuditUnavailable(Unavailable):
    """An audit event could not be recorded; the action it guards did not happen (fail closed)."""

    public: ClassVar[str | None] = None  # its messages name the cause class only (a full disk, an outage)


class StorageError(SprongusError):
    """The database failed or refused the request (a file that is not a database, a broken rule); nothing was
    changed by the failed transaction. An outage is the subclass StorageUnavailable."""

    # A driver's message can quote the row it refused (key names, a constraint's "failing row").
    public = "the database is unavailable or refused the request; nothing was changed"


DISK_FULL = "no space left on device"


class StorageUnavailable(StorageError, Unavailable):
    """The database is unreachable, lost its connection or is busy, or the disk is full: try again later."""

    public = "the database is unavailable (unreachable, busy or out of disk space); nothing was changed"


class RateLimitStoreUnavailable(StorageUnavailable):
    """Redis, where the rate limits are counted, does not answer: limited requests fail closed, masked reads go on."""

    public = "the rate-limit store is unavailable; nothing was changed"


class ConfigError(SprongusError):
    """A setting is missing, malformed or not allowed in this profile."""


class Unauthenticated(SprongusError):
    """No, an unknown, a revoked or an expired bearer token: the API answers 401."""


class RepeatedRefusal(Unauthenticated):
    """Unauthenticated, from a client address past its budget of audited refusals: answered 401 like any other, not
    audited (anyone can send one; the window's first refusals are the evidence)."""


class StepUpRequired(Unauthenticated):
    """The token's authentication is older than the action's max age (RFC 9470 step-up)."""

    def __init__(self, max_age: int) -> None:
        super().__init__(f"authentication older than {max_age} s; authenticate again to reveal")
        self.max_age = max_age


class RemoteUnavailable(Unavailable):
    """The API could not be reached or answered with a server error. Unlike the other outages, a request that got
    no answer at all may have been carried out (a write: send it again with the same Idempotency-Key)."""


class PreconditionFailed(Conflict):
    """If-Match named another version (HTTP 412)."""

    # Its messages name only the header's rule, or the current version to a caller who may read.
    public: ClassVar[str | None] = None


class InvalidTokenRequest(ValidationError):
    """An OAuth token request missing or repeating a parameter, or breaking its size rule (RFC 6749 §5.2
    `invalid_request`); the token endpoint answers 400 in RFC 6749's format."""

    oauth_error: ClassVar[str] = "invalid_request"


class UnsupportedGrantType(InvalidTokenRequest):
    oauth_error: ClassVar[str] = "unsupported_grant_type"


class InvalidGrant(Unauthenticated):
    """A subject token (JWT) that may not be exchanged, whatever the cause (signature, issuer, audience, times, no
    trust, a claim rule, a replay): one answer for all, so a caller learns nothing about which check failed. The
    message is the precise reason, for the server log and the audit trail only."""

    oauth_error: ClassVar[str] = "invalid_grant"
    public: ClassVar[str | None] = "the subject token is invalid, expired, already used or not trusted"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
