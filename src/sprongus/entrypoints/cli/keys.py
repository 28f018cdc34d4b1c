"""`sprongus keys status|rotate-master|rotate-hmac|verify`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from sprongus.entrypoints.cli.errors import EXIT_INTEGRITY
from sprongus.entrypoints.cli.output import emit_json, info, plain, progress, table
from sprongus.entrypoints.cli.state import CliState, LocalGroup, pass_state

if TYPE_CHECKING:
    from sprongus.entrypoints.container import Container


@click.group("keys", cls=LocalGroup)
def keys_group() -> None:
    """Master keys (local: on this machine's vault): status, rotation and verification."""


@keys_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_state
def status_command(state: CliState, as_json: bool) -> None:
    """The key provider, the current master key and how many secrets each master key wraps."""
    from sprongus.domain.errors import ConfigError, KeyAccessDenied

    try:
        container = state.get_container()
        material = container.key_material()
        _check_kms(container, material.backend)
    except KeyAccessDenied as exc:  # no credentials, or a policy refusing them: the operator's configuration
        raise ConfigError(f"SPRONGUS_KEY_PROVIDER: the key provider cannot be used: {exc}") from None
    # A status is a read: it never makes a key (a new vault's key comes with its first secret).
    current = container.envelope().current_master_key_id() if material.has_key() else None
    counts = container.unit_of_work().count_by_master_key(state.principal)
    states = container.vault_keys().states()
    known = {k.key_id: k.state for k in states}
    wraps_hmac = {k.key_id for k in states if k.hmac_keys}
    hmac = container.envelope().current_hmac_key_id() if current else None
    if as_json:
        emit_json({"provider": material.backend, "location": material.location, "currentKeyId": current,
                   "hmacKeyId": hmac, "secretsByMasterKey": counts, "vaultKeys": known})
        return
    click.echo(f"provider:    {material.backend} ({material.location})")
    click.echo(f"current key: {current or 'none yet (the first write creates it)'}")
    click.echo(f"hmac key:    {hmac or 'none yet'}")
    rows = [[key_id, str(counts.get(key_id, 0)),
             _key_state(key_id, current, known, counts.get(key_id, 0) or key_id in wraps_hmac)]
            for key_id in sorted(set(counts) | set(known))]
    click.echo(table(["master key", "secrets", "state"], rows, states=("state",)) if rows else "no secrets yet")


def _key_state(key_id: str, current: str | None, known: dict[str, str], in_use: bool) -> str:
    """`in_use`: it still wraps secrets or the vault's HMAC keys, so it must stay until `keys rotate-master`."""
    if key_id == current:
        return "current"
    if known.get(key_id) == "not available":
        return "not available to this provider"
    return "old: run keys rotate-master" if in_use else "old: no secret uses it"


@keys_group.command("rotate-hmac")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON: hmacKeyId.")
@pass_state
def rotate_hmac_command(state: CliState, as_json: bool) -> None:
    """Start signing new values with a new value-HMAC key; values signed with older keys keep verifying."""
    from sprongus.domain.errors import PermissionDenied

    if not state.principal.owner:
        raise PermissionDenied("only the vault operator (local mode) may rotate the HMAC key")
    container = state.get_container()
    key_id = container.vault_keys().rotate_hmac()
    if as_json:
        emit_json({"hmacKeyId": key_id})
        return
    info(f"new hmac key {key_id}", err=False)


def _check_kms(container: Container, backend: str) -> None:
    """A KMS provider can be built without calling the KMS, and a status that only read its key id said all was
    well with no credentials at all: wrap a throwaway key once. No credentials or a refusing policy (KeyAccessDenied)
    is the operator's configuration to fix (exit 2); an outage keeps its own error and exit code."""
    import os

    from sprongus.entrypoints.profiles import KMS_SCHEMES

    if backend in KMS_SCHEMES:  # local keys were read to build the provider (and a probe must not create any)
        container.envelope().wrap_key(os.urandom(32), b"sprongus.keys-status.v1")


@keys_group.command("rotate-master")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON: currentKeyId, newKeyId, rewrapped, hmacKeysDamaged.")
@pass_state
def rotate_master_command(state: CliState, as_json: bool) -> None:
    """Re-wrap every data key onto the current master key.

    When every secret already sits on the current key and the provider keeps its own keys (file, keychain),
    a new master key version is created first. When some secrets still sit on older keys (an interrupted
    rotation, or a new key put first in SPRONGUS_MASTER_KEYS), it finishes re-wrapping them.
    """
    container = state.get_container()
    material = container.key_material()
    current = container.envelope().current_master_key_id()
    counts = container.unit_of_work().count_by_master_key(state.principal)
    behind = sum(n for key_id, n in counts.items() if key_id != current)
    new_key = None
    if behind:
        info(f"{_count(behind)} not on {current} yet: re-wrapping them")
    elif material.add_master_key is not None:
        container.rotation_ops().check_master_key(state.principal)  # never mint a new version over an unreadable vault
        material.add_master_key()
        new_key = container.envelope().current_master_key_id()
        info(f"new master key {new_key}")
    with progress("re-wrapping") as report:
        result = container.rotation_ops().rotate_master(state.principal, progress=report)
    current = container.envelope().current_master_key_id()
    if as_json:
        emit_json({"currentKeyId": current, "newKeyId": new_key, "rewrapped": result.rotated,
                   "hmacKeysDamaged": result.hmac_keys_damaged})
    else:
        info(f"re-wrapped {_count(result.rotated)} onto {current}", err=False)
    if result.hmac_keys_damaged:
        click.echo(f"warning: {result.hmac_keys_damaged} value-HMAC key record(s) of the vault did not open and "
                   "stay on their old master key; `keys verify` names any value they signed", err=True)


def _count(n: int) -> str:
    return f"{n} secret{'' if n == 1 else 's'}"


@keys_group.command("verify")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
@pass_state
def verify_command(state: CliState, as_json: bool) -> None:
    """Check every secret (checksum, decryption, value HMAC) and the audit chain. Exit 7 on any problem; exit 8,
    with nothing reported, when the key provider or the database is unavailable: an outage is not tampering."""
    with progress("verifying") as report:
        result = state.get_container().rotation_ops().verify(state.principal, progress=report)
    if as_json:
        emit_json({"checked": result.checked, "ok": result.ok,
                   "failures": [{"scope": s, "keyName": k, "reason": r} for s, k, r in result.failures],
                   "auditProblems": result.audit_problems})
    else:
        for scope, key, reason in result.failures:
            click.echo(plain(f"{scope} {key}: {reason}"))  # names read back from a database that may be damaged
        for problem in result.audit_problems:
            click.echo(problem)
        if result.ok:
            info(f"checked {_count(result.checked)}: ok", err=False)
        else:  # a finding, never a notice: -q keeps it
            click.echo(f"checked {_count(result.checked)}: PROBLEMS FOUND", err=True)
    if not result.ok:
        raise click.exceptions.Exit(EXIT_INTEGRITY)
