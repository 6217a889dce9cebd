"""The loopback protocol between a running Debrief server and the ``debrief hook`` commands. Standard library only.

A hook runs as a fresh process on every Claude Code turn, so it must not load the embedder, Chroma or the MCP SDK.
Each server that offers the endpoint listens on 127.0.0.1 (a free port) and writes ``<data_dir>/hooks/
endpoint-<pid>-<port>.json`` (mode 0600: port, token, pid); a hook reads that file, sends one JSON line with the token,
and reads one JSON line back. Whatever goes wrong, the hook gives up quietly.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

MAX_MESSAGE_BYTES = 256 * 1024
"""Longest request or reply line."""
ENDPOINT_GLOB = "endpoint-*.json"


def endpoints_dir(data_dir: Path) -> Path:
    """Where servers on ``data_dir`` announce their loopback endpoints."""
    return data_dir / "hooks"


def write_endpoint(data_dir: Path, *, port: int, token: str, pid: int) -> Path:
    """Announce an endpoint in a file only this user can read; returns the file (remove it to withdraw)."""
    folder = endpoints_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"endpoint-{pid}-{port}.json"
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"port": port, "token": token, "pid": pid}, handle)
    os.replace(temporary, path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_endpoints(data_dir: Path) -> list[dict[str, Any]]:
    """Announced endpoints whose process still runs, newest first; unreadable or stale files are skipped."""
    folder = endpoints_dir(data_dir)
    try:
        paths = sorted(folder.glob(ENDPOINT_GLOB), key=lambda path: path.stat().st_mtime, reverse=True)
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            port, token, pid = int(entry["port"]), str(entry["token"]), int(entry["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(pid):
            found.append({"port": port, "token": token, "pid": pid})
    return found


def request(data_dir: Path, message: dict[str, Any], *, timeout: float) -> dict[str, Any] | None:
    """Send ``message`` to the newest live endpoint on ``data_dir``; its reply, or ``None`` on any failure."""
    for endpoint in live_endpoints(data_dir):
        payload = json.dumps({**message, "token": endpoint["token"]}).encode() + b"\n"
        try:
            with socket.create_connection(("127.0.0.1", endpoint["port"]), timeout=timeout) as connection:
                connection.sendall(payload)
                chunks = []
                size = 0
                while True:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if chunk.endswith(b"\n") or size > MAX_MESSAGE_BYTES:
                        break
        except OSError:
            continue
        try:
            reply = json.loads(b"".join(chunks))
        except ValueError:
            continue
        if isinstance(reply, dict):
            return reply
    return None
