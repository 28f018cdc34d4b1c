"""Adding master-key versions concurrently never loses one (a lost version would strand its secrets)."""

from __future__ import annotations

import threading
from pathlib import Path

from sprongus.adapters.keys_file import FileKeyStore


def test_concurrent_add_master_key_keeps_every_version(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    FileKeyStore(path).load_or_create()
    added: list[tuple[str, bytes]] = []
    guard = threading.Lock()

    def rotate() -> None:
        versions = FileKeyStore(path).add_master_key()
        with guard:
            added.append(versions.master[0])

    threads = [threading.Thread(target=rotate) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    final = dict(FileKeyStore(path).load().master)
    assert len({key_id for key_id, _ in added}) == 8  # each rotation minted its own version
    assert len(final) == 9 and all(final[key_id] == key for key_id, key in added)
