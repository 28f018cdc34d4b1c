"""An answer the network cut off, a gateway's error page or a proxy's page in place of the KMS's is an outage (exit 8,
HTTP 503 `key-provider-unavailable`), never tampering (exit 7, HTTP 500 `integrity`) and never a plain provider
error (exit 7, HTTP 500 `key-provider`).

Before, AWS read a cut-off Decrypt answer (botocore hands back `{}`) as "KMS answered with another key": integrity;
a 502/503/504 without a KMS error code, a Vault 504 or 408 page, a Vault body cut off mid-answer, an Azure answer
cut off (no status) and gRPC UNKNOWN or CANCELLED were all "provider errors", and a script alarming on exit 7 was
paged for a network fault. The real SDK clients (boto3, hvac, azure-keyvault-keys, google-cloud-kms) talk to
local servers that answer what a broken network or proxy would.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest

from sprongus.adapters.problem_types import problem_type_of
from sprongus.domain.errors import IntegrityError, KeyProviderError, KeyProviderUnavailable
from sprongus.entrypoints.cli.errors import exit_code_for
from tests.integration.kms.azure_fake import FakeKeyVaultServer
from tests.integration.kms.gcp_fake import FakeCloudKms
from tests.integration.kms.test_azure import provider as azure_provider

AAD = b"scope=project:p1;key=db.password;v=1"
ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VAULT_TOKEN = "hvs.CanaryVaultToken7f3e"
Answer = Callable[[BaseHTTPRequestHandler], None]


def page(status: int, body: bytes = b"<html><body><h1>Gateway Time-out</h1></body></html>",
         content_type: str = "text/html") -> Answer:
    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return send


def cut_off(content_type: str = "application/json") -> Answer:
    """A 200 that promises 500 bytes and stops after a few: the connection drops mid-answer."""
    def send(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", "500")
        handler.end_headers()
        handler.wfile.write(b'{"KeyId": "arn:aws:km')
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)
    return send


class BrokenEndpoint:
    """A plain-HTTP server whose every answer is `answer`; `answer_for` answers chosen paths normally."""

    def __init__(self) -> None:
        self.answer: Answer = page(504)
        self.answer_for: dict[str, Answer] = {}
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                endpoint.answer_for.get(self.path, endpoint.answer)(self)

            do_GET = do_POST = do_PUT = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[BrokenEndpoint]:
    broken = BrokenEndpoint()
    yield broken
    broken.close()


def assert_outage(error: BaseException, *never: str) -> None:
    assert isinstance(error, KeyProviderUnavailable), f"{type(error).__name__}: {error}"
    assert exit_code_for(error) == 8 and problem_type_of(error).status == 503
    for text in never:
        assert text not in str(error)


# -- AWS KMS (boto3) ----------------------------------------------------------------------------------------------

def aws(endpoint: BrokenEndpoint, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3
    from botocore.config import Config

    from sprongus.adapters.kms_aws import AwsKmsMasterKeyProvider

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "CanaryAwsSecret7f3eEXAMPLEKEY")
    client = boto3.client("kms", region_name="us-east-1", endpoint_url=endpoint.url,
                          config=Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1}))
    return AwsKmsMasterKeyProvider(client, ARN)


AWS_FAULTS = {"cut off": cut_off("application/x-amz-json-1.1"), "proxy page with 200": page(200),
              "empty 200": page(200, b"", "application/x-amz-json-1.1"), "502 page": page(502), "504 page": page(504),
              "503 without a code": page(503, b""), "429 without a code": page(429, b""),
              "RequestTimeoutException": page(400, b'{"__type": "RequestTimeoutException", "message": "slow"}',
                                              "application/x-amz-json-1.1")}


@pytest.mark.parametrize("fault", list(AWS_FAULTS))
@pytest.mark.parametrize("operation", ["unwrap", "wrap"])
def test_aws_a_broken_answer_is_an_outage(endpoint: BrokenEndpoint, monkeypatch: pytest.MonkeyPatch, fault: str,
                                          operation: str) -> None:
    keys = aws(endpoint, monkeypatch)
    endpoint.answer = AWS_FAULTS[fault]
    with pytest.raises(KeyProviderError) as info:
        keys.unwrap(b"\x01" * 40, f"aws:{ARN}", AAD) if operation == "unwrap" else keys.wrap(b"k" * 32, AAD)
    assert_outage(info.value, "CanaryAwsSecret7f3e")


def test_aws_a_decrypt_naming_another_key_is_still_integrity(endpoint: BrokenEndpoint,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    keys = aws(endpoint, monkeypatch)
    other = ARN.replace("1234abcd", "99999999")
    endpoint.answer = page(200, f'{{"KeyId": "{other}", "Plaintext": "a2V5"}}'.encode(), "application/x-amz-json-1.1")
    with pytest.raises(IntegrityError):
        keys.unwrap(b"\x01" * 40, f"aws:{ARN}", AAD)


def test_aws_an_alias_resolved_through_a_cut_off_answer_is_an_outage(endpoint: BrokenEndpoint,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from sprongus.adapters.kms_aws import AwsKmsMasterKeyProvider

    client = aws(endpoint, monkeypatch)._client
    endpoint.answer = cut_off("application/x-amz-json-1.1")
    with pytest.raises(KeyProviderError) as info:  # was a bare KeyError: "unexpected", exit 1
        AwsKmsMasterKeyProvider.for_key(client, "alias/sprongus-master")
    assert_outage(info.value)


# -- Vault / OpenBao transit (hvac) -------------------------------------------------------------------------------

def vault(endpoint: BrokenEndpoint) -> Any:
    import hvac  # type: ignore[import-untyped]

    from sprongus.adapters.kms_vault import VaultTransitMasterKeyProvider

    endpoint.answer_for["/v1/transit/keys/k"] = page(
        200, b'{"data": {"derived": true, "type": "aes256-gcm96", "latest_version": 1}}', "application/json")
    return VaultTransitMasterKeyProvider(hvac.Client(url=endpoint.url, token=VAULT_TOKEN, timeout=3), "transit", "k")


VAULT_FAULTS = {"504 page": page(504), "408 page": page(408), "cut off": cut_off(), "proxy page with 200": page(200)}


@pytest.mark.parametrize("fault", list(VAULT_FAULTS))
@pytest.mark.parametrize("operation", ["unwrap", "wrap"])
def test_vault_a_broken_answer_is_an_outage(endpoint: BrokenEndpoint, fault: str, operation: str) -> None:
    keys = vault(endpoint)
    endpoint.answer = VAULT_FAULTS[fault]
    with pytest.raises(KeyProviderError) as info:
        keys.unwrap(b"vault:v1:AAAA", "vault:transit/k:v1", AAD) if operation == "unwrap" else \
            keys.wrap(b"k" * 32, AAD)
    assert_outage(info.value, VAULT_TOKEN)


def test_vault_a_proxys_400_page_is_not_read_as_a_refused_ciphertext(endpoint: BrokenEndpoint) -> None:
    keys = vault(endpoint)
    endpoint.answer = page(400, b"<html>400 Bad Request</html>")
    with pytest.raises(KeyProviderError, match="not Vault") as info:
        keys.unwrap(b"vault:v1:AAAA", "vault:transit/k:v1", AAD)
    assert not isinstance(info.value, IntegrityError) and VAULT_TOKEN not in str(info.value)
    endpoint.answer = page(400, b'{"errors": ["cipher: message authentication failed"]}', "application/json")
    with pytest.raises(IntegrityError):  # Vault's own refusal of a ciphertext still is
        keys.unwrap(b"vault:v1:AAAA", "vault:transit/k:v1", AAD)


# -- Azure Key Vault (azure-keyvault-keys) ------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["cut off", "408 page", "proxy page with 200"])
def test_azure_a_broken_answer_is_an_outage(tmp_path: Path, fault: str) -> None:
    server = FakeKeyVaultServer(tmp_path)
    try:
        server.vault.add_version("master")
        keys = azure_provider(server, client_kwargs={"retry_total": 0})
        wrapped = keys.wrap(b"k" * 32, AAD)
        server.vault.raw_answer = {"cut off": cut_off(), "408 page": page(408),
                                   "proxy page with 200": page(200)}[fault]
        with pytest.raises(KeyProviderError) as info:
            keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
        assert_outage(info.value)
    finally:
        server.close()


def test_azure_a_proxys_400_page_is_not_read_as_a_refused_ciphertext(tmp_path: Path) -> None:
    server = FakeKeyVaultServer(tmp_path)
    try:
        server.vault.add_version("master")
        keys = azure_provider(server, client_kwargs={"retry_total": 0})
        wrapped = keys.wrap(b"k" * 32, AAD)
        server.vault.raw_answer = page(400, b"<html>400 Bad Request</html>")
        with pytest.raises(KeyProviderError) as info:
            keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
        assert not isinstance(info.value, IntegrityError)
        server.vault.raw_answer = None  # Key Vault's own refusal of a ciphertext still is integrity
        with pytest.raises(IntegrityError):
            keys.unwrap(b"\x00" * len(wrapped.blob), wrapped.master_key_id, AAD)
    finally:
        server.close()


# -- Cloud KMS (google-cloud-kms over gRPC) -----------------------------------------------------------------------

@pytest.mark.parametrize("status", [grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED])
def test_gcp_a_call_cut_off_on_the_way_is_an_outage(status: grpc.StatusCode) -> None:
    from google.api_core import exceptions, retry

    from sprongus.adapters.kms_gcp import GcpKmsMasterKeyProvider

    fake = FakeCloudKms()
    fake.start()
    try:
        name = fake.create_key("projects/p/locations/global/keyRings/r/cryptoKeys/k")
        no_retry = retry.Retry(predicate=retry.if_exception_type(exceptions.ServiceUnavailable), timeout=1)
        keys = GcpKmsMasterKeyProvider(fake.client(), name, 2.0, no_retry)
        wrapped = keys.wrap(b"k" * 32, AAD)
        fake.fail_with = status
        with pytest.raises(KeyProviderError) as info:
            keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD)
        assert_outage(info.value)
        fake.fail_with = None
        assert keys.unwrap(wrapped.blob, wrapped.master_key_id, AAD) == b"k" * 32
    finally:
        fake.stop()
