"""Templates of `secrets inject`: `{{ sprongus://TYPE/ID/KEY }}` references found, checked and replaced.

Text work only (no vault, no files), so the command can check every reference before it reveals anything. Errors
name the line and column, never the text there: a mistyped reference may hold a value pasted by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sprongus.domain.errors import ValidationError
from sprongus.domain.names import KEY_NAME_RULE, validate_key_name
from sprongus.domain.scope import OWNER_ID_RULE, SYSTEM_URL_ID, OwnerType, Scope
from sprongus.domain.values import SecretValue

SCHEME = "sprongus://"
SHAPE = "must be {{ sprongus://user|project|system/<owner id, - for system>/<key name> }}"
# Any case, so that `{{ Sprongus://... }}` is refused rather than copied through unrendered. Only this opening
# makes a reference: other `{{ ... }}` (Jinja, Helm, Go templates) are left alone.
_OPEN = re.compile(r"\{\{[ \t]*(" + re.escape(SCHEME) + ")", re.IGNORECASE)
_CLOSE = "}}"


@dataclass(frozen=True, slots=True)
class Reference:
    scope: Scope
    key: str
    start: int  # the reference is text[start:end], braces included
    end: int


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    references: tuple[Reference, ...]

    def wanted(self) -> dict[Scope, list[str]]:
        """Scope -> its distinct keys, both in the order of their first reference (one batch per scope)."""
        wanted: dict[Scope, dict[str, None]] = {}  # a dict keeps the order and finds a repeat at once
        for ref in self.references:
            wanted.setdefault(ref.scope, {})[ref.key] = None
        return {scope: list(keys) for scope, keys in wanted.items()}

    def render(self, values: Mapping[tuple[Scope, str], SecretValue]) -> str:
        """The text with every reference replaced by its value; everything between references is kept as is."""
        parts: list[str] = []
        at = 0
        for ref in self.references:
            parts += (self.text[at:ref.start], values[ref.scope, ref.key].reveal())
            at = ref.end
        parts.append(self.text[at:])
        return "".join(parts)


def decode(raw: bytes) -> str:
    """The template's text. Not decoded leniently: a replaced byte would not be copied byte for byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
    # Raised outside the `except`: a chained UnicodeDecodeError would carry the whole template in `.object`.
    raise ValidationError("template", f"line {line}: not UTF-8 text")


def parse(text: str) -> Template:
    """Every reference of `text`, checked; the first malformed one is a ValidationError naming its position."""
    references: list[Reference] = []
    at = 0
    while (found := _OPEN.search(text, at)) is not None:
        reference = _reference(text, found)
        references.append(reference)
        at = reference.end
    return Template(text, tuple(references))


def _reference(text: str, found: re.Match[str]) -> Reference:
    if found.group(1) != SCHEME:
        raise _malformed(text, found.start(1), f"the scheme is {SCHEME}, in lower case")
    body_at = found.end()
    # The first `}}` after the opening, then no line break before it: searching to the end of the line for every
    # reference made a long one-line template (minified JSON) quadratic.
    close = text.find(_CLOSE, body_at)
    if close < 0 or "\n" in text[body_at:close]:
        raise _malformed(text, found.start(), "a reference ends with }} on the line where it starts")
    parts = text[body_at:close].rstrip(" \t").split("/")
    if len(parts) != 3:
        raise _malformed(text, body_at, SHAPE)
    owner_type, owner_id, key = parts
    id_at = body_at + len(owner_type) + 1
    key_at = id_at + len(owner_id) + 1
    if owner_type not in {kind.value for kind in OwnerType}:
        raise _malformed(text, body_at, "owner type: must be user, project or system")
    if owner_type == OwnerType.SYSTEM and owner_id != SYSTEM_URL_ID:
        raise _malformed(text, id_at, f"owner id: must be {SYSTEM_URL_ID} for the system scope")
    try:
        scope = Scope.of(owner_type, owner_id)
    except ValidationError:
        raise _malformed(text, id_at, f"owner id: {OWNER_ID_RULE}") from None
    try:
        validate_key_name(key)
    except ValidationError:
        raise _malformed(text, key_at, f"key name: {KEY_NAME_RULE}") from None
    return Reference(scope, key, found.start(), close + len(_CLOSE))


def _malformed(text: str, at: int, rule: str) -> ValidationError:
    """1-based line and column (in characters) of `at`; nothing of the text itself."""
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return ValidationError("template", f"line {line}, column {column}: {rule}")
