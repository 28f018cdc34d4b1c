"""The `keychain` key provider: against a real Secret Service (gnome-keyring under dbus-run-session) and against
an in-memory keyring backend through `key_material.keychain_keys(..., backend=...)` and the CLI.

The real test skips without dbus-run-session or gnome-keyring-daemon, unless SPRONGUS_REQUIRE_KEYCHAIN=1 (CI,
which installs the Debian packages gnome-keyring and dbus): then it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail

from sprongus.domain.errors import IntegrityError, KeyProviderError
from sprongus.entrypoints.config import Settings
from sprongus.entrypoints.key_material import file_keys, keychain_keys
from tests.e2e.conftest import SCOPE, SPRONGUS_CMD, Machine, Vault
from tests.harness import CANARY, is_new_key_id, numbered

SCRIPT = r"""
set -u
export HOME="$ROOT/user" XDG_DATA_HOME="$ROOT/user/.local/share" XDG_CONFIG_HOME="$ROOT/user/.config"
export XDG_RUNTIME_DIR="$ROOT/run"
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
eval "$(printf %s pass | gnome-keyring-daemon --unlock --components=secrets)" || exit 90
export SPRONGUS_HOME="$ROOT/vault" SPRONGUS_KEY_PROVIDER=keychain

step() {  # step NAME COMMAND...: stdin from $ROOT/NAME.in when present; outputs and exit code to $ROOT/NAME.*
    local name=$1; shift
    if [ -f "$ROOT/$name.in" ]; then "$@" <"$ROOT/$name.in"; else "$@" </dev/null; fi \
        >"$ROOT/$name.out" 2>"$ROOT/$name.err"
    echo $? >"$ROOT/$name.rc"
}
step set $SPRONGUS secrets set project:p1 kc.token -
step reveal $SPRONGUS secrets get project:p1 kc.token --reveal --yes --no-newline
step status $SPRONGUS keys status --json
step probe "$PYTHON" -c "$PROBE"
step rotate $SPRONGUS keys rotate-master
step reveal2 $SPRONGUS secrets get project:p1 kc.token --reveal --yes --no-newline
step status2 $SPRONGUS keys status --json
"""

def _probe_source(vault_id: str) -> str:
    """Run inside the session: which backend keyring picks, and the ids of this vault's key versions in it."""
    return (
        "import json, keyring\n"
        f"text = keyring.get_password('sprongus', 'keyring:{vault_id}')\n"
        "doc = json.loads(text) if text else {}\n"
        "print(json.dumps({'backend': type(keyring.get_keyring()).__name__, 'format': doc.get('format'),\n"
        "                  'master': [k['id'] for k in doc.get('master', [])]}))\n"
    )


def _require_tools() -> None:
    missing = [tool for tool in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(tool) is None]
    if not missing:
        return
    reason = f"{' and '.join(missing)} not installed (Debian packages: dbus, gnome-keyring)"
    if os.environ.get("SPRONGUS_REQUIRE_KEYCHAIN") == "1":
        pytest.fail(f"SPRONGUS_REQUIRE_KEYCHAIN=1 but {reason}")
    pytest.skip(reason)


def test_master_key_lives_in_a_real_secret_service(tmp_path: Path) -> None:
    _require_tools()
    machine = Machine(tmp_path)  # for its clean environment: no SPRONGUS_*, no outer D-Bus session
    vault_id = Settings.from_mapping({"SPRONGUS_HOME": str(tmp_path / "vault")}).vault_id
    (tmp_path / "set.in").write_text(CANARY + "\n")
    env = machine.env(extra={"ROOT": str(tmp_path), "SPRONGUS": " ".join(SPRONGUS_CMD), "PYTHON": sys.executable,
                             "PROBE": _probe_source(vault_id)})

    session = subprocess.run(["dbus-run-session", "--", "bash", "-c", SCRIPT], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, check=False)

    assert session.returncode == 0, session.stderr

    def step(name: str) -> tuple[int, str, str]:
        return (int((tmp_path / f"{name}.rc").read_text()), (tmp_path / f"{name}.out").read_text(),
                (tmp_path / f"{name}.err").read_text())

    code, out, err = step("set")
    assert (code, out) == (0, f"created {SCOPE} kc.token (version 1)\n"), err
    assert "keychain" not in err  # no fallback warning: a real keychain was there
    assert step("reveal")[:2] == (0, CANARY)  # another process reads the same key from the keychain
    code, out, err = step("status")
    assert code == 0, err
    status = json.loads(out)
    assert status["location"].startswith("OS keychain (")
    assert numbered({k: v for k, v in status.items() if k != "location"}) == {
        "provider": "keychain", "currentKeyId": "keychain:v1", "hmacKeyId": "keychain:h1",
        "secretsByMasterKey": {"keychain:v1": 1}, "vaultKeys": {"keychain:v1": "current"}}
    code, out, err = step("probe")
    probe = json.loads(out)
    assert (code, probe["backend"], probe["format"]) == (0, "Keyring", "sprongus.keyring.v1"), err
    assert [f"keychain:{v}" for v in probe["master"]] == [status["currentKeyId"]]
    assert not (tmp_path / "vault" / "master.key").exists()
    assert not list(tmp_path.rglob("master.key"))
    code, out, err = step("rotate")
    assert (code, numbered(out)) == (0, "re-wrapped 1 secret onto keychain:v2\n"), err
    assert step("reveal2")[:2] == (0, CANARY)
    assert numbered(json.loads(step("status2")[1])["secretsByMasterKey"]) == {"keychain:v2": 1}


# In-memory keyring backend ---------------------------------------------------------------------------------------


