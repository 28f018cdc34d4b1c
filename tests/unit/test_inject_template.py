"""`secrets inject`'s template rules on their own (the processes are in tests/e2e/test_cli_inject.py)."""

from __future__ import annotations

import pytest

from sprongus.domain.errors import ValidationError
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue
from sprongus.entrypoints.cli.inject_template import decode, parse

P1, ALICE, SYSTEM = Scope.project("p1"), Scope.user("alice"), Scope.system()


def test_scopes_and_keys_come_in_order_of_first_reference_each_once() -> None:
    template = parse("{{ sprongus://user/alice/b }}{{ sprongus://project/p1/z }}{{ sprongus://user/alice/a }}"
                     "{{ sprongus://system/-/k }}{{ sprongus://user/alice/b }}")
    assert template.wanted() == {ALICE: ["b", "a"], P1: ["z"], SYSTEM: ["k"]}
    assert list(template.wanted()) == [ALICE, P1, SYSTEM]


def test_render_replaces_references_and_keeps_every_other_character() -> None:
    text = "é {{ x }}\r\n{{sprongus://project/p1/k}}|{{ \t sprongus://project/p1/k \t }}|{{sprongus://project/p1/k"
    with pytest.raises(ValidationError):  # the last one is not closed on its line
        parse(text)
    template = parse(text[: text.rindex("|")] + "|{{ helm }}")
    assert template.render({(P1, "k"): SecretValue("v\n}}{{ sprongus://system/-/x }}")}) == \
        "é {{ x }}\r\nv\n}}{{ sprongus://system/-/x }}|v\n}}{{ sprongus://system/-/x }}|{{ helm }}"


def test_text_without_references_renders_as_itself() -> None:
    text = "{{ .Values.a }} {{sprongus:/x}} {{ op://v/i/f }} }} {{"
    assert parse(text).references == () and parse(text).render({}) == text


@pytest.mark.parametrize(("text", "where"), [
    ("日本語 {{ sprongus://team/p1/k }}", "line 1, column 19"),  # columns count characters, not bytes
    ("a\nb\r\n  {{ sprongus://project/p1/9 }}", "line 3, column 28"),
    ("{{ sprongus://project/p1/k }}\n{{ Sprongus://project/p1/k }}", "line 2, column 4"),
])
def test_errors_name_line_and_column(text: str, where: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse(text)
    assert str(raised.value).startswith(f"template: {where}: ")


def test_a_template_that_is_not_utf8_is_refused_by_line_without_its_bytes() -> None:
    with pytest.raises(ValidationError) as raised:
        decode(b"ok\nsecret-ish \xff\xfe\n")
    assert str(raised.value) == "template: line 2: not UTF-8 text"
    assert raised.value.__context__ is None and raised.value.__cause__ is None
