"""A KMS answer's own text, key ids and redirects never carry what the request held, nor forge terminal output.

A server at the KMS's address (a hostile one, a proxy that echoes requests, a misconfigured standby) chose the text
of its errors, and the adapters repeated it: the Vault token and the data key being wrapped reached the CLI's stderr
and the API's log; escape codes and line breaks reached the terminal. A Vault 307 to another host was followed
with the token and the data key. Key ids a KMS named (an AWS alias's ARN, an Azure kid) were stored unchecked and
printed by `keys status`. The real SDK clients (hvac, boto3, azure-keyvault-keys, google-cloud-kms) and the real
`sprongus` command talk to local servers that answer so.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sprongus.domain.errors import KeyProviderError, KeyProviderUnavailable
from sprongus.entrypoints.cli.errors import exit_code_for
from tests.integration.kms.azure_fake import FakeKeyVaultServer
from tests.integration.kms.gcp_fake import FakeCloudKms
from tests.integration.kms.test_azure import provider as azure_provider
from tests.integration.kms.test_kms_foreign_answers import page

TOKEN = "hvs.CAESICanaryVaultToken7f3e"
FORGED = "\x1b[2J\x1b[31mFORGED\x1b[0m\x1b]52;c;ZWNobyBwd25lZA==\x07\r\nerror: all secrets verified OK"
AAD = b"scope=project:p1;key=db.password;v=1"
ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
Reply = Callable[[BaseHTTPRequestHandler, bytes], None]


def send(handler: BaseHTTPRequestHandler, status: int, body: object, content_type: str = "application/json",
         location: str | None = None) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(data)))
    if location is not None:
        handler.send_header("Location", location)
    handler.end_headers()
    handler.wfile.write(data)


class Hostile:
    """A plain-HTTP server whose `reply(handler, body)` answers every request; it records what each one carried."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        me = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                me.seen.append((self.path, dict(self.headers), body))
                me.reply(self, body)

            do_GET = do_POST = do_PUT = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def plaintexts(self) -> list[str]:
        """The base64 data keys the client sent to be wrapped."""
        return [item["plaintext"] for _, _, body in self.seen if body
                for item in json.loads(body).get("batch_input", []) if "plaintext" in item]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[list[Hostile]]:
    started: list[Hostile] = []
    yield started
    for server in started:
        server.close()


def vault_reply(batch: Reply, key: dict[str, Any] | None = None) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if handler.path == "/v1/transit/keys/k":
            send(handler, 200, {"data": key or {"derived": True, "type": "aes256-gcm96", "latest_version": 1}})
        else:
            batch(handler, body)
    return reply


