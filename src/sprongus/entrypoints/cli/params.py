"""Click parameter types that validate with the domain's rules (errors name the field, exit code 2)."""

from __future__ import annotations

from typing import Any

import click

from sprongus.domain.errors import ValidationError
from sprongus.domain.names import validate_key_name, validate_prefix
from sprongus.domain.scope import Scope


class ScopeType(click.ParamType[Scope]):
    name = "scope"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Scope:
        if isinstance(value, Scope):
            return value
        try:
            return Scope.parse(value)
        except ValidationError as exc:
            raise ValidationError("scope", exc.rule) from None


class KeyNameType(click.ParamType[str]):
    name = "key"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return validate_key_name(value)


class PrefixType(click.ParamType[str]):
    name = "prefix"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        return validate_prefix(value)


SCOPE = ScopeType()
KEY = KeyNameType()
PREFIX = PrefixType()
