#!/usr/bin/env bash
# Every check CI runs: format, lint, types, the import graph, then both test tiers.
# Usage: scripts/test.sh [--fast] [pytest args...]
#   (default)  set up .venv with the [local] extra (scripts/setup.sh --local), run the checks, the fast tier
#              (pytest -m "not slow") and the slow tier (pytest -m slow: the real embedded model, 10k-34k-item stores)
#   --fast     for developers: no setup, the checks and the fast tier only
set -euo pipefail
cd "$(dirname "$0")/.."
fast=false
if [ "${1:-}" = "--fast" ]; then
  fast=true
  shift
fi
if [ "$fast" = false ]; then
  bash scripts/setup.sh --local
fi
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python scripts/check_imports.py
.venv/bin/pytest -q -m "not slow" "$@"
if [ "$fast" = false ]; then
  .venv/bin/pytest -q -m slow "$@"
fi