def sprongus_set(server: Hostile, home: Path) -> subprocess.CompletedProcess[str]:
    """`sprongus secrets set` on a local vault whose master key is the transit key at `server`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRONGUS_")}
    env.update(SPRONGUS_HOME=str(home), SPRONGUS_ENV="dev", VAULT_TOKEN=TOKEN, SPRONGUS_KMS_TIMEOUT="3",
               SPRONGUS_HMAC_KEYS="h1:" + base64.b64encode(b"h" * 32).decode(),
               SPRONGUS_KEY_PROVIDER=f"vault://127.0.0.1/transit/keys/k?endpoint={server.url}")
    return subprocess.run([sys.executable, "-m", "sprongus.entrypoints.cli", "secrets", "set", "system",
                           "db.password", "-"], input="canary-hostile-kms-value", env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def assert_clean(text: str, server: Hostile) -> None:
    assert TOKEN not in text and "CanaryVaultToken" not in text
    for plaintext in server.plaintexts():
        assert plaintext not in text and plaintext[:16] not in text
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "FORGED" not in text


def test_vault_an_error_text_echoing_the_request_reaches_stderr_as_plain_words(servers: list[Hostile],
                                                                               tmp_path: Path) -> None:
    def echo(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        items = json.loads(body)["batch_input"]
        send(handler, 400, {"errors": [f"invalid request {handler.headers['X-Vault-Token']}",
                                       items[0].get("plaintext", ""), FORGED]})
    servers.append(server := Hostile(vault_reply(echo)))
    done = sprongus_set(server, tmp_path)
    assert done.returncode == 7, done.stderr
    assert server.plaintexts(), "the data key was sent: the echo had something to repeat"
    assert_clean(done.stderr, server)
    assert done.stderr.count("\n") == 1 and "encrypt was rejected (invalid request ..." in done.stderr


def test_vault_a_key_type_with_escape_codes_is_not_repeated(servers: list[Hostile], tmp_path: Path) -> None:
    servers.append(server := Hostile(vault_reply(lambda h, b: send(h, 500, {}), {"type": FORGED,
                                                                                 "latest_version": 1})))
    done = sprongus_set(server, tmp_path)
    assert done.returncode == 7, done.stderr
    assert "is of type an unknown kind" in done.stderr
    assert_clean(done.stderr, server)


def test_vault_a_redirect_is_not_followed_with_the_token_and_the_data_key(servers: list[Hostile],
                                                                          tmp_path: Path) -> None:
    servers.append(elsewhere := Hostile(lambda h, b: send(h, 200, {"data": {}})))
    elsewhere_url = elsewhere.url.replace("127.0.0.1", "localhost")  # another origin

    def moved(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        send(handler, 307, b"", location=elsewhere_url + handler.path)
    servers.append(server := Hostile(vault_reply(moved)))
    done = sprongus_set(server, tmp_path)
    assert done.returncode == 7, done.stderr
    assert "answered with a redirect (HTTP 307), not followed" in done.stderr
    assert elsewhere.seen == []
    assert_clean(done.stderr, server)


@pytest.mark.parametrize("answer", [(503, [1]), (503, {"errors": [1]}), (200, []), (400, [[[[]]]]),
                                    (200, {"data": {"batch_results": [{"ciphertext": "vault:v" + "9" * 5000 + ":x"}]}}),
                                    (200, {"data": {"batch_results": [{"ciphertext": "vault:v1:\u00e9"}]}})])
def test_vault_an_answer_of_the_wrong_shape_is_an_outage_not_an_unexpected_error(
        servers: list[Hostile], answer: tuple[int, object]) -> None:
    import hvac  # type: ignore[import-untyped]

    from sprongus.adapters.kms_vault import VaultTransitMasterKeyProvider

    status, body = answer
    servers.append(server := Hostile(vault_reply(lambda h, b: send(h, status, body))))
    keys = VaultTransitMasterKeyProvider(hvac.Client(url=server.url, token=TOKEN, timeout=3), "transit", "k")
    with pytest.raises(KeyProviderError) as info:
        keys.wrap(b"k" * 32, AAD)
    assert exit_code_for(info.value) in (7, 8) and TOKEN not in str(info.value)
    if status != 200 or body == []:
        assert isinstance(info.value, KeyProviderUnavailable), repr(info.value)


# -- AWS KMS --------------------------------------------------------------------------------------------------------

def aws_client(server: Hostile, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3
    from botocore.config import Config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "CanaryAwsSecret7f3eEXAMPLEKEY")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "CanarySessionToken7f3e")
    return boto3.client("kms", region_name="us-east-1", endpoint_url=server.url,
                        config=Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1}))


def test_aws_an_error_code_echoing_the_session_token_is_not_repeated(servers: list[Hostile],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from sprongus.adapters.kms_aws import AwsKmsMasterKeyProvider

    def echo(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        sent = json.loads(body)
        send(handler, 400, {"__type": f"{handler.headers['X-Amz-Security-Token']} {sent['Plaintext']} {FORGED}",
                            "message": "no"}, "application/x-amz-json-1.1")
    servers.append(server := Hostile(echo))
    with pytest.raises(KeyProviderError) as info:
        AwsKmsMasterKeyProvider(aws_client(server, monkeypatch), ARN).wrap(b"D" * 32, AAD)
    text = str(info.value)
    assert "CanarySessionToken7f3e" not in text and base64.b64encode(b"D" * 32).decode()[:16] not in text
    assert "\x1b" not in text and "an unknown error" in text


@pytest.mark.parametrize("arn", [f"arn:aws:kms:us-east-1:111122223333:key/{FORGED}", "not-an-arn", None])
def test_aws_an_alias_resolving_to_no_key_arn_is_refused(servers: list[Hostile], monkeypatch: pytest.MonkeyPatch,
                                                         arn: str | None) -> None:
    from sprongus.adapters.kms_aws import AwsKmsMasterKeyProvider

    metadata = {"KeyId": "1234abcd"} if arn is None else {"KeyId": "1234abcd", "Arn": arn}
    servers.append(server := Hostile(lambda h, b: send(h, 200, {"KeyMetadata": metadata},
                                                       "application/x-amz-json-1.1")))
    with pytest.raises(KeyProviderUnavailable, match="named no key ARN") as info:
        AwsKmsMasterKeyProvider.for_key(aws_client(server, monkeypatch), "alias/sprongus-master")
    assert "\x1b" not in str(info.value)


@pytest.mark.parametrize("body", [b"[1]", b'{"__type": 5}', b'"s"'])
def test_aws_an_answer_of_the_wrong_shape_is_an_outage(servers: list[Hostile], monkeypatch: pytest.MonkeyPatch,
                                                       body: bytes) -> None:
    from sprongus.adapters.kms_aws import AwsKmsMasterKeyProvider

    servers.append(server := Hostile(lambda h, b: send(h, 503, body, "application/x-amz-json-1.1")))
    with pytest.raises(KeyProviderUnavailable):
        AwsKmsMasterKeyProvider(aws_client(server, monkeypatch), ARN).wrap(b"D" * 32, AAD)


# -- Azure Key Vault ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kid", [f"https://sprongus-test.vault.azure.net/keys/other/{'a' * 32}",
                                 f"https://sprongus-test.vault.azure.net/keys/master/{FORGED}", "x"])
def test_azure_a_wrap_naming_a_kid_of_another_key_is_not_stored(tmp_path: Path, kid: str) -> None:
    server = FakeKeyVaultServer(tmp_path)
    try:
        server.vault.add_version("master", kty="oct-HSM")
        keys = azure_provider(server, client_kwargs={"retry_total": 0})
        keys.wrap(b"k" * 32, AAD)  # the key is looked up; its version is real
        server.vault.raw_answer = page(200, json.dumps({"kid": kid, "value": "AAAA"}).encode(), "application/json")
        with pytest.raises(KeyProviderUnavailable, match="not a version of it") as info:
            keys.wrap(b"k" * 32, AAD)
        assert "\x1b" not in str(info.value) and "other" not in str(info.value)
    finally:
        server.close()


def test_azure_error_codes_are_repeated_only_when_spelt_as_codes(tmp_path: Path) -> None:
    server = FakeKeyVaultServer(tmp_path)
    try:
        server.vault.add_version("master", kty="oct-HSM")
        keys = azure_provider(server, client_kwargs={"retry_total": 0})
        keys.wrap(b"k" * 32, AAD)
        echo = {"error": {"code": f"Bearer eyJCanaryAzureBearer7f3e {FORGED}", "message": "no",
                          "innererror": {"code": "eyJCanaryAzureBearer7f3e"}}}
        server.vault.raw_answer = page(403, json.dumps(echo).encode(), "application/json")
        with pytest.raises(KeyProviderError) as info:
            keys.wrap(b"k" * 32, AAD)
        assert "CanaryAzureBearer" not in str(info.value) and "\x1b" not in str(info.value)
        assert "access denied (403)" in str(info.value)
    finally:
        server.close()


# -- Cloud KMS ------------------------------------------------------------------------------------------------------

class RenamingCloudKms(FakeCloudKms):
    """Answers every Encrypt in the name of another key (with escape codes in it)."""

    def _damaged(self, response: Any) -> Any:
        if "name" in type(response).meta.fields:
            response.name = f"projects/evil/locations/global/keyRings/r/cryptoKeys/{FORGED}/cryptoKeyVersions/1"
        return super()._damaged(response)


def test_gcp_an_encrypt_in_the_name_of_another_key_is_refused_without_repeating_it() -> None:
    from sprongus.adapters.kms_gcp import GcpKmsMasterKeyProvider
    from tests.integration.kms.conftest import GCP_KEY

    kms = RenamingCloudKms()
    kms.start()
    try:
        kms.create_key(GCP_KEY)
        keys = GcpKmsMasterKeyProvider(kms.client(), GCP_KEY, 5.0, retry=None)
        with pytest.raises(KeyProviderError, match="encrypted with another key") as info:
            keys.wrap(b"k" * 32, AAD)
        assert "evil" not in str(info.value) and "\x1b" not in str(info.value)
    finally:
        kms.stop()


def test_a_vault_namespace_http_cannot_carry_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not "the answer was not Vault's; retry later" (exit 8): the request was never sent."""
    from sprongus.domain.errors import ConfigError
    from sprongus.entrypoints.kms import KmsOptions, kms_provider

    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    monkeypatch.setenv("VAULT_NAMESPACE", "\u56e2\u961f")
    with pytest.raises(ConfigError, match=r"^VAULT_NAMESPACE: ") as info:
        kms_provider("vault://127.0.0.1/transit/keys/k?endpoint=http://127.0.0.1:9", KmsOptions())
    assert "\u56e2" not in str(info.value)


