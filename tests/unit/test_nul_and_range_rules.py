"""Names, scopes, prefixes and meta refuse NUL, lone surrogates and integers beyond 64 bits, naming the field.

Postgres TEXT and JSONB refuse NUL and lone surrogates: a rule the domain does not state becomes a 503 there.
Values are the exception: they are encrypted, so any UTF-8 is legal, NUL included.
"""

from __future__ import annotations

import pytest

from sprongus.domain.errors import ValidationError
from sprongus.domain.meta import validate_meta
from sprongus.domain.names import validate_key_name, validate_prefix
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from tests.harness import CANARY

BAD_TEXT = ["a\x00b", "\x00", "ab\x00", "a\ud800b"]


@pytest.mark.parametrize("text", BAD_TEXT)
def test_names_scopes_and_prefixes_refuse_nul_and_lone_surrogates(text: str) -> None:
    checks = [(lambda: validate_key_name(text), "key"), (lambda: validate_prefix(text), "prefix"),
              (lambda: Scope.of("project", text), "ownerId"), (lambda: Scope.parse(f"user:{text}"), "scope"),
              (lambda: Scope.of(text, "p1"), "ownerType")]
    for check, field in checks:
        with pytest.raises(ValidationError) as caught:
            check()
        assert list(caught.value.errors) == [field]


@pytest.mark.parametrize("meta", [{"note": "a\x00b"}, {"note": "a\ud800b"}, {"no\x00te": "x"}, {"n\ud800": "x"},
                                  {"n": 2**63}, {"n": -(2**63) - 1}, {"n": 10**5000}])
def test_meta_refuses_nul_surrogates_and_integers_beyond_64_bits(meta: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_meta(meta)
    assert list(caught.value.errors) == ["meta"]
    assert "\x00" not in str(caught.value) and "\ud800" not in str(caught.value)


def test_meta_keeps_integers_at_the_64_bit_limits() -> None:
    assert validate_meta({"max": 2**63 - 1, "min": -(2**63), "ok": True}) == {"max": 2**63 - 1, "min": -(2**63),
                                                                             "ok": True}


def test_a_value_may_hold_nul_but_not_a_lone_surrogate() -> None:
    assert SecretValue(f"{CANARY}\x00tail").reveal() == f"{CANARY}\x00tail"
    with pytest.raises(ValidationError) as caught:
        SecretValue(f"{CANARY}\ud800")
    assert CANARY not in str(caught.value)
