"""Objects that hold key material or a credential print without it: a debug line, an assertion message or an error
reporter that records a frame's locals (as Sentry's does by default) calls repr()."""

from __future__ import annotations

import base64

from sprongus.adapters.keys_local import KeyVersions
from sprongus.entrypoints.config import Settings
from sprongus.service.federation import TokenRequest

CANARY = "canary-subject-jwt-7c1e"


def test_key_versions_print_their_ids_not_their_keys() -> None:
    versions = KeyVersions.fresh().with_new_master()
    shown = repr(versions)
    (new_id, _), (old_id, _) = versions.master
    (hmac_id, _), = versions.hmac
    assert shown == f"KeyVersions(master=['{new_id}', '{old_id}'], hmac=['{hmac_id}'])"
    for _, key in versions.master + versions.hmac:
        for form in (repr(key), key.hex(), base64.b64encode(key).decode()):
            assert form not in shown and form[2:12] not in shown
    assert versions == KeyVersions.loads(versions.dumps(), "test")  # still compared by value


def test_a_token_request_prints_without_its_subject_token() -> None:
    request = TokenRequest(grant_type="urn:ietf:params:oauth:grant-type:token-exchange", subject_token=CANARY,
                           subject_token_type="urn:ietf:params:oauth:token-type:jwt")
    assert CANARY not in repr(request) and CANARY not in str(request)
    assert "token-exchange" in repr(request)  # the rest still shows
    assert request.subject_token == CANARY


def test_settings_print_without_the_passwords_their_database_and_redis_urls_may_carry() -> None:
    settings = Settings.from_mapping({"SPRONGUS_DATABASE_URL": f"postgresql://app:{CANARY}@db.internal/sprongus",
                                      "SPRONGUS_RATE_LIMIT_STORAGE": f"redis://:{CANARY}@cache.internal:6379/0"})
    assert CANARY in (settings.database_url or "") and CANARY in settings.rate_limit_storage
    assert CANARY not in repr(settings) and CANARY not in str(settings)


def test_sealed_versions_and_wrapped_keys_print_where_they_are_sealed_not_what_they_hold() -> None:
    from datetime import UTC, datetime

    from sprongus.domain.envelope import Sealed
    from sprongus.domain.scope import Scope
    from sprongus.ports.crypto import WrappedKey
    from sprongus.ports.vault_keys import StoredDataKey, VaultKeyRecord

    marks = [bytes([n]) * 4 + b"sealed-canary-" + bytes([n]) for n in range(4)]
    sealed = Sealed(marks[0], marks[1], b"nonce-shown", "aes256gcm", "file:k1", "hmac-canary-1f3a")
    objects = [sealed, WrappedKey("file:k1", marks[2]),
               VaultKeyRecord("hmac", "hk1", marks[3], "file:k1", datetime.now(UTC)),
               StoredDataKey(Scope.parse("project:p1"), "k", 1, marks[1], "file:k1")]
    for thing in objects:
        shown = repr(thing)
        assert "file:k1" in shown  # which key sealed it still shows
        assert "sealed-canary" not in shown and "hmac-canary" not in shown, shown
        for mark in marks:
            assert mark.hex() not in shown and base64.b64encode(mark).decode() not in shown
    assert sealed == Sealed(marks[0], marks[1], b"nonce-shown", "aes256gcm", "file:k1", "hmac-canary-1f3a")