# -- answers that never end, or never stop ---------------------------------------------------------------------------

def drip(handler: BaseHTTPRequestHandler, body: bytes = b"") -> None:
    """A 200 promising 400 bytes and sending one every 0.2 s: each socket wait is short, the answer never ends."""
    import time

    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "400")
    handler.end_headers()
    try:
        for _ in range(400):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.2)
    except OSError:  # the client hung up: what it should do
        pass


FLOODED: list[int] = []  # bytes each flood got out before the client hung up


def flood(handler: BaseHTTPRequestHandler, body: bytes = b"") -> None:
    """A 200 of 64 MiB, sent as fast as the client reads it."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(64 * 2**20))
    handler.end_headers()
    sent = 0
    try:
        for _ in range(1024):
            handler.wfile.write(b" " * 65536)
            sent += 65536
    except OSError:
        pass
    FLOODED.append(sent)


@pytest.mark.parametrize("answer", [drip, flood])
def test_vault_an_answer_that_never_ends_or_never_stops_is_an_outage_within_the_timeout(
        servers: list[Hostile], monkeypatch: pytest.MonkeyPatch, answer: Reply) -> None:
    import time

    from sprongus.entrypoints.kms import KmsOptions, kms_provider

    FLOODED.clear()
    servers.append(server := Hostile(vault_reply(answer)))
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    keys = kms_provider(f"vault://127.0.0.1/transit/keys/k?endpoint={server.url}", KmsOptions(timeout=1.0))
    started = time.monotonic()
    with pytest.raises(KeyProviderUnavailable):
        keys.wrap(b"k" * 32, AAD)
    assert time.monotonic() - started < 5  # one byte every 0.2 s kept each socket wait under the 1 s timeout
    if answer is flood:  # the handler's writes fail once the client has hung up
        deadline = time.monotonic() + 10
        while not FLOODED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert FLOODED and FLOODED[-1] < 32 * 2**20  # read up to the limit (4 MiB), not all 64


@pytest.mark.parametrize("answer", ["drip", "flood", "stall", "cut"])
def test_azure_an_answer_that_never_ends_or_never_stops_is_an_outage_within_the_timeout(
        tmp_path: Path, answer: str) -> None:
    """Also a stalled or cut-off body (the bounded read's errors are requests' own, which azure-core knows)."""
    import time

    from azure.keyvault.keys import KeyClient
    from azure.keyvault.keys.crypto import CryptographyClient

    import sprongus.entrypoints.kms_clients.azure as azure_builder
    from sprongus.adapters.kms_azure import AzureKeyVaultMasterKeyProvider
    from sprongus.entrypoints.kms import KmsOptions
    from tests.integration.kms.azure_fake import FakeCredential
    from tests.integration.kms.test_azure import VAULT_HOST

    server = FakeKeyVaultServer(tmp_path)
    try:
        server.vault.add_version("master", kty="oct-HSM")
        options = KmsOptions(ca_file=str(server.cert_path), timeout=1.0)
        kwargs: dict[str, Any] = {**azure_builder.client_options(server.url, VAULT_HOST, options), "retry_total": 0}
        kwargs["transport"] = azure_builder.pooled_transport(options, **kwargs)
        credential = FakeCredential()
        keys = AzureKeyVaultMasterKeyProvider(KeyClient(server.url, credential, **kwargs),
                                              lambda key: CryptographyClient(key, credential, **kwargs), "master",
                                              None)
        keys.wrap(b"k" * 32, AAD)  # the key is looked up
        FLOODED.clear()
        server.vault.raw_answer = {"drip": drip, "flood": flood, "stall": stall, "cut": cut}[answer]
        started = time.monotonic()
        with pytest.raises(KeyProviderUnavailable):
            keys.wrap(b"k" * 32, AAD)
        assert time.monotonic() - started < 5
        if answer == "flood":
            deadline = time.monotonic() + 10
            while not FLOODED and time.monotonic() < deadline:
                time.sleep(0.05)
            assert FLOODED and FLOODED[-1] < 32 * 2**20
    finally:
        server.close()


def begin_body(handler: BaseHTTPRequestHandler) -> None:
    """A 200 promising 400 bytes, and the first 7 of them."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "400")
    handler.end_headers()
    handler.wfile.write(b'{"data"')
    handler.wfile.flush()


