"""A client with a JWT file (SPRONGUS_OIDC_TOKEN_FILE): exchanged once, renewed with the file's next JWT as the
token nears its end or after a 401, never the same JWT twice, one exchange for many threads; and from_env.

The scripted server exchanges like the API does: each JWT once, a second time `invalid_grant`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprongus.client import Client, ConfigError, Unauthenticated
from tests.harness import CANARY
from tests.unit.client_fake import FakeApi, Reply, Seen, problem, record

REVEAL = "/v1/secrets/project/shop/notion.api_token:reveal"
EXCHANGE = "/v1/auth/token"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


class Server:
    """Exchanges each JWT once for spr_<n>; reveals for any token not revoked."""

    def __init__(self, fake: FakeApi, expires_in: int) -> None:
        self.fake, self.expires_in = fake, expires_in
        self.jwts: list[str] = []
        self.tokens: list[str] = []
        self.revoked: set[str] = set()
        self.lock = threading.Lock()
        fake.always("POST", EXCHANGE, self.exchange)
        fake.always("POST", REVEAL, self.reveal)

    def exchange(self, seen: Seen) -> Reply:
        form = seen.form()
        assert (form["grant_type"], form["subject_token_type"]) == (GRANT, JWT_TYPE)
        assert "authorization" not in seen.headers
        with self.lock:
            if form["subject_token"] in self.jwts:
                return Reply(400, {"error": "invalid_grant", "error_description": "already used"})
            self.jwts.append(form["subject_token"])
            self.tokens.append(f"spr_{len(self.tokens):043d}")
            return Reply(200, {"access_token": self.tokens[-1], "expires_in": self.expires_in,
                               "token_type": "Bearer"}, delay=0.2)

    def reveal(self, seen: Seen) -> Reply:
        if seen.bearer not in self.tokens or seen.bearer in self.revoked:
            return problem(401, "unauthenticated", "the bearer token is unknown, revoked or expired")
        return Reply(200, {**record("project:shop", "notion.api_token"), "value": CANARY, "masked": False})

    def bearers(self) -> list[str | None]:
        return [s.bearer for s in self.fake.calls("POST", REVEAL)]


class JwtFile:
    def __init__(self, path: Path) -> None:
        self.path, self.count = path, 0
        self.rotate()

    def rotate(self) -> str:
        """What the kubelet does: a new JWT in the same file."""
        self.count += 1
        jwt = f"eyJhbGciOiJSUzI1NiJ9.eyJqdGkiOiJ{self.count:04d}In0.c2lnbmF0dXJl"
        self.path.write_text(jwt + "\n")
        return jwt


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    with FakeApi() as api:
        yield api


@pytest.fixture
def jwt(tmp_path: Path) -> JwtFile:
    return JwtFile(tmp_path / "token")


def reveal(client: Client) -> str:
    return client.reveal("project:shop", "notion.api_token")


def test_the_jwt_is_exchanged_once_and_its_token_serves_every_call(fake: FakeApi, jwt: JwtFile) -> None:
    server = Server(fake, expires_in=3600)
    client = Client(fake.url, token_file=jwt.path)

    values = [reveal(client) for _ in range(3)]

    assert values == [CANARY] * 3
    assert len(server.jwts) == 1 and server.bearers() == [server.tokens[0]] * 3


def test_a_token_near_its_end_is_renewed_with_the_files_next_jwt(fake: FakeApi, jwt: JwtFile) -> None:
    server = Server(fake, expires_in=30)  # under a minute: renewal is due from the start
    client = Client(fake.url, token_file=jwt.path)

    reveal(client)
    reveal(client)  # the file still holds the JWT already exchanged: the token serves on, nothing is exchanged
    jwt.rotate()
    reveal(client)

    assert len(server.jwts) == 2  # the new JWT, exchanged before the old token expired
    assert server.bearers() == [server.tokens[0], server.tokens[0], server.tokens[1]]


def test_a_token_about_to_expire_with_no_new_jwt_is_a_clear_error(fake: FakeApi, jwt: JwtFile) -> None:
    server = Server(fake, expires_in=1)
    client = Client(fake.url, token_file=jwt.path)
    reveal(client)
    time.sleep(0.85)

    with pytest.raises(Unauthenticated) as caught:
        reveal(client)

    message = str(caught.value)
    assert message.startswith(f"SPRONGUS_OIDC_TOKEN_FILE: {jwt.path} still holds a JWT that was already exchanged")
    assert "expires in 0 s" in message
    assert len(server.jwts) == 1 and len(server.bearers()) == 1  # the same JWT was not sent again
    jwt.rotate()
    assert reveal(client) == CANARY


def test_a_401_renews_the_token_once_with_a_new_jwt(fake: FakeApi, jwt: JwtFile) -> None:
    server = Server(fake, expires_in=3600)
    client = Client(fake.url, token_file=jwt.path)
    reveal(client)
    server.revoked.add(server.tokens[0])
    jwt.rotate()

    assert reveal(client) == CANARY
    assert server.bearers() == [server.tokens[0], server.tokens[0], server.tokens[1]]

    server.revoked.add(server.tokens[1])  # the file was not renewed this time
    with pytest.raises(Unauthenticated, match=r"SPRONGUS_OIDC_TOKEN_FILE: .* refused the token it was exchanged"):
        reveal(client)
    assert len(server.jwts) == 2 and len(server.bearers()) == 4  # one try, no second exchange of the same JWT


def test_a_failed_renewal_keeps_the_current_token_while_it_serves(fake: FakeApi, jwt: JwtFile,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    server = Server(fake, expires_in=30)  # renewal due from the start, expiry 30 s away
    client = Client(fake.url, token_file=jwt.path, retries=0)
    reveal(client)
    fake.then("POST", EXCHANGE, problem(503, "storage-unavailable"))
    jwt.rotate()

    with caplog.at_level("WARNING"):
        values = [reveal(client), reveal(client)]  # the second within the pause: no exchange tried

    assert values == [CANARY] * 2 and server.bearers() == [server.tokens[0]] * 3
    assert len(fake.calls("POST", EXCHANGE)) == 2 and len(server.jwts) == 1
    assert "could not be renewed" in caplog.text and "the current one serves on" in caplog.text


def test_a_fixed_tokens_401_is_not_retried(fake: FakeApi) -> None:
    server = Server(fake, expires_in=3600)

    with pytest.raises(Unauthenticated, match="unknown, revoked or expired"):
        reveal(Client(fake.url, "spr_" + "x" * 43))

    assert len(server.bearers()) == 1


def test_a_refused_jwt_is_not_sent_again(fake: FakeApi, jwt: JwtFile) -> None:
    fake.always("POST", EXCHANGE, Reply(400, {"error": "invalid_grant", "error_description": "server's words"}))
    client = Client(fake.url, token_file=jwt.path)

    for _ in range(2):
        with pytest.raises(Unauthenticated) as caught:
            reveal(client)
        assert str(caught.value).startswith(f"SPRONGUS_OIDC_TOKEN_FILE: {jwt.path}")
        assert "server's words" not in str(caught.value)

    assert len(fake.calls("POST", EXCHANGE)) == 1


def test_threads_share_one_exchange(fake: FakeApi, jwt: JwtFile) -> None:
    server = Server(fake, expires_in=3600)
    client = Client(fake.url, token_file=jwt.path)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(reveal(client))) for _ in range(8)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert results == [CANARY] * 8
    assert len(server.jwts) == 1 and set(server.bearers()) == {server.tokens[0]}


def test_no_jwt_or_token_in_logs_reprs_or_errors(fake: FakeApi, jwt: JwtFile,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    server = Server(fake, expires_in=1)
    client = Client(fake.url, token_file=jwt.path)
    with caplog.at_level("DEBUG"):
        reveal(client)
        time.sleep(0.85)
        with pytest.raises(Unauthenticated) as caught:
            reveal(client)

    assert any("exchanged the JWT in" in r.getMessage() for r in caplog.records)
    shown = caplog.text + repr(client) + str(caught.value) + repr(caught.value)
    for secret in (*server.jwts, *server.tokens, CANARY):
        assert secret not in shown


def test_from_env_prefers_sprongus_token_then_the_token_file(fake: FakeApi, jwt: JwtFile) -> None:
    server = Server(fake, expires_in=3600)
    reveal(Client.from_env({"SPRONGUS_API_URL": fake.url, "SPRONGUS_OIDC_TOKEN_FILE": str(jwt.path)}))
    fixed = Client.from_env({"SPRONGUS_API_URL": fake.url + "/v1/", "SPRONGUS_TOKEN": server.tokens[0],
                             "SPRONGUS_OIDC_TOKEN_FILE": str(jwt.path)})

    assert reveal(fixed) == CANARY and fixed.api_url == fake.url + "/v1"
    assert len(server.jwts) == 1


@pytest.mark.parametrize(("env", "message"), [
    ({"SPRONGUS_TOKEN": "spr_x"}, "SPRONGUS_API_URL: the API's http(s) base URL is needed"),
    ({"SPRONGUS_API_URL": "ftp://example.com", "SPRONGUS_TOKEN": "spr_x"}, "SPRONGUS_API_URL: the API's http(s)"),
    ({"SPRONGUS_API_URL": "http://127.0.0.1:9"}, "no API token: set SPRONGUS_TOKEN, or SPRONGUS_OIDC_TOKEN_FILE"),
    ({"SPRONGUS_API_URL": "http://127.0.0.1:9", "SPRONGUS_OIDC_TOKEN_FILE": "/nonexistent/token"},
     "SPRONGUS_OIDC_TOKEN_FILE: cannot read /nonexistent/token"),
])
def test_from_env_names_the_setting_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        reveal(Client.from_env(env))
    assert str(caught.value).startswith(message)


def test_a_revoked_token_whose_renewal_fails_still_empties_the_cache(fake: FakeApi, jwt: JwtFile) -> None:
    """The 401 tries a renewal first, which fails when the file still holds the JWT already exchanged: the cache
    was emptied only after it, so it never was, and the revoked client kept serving its values."""
    server = Server(fake, expires_in=3600)
    client = Client(fake.url, token_file=jwt.path, cache_ttl=300)
    assert reveal(client) == CANARY
    server.revoked.add(server.tokens[0])
    fake.always("GET", "/v1/secrets/project/shop/other", problem(401, "unauthenticated"))
    with pytest.raises(Unauthenticated):
        client.get("project:shop", "other")
    with pytest.raises(Unauthenticated):
        reveal(client)  # refused (its token is known dead), not served from the cache
