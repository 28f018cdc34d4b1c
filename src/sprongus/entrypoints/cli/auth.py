"""Identity: `sprongus auth trust add|list|remove` (the operator's trusts, locally), `auth status`, and `sprongus
login` / `logout` (a token for --remote: pasted, or from the identity provider's device sign-in)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from sprongus.domain.api_token import TOKEN_TEXT
from sprongus.domain.errors import Unauthenticated, ValidationError
from sprongus.entrypoints.cli.output import emit_json, info, plain, table
from sprongus.entrypoints.cli.state import CliState, LocalGroup, pass_state
from sprongus.entrypoints.cli.tokens import SCOPES

if TYPE_CHECKING:
    from sprongus.domain.trust import Trust


@click.group("auth")
def auth_group() -> None:
    """Who may sign in: trusts for identity providers, and the signed-in token's status."""


@auth_group.group("trust", cls=LocalGroup)
def trust_group() -> None:
    """Trusts (local: on this machine's vault): which identity provider's JWTs the API exchanges for API tokens,
    and what those tokens may do."""


@trust_group.command("add")
@click.argument("name")
@click.option("--issuer", required=True, help="The JWTs' `iss`: the provider's https URL.")
@click.option("--audience", required=True, help="The `aud` the JWTs must carry.")
@click.option("--jwks-url", help="The signing keys (default: from the issuer's OIDC discovery).")
@click.option("--claim", "claims", multiple=True, metavar="CLAIM=GLOB",
              help="Repeatable: a claim that must match the glob (case-sensitive), e.g. ref=refs/heads/main.")
@click.option("--subject-claim", default="sub", show_default=True, help="The claim that names the subject.")
@click.option("--subject-prefix", default="", help="Put before the subject claim's value, e.g. gha:.")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES),
              help="Repeatable: the exchanged tokens' scopes.")
@click.option("--project", "projects", multiple=True, help="Repeatable: project:<id> scopes they may act on.")
@click.option("--key-prefix", default="", metavar="PREFIX", help="They see and touch only keys under PREFIX.")
@click.option("--ttl", default="15m", show_default=True, help="Their lifetime: seconds or s, m, h (at most 12h).")
@click.option("--kind", type=click.Choice(["workload", "user"]), default="workload", show_default=True,
              help="workload: services and CI jobs; user: people signing in with `sprongus login --oidc`.")
@click.option("--json", "as_json", is_flag=True, help="Print the new trust as JSON (as `auth trust list --json`).")
@pass_state
def trust_add_command(state: CliState, name: str, issuer: str, audience: str, jwks_url: str | None,
                      claims: tuple[str, ...], subject_claim: str, subject_prefix: str, scopes: tuple[str, ...],
                      projects: tuple[str, ...], key_prefix: str, ttl: str, kind: str, as_json: bool) -> None:
    """Trust an identity provider's JWTs (a CI system, a Kubernetes cluster, the people's IdP)."""
    from sprongus.domain.api_token import parse_ttl

    trust = state.get_container().trust_ops().add(
        name, issuer, audience, list(scopes), jwks_url=jwks_url, claims=list(claims), subject_claim=subject_claim,
        subject_prefix=subject_prefix, projects=list(projects), key_prefix=key_prefix, ttl_seconds=parse_ttl(ttl),
        kind=kind)
    if as_json:
        emit_json(trust.to_dict())
        return
    info(f"added trust {trust.name}: {trust.kind.value} tokens for {trust.issuer} (audience {trust.audience}), "
         f"{_ttl(trust.ttl_seconds)}", err=False)


@trust_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_state
def trust_list_command(state: CliState, as_json: bool) -> None:
    """The trusts, with their rules and what their tokens may do."""
    trusts = state.get_container().trust_ops().list()
    if as_json:
        emit_json([trust.to_dict() for trust in trusts])
        return
    click.echo(table(["name", "kind", "issuer", "audience", "claims", "subject", "scopes", "projects",
                      "key prefix", "ttl"], [_row(t) for t in trusts]) if trusts else "no trusts")


def _row(trust: Trust) -> list[str]:
    return [trust.name, trust.kind.value, trust.issuer, trust.audience,
            ",".join(f"{claim}={glob}" for claim, glob in trust.claims) or "-",
            f"{trust.subject_prefix}<{trust.subject_claim}>", ",".join(sorted(trust.scopes)),
            ",".join(sorted(trust.projects)) or "-", trust.key_prefix or "-", _ttl(trust.ttl_seconds)]


def _ttl(seconds: int) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@trust_group.command("remove")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: name, removed.")
@pass_state
def trust_remove_command(state: CliState, name: str, as_json: bool) -> None:
    """Remove a trust. Tokens already exchanged under it stay valid until they expire (`tokens revoke` them)."""
    state.get_container().trust_ops().remove(name)
    if as_json:
        emit_json({"name": name, "removed": True})
        return
    info(f"removed trust {name}", err=False)


