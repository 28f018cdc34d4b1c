"""The one loop over keyset pages: bulk work streams rows a batch at a time, never the whole table at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from sprongus.domain.errors import RemoteUnavailable
from sprongus.domain.principal import Principal
from sprongus.domain.records import Page, SecretRecord, SecretView
from sprongus.domain.scope import Scope
from sprongus.ports import UnitOfWork
from sprongus.ports.secrets_api import SecretsApi

A = TypeVar("A")
R = TypeVar("R")


def pages(fetch: Callable[[A | None], list[R]], next_after: Callable[[R], A], size: int) -> Iterator[list[R]]:
    """Each page `fetch(after)` returns, until one is shorter than `size`; `after` comes from the last row."""
    after: A | None = None
    while True:
        rows = fetch(after)
        yield rows
        if len(rows) < size:
            return
        after = next_after(rows[-1])


def scope_pages(uow: UnitOfWork, principal: Principal, scope: Scope, prefix: str,
                size: int) -> Iterator[list[SecretRecord]]:
    """A scope's records by key name, one short read-only transaction per page (only the keys under the
    caller's key prefix)."""
    visible = principal.narrow(prefix)
    if visible is None:
        return iter(())
    prefix = visible

    def fetch(after: str | None) -> list[SecretRecord]:
        with uow.transaction(principal, readonly=True) as repo:
            return repo.list_page(scope, prefix, after, size)
    return pages(fetch, lambda row: row.key, size)


def vault_pages(uow: UnitOfWork, principal: Principal, size: int,
                not_on_master_key: str | None = None) -> Iterator[list[SecretRecord]]:
    """Every record of the vault by id (operator work), optionally only those not on a master key."""
    def fetch(after: str | None) -> list[SecretRecord]:
        with uow.transaction(principal, readonly=True) as repo:
            return repo.scan(after, size, not_on_master_key=not_on_master_key)
    return pages(fetch, lambda row: row.id, size)


API_PAGE = 500


def api_views(api: SecretsApi, scope: Scope, prefix: str = "", with_meta: bool = False) -> Iterator[SecretView]:
    """Every secret of a scope through SecretsApi (local or remote), following nextCursor."""
    return following(lambda cursor: api.list(scope, prefix, with_meta, cursor, API_PAGE))


def following(page_at: Callable[[str | None], Page]) -> Iterator[SecretView]:
    """Each page's items, following nextCursor; a cursor handed back again (a broken or hostile remote server)
    would list forever: RemoteUnavailable."""
    cursor: str | None = None
    seen: set[str] = set()
    while True:
        page = page_at(cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        if page.next_cursor in seen:
            raise RemoteUnavailable("the API answered a listing with a cursor it gave before")
        seen.add(cursor := page.next_cursor)
