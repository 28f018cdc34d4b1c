"""`sprongus keys status|rotate-master`."""

from __future__ import annotations

import click

from sprongus.entrypoints.cli.errors import EXIT_INTEGRITY
from sprongus.entrypoints.cli.output import emit_json, progress, table
from sprongus.entrypoints.cli.state import CliState, pass_state


@click.group("keys")
def keys_group() -> None:
    """Master keys: status, rotation and verification."""


@keys_group.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def status_command(state: CliState, as_json: bool) -> None:
    """The key provider, the current master key and how many secrets each master key wraps."""
    container = state.get_container()
    material = container.key_material()
    current = container.envelope().current_master_key_id()
    counts = container.unit_of_work().count_by_master_key(state.principal)
    if as_json:
        emit_json({"provider": material.backend, "location": material.location, "currentKeyId": current,
                   "secretsByMasterKey": counts})
        return
    click.echo(f"provider:    {material.backend} ({material.location})")
    click.echo(f"current key: {current}")
    rows = [[key_id, str(n), "current" if key_id == current else "old: run keys rotate-master"]
            for key_id, n in sorted(counts.items())]
    click.echo(table(["master key", "secrets", "state"], rows) if rows else "no secrets yet")


@keys_group.command("rotate-master")
@pass_state
def rotate_master_command(state: CliState) -> None:
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
    if behind:
        click.echo(f"{_count(behind)} not on {current} yet: re-wrapping them", err=True)
    elif material.add_master_key is not None:
        container.rotation_ops().check_master_key(state.principal)  # never mint a new version over an unreadable vault
        material.add_master_key()
        click.echo(f"new master key {container.envelope().current_master_key_id()}", err=True)
    with progress("re-wrapping") as report:
        result = container.rotation_ops().rotate_master(state.principal, progress=report)
    click.echo(f"re-wrapped {_count(result.rotated)} onto {container.envelope().current_master_key_id()}")


def _count(n: int) -> str:
    return f"{n} secret{'' if n == 1 else 's'}"


@keys_group.command("verify")
@click.option("--json", "as_json", is_flag=True)
@pass_state
def verify_command(state: CliState, as_json: bool) -> None:
    """Check every secret (checksum, decryption, value HMAC) and the audit chain. Exit 7 on any problem."""
    with progress("verifying") as report:
        result = state.get_container().rotation_ops().verify(state.principal, progress=report)
    if as_json:
        emit_json({"checked": result.checked, "ok": result.ok,
                   "failures": [{"scope": s, "keyName": k, "reason": r} for s, k, r in result.failures],
                   "auditProblems": result.audit_problems})
    else:
        for scope, key, reason in result.failures:
            click.echo(f"{scope} {key}: {reason}")
        for problem in result.audit_problems:
            click.echo(problem)
        click.echo(f"checked {_count(result.checked)}: " + ("ok" if result.ok else "PROBLEMS FOUND"),
                   err=not result.ok)
    if not result.ok:
        raise click.exceptions.Exit(EXIT_INTEGRITY)
