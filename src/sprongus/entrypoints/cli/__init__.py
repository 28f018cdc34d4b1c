"""The `sprongus` command line. Imports stay light: no flask, no cloud SDK at start-up."""

from __future__ import annotations

from sprongus.entrypoints.cli.root import cli, main

__all__ = ["cli", "main"]
