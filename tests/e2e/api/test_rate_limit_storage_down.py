"""When the shared rate-limit store is down, limited actions fail closed with 503, never pass unlimited."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.api.conftest import KEY, ApiClient, problem
from tests.harness import CANARY


def test_reveal_and_write_answer_503_when_redis_is_unreachable(make_api: Callable[..., ApiClient]) -> None:
    api = make_api(roomy_limits=False, SPRONGUS_RATE_LIMIT_STORAGE="redis://127.0.0.1:9/0")  # discard port
    api.seed("project:p1", KEY.rsplit("/", 1)[-1], CANARY)
    reveal = api.reveal(KEY)
    body = problem(reveal, 503)
    assert body["type"].endswith("storage-unavailable") and CANARY not in reveal.get_data(as_text=True)
    assert body["detail"] == "the rate-limit store is unavailable; nothing was changed"  # not "the database"
    assert problem(api.put(KEY, "new"), 503)["detail"] == body["detail"]
    assert api.call("GET", KEY).status_code == 200  # masked reads are not rate limited
