"""Fixtures shared by the KMS integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.kms.gcp_fake import FakeCloudKms

GCP_KEY = "projects/sprongus-test/locations/global/keyRings/ring/cryptoKeys/master"


@pytest.fixture
def gcp_kms() -> Iterator[FakeCloudKms]:
    """The Cloud KMS fake, serving, with GCP_KEY created."""
    kms = FakeCloudKms()
    kms.start()
    kms.create_key(GCP_KEY)
    yield kms
    kms.stop()
