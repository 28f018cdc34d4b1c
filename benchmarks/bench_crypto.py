"""Crypto cost of one secret round trip: bare AEAD pair vs envelope seal+open vs the service set+get.

Run from the repository root:  .venv/bin/python benchmarks/bench_crypto.py [--quick]

Prints ops/s, µs/op and the ratio to the bare AEAD pair, with PASS/MISS beside the two targets of the issue.
These are measurements, not tests: the script always exits 0. Each row is the best of several repeats after a
warm-up, because the machine is shared and noisy; "best" estimates what the code costs, not what the neighbours do.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # `sprongus` from src/, `tests.harness` from the repo root

import cryptography  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from tests.harness import make_harness, owner  # noqa: E402

from sprongus.adapters.crypto_aesgcm import AesGcmDataCipher  # noqa: E402
from sprongus.adapters.keys_local import KeyVersions, LocalMasterKeyProvider, StaticHmacKeyring  # noqa: E402
from sprongus.domain.envelope import Envelope, aad_for  # noqa: E402
from sprongus.domain.scope import Scope  # noqa: E402
from sprongus.domain.values import SecretValue  # noqa: E402

VALUE_BYTES = 1024
SERVICE_KEYS = 256  # the service rows cycle over this many keys, so sets are updates of existing rows
TARGET_RATIO = 5.0  # service set+get within 5x of the two bare AEAD calls
TARGET_PAIRS_PER_S = 20_000
SAMPLE_S = 0.03  # seconds per sample


def calibrate(body: Callable[[int], None], sample_s: float) -> int:
    """How many ops make one sample of about sample_s seconds (this run doubles as the warm-up)."""
    n = 1
    while True:
        start = time.perf_counter()
        body(n)
        elapsed = time.perf_counter() - start
        if elapsed >= sample_s / 4 or n >= 1 << 22:
            return max(1, int(n * sample_s / max(elapsed, 1e-9)))
        n *= 4


def best_per_op(bodies: list[Callable[[int], None]], sample_s: float, repeats: int) -> list[float]:
    """Seconds per op for each body: the best of `repeats` samples, taken round-robin.

    Round-robin spreads a burst of load from a neighbour over all rows instead of one, and many short samples give
    the minimum a better chance to land in a quiet moment.
    """
    sizes = [calibrate(body, sample_s) for body in bodies]
    for body, n in zip(bodies, sizes, strict=True):
        body(n)  # warm-up at full size
    best = [float("inf")] * len(bodies)
    for _ in range(repeats):
        for i, (body, n) in enumerate(zip(bodies, sizes, strict=True)):
            start = time.perf_counter()
            body(n)
            best[i] = min(best[i], (time.perf_counter() - start) / n)
    return best


def bare_pair() -> Callable[[int], None]:
    """The two bare AEAD calls: one AESGCM object, one nonce (fine for a benchmark: nothing here is secret)."""
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce, data, aad = os.urandom(12), b"v" * VALUE_BYTES, b"a" * 64

    def body(n: int) -> None:
        for _ in range(n):
            aead.decrypt(nonce, aead.encrypt(nonce, data, aad), aad)

    return body


def adapter_pair() -> Callable[[int], None]:
    """The same pair through AesGcmDataCipher: a fresh DEK needs a new AESGCM(key) per call, plus a random nonce."""
    cipher = AesGcmDataCipher()
    key, data, aad = cipher.new_key(), b"v" * VALUE_BYTES, b"a" * 64

    def body(n: int) -> None:
        for _ in range(n):
            nonce, ct = cipher.encrypt(key, data, aad)
            cipher.decrypt(key, nonce, ct, aad)

    return body


def envelope_pair() -> Callable[[int], None]:
    versions = KeyVersions.fresh()
    cipher = AesGcmDataCipher()
    envelope = Envelope({cipher.alg: cipher}, cipher.alg, LocalMasterKeyProvider("memory", versions.master),
                        StaticHmacKeyring(versions.hmac, "memory"))
    value = SecretValue("v" * VALUE_BYTES)
    aad = aad_for(Scope.user("alice"), "bench.value", 1)

    def body(n: int) -> None:
        for _ in range(n):
            envelope.open(envelope.seal(value, aad), aad)

    return body


def service_pair(reveal: bool) -> Callable[[int], None]:
    harness = make_harness()
    service, caller, scope = harness, owner(), Scope.user("alice")
    value = SecretValue("v" * VALUE_BYTES)
    keys = [f"bench.key_{i:03d}" for i in range(SERVICE_KEYS)]
    for key in keys:
        service.secrets.set(caller, scope, key, value)

    def body(n: int) -> None:
        harness.audit.events.clear()  # keep the in-memory audit list from growing across repeats
        for i in range(n):
            key = keys[i % SERVICE_KEYS]
            service.secrets.set(caller, scope, key, value)
            service.secrets.get(caller, scope, key, reveal=reveal)

    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (noisier)")
    parser.add_argument("--repeats", type=int, default=15, help="samples per row (default 15)")
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats

    rows = [
        ("(a) bare AESGCM encrypt+decrypt, 1 KiB", bare_pair()),
        ("    same via AesGcmDataCipher (new AESGCM + nonce)", adapter_pair()),
        ("(b) Envelope seal+open (4 AEAD + 2 HMAC)", envelope_pair()),
        ("(c) service set + get(reveal=True)", service_pair(reveal=True)),
        ("    service set + masked get", service_pair(reveal=False)),
    ]
    timings = best_per_op([body for _, body in rows], SAMPLE_S, repeats)
    results = [(name, per_op) for (name, _), per_op in zip(rows, timings, strict=True)]
    bare = results[0][1]
    service = results[3][1]

    print(f"sprongus bench_crypto: value {VALUE_BYTES} B, best of {repeats} samples, "
          f"Python {platform.python_version()}, cryptography {cryptography.__version__}, {os.cpu_count()} CPUs")
    print()
    print(f"{'operation':<52} {'ops/s':>10} {'µs/op':>9} {'x bare':>7}")
    print("-" * 81)
    for name, per_op in results:
        print(f"{name:<52} {1 / per_op:>10,.0f} {per_op * 1e6:>9.2f} {per_op / bare:>7.1f}")
    print()
    ratio, pairs = service / bare, 1 / service
    print(f"target: service set+get within {TARGET_RATIO:g}x of the bare pair: {ratio:6.1f}x      "
          f"{'PASS' if ratio <= TARGET_RATIO else 'MISS'}")
    print(f"target: >= {TARGET_PAIRS_PER_S:,} service set+get pairs/s:    {pairs:>9,.0f}/s "
          f"{'PASS' if pairs >= TARGET_PAIRS_PER_S else 'MISS'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
