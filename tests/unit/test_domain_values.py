"""Value objects (docs/design.md#names-and-limits): scopes, key names, meta and SecretValue."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest

from sprongus.domain.errors import ValidationError
from sprongus.domain.meta import dump_meta, validate_meta
from sprongus.domain.names import KEY_NAME_RULE, validate_key_name, validate_prefix
from sprongus.domain.scope import OWNER_ID_RULE, OwnerType, Scope
from sprongus.domain.values import SecretValue
from tests.harness import CANARY

LEAK = "Zq9LEAK"  # in every bad input that can hold it: no error message may repeat it


@pytest.mark.parametrize(("text", "kind", "owner_id"), [
    ("user:alice", OwnerType.USER, "alice"),
    ("project:p1", OwnerType.PROJECT, "p1"),
    ("user:a.b_c@d-e", OwnerType.USER, "a.b_c@d-e"),
    ("project:9" + "x" * 127, OwnerType.PROJECT, "9" + "x" * 127),
    ("system", OwnerType.SYSTEM, None),
])
def test_scope_parse_and_str_round_trip(text: str, kind: OwnerType, owner_id: str | None) -> None:
    scope = Scope.parse(text)
    assert (scope.owner_type, scope.owner_id) == (kind, owner_id)
    assert str(scope) == text
    assert Scope.of(kind.value, owner_id) == scope


@pytest.mark.parametrize("owner_id", [None, "", "-"])
def test_scope_of_system_takes_no_owner_id(owner_id: str | None) -> None:
    scope = Scope.of("system", owner_id)
    assert scope == Scope.system() and str(scope) == "system" and scope.url_owner_id == "-"


@pytest.mark.parametrize("text", [
    "", "user", "user:", "project:", "System", "USER:alice", f"group:{LEAK}", f"system:{LEAK}", f"{LEAK}",
    f"user:-{LEAK}", f"user:.{LEAK}", f"user:{LEAK} x", f"user:{LEAK}/x", f"user:{LEAK}:x", f" user:{LEAK}",
    f"user:{LEAK}\n", f"project:{LEAK}" + "x" * (129 - len(LEAK)), f"user:{LEAK}\u00e9",
])
def test_scope_parse_refuses_every_invalid_form_naming_the_field_and_rule_only(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        Scope.parse(text)
    error = info.value
    assert error.field == "scope"
    assert str(error) in ("scope: must be user:<id>, project:<id> or system", f"scope: owner id: {OWNER_ID_RULE}")
    assert LEAK not in str(error) and LEAK not in repr(error.errors)


@pytest.mark.parametrize(("owner_type", "owner_id", "field", "rule"), [
    (f"group{LEAK}", "x", "ownerType", "must be one of user, project, system"),
    ("User", "alice", "ownerType", "must be one of user, project, system"),
    ("user", None, "ownerId", OWNER_ID_RULE),
    ("user", "-", "ownerId", OWNER_ID_RULE),
    ("project", "", "ownerId", OWNER_ID_RULE),
    ("user", f"_{LEAK}", "ownerId", OWNER_ID_RULE),
    ("user", LEAK * 19, "ownerId", OWNER_ID_RULE),  # 133 chars
    ("system", LEAK, "ownerId", "must be empty for the system scope"),
])
def test_scope_of_refuses_invalid_parts(owner_type: str, owner_id: str | None, field: str, rule: str) -> None:
    with pytest.raises(ValidationError) as info:
        Scope.of(owner_type, owner_id)
    assert (info.value.field, info.value.rule, str(info.value)) == (field, rule, f"{field}: {rule}")
    assert LEAK not in str(info.value)


def test_scopes_compare_by_value_and_differ_by_owner_type() -> None:
    assert Scope.user("a") == Scope.parse("user:a") and hash(Scope.user("a")) == hash(Scope.parse("user:a"))
    assert Scope.user("a") != Scope.project("a")
    assert Scope.user("128" + "x" * 125).owner_id == "128" + "x" * 125


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "notion.api_token", "gdocs.service_account", "a", "A-b_c.d-e.9_F",
                                  "a" * 128, "a." + "b" * 126, "x.1.-._"])
def test_valid_key_names(name: str) -> None:
    assert validate_key_name(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "_a", "-a", ".a", "a.", "a..b", "a b", "a/b", "a:b", "\u00e4", "a\n",
                                  "a" * 129, "a." + "b" * 127, None, 5, b"abc"])
def test_invalid_key_names_name_the_field_and_rule(name: object) -> None:
    with pytest.raises(ValidationError) as info:
        validate_key_name(name, "keyName")
    assert (info.value.field, str(info.value)) == ("keyName", f"keyName: {KEY_NAME_RULE}")


def test_key_names_are_case_sensitive_and_prefixes_are_validated() -> None:
    assert validate_key_name("Token") != validate_key_name("token")
    assert validate_prefix(None) == validate_prefix("") == ""
    assert validate_prefix("notion.") == "notion."
    for bad in ("1x", ".x", "a b", "x" * 129):
        with pytest.raises(ValidationError, match=r"^prefix: "):
            validate_prefix(bad)


def test_valid_meta_is_kept() -> None:
    meta = {"provider": "notion", "n": 3, "ratio": 0.5, "active": True, "expires": None, "a.b-c_9": "x" * 256,
            "k" * 64: "\u00e9" * 256}
    assert validate_meta(meta) == meta
    assert validate_meta(None) == {}


def _size(meta: dict[str, str]) -> int:
    return len(dump_meta(meta).encode())


def _meta_of_size(total: int) -> dict[str, str]:
    meta: dict[str, str] = {}
    while _size(meta) < total:
        key = f"k{len(meta):02}"
        meta[key] = ""
        meta[key] = "x" * min(250, total - _size(meta))
    assert _size(meta) == total
    return meta


def test_meta_is_limited_to_4096_serialized_bytes() -> None:
    assert validate_meta(_meta_of_size(4096))
    with pytest.raises(ValidationError) as info:
        validate_meta(_meta_of_size(4097))
    assert (info.value.field, info.value.rule) == ("meta", "must be at most 4096 bytes serialized")
    two_byte = {f"k{i:02}": "\u00e9" * 240 for i in range(16)}
    assert len(dump_meta(two_byte)) < 4096 < _size(two_byte)
    with pytest.raises(ValidationError, match="4096 bytes"):
        validate_meta(two_byte)


@pytest.mark.parametrize(("meta", "rule"), [
    ([LEAK], "must be a JSON object"),
    (LEAK, "must be a JSON object"),
    ({"Provider": LEAK}, "keys must match"),
    ({"1a": LEAK}, "keys must match"),
    ({"": LEAK}, "keys must match"),
    ({"a" * 65: LEAK}, "keys must match"),
    ({"a b": LEAK}, "keys must match"),
    ({5: LEAK}, "keys must match"),
    ({"note": LEAK * 40}, "string values must be at most 256 chars"),
    ({"nested": {"x": LEAK}}, "values must be strings, numbers, booleans or null"),
    ({"list": [LEAK]}, "values must be strings, numbers, booleans or null"),
    ({"raw": LEAK.encode()}, "values must be strings, numbers, booleans or null"),
    ({"n": float("nan")}, "values must be finite numbers"),
    ({"n": float("inf")}, "values must be finite numbers"),
    ({"n": float("-inf")}, "values must be finite numbers"),
])
def test_invalid_meta_names_the_field_and_rule_never_the_value(meta: object, rule: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_meta(meta, "meta")
    assert info.value.field == "meta" and rule in str(info.value)
    assert LEAK not in str(info.value)


def test_secret_value_shows_only_the_mask(caplog: pytest.LogCaptureFixture) -> None:
    value = SecretValue(CANARY)
    shown = [repr(value), str(value), f"{value}", f"{value!r}", f"{value!s}", f"{value!a}", f"{value:>60}",
             format(value, "x"), "%s" % value, "%r" % value, "{}".format(value),  # noqa: UP031, UP032
             repr([value]), str({"k": value}),
             repr((value,))]
    with caplog.at_level(logging.INFO):
        logging.getLogger("sprongus.test").info("value %s %r", value, value)
    shown.append(caplog.text)
    for text in shown:
        assert CANARY not in text and "********" in text
    assert str(value) == f"{value}" == "********"
    assert value.reveal() == CANARY


@pytest.mark.parametrize(("text", "ok"), [
    ("", True), ("x" * 65536, True), ("x" * 65537, False),
    ("\u00e9" * 32768, True), ("\u00e9" * 32769, False),  # 32,769 chars but 65,538 bytes
    ("\u20ac" * 21845, True), ("\u20ac" * 21845 + "xx", False),
    ("\U0001f511" * 16384, True), ("\U0001f511" * 16385, False),
])
def test_secret_value_limit_counts_utf8_bytes_not_chars(text: str, ok: bool) -> None:
    if ok:
        assert SecretValue(text).encode() == text.encode("utf-8")
        return
    with pytest.raises(ValidationError) as info:
        SecretValue(text)
    assert (info.value.field, str(info.value)) == ("value", "value: must be UTF-8 text of at most 65536 bytes")


@pytest.mark.parametrize("bad", [None, 5, b"bytes", "lone \ud800 surrogate"])
def test_secret_value_refuses_what_is_not_utf8_text(bad: object) -> None:
    with pytest.raises(ValidationError, match=r"^value: "):
        SecretValue(bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"^secret: "):
        SecretValue.from_bytes(b"\xff" + CANARY.encode(), field="secret")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_secret_value_cannot_be_pickled_even_inside_a_container(protocol: int) -> None:
    for obj in (SecretValue(CANARY), {"token": SecretValue(CANARY)}):
        with pytest.raises(TypeError) as info:
            pickle.dumps(obj, protocol=protocol)
        assert CANARY not in str(info.value)
    with pytest.raises(TypeError):
        copy.deepcopy(SecretValue(CANARY))


def test_secret_values_compare_by_plaintext_but_never_equal_a_plain_string() -> None:
    assert SecretValue(CANARY) == SecretValue(CANARY)
    assert SecretValue(CANARY) != SecretValue(CANARY + "x")
    assert SecretValue(CANARY) != CANARY
