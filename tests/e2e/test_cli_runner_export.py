"""`sprongus secrets export` in-process: metadata, --out, bundles (same master key or a passphrase), tampering."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import SCOPE, Vault, one_error_line
from tests.harness import CANARY

# export ---------------------------------------------------------------------------------------------------------


def test_export_prints_metadata_and_never_values(seeded: Vault) -> None:
    seeded.set("notion.a", CANARY, SCOPE, "--meta", "provider=notion")

    doc = json.loads(seeded.ok("secrets", "export", SCOPE, "--prefix", "notion.").stdout)

    assert doc["format"] == "sprongus.metadata.v1"
    assert (doc["scope"], doc["prefix"]) == (SCOPE, "notion.")
    assert [(i["keyName"], i["version"], i["meta"]) for i in doc["items"]] == [
        ("notion.a", 2, {"provider": "notion"}), ("notion.b", 1, {})]
    assert all("value" not in item for item in doc["items"])
    assert CANARY not in json.dumps(doc)


def test_export_out_is_written_with_mode_0600(seeded: Vault, tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    out.write_text("old")
    out.chmod(0o644)

    result = seeded.ok("secrets", "export", SCOPE, "--bundle", "--out", str(out), "--force")

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert result.stdout == ""
    assert f"exported 4 secrets to {out}" in result.stderr
    assert json.loads(out.read_text())["format"] == "sprongus.bundle.v1"


def test_bundle_moves_to_a_vault_with_the_same_master_key(seeded: Vault, tmp_path: Path,
                                                          make_vault: Callable[..., Vault]) -> None:
    seeded.set("notion.a", CANARY, SCOPE, "--meta", "provider=notion")
    out = tmp_path / "bundle.json"
    seeded.ok("secrets", "export", SCOPE, "--bundle", "--out", str(out))
    assert CANARY not in out.read_text()
    twin = make_vault("twin", SPRONGUS_KEY_FILE=str(seeded.key_file))

    result = twin.ok("secrets", "import", "--file", str(out))

    assert result.stdout == "imported: 4 added, 0 changed, 0 removed\n"
    assert twin.values() == {"A": "old", "C": "old", "notion.a": CANARY, "notion.b": "old"}
    assert twin.record("notion.a")["meta"] == {"provider": "notion"}


def test_passphrase_bundle_moves_to_a_vault_with_another_master_key(seeded: Vault, tmp_path: Path,
                                                                    make_vault: Callable[..., Vault]) -> None:
    passphrase, wrong = tmp_path / "pass.txt", tmp_path / "wrong.txt"
    passphrase.write_text("correct horse battery\n")
    wrong.write_text("incorrect horse battery\n")
    out = tmp_path / "bundle.json"
    seeded.ok("secrets", "export", SCOPE, "--prefix", "notion.", "--bundle", "--passphrase-file", str(passphrase),
              "--out", str(out))
    stranger = make_vault("stranger")
    stranger.set("unrelated", "x")

    no_passphrase = stranger("secrets", "import", "--file", str(out))
    wrong_passphrase = stranger("secrets", "import", "--file", str(out), "--passphrase-file", str(wrong))
    stranger.ok("secrets", "import", "--file", str(out), "--format", "bundle", "--passphrase-file", str(passphrase))

    assert no_passphrase.exit_code == 2
    one_error_line(no_passphrase.stderr, naming="passphrase")
    assert wrong_passphrase.exit_code == 7
    one_error_line(wrong_passphrase.stderr, naming="integrity")
    assert stranger.values() == {"notion.a": "old", "notion.b": "old", "unrelated": "x"}


def test_a_master_key_bundle_does_not_open_under_another_master_key(seeded: Vault, tmp_path: Path,
                                                                    make_vault: Callable[..., Vault]) -> None:
    out = tmp_path / "bundle.json"
    seeded.ok("secrets", "export", SCOPE, "--bundle", "--out", str(out))

    stranger = make_vault("stranger")
    result = stranger("secrets", "import", "--file", str(out))

    # Key ids are unique, so the bundle names a master key this vault has never had: said as such, exit 2.
    assert result.exit_code == 2
    one_error_line(result.stderr, naming="bundle.protection.masterKeyId")
    assert stranger.names() == [] and not stranger.key_file.exists()  # nothing written, no key made


@pytest.mark.parametrize("edit", ["drop", "reorder", "version", "meta"])
def test_an_edited_bundle_is_refused_whole(seeded: Vault, tmp_path: Path, edit: str) -> None:
    out = tmp_path / "bundle.json"
    seeded.ok("secrets", "export", SCOPE, "--bundle", "--out", str(out))
    doc = json.loads(out.read_text())
    if edit == "drop":
        doc["items"].pop()
        doc["count"] -= 1
    elif edit == "reorder":
        doc["items"].reverse()
    elif edit == "version":
        doc["items"][0]["version"] += 1
    else:
        doc["items"][0]["meta"] = {"owner": "mallory"}
    out.write_text(json.dumps(doc))
    seeded.ok("secrets", "unset", SCOPE, "C")

    result = seeded("secrets", "import", "--file", str(out))

    assert result.exit_code == 7
    one_error_line(result.stderr, naming="integrity")
    assert "C" not in seeded.names()


@pytest.mark.parametrize(("content", "args", "field"), [
    ("short\n", ["--bundle"], "passphrase-file"),
    ("long enough passphrase", [], "passphrase-file"),
])
def test_export_passphrase_rules(seeded: Vault, tmp_path: Path, content: str, args: list[str], field: str) -> None:
    path = tmp_path / "pass.txt"
    path.write_text(content)

    result = seeded("secrets", "export", SCOPE, "--passphrase-file", str(path), *args)

    assert result.exit_code == 2
    one_error_line(result.stderr, naming=field)
    assert result.stdout == ""
