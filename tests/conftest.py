from __future__ import annotations

import pytest

from tests.harness import Harness, make_harness


@pytest.fixture
def harness() -> Harness:
    return make_harness()


from tests.pg import pg_db, pg_empty  # noqa: E402,F401  (fixtures)
