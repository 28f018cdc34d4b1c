"""`sprongus.client.Client` reads kept versions against the real API served on loopback: `get(version=)`,
`reveal(version=)` (never cached) and `history()`; a bad version is refused before anything is sent."""

from __future__ import annotations

import pytest

from sprongus.client import Client, History, NotFound, ValidationError
from tests.harness import CANARY
from tests.unit.client_server import served_api


def test_get_reveal_and_history_of_kept_versions() -> None:
    with served_api() as served:
        served.seed("project:shop", {"stripe.key": "sk_1"})
        served.seed("project:shop", {"stripe.key": CANARY})
        client = Client(served.url, served.token("app"), cache_ttl=60)

        assert client.get("project:shop", "stripe.key", version=1).version == 1
        assert client.get("project:shop", "stripe.key").version == 2
        assert client.reveal("project:shop", "stripe.key") == CANARY  # cached now
        assert client.reveal("project:shop", "stripe.key", version=1) == "sk_1"  # not the cached current value
        assert client.reveal("project:shop", "stripe.key") == CANARY
        history = client.history("project:shop", "stripe.key")
        assert isinstance(history, History) and history.deleted_at is None
        assert [(v.version, v.current, v.created_by) for v in history.items] == [(2, True, "ops"), (1, False, "ops")]
        with pytest.raises(NotFound):
            client.get("project:shop", "stripe.key", version=5)
        with pytest.raises(NotFound):
            client.history("project:shop", "absent")
        before = len(served.requests)
        for bad in (0, -1, True, 2**31):
            with pytest.raises(ValidationError) as refused:
                client.get("project:shop", "stripe.key", version=bad)
            assert refused.value.field == "version"
            with pytest.raises(ValidationError):
                client.reveal("project:shop", "stripe.key", version=bad)
        assert len(served.requests) == before  # refused before anything was sent
