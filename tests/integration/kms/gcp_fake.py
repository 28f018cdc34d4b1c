"""An in-process Cloud KMS that speaks the real gRPC protocol (Encrypt, Decrypt), for the real SDK client.

Each key version is a real AES-256-GCM key; a ciphertext starts with the number of the version that made it, as
Cloud KMS ciphertexts name their version, so Decrypt takes the CryptoKey and finds the version itself. Like Cloud
KMS it checks the request CRC32Cs it is sent and fills every integrity field of its responses. Knobs for tests:
`fail_with` (every call fails with a status; with `fail_times`, only that many calls, then it clears), `corrupt`
(damage one response field), `delay` (answer late), `hold` (a predicate of the method's name and the request: the
next call it matches waits, in flight, until `released` is set; `holding` is set once it waits).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import google_crc32c
import grpc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.cloud.kms import (
    DecryptRequest,
    DecryptResponse,
    EncryptRequest,
    EncryptResponse,
    KeyManagementServiceClient,
)
from google.cloud.kms_v1.services.key_management_service.transports import KeyManagementServiceGrpcTransport

SERVICE = "google.cloud.kms.v1.KeyManagementService"
_HEADER = struct.Struct(">I")
_NONCE = 12
_TAG = 16

# Response fields `corrupt` can damage, as a transport or server fault would.
CORRUPTIONS = ("ciphertext_crc32c", "verified_plaintext_crc32c", "verified_additional_authenticated_data_crc32c",
               "plaintext_crc32c", "ciphertext", "plaintext")


def crc(data: bytes) -> int:
    return int(google_crc32c.value(data))


@dataclass
class FakeKey:
    versions: dict[int, AESGCM] = field(default_factory=dict)
    enabled: dict[int, bool] = field(default_factory=dict)
    primary: int = 0


HOLD_LIMIT = 30.0  # seconds a held call waits at most for `released`: a test that forgets it still ends


class FakeCloudKms:
    def __init__(self) -> None:
        self.keys: dict[str, FakeKey] = {}
        self.fail_with: grpc.StatusCode | None = None
        self.fail_times: int | None = None  # None: fail_with fails every call until it is reset
        self.corrupt: str | None = None
        self.delay = 0.0
        self.hold: Callable[[str, Any], bool] | None = None
        self.holding = threading.Event()
        self.released = threading.Event()
        self._hold_lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.port = 0
        self._server: grpc.Server | None = None
        self._channels: list[grpc.Channel] = []

    # -- administration, as an operator would do it in the console --

    def create_key(self, name: str) -> str:
        self.keys[name] = FakeKey()
        self.add_version(name)
        return name

    def add_version(self, name: str) -> str:
        """A new version that becomes primary at once (Cloud KMS rotation)."""
        key = self.keys[name]
        number = max(key.versions, default=0) + 1
        key.versions[number], key.enabled[number], key.primary = AESGCM(os.urandom(32)), True, number
        return f"{name}/cryptoKeyVersions/{number}"

    def disable(self, version_name: str) -> None:
        name, _, number = version_name.partition("/cryptoKeyVersions/")
        self.keys[name].enabled[int(number)] = False

    # -- the server --

    def start(self) -> int:
        handlers = {
            "Encrypt": grpc.unary_unary_rpc_method_handler(
                self._encrypt, request_deserializer=EncryptRequest.deserialize,
                response_serializer=EncryptResponse.serialize),
            "Decrypt": grpc.unary_unary_rpc_method_handler(
                self._decrypt, request_deserializer=DecryptRequest.deserialize,
                response_serializer=DecryptResponse.serialize),
        }
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self.port

    def client(self) -> KeyManagementServiceClient:
        """The real SDK client over an insecure channel to this server."""
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self._channels.append(channel)
        return KeyManagementServiceClient(transport=KeyManagementServiceGrpcTransport(channel=channel))

    def stop(self) -> None:
        for channel in self._channels:
            channel.close()
        if self._server is not None:
            self._server.stop(grace=None).wait()

    def _encrypt(self, request: EncryptRequest, context: grpc.ServicerContext) -> EncryptResponse:
        self._enter("Encrypt", request, context)
        name, _, number = request.name.partition("/cryptoKeyVersions/")
        key = self._key(name, context)
        version = int(number) if number.isdigit() else key.primary
        if version not in key.versions:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.name} not found")
        self._check_crc(request, "plaintext", context)
        self._check_crc(request, "additional_authenticated_data", context)
        if not key.enabled[version]:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{name}/cryptoKeyVersions/{version} is not enabled")
        nonce = os.urandom(_NONCE)
        sealed = key.versions[version].encrypt(nonce, request.plaintext, _aad(name, request))
        ciphertext = _HEADER.pack(version) + nonce + sealed
        response = EncryptResponse(
            name=f"{name}/cryptoKeyVersions/{version}", ciphertext=ciphertext, ciphertext_crc32c=crc(ciphertext),
            verified_plaintext_crc32c="plaintext_crc32c" in request,
            verified_additional_authenticated_data_crc32c="additional_authenticated_data_crc32c" in request)
        return self._damaged(response)

    def _decrypt(self, request: DecryptRequest, context: grpc.ServicerContext) -> DecryptResponse:
        self._enter("Decrypt", request, context)
        key = self._key(request.name, context)
        self._check_crc(request, "ciphertext", context)
        self._check_crc(request, "additional_authenticated_data", context)
        blob = request.ciphertext
        version = _HEADER.unpack(blob[:_HEADER.size])[0] if len(blob) >= _HEADER.size + _NONCE + _TAG else 0
        if version not in key.versions:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Decryption failed: the ciphertext is invalid.")
        if not key.enabled[version]:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{request.name}/cryptoKeyVersions/{version} is not enabled")
        body = blob[_HEADER.size:]
        try:
            plaintext = key.versions[version].decrypt(body[:_NONCE], body[_NONCE:], _aad(request.name, request))
        except InvalidTag:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Decryption failed: the ciphertext is invalid.")
        response = DecryptResponse(plaintext=plaintext, plaintext_crc32c=crc(plaintext),
                                   used_primary=version == key.primary)
        return self._damaged(response)

    def _enter(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        self.calls[method] += 1
        with self._hold_lock:
            held = self.hold is not None and self.hold(method, request)
            if held:
                self.hold = None
        if held:
            self.holding.set()
            self.released.wait(HOLD_LIMIT)
        if self.delay:
            time.sleep(self.delay)
        status = self.fail_with
        if status is not None:
            if self.fail_times is not None:
                self.fail_times -= 1
                if self.fail_times <= 0:
                    self.fail_with = self.fail_times = None
            context.abort(status, f"injected {status.name}")

    def _key(self, name: str, context: grpc.ServicerContext) -> FakeKey:
        if name not in self.keys:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{name} not found")
        return self.keys[name]

    @staticmethod
    def _check_crc(request: Any, field_name: str, context: grpc.ServicerContext) -> None:
        checksum = f"{field_name}_crc32c"
        if checksum in request and getattr(request, checksum) != crc(getattr(request, field_name)):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{checksum} did not match the data received")

    def _damaged(self, response: Any) -> Any:
        if self.corrupt is None or self.corrupt not in type(response).meta.fields:
            return response
        value = getattr(response, self.corrupt)
        if isinstance(value, bool):
            setattr(response, self.corrupt, False)
        elif isinstance(value, int):
            setattr(response, self.corrupt, value ^ 1)
        else:  # the data itself, with its checksum left as it was
            setattr(response, self.corrupt, bytes([value[0] ^ 1]) + value[1:])
        return response


def _aad(key_name: str, request: Any) -> bytes:
    # The caller's AAD plus the key's name, so a ciphertext moved to another key fails too.
    return key_name.encode() + b"\0" + request.additional_authenticated_data
