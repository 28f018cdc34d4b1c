#!/usr/bin/env bash
# Installs sprongus with its test dependencies into .venv and runs the whole suite plus the linters.
# Usage: bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check src tests benchmarks
.venv/bin/mypy src
.venv/bin/pytest "$@"
