#!/usr/bin/env bash
# Set up (scripts/setup.sh --local) and run the main job on the embedded defaults: `debrief demo`.
# Needs Python >= 3.11 and a C/C++ compiler (the embedded model's llama.cpp is built from source the first time).
# The demo writes its own store, ./data/demo, unless DEBRIEF_DATA_DIR names another: your default store is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "[demo] setting up .venv (the first run builds llama.cpp: 7-13 minutes on 2 cores)" >&2
bash scripts/setup.sh --local
export DEBRIEF_DATA_DIR="${DEBRIEF_DATA_DIR:-$PWD/data/demo}"
echo "[demo] running debrief demo; store: $DEBRIEF_DATA_DIR" >&2
exec .venv/bin/debrief demo "$@"