@auth_group.command("status")
@click.option("--api-url", help="The API's base URL (default: SPRONGUS_API_URL).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_state
def status_command(state: CliState, api_url: str | None, as_json: bool) -> None:
    """Who the API token of --remote acts as: subject, kind, scopes, projects, expiry and sign-in age."""
    from sprongus.entrypoints.cli.login import remote_client
    from sprongus.entrypoints.cli.remote import FROM_LOGIN

    client, source = remote_client(state.get_settings(), api_url)
    try:
        me = client.call("GET", "/auth/whoami")
    except Unauthenticated as exc:
        hint = "; run `sprongus login --oidc` again" if source == FROM_LOGIN else f" (from {source})"
        raise Unauthenticated(f"{exc}{hint}") from None
    me = {**(me if isinstance(me, dict) else {}), "tokenSource": source}
    if as_json:
        emit_json(me)
        return
    click.echo(_describe(me, "`sprongus login`" if source == FROM_LOGIN else source))


def _describe(me: dict[str, Any], source: str) -> str:
    age, trust = me.get("authAgeSeconds"), me.get("trust")
    rows = [("subject", me.get("subject")), ("kind", f"{me.get('kind')}" + (f" (trust {trust})" if trust else "")),
            ("scopes", ", ".join(me.get("scopes") or [])), ("projects", ", ".join(me.get("projects") or [])),
            ("key prefix", me.get("keyPrefix")), ("token id", me.get("tokenId")), ("expires", me.get("expiresAt")),
            ("signed in", f"{me.get('authTime')} ({age} s ago)" if age is not None else me.get("authTime")),
            ("token from", source)]
    return "\n".join(f"{name + ':':<11} {plain(value) if value not in (None, '') else '-'}" for name, value in rows)


@click.command("login")
@click.option("--api-url", help="The API's base URL (default: SPRONGUS_API_URL).")
@click.option("--oidc", is_flag=True, help="Sign in with the identity provider the API names (device sign-in).")
@click.option("--step-up", is_flag=True, help="With --oidc: a fresh sign-in, as recent reveals require.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a summary as JSON: apiUrl, storedIn, subject, expiresAt (never the token).")
@pass_state
def login_command(state: CliState, api_url: str | None, oidc: bool, step_up: bool, as_json: bool) -> None:
    """Keep an API token for --remote: in the OS keychain, else in a 0600 file. The token is read from stdin, or
    with --oidc comes from signing in with the identity provider."""
    from sprongus.entrypoints.cli.login import KEYCHAIN, keep_token, oidc_login
    from sprongus.entrypoints.cli.remote import checked_api_url

    settings = state.get_settings()
    if step_up and not oidc:
        raise ValidationError("step-up", "only goes with --oidc")
    if not (api_url or settings.api_url):
        raise ValidationError("api-url", "give --api-url or set SPRONGUS_API_URL")
    url = checked_api_url(api_url or settings.api_url)
    if oidc:
        summary = oidc_login(settings, url, step_up=step_up)[1]
        if as_json:
            emit_json(summary)
        return
    interactive = sys.stdin.isatty()
    token = click.prompt("API token", hide_input=True, err=True) if interactive else sys.stdin.readline().strip()
    if not TOKEN_TEXT.fullmatch(token):  # it goes into every request's header from now on
        raise ValidationError("token", "an API token starts with spr_, then letters, digits, `-` or `_`")
    where = keep_token(settings, url, token)
    if as_json:  # a pasted token is kept without asking the API, so who it names is not known here
        emit_json({"apiUrl": url, "storedIn": "keychain" if where == KEYCHAIN else "file", "subject": None,
                   "expiresAt": None})
        return
    info(f"token stored in the OS keychain for {url}" if where == KEYCHAIN else f"token stored for {url}", err=False)


@click.command("logout")
@click.option("--api-url", help="The API's base URL (default: SPRONGUS_API_URL).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON: apiUrl, keptToken and envToken (each revoked, invalid or null).")
@pass_state
def logout_command(state: CliState, api_url: str | None, as_json: bool) -> None:
    """Revoke the API token at the API and forget it here (keychain and token file). A token in SPRONGUS_TOKEN is
    revoked too; unset it yourself."""
    from sprongus.entrypoints.cli.login import forget_tokens, stored_tokens
    from sprongus.entrypoints.cli.remote import checked_api_url

    settings = state.get_settings()
    url = checked_api_url(api_url or settings.api_url)
    stored = stored_tokens(settings, url)
    env = settings.api_token
    result: dict[str, str | None] = {"apiUrl": url, "keptToken": None, "envToken": None}
    if not stored and not env:
        info(f"not logged in to {url}: no token is kept for it")
    revoked = {token: _revoke(url, token) for token in dict.fromkeys([*([env] if env else []), *stored])}
    if stored:
        forget_tokens(settings, url)
        valid = all(revoked[token] for token in stored)
        result["keptToken"] = "revoked" if valid else "invalid"
        info(f"logged out of {url}: the token is revoked and forgotten" if valid else
             f"logged out of {url}: the token was already invalid (expired or revoked); it is forgotten")
    if env:
        result["envToken"] = "revoked" if revoked[env] else "invalid"
        # Not a notice: the shell still holds the token, and only the user can remove it (so -q keeps this line).
        click.echo(f"the token in SPRONGUS_TOKEN is {'revoked' if revoked[env] else 'already invalid'}; unset "
                   "SPRONGUS_TOKEN in your environment", err=True)
    if as_json:
        emit_json(result)


def _revoke(url: str, token: str) -> bool:
    """True when the API revoked it; False when it was no longer valid (an expired or revoked token is a 401)."""
    from sprongus.adapters.http_client import ApiClient

    try:
        ApiClient(url, token).call("POST", "/auth/revoke", {})
    except Unauthenticated:
        return False
    return True
