"""Click parameter types that validate with the domain's rules (errors name the field, exit code 2) and complete
scopes and key names from the local vault (never values)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from sprongus.domain.errors import ValidationError
from sprongus.domain.names import KEY_NAME_WORDS, validate_key_name, validate_prefix, validate_version
from sprongus.domain.scope import Scope, suggest_scope
from sprongus.entrypoints.cli.completion import key_candidates, prefix_candidates, scope_candidates

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem


class ScopeType(click.ParamType[Scope]):
    name = "scope"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Scope:
        if isinstance(value, Scope):
            return value
        try:
            return Scope.parse(value)
        except ValidationError as exc:
            guess = suggest_scope(value)
            raise ValidationError("scope", exc.rule + (f"; did you mean {guess}?" if guess else "")) from None

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return _items(scope_candidates, ctx, incomplete)


class KeyNameType(click.ParamType[str]):
    name = "key"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return validate_key_name(value)
        except ValidationError:
            # People read words faster than a regex; the API keeps the regex (KEY_NAME_RULE) for its clients.
            raise ValidationError("key", KEY_NAME_WORDS) from None

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return _items(key_candidates, ctx, incomplete)


class PrefixType(click.ParamType[str]):
    name = "prefix"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return validate_prefix(value)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return _items(prefix_candidates, ctx, incomplete)


class VersionType(click.ParamType[int]):
    """A version number. Click's IntRange would repeat the text given in its error; this names the rule only."""

    name = "n"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
            value = int(value)
        return validate_version(value)  # anything else (a sign, a letter, out of range) breaks the domain's rule


def _items(find: Callable[[click.Context, str], list[str]], ctx: click.Context,
           incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem  # only on a completion request, like the vault reader

    try:
        return [CompletionItem(text) for text in find(ctx, incomplete)]
    except Exception:  # a completion must never print a traceback into the user's command line
        return []


SCOPE = ScopeType()
KEY = KeyNameType()
PREFIX = PrefixType()
VERSION = VersionType()