def stall(handler: BaseHTTPRequestHandler, body: bytes = b"") -> None:
    """Headers, a few bytes of the body, then nothing (longer than the 1 s timeout)."""
    import time

    begin_body(handler)
    time.sleep(3)


def cut(handler: BaseHTTPRequestHandler, body: bytes = b"") -> None:
    """A body cut off: 400 bytes promised, 7 sent, the connection closed."""
    import socket

    begin_body(handler)
    handler.close_connection = True
    handler.connection.shutdown(socket.SHUT_RDWR)


def bad_gzip(handler: BaseHTTPRequestHandler, body: bytes = b"") -> None:
    """A body that says it is gzip and is not."""
    send_gzip = b"this is not gzip at all"
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Encoding", "gzip")
    handler.send_header("Content-Length", str(len(send_gzip)))
    handler.end_headers()
    handler.wfile.write(send_gzip)


@pytest.mark.parametrize("answer", [stall, cut, bad_gzip])
def test_vault_a_stalled_cut_or_undecodable_body_is_still_an_outage(servers: list[Hostile],
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   answer: Reply) -> None:
    """The bounded read turns urllib3's errors into requests' own, which the Vault error table knows."""
    from sprongus.entrypoints.kms import KmsOptions, kms_provider

    servers.append(server := Hostile(vault_reply(answer)))
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    keys = kms_provider(f"vault://127.0.0.1/transit/keys/k?endpoint={server.url}", KmsOptions(timeout=1.0))
    with pytest.raises(KeyProviderUnavailable) as info:
        keys.wrap(b"k" * 32, AAD)
    assert exit_code_for(info.value) == 8


def test_a_slow_server_whose_body_comes_at_once_is_not_an_outage(servers: list[Hostile],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """0.8 s to the headers and 0.4 s more to the body, with a 1 s timeout: each wait is within it, and the body
    took 0.4 s, so the answer is read (the bound is on the body, from its headers)."""
    import time

    from sprongus.entrypoints.kms import KmsOptions, kms_provider

    def slow(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        items = json.loads(body)["batch_input"]
        data = json.dumps({"data": {"batch_results": [{"ciphertext": "vault:v1:AAAA"} for _ in items]}}).encode()
        time.sleep(0.8)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.flush()
        time.sleep(0.4)
        handler.wfile.write(data)
    servers.append(server := Hostile(vault_reply(slow)))
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    keys = kms_provider(f"vault://127.0.0.1/transit/keys/k?endpoint={server.url}", KmsOptions(timeout=1.0))
    assert keys.wrap(b"k" * 32, AAD).master_key_id == "vault:transit/k:v1"
