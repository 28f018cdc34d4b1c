"""The domain error for each way a Vault / OpenBao transit call can fail (kms_vault.py's `_call`).

Nothing the server wrote is repeated but its plain words (kms_answers.server_words): its text may quote the token
or the data key the request carried. A refused request is said as such; an outage (down, sealed, a gateway's page,
an answer cut off or not Vault's) as one, so that it is retried rather than reported as tampering.
"""

from __future__ import annotations

from sprongus.adapters.kms_answers import RedirectRefused, server_words
from sprongus.domain.errors import (
    IntegrityError,
    KeyAccessDenied,
    KeyDisabled,
    KeyProviderError,
    KeyProviderUnavailable,
)

# What hvac and requests raise while reading an answer of the wrong shape (a list where Vault sends an object, a
# number for its errors, JSON nested thousands deep): a broken or foreign answer, never the caller's fault.
MALFORMED = (ValueError, TypeError, AttributeError, KeyError, RecursionError)


def call_failure(exc: Exception, key: str, operation: str) -> tuple[Exception, bool] | None:
    """The error to raise for `exc` and whether to chain it (False: its text may hold what the request carried), or
    None for an exception that is already the domain's (or unknown: raised as it is)."""
    import hvac.exceptions as hv  # type: ignore[import-untyped]
    import requests

    if isinstance(exc, RedirectRefused):
        return KeyProviderError(f"{key}: {operation}: the server answered with a redirect ({exc}), not followed: "
                                "the request carries the token; point SPRONGUS_KMS_ENDPOINT at the active node or "
                                "at a load balancer in front of the cluster"), False
    if isinstance(exc, hv.InvalidRequest):
        if not isinstance(exc.json, dict):  # Vault's refusals are JSON: this 400 came from something in front of it
            return KeyProviderError(f"{key}: {operation}: refused by something that is not Vault (HTTP 400, not "
                                    "JSON); check SPRONGUS_KMS_ENDPOINT and any proxy"), False
        errors = exc.errors if isinstance(exc.errors, list) else []
        return rejected(key, operation, " ".join(str(e) for e in errors)), False
    if isinstance(exc, hv.Forbidden | hv.Unauthorized):
        return KeyAccessDenied(f"{key}: the Vault token may not {operation} (check VAULT_TOKEN and its policy)"), True
    if isinstance(exc, hv.InvalidPath):
        return KeyProviderError(f"{key} does not exist (or the transit engine is not mounted there)"), True
    if isinstance(exc, requests.exceptions.SSLError):
        return KeyProviderError(f"{key}: TLS verification of the Vault server failed (set SPRONGUS_KMS_CA_FILE to "
                                "trust a private CA)"), True
    if isinstance(exc, hv.VaultDown | hv.InternalServerError | hv.BadGateway | hv.RateLimitExceeded
                  | hv.VaultNotInitialized | requests.exceptions.ConnectionError | requests.exceptions.Timeout
                  | requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError):
        return KeyProviderUnavailable(f"{key}: Vault is unavailable ({type(exc).__name__})"), True
    if isinstance(exc, hv.UnexpectedError):
        # A status hvac has no class for. Vault's own answers are JSON; a gateway's 504 or 408 page is not.
        if exc.json is None:
            return KeyProviderUnavailable(f"{key}: {operation}: a gateway answered instead of Vault (not JSON); "
                                          "retry later"), True
        return KeyProviderError(f"{key}: {operation} failed ({type(exc).__name__})"), True
    if isinstance(exc, hv.VaultError):
        return KeyProviderError(f"{key}: {operation} failed ({type(exc).__name__})"), True
    if isinstance(exc, requests.exceptions.RequestException):  # InvalidHeader, InvalidURL: never sent
        # requests quotes the header or the URL it refused, which may hold the token: not chained either.
        return KeyProviderError(f"{key}: {operation}: the request could not be made ({type(exc).__name__})"), False
    if isinstance(exc, UnicodeEncodeError):  # a header this side built (the namespace, the token): never sent
        return KeyProviderError(f"{key}: {operation}: the request could not be made (a setting holds a character "
                                "HTTP cannot carry)"), False
    if isinstance(exc, MALFORMED):
        return KeyProviderUnavailable(f"{key}: {operation}: the answer was not Vault's (malformed); retry later"), False
    return None


def rejected(key: str, operation: str, reason: str) -> Exception:
    """The domain error for a request (or one batch item) transit refused."""
    if "disallowed by policy" in reason:
        return KeyDisabled(f"{key}: this key version is below min_decryption_version")
    if "encryption key not found" in reason:
        return KeyProviderError(f"{key} does not exist")
    if operation in ("decrypt", "rewrap"):
        return IntegrityError()
    return KeyProviderError(f"{key}: {operation} was rejected ({server_words(reason)})")
