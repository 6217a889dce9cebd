#!/usr/bin/env bash
# Set up (scripts/setup.sh --local) and run the main job on the embedded defaults: `debrief demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --local
exec .venv/bin/debrief demo "$@"
