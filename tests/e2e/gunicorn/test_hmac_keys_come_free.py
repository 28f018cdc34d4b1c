"""Deployed as docs/deploy.md says (no SPRONGUS_HMAC_KEYS): values written through the API are signed with an HMAC
key the vault made and keeps (wrapped by the KMS key), and the operator's `keys verify` finds nothing missing.

Release 1 signed nothing there, so `keys verify` later reported "hmac missing" on every secret set by the API.
"""

from __future__ import annotations

import json

import psycopg

from tests.e2e.gunicorn.conftest import Stack
from tests.harness import CANARY


def test_values_set_through_the_api_are_signed_and_verify_clean(stack: Stack) -> None:
    project = stack.unique("hmac")
    api = stack.api(stack.token(stack.unique("svc"), projects=(project,)))
    for index in range(4):  # fresh connections: both workers write some
        answer = api.put(f"/v1/secrets/project/{project}/k{index}", fresh=True, json={"value": f"{CANARY}-{index}"})
        assert answer.status_code == 201, answer.text

    with psycopg.connect(stack.pg.admin_url) as conn:
        tags = [tag for (tag,) in conn.execute("SELECT hmac FROM secret_kv WHERE owner_id = %s", (project,))]
        keys = conn.execute("SELECT kind, key_id, master_key_id, blob FROM vault_key WHERE kind = 'hmac'").fetchall()
    assert len(tags) == 4 and all(tag is not None and tag.startswith("db:h") for tag in tags)
    assert keys and all(master.startswith("vault:") for _, _, master, _ in keys)  # wrapped by the OpenBao key
    assert all(CANARY.encode() not in bytes(blob) for _, _, _, blob in keys)

    verified = stack.operator("keys", "verify", "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["failures"] == [] and report["checked"] >= 4
