#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every check CI runs: format, lint, types, the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --local
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python scripts/check_imports.py
.venv/bin/pytest -q "$@"
