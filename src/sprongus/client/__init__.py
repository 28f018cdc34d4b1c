"""The Python client of the sprongus REST API, for applications.

    from sprongus.client import Client
    client = Client.from_env()  # SPRONGUS_API_URL, and SPRONGUS_TOKEN or SPRONGUS_OIDC_TOKEN_FILE
    token = client.reveal("project:shop", "notion.api_token")

Standard library only at run time: importing it loads no web framework, database driver, CLI toolkit, JWT
library or cloud SDK (tests/unit/test_client_imports.py). The errors are the product's own, re-exported here.
"""

from sprongus.client.client import Client
from sprongus.client.records import SecretInfo
from sprongus.domain.errors import (
    ConfigError,
    Conflict,
    Gone,
    IntegrityError,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    RemoteUnavailable,
    SprongusError,
    StepUpRequired,
    Unauthenticated,
    Unavailable,
    ValidationError,
)
from sprongus.domain.history import History, VersionInfo
from sprongus.domain.scope import Scope
from sprongus.domain.values import SecretValue

__all__ = [
    "Client",
    "ConfigError",
    "Conflict",
    "Gone",
    "History",
    "IntegrityError",
    "NotFound",
    "PermissionDenied",
    "PreconditionFailed",
    "RateLimited",
    "RemoteUnavailable",
    "Scope",
    "SecretInfo",
    "SecretValue",
    "SprongusError",
    "StepUpRequired",
    "Unauthenticated",
    "Unavailable",
    "ValidationError",
    "VersionInfo",
]