class DictKeyring(KeyringBackend):
    """A real KeyringBackend that keeps passwords in a dict."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        del self.items[(service, username)]


KeyringBackend._classes.discard(DictKeyring)  # never chosen by keyring.get_keyring() elsewhere in the run


def test_keychain_keys_keep_the_key_in_the_backend_not_in_a_file(tmp_path: Path) -> None:
    backend, notices = DictKeyring(), list[str]()
    key_file = tmp_path / "master.key"

    material = keychain_keys("vault-a", 2.0, str(key_file), notices.append, backend=backend)
    assert backend.items == {}  # reads make no key: the first write does

    assert material.backend == "keychain" and is_new_key_id(material.master.current_key_id(), "keychain:v1")
    assert material.location == "OS keychain (DictKeyring)"
    assert list(backend.items) == [("sprongus", "keyring:vault-a")]
    assert json.loads(backend.items[("sprongus", "keyring:vault-a")])["format"] == "sprongus.keyring.v1"
    assert not key_file.exists()
    assert notices == []


def test_keychain_keys_reload_the_same_key_and_keep_vaults_apart(tmp_path: Path) -> None:
    backend = DictKeyring()
    first = keychain_keys("vault-a", 2.0, str(tmp_path / "a.key"), backend=backend)
    wrapped = first.master.wrap(b"k" * 32, b"aad")  # the first write makes vault-a's key
    again = keychain_keys("vault-a", 2.0, str(tmp_path / "a.key"), backend=backend)
    other = keychain_keys("vault-b", 2.0, str(tmp_path / "b.key"), backend=backend)
    other.master.current_key_id()  # and vault-b's

    assert again.master.unwrap(wrapped.blob, wrapped.master_key_id, b"aad") == b"k" * 32
    with pytest.raises(KeyProviderError, match="not available"):  # an id of its own: never vault-a's key
        other.master.unwrap(wrapped.blob, wrapped.master_key_id, b"aad")
    with pytest.raises(IntegrityError):  # nor under its own id
        other.master.unwrap(wrapped.blob, other.master.current_key_id(), b"aad")
    assert len(backend.items) == 2


def test_a_new_master_key_version_is_stored_in_the_backend(tmp_path: Path) -> None:
    backend = DictKeyring()
    material = keychain_keys("vault-a", 2.0, str(tmp_path / "a.key"), backend=backend)
    old = material.master.wrap(b"k" * 32, b"aad")
    assert material.add_master_key is not None

    material.add_master_key()
    reloaded = keychain_keys("vault-a", 2.0, str(tmp_path / "a.key"), backend=backend)

    assert material.master.current_key_id() == reloaded.master.current_key_id()
    assert is_new_key_id(reloaded.master.current_key_id(), "keychain:v2")
    assert reloaded.master.unwrap(old.blob, old.master_key_id, b"aad") == b"k" * 32


def test_without_a_real_keychain_the_key_file_is_used_with_a_notice(tmp_path: Path) -> None:
    notices: list[str] = []
    key_file = tmp_path / "master.key"

    material = keychain_keys("vault-a", 2.0, str(key_file), notices.append, backend=fail.Keyring())  # type: ignore[no-untyped-call]

    assert material.backend == "file" and not key_file.exists() and notices == []
    material.master.current_key_id()  # the first write
    assert key_file.exists()
    assert len(notices) == 1 and "no OS keychain is available" in notices[0]


def test_a_vault_that_already_uses_the_key_file_keeps_it(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    file_keys(str(key_file)).master.current_key_id()  # a vault that wrote with the key file
    backend = DictKeyring()

    material = keychain_keys("vault-a", 2.0, str(key_file), backend=backend)

    assert material.backend == "file"
    assert backend.items == {}


def test_the_cli_on_the_in_memory_keychain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = DictKeyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)
    vault = Vault(tmp_path / "home", {"SPRONGUS_KEY_PROVIDER": "keychain"})

    vault.set("k", CANARY)

    assert vault.reveal("k") == CANARY.encode()
    status = vault.status()
    assert (status["provider"], numbered(status["currentKeyId"])) == ("keychain", "keychain:v1")
    assert numbered(status["secretsByMasterKey"]) == {"keychain:v1": 1}
    assert not (tmp_path / "home" / "master.key").exists()
    assert not any(CANARY in text for text in backend.items.values())


def test_a_keychain_vault_where_no_keychain_is_reachable_is_an_outage_not_a_lost_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over SSH (no D-Bus session) keyring picks its fail backend: the key file stood in, held nothing, and the
    vault was reported as having lost its key (exit 7: restore from a backup) while the key sat in the keychain."""
    backend = DictKeyring()
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)
    vault = Vault(tmp_path / "home", {"SPRONGUS_KEY_PROVIDER": "keychain"})
    vault.set("k", CANARY)
    monkeypatch.setattr(keyring, "get_keyring", lambda: fail.Keyring())  # type: ignore[no-untyped-call]

    for command in (("secrets", "get", SCOPE, "k", "--reveal", "--yes"), ("secrets", "set", SCOPE, "k2", "-")):
        refused = vault(*command, input=b"x\n")
        assert refused.exit_code == 8, (refused.exit_code, refused.stderr)
        assert "OS keychain" in refused.stderr and "not reachable here" in refused.stderr
        assert "restore the key" not in refused.stderr and CANARY not in refused.stdout + refused.stderr
    assert not (tmp_path / "home" / "master.key").exists()  # no key of its own made beside the keychain's
    monkeypatch.setattr(keyring, "get_keyring", lambda: backend)
    assert vault.reveal("k") == CANARY.encode()  # the keychain back: as before
