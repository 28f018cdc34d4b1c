"""Single-use reveal tokens: minted by a principal allowed to reveal, redeemed once by whoever holds the token."""

from __future__ import annotations

import base64
import hmac
from dataclasses import replace
from datetime import timedelta

from sprongus.domain.api_token import token_hash
from sprongus.domain.envelope import length_prefixed
from sprongus.domain.errors import Gone, IntegrityError, KeyProviderError, NotFound, ValidationError
from sprongus.domain.names import validate_key_name
from sprongus.domain.principal import ANONYMOUS, Permission, Principal, authorize
from sprongus.domain.records import AuditAction, SecretView, view_of
from sprongus.domain.reports import RevealTokenMinted
from sprongus.domain.scope import OwnerType, Scope
from sprongus.domain.times import utc_iso
from sprongus.ports.tokens import RevealGrant, RevealTokenStore
from sprongus.service.deps import ServiceDeps

GRANT_AAD = b"sprongus.reveal-grant.v1\0"
REVEAL_TOKEN_PREFIX = "sprr_"  # noqa: S105 - a prefix, not a token
MAX_TTL = 3600


class RevealTokenOps:
    def __init__(self, deps: ServiceDeps, store: RevealTokenStore | None) -> None:
        self._d = deps
        self._store = store

    def mint(self, principal: Principal, scope: Scope, key: str, ttl_seconds: int) -> RevealTokenMinted:
        """A token for one reveal of this secret, by whoever holds it, until it expires."""
        with self._d.auditor.failures(principal, AuditAction.REVEAL, scope, key if isinstance(key, str) else None):
            validate_key_name(key)
            if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or not 1 <= ttl_seconds <= MAX_TTL:
                raise ValidationError("ttlSeconds", f"must be an integer between 1 and {MAX_TTL}")
            authorize(principal, scope, Permission.REVEAL, key)
            self._d.throttle.principal(principal, "reveal")
            with self._d.uow.transaction(principal, readonly=True) as repo:
                record = repo.get(scope, key)
            if record is None:
                raise NotFound(f"secret {key} not found in {scope}")
            if record.defect:  # its redeem could never open it: say so now, as a reveal would
                raise IntegrityError()
            self._d.sealer.before_key_use()  # the grant is sealed with the master key
            token = REVEAL_TOKEN_PREFIX + base64.urlsafe_b64encode(self._d.random.bytes(32)).decode().rstrip("=")
            expires = self._d.clock.now() + timedelta(seconds=ttl_seconds)
            grant = RevealGrant(principal.subject, principal.projects,
                                principal.owner or Permission.ADMIN in principal.permissions,
                                scope.owner_type.value, scope.owner_id, key, expires)
            grant = replace(grant, seal=self._seal(grant, token_hash(token), record.id))
            self._d.auditor.record(principal, AuditAction.REVEAL, scope, key, record.version, one_time="minted",
                                   expires_at=utc_iso(expires))
            self._stores().add(token_hash(token), grant)
            return RevealTokenMinted(token, utc_iso(expires))

    def redeem(self, token: object, client_address: str | None, request_id: str | None = None) -> SecretView:
        """The plaintext exactly once. Used, expired and unknown tokens are indistinguishable (Gone)."""
        caller = Principal(subject=ANONYMOUS, request_id=request_id, client_address=client_address)
        # Counted before the audited part: a redeem past the limit writes no row. Anyone can send one, so a row per
        # 429 let anyone grow the trail as fast as it could send; the window's audited redeems are the evidence.
        self._d.throttle.address("redeem", client_address)
        with self._d.auditor.failures(caller, AuditAction.REDEEM, None):
            if not isinstance(token, str) or not token.startswith(REVEAL_TOKEN_PREFIX):
                raise Gone("the reveal token is used, expired or unknown")
            digest = token_hash(token)
            grant = self._stores().consume(digest, self._d.clock.now())
            mac_key = None if grant is None else self._sealed_by_us(grant, digest)
            if grant is None or mac_key is None:
                raise Gone("the reveal token is used, expired or unknown")
            principal = Principal(subject=grant.subject, projects=grant.projects,
                                  permissions=frozenset({Permission.REVEAL} | ({Permission.ADMIN} if grant.admin
                                                                                else set())),
                                  request_id=request_id, client_address=client_address)
            scope = Scope(OwnerType(grant.owner_type), grant.owner_id)
            with self._d.uow.transaction(principal, readonly=True) as repo:
                record = repo.get(scope, grant.key_name)
            # The seal also covers the secret's id: a secret purged and created again under the same name is another
            # secret (another id), which a token for the first must not open.
            if record is None or not _same_secret(mac_key, grant, digest, record.id):
                raise Gone("the reveal token is used, expired or unknown")
            value = self._d.sealer.open(record)
            self._d.auditor.record(principal, AuditAction.REDEEM, scope, grant.key_name, record.version)
            return view_of(record, value)

    def _seal(self, grant: RevealGrant, digest: str, secret_id: str) -> str:
        """MACs under a fresh key wrapped by the master key: whoever can write the table (the app role) but not
        use the master key cannot forge a grant for someone else's secret. The first covers the grant, checked
        before anything is read; the second the secret's id, checked against the row the grant leads to."""
        key = self._d.random.bytes(32)
        wrapped = self._d.sealer.envelope.wrap_key(key, GRANT_AAD + digest.encode())
        self._d.sealer.confirm(wrapped.master_key_id)
        macs = [hmac.digest(key, _grant_body(grant, digest), "sha256"), _secret_mac(key, digest, secret_id)]
        return "|".join([wrapped.master_key_id, base64.b64encode(wrapped.blob).decode(),
                         *(base64.b64encode(mac).decode() for mac in macs)])

    def _sealed_by_us(self, grant: RevealGrant, digest: str) -> bytes | None:
        """The seal's MAC key when the grant is ours, else None (a grant sealed before the secret's id was, too)."""
        try:
            key_id, blob, mac, _ = grant.seal.split("|")
            key = self._d.sealer.envelope.unwrap_key(base64.b64decode(blob), key_id, GRANT_AAD + digest.encode())
            expected = base64.b64decode(mac)
        except (ValueError, IntegrityError, KeyProviderError):
            return None
        return key if hmac.compare_digest(hmac.digest(key, _grant_body(grant, digest), "sha256"), expected) else None

    def _stores(self) -> RevealTokenStore:
        if self._store is None:
            raise ValidationError("oneTime", "single-use reveal tokens are not configured")
        return self._store


def _grant_body(grant: RevealGrant, digest: str) -> bytes:
    fields = [digest, grant.subject, ",".join(sorted(grant.projects)), "admin" if grant.admin else "-",
              grant.owner_type, grant.owner_id or "", grant.key_name, grant.expires_at.isoformat()]
    return length_prefixed(f.encode("utf-8") for f in fields)


def _secret_mac(key: bytes, digest: str, secret_id: str) -> bytes:
    return hmac.digest(key, length_prefixed([b"secret", digest.encode(), secret_id.encode()]), "sha256")


def _same_secret(key: bytes, grant: RevealGrant, digest: str, secret_id: str) -> bool:
    try:
        expected = base64.b64decode(grant.seal.rsplit("|", 1)[1])
    except ValueError:
        return False
    return hmac.compare_digest(_secret_mac(key, digest, secret_id), expected)
