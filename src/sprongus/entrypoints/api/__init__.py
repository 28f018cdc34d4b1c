"""The REST API (`/v1`). Imported only by `serve`, gunicorn and the API tests: never by local CLI commands."""

from sprongus.entrypoints.api.app import create_app

__all__ = ["create_app"]
