"""Property tests for the envelope: any valid value in any valid place round-trips, and only there."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sprongus.adapters.crypto_aesgcm import AesGcmDataCipher
from sprongus.adapters.keys_local import KeyVersions, LocalMasterKeyProvider, StaticHmacKeyring
from sprongus.domain.envelope import Envelope, aad_for
from sprongus.domain.errors import IntegrityError, ValidationError
from sprongus.domain.names import validate_key_name
from sprongus.domain.scope import Scope
from sprongus.domain.values import MAX_VALUE_BYTES, SecretValue

_VERSIONS = KeyVersions.fresh()
_CIPHER = AesGcmDataCipher()
ENVELOPE = Envelope({_CIPHER.alg: _CIPHER}, _CIPHER.alg, LocalMasterKeyProvider("memory", _VERSIONS.master),
                    StaticHmacKeyring(_VERSIONS.hmac, "memory"))


def _repeated(char: str) -> st.SearchStrategy[str]:
    most = MAX_VALUE_BYTES // len(char.encode("utf-8"))
    return st.sampled_from([0, 1, most - 1, most]).map(lambda n: char * n)


values = st.one_of(
    st.text(max_size=300),  # any code point but lone surrogates, which have no UTF-8
    st.characters(codec="utf-8").flatmap(_repeated),  # right up to the 65,536-byte limit in 1- to 4-byte characters
)
key_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*", fullmatch=True).filter(
    lambda name: len(name) <= 128)
owner_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}", fullmatch=True)
scopes = st.one_of(st.just(Scope.system()), owner_ids.map(Scope.user), owner_ids.map(Scope.project))
versions = st.integers(min_value=1, max_value=2**31)
places = st.tuples(scopes, key_names, versions)

Place = tuple[Scope, str, int]
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@given(values)
@SLOW
def test_every_value_up_to_the_limit_is_accepted(text: str) -> None:
    assert len(text.encode("utf-8")) <= MAX_VALUE_BYTES
    assert SecretValue(text).reveal() == text


@given(st.characters(min_codepoint=0x80, codec="utf-8").map(lambda c: c * (MAX_VALUE_BYTES // len(c.encode()) + 1)))
@settings(max_examples=20)
def test_a_value_over_the_limit_in_utf8_bytes_is_refused_though_it_has_fewer_chars(text: str) -> None:
    assert len(text) < MAX_VALUE_BYTES < len(text.encode("utf-8"))
    with pytest.raises(ValidationError) as info:
        SecretValue(text)
    assert info.value.field == "value"


@given(values, places)
@SLOW
def test_round_trip_holds_for_any_value_in_any_place(text: str, place: Place) -> None:
    aad = aad_for(*place)
    sealed = ENVELOPE.seal(SecretValue(text), aad)
    assert len(sealed.ciphertext) == len(text.encode("utf-8")) + 16
    assert ENVELOPE.open(sealed, aad).reveal() == text


@given(places, places)
@example((Scope.user("ab"), "c", 1), (Scope.user("a"), "bc", 1))  # equal if the fields were simply concatenated
@example((Scope.user("a"), "k1", 1), (Scope.user("a"), "k", 11))
@example((Scope.user("a"), "k", 1), (Scope.project("a"), "k", 1))
@example((Scope.system(), "k", 1), (Scope.user("system"), "k", 1))
def test_aad_of_two_different_places_differs(first: Place, second: Place) -> None:
    assert (aad_for(*first) == aad_for(*second)) == (first == second)


@given(st.text(max_size=40), places, places)
@SLOW
def test_a_value_sealed_for_one_place_opens_nowhere_else(text: str, here: Place, there: Place) -> None:
    sealed = ENVELOPE.seal(SecretValue(text), aad_for(*here))
    if here == there:
        assert ENVELOPE.open(sealed, aad_for(*there)).reveal() == text
    else:
        with pytest.raises(IntegrityError):
            ENVELOPE.open(sealed, aad_for(*there))


@given(scopes, key_names)
def test_generated_scopes_and_key_names_are_valid_and_scopes_round_trip_as_text(scope: Scope, key: str) -> None:
    assert validate_key_name(key) == key
    assert Scope.parse(str(scope)) == scope
    assert Scope.of(scope.owner_type.value, scope.url_owner_id) == scope
