"""One local ``chroma run`` server shared by every Debrief process on a data dir (``chroma_mode="shared"``).

Protocol, all with ``flock`` on files in the data dir:

- ``chroma-host.lock`` (exclusive, held briefly) serializes attaching and detaching.
- ``chroma-host.json`` says ``{"pid", "port"}`` of the running server.
- ``chroma-users.lock``: every attached process holds it shared for its lifetime. A detaching process that
  then gets it exclusive (non-blocking) is the last user: it stops the server and removes the json.
  ``in-process`` mode holds it exclusive for its lifetime, so the two modes exclude each other.

The server is started detached (its own session, output to ``chroma-host.log``), never as a child whose
output could reach our stdout, which a stdio MCP server reserves for the protocol. It is recorded in the json
before it answers, so a process killed while waiting leaves a record the next one follows; a server on the
directory that no record names is adopted if it answers and stopped otherwise (never two on one directory).
A restart takes the old port when it is free, so clients that knew the old server find the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from debrief.server.chroma.locks import FileLock
from debrief.server.errors import StoreUnavailable

HOST_LOCK = "chroma-host.lock"
USERS_LOCK = "chroma-users.lock"
HOST_FILE = "chroma-host.json"
HOST_LOG = "chroma-host.log"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def users_lock(data_dir: Path) -> FileLock:
    """The lock file whose holders are the processes using the data dir's Chroma files."""
    return FileLock(data_dir / USERS_LOCK)


def in_use_message(data_dir: Path, mode: str) -> str:
    """Why the data dir cannot be opened in ``mode`` (another process holds it in the other mode)."""
    if mode == "in-process":
        return (
            f"the data dir {str(data_dir)!r} is in use by another Debrief process; in-process mode needs it alone: "
            "use chroma_mode='shared' (DEBRIEF_CHROMA_MODE=shared) in every process to share it"
        )
    return (
        f"the data dir {str(data_dir)!r} is held by a Debrief process in chroma_mode='in-process': stop it, or "
        "run every process with chroma_mode='shared' (DEBRIEF_CHROMA_MODE=shared)"
    )


def find_chroma() -> str:
    """The ``chroma`` executable next to this Python, else on PATH."""
    beside = Path(sys.executable).parent / "chroma"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("chroma")
    if found is None:
        raise StoreUnavailable(
            "the 'chroma' command was not found next to this Python or on PATH: install chromadb in this "
            "environment (pip install 'chromadb>=1.5'), or set chroma_url / chroma_mode='in-process'"
        )
    return found


def heartbeat(port: int, timeout: float = 1.0) -> bool:
    """Whether a Chroma server answers on ``127.0.0.1:port``."""
    try:
        with _NO_PROXY.open(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _wait_heartbeat(port: int, pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if heartbeat(port, timeout=min(2.0, timeout)):
            return True
        if time.monotonic() >= deadline or not _alive(pid):
            return False
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_our_server(pid: int, path: Path) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"run" in command and str(path).encode() in command


def _free_port(preferred: int = 0) -> int:
    """``preferred`` when it is free (clients that knew the old server find the new one), else any free port."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # A port the old server just used may linger in TIME_WAIT; the new server (like this probe) reuses it.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise StoreUnavailable("no free loopback port for the shared Chroma server")


def _servers_on(path: Path) -> list[tuple[int, int | None]]:
    """``(pid, port)`` of every ``chroma run`` serving ``path`` on this machine (port None if unreadable)."""
    found: list[tuple[int, int | None]] = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid() or not _is_our_server(pid, path) or not _alive(pid):
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        port = int(words[words.index(b"--port") + 1]) if b"--port" in words[:-1] else None
        found.append((pid, port))
    return found


def _stop(pid: int, timeout: float = 15.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _launch(chroma: str, path: Path, port: int, log: Path) -> int:
    # A throwaway shell starts the server in the background and exits, so the server is nobody's child here:
    # it outlives this process, and no Popen object is left to warn or to reap it.
    script = '"$@" </dev/null >>"$LOG" 2>&1 & echo $!'
    command = ["/bin/sh", "-c", script, "sh", chroma, "run", "--host", "127.0.0.1", "--port", str(port)]
    started = subprocess.run(
        [*command, "--path", str(path)],
        env={"RUST_LOG": "warn", **os.environ, "LOG": str(log), "ANONYMIZED_TELEMETRY": "False"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        check=True,
        timeout=10,
    )
    return int(started.stdout.strip())


def _record(data_dir: Path, pid: int, port: int) -> None:
    info_path = data_dir / HOST_FILE
    scratch = info_path.with_suffix(".tmp")
    scratch.write_text(json.dumps({"pid": pid, "port": port}))
    scratch.replace(info_path)


def _start(data_dir: Path, timeout: float, preferred_port: int = 0) -> tuple[int, int]:
    chroma = find_chroma()
    path = data_dir / "chroma"
    log = data_dir / HOST_LOG
    for attempt in range(3):
        port = _free_port(preferred_port if attempt == 0 else 0)
        pid = _launch(chroma, path, port, log)
        # Recorded before waiting: if this process dies now, the next one finds the server and adopts or stops it.
        _record(data_dir, pid, port)
        if _wait_heartbeat(port, pid, timeout):
            return pid, port
        if _alive(pid):
            _stop(pid)
            break
        # It exited early: most likely another program took the port first. Try another one.
    raise StoreUnavailable(
        f"could not start a Chroma server for {str(data_dir)!r} within {timeout:.0f} s: see {str(log)!r}; "
        "or set chroma_mode='in-process' or chroma_url"
    )


@dataclass
class ChromaHost:
    """This process's attachment to the data dir's shared Chroma server."""

    data_dir: Path
    pid: int
    port: int
    _users: FileLock

    @property
    def url(self) -> str:
        """Where the server listens."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    async def attach(cls, data_dir: Path, *, start_timeout: float = 20.0) -> ChromaHost:
        """Attach to the running server, starting it if none answers."""
        return await anyio.to_thread.run_sync(cls._attach, data_dir, start_timeout)

    @classmethod
    def _attach(cls, data_dir: Path, start_timeout: float) -> ChromaHost:
        data_dir.mkdir(parents=True, exist_ok=True)
        host_lock = FileLock(data_dir / HOST_LOCK)
        host_lock.acquire(exclusive=True, blocking=True)
        users = users_lock(data_dir)
        try:
            if not users.acquire(exclusive=False, blocking=False):
                raise StoreUnavailable(in_use_message(data_dir, "shared"))
            info_path = data_dir / HOST_FILE
            try:
                info = json.loads(info_path.read_text())
                pid, port = int(info["pid"]), int(info["port"])
            except (OSError, ValueError, KeyError, TypeError):
                pid, port = 0, 0
            ours = bool(pid) and _alive(pid) and _is_our_server(pid, data_dir / "chroma")
            # A busy server can be slow to answer: give a live one time before calling it hung.
            if not (port and _wait_heartbeat(port, pid, start_timeout if ours else 1.0)):
                if ours:
                    if not users.acquire(exclusive=True, blocking=False):
                        raise StoreUnavailable(
                            f"the shared Chroma server of {str(data_dir)!r} (pid {pid}, port {port}) does not "
                            f"answer and other Debrief processes use it: see {str(data_dir / HOST_LOG)!r}"
                        )
                    _stop(pid)
                    users.acquire(exclusive=False, blocking=True)
                adopted = cls._adopt_or_stop_orphans(data_dir)
                pid, port = adopted if adopted is not None else _start(data_dir, start_timeout, port)
                _record(data_dir, pid, port)
            return cls(data_dir=data_dir, pid=pid, port=port, _users=users)
        except BaseException:
            users.release()
            raise
        finally:
            host_lock.release()

    @staticmethod
    def _adopt_or_stop_orphans(data_dir: Path) -> tuple[int, int] | None:
        """Servers on this data dir that no record names (a start cut short): adopt one that answers, stop the rest.

        Two servers on one directory would corrupt it, so none may be left running beside a new one.
        """
        adopted: tuple[int, int] | None = None
        for pid, port in _servers_on(data_dir / "chroma"):
            if adopted is None and port is not None and _wait_heartbeat(port, pid, 5.0):
                adopted = (pid, port)
            else:
                _stop(pid)
        return adopted

    async def revive(self, *, start_timeout: float = 20.0) -> bool:
        """After a failed call: restart the server if it is gone; True when it answers again at the same URL."""
        return await anyio.to_thread.run_sync(self._revive, start_timeout)

    def _revive(self, start_timeout: float) -> bool:
        host_lock = FileLock(self.data_dir / HOST_LOCK)
        host_lock.acquire(exclusive=True, blocking=True)
        try:
            try:
                info = json.loads((self.data_dir / HOST_FILE).read_text())
                pid, port = int(info["pid"]), int(info["port"])
            except (OSError, ValueError, KeyError, TypeError):
                pid, port = 0, 0
            if not (port and _alive(pid) and heartbeat(port)):
                # Another attached process may have restarted it already; otherwise this one does, on the old port.
                adopted = self._adopt_or_stop_orphans(self.data_dir)
                pid, port = adopted if adopted is not None else _start(self.data_dir, start_timeout, self.port)
                _record(self.data_dir, pid, port)
            same = port == self.port
            self.pid, self.port = pid, port
            return same
        finally:
            host_lock.release()

    async def detach(self) -> None:
        """Stop using the server; the last process out stops it."""
        await anyio.to_thread.run_sync(self._detach)

    def _detach(self) -> None:
        if not self._users.held:
            return
        host_lock = FileLock(self.data_dir / HOST_LOCK)
        host_lock.acquire(exclusive=True, blocking=True)
        try:
            if self._users.acquire(exclusive=True, blocking=False):
                info_path = self.data_dir / HOST_FILE
                try:
                    pid = int(json.loads(info_path.read_text())["pid"])
                except (OSError, ValueError, KeyError, TypeError):
                    pid = self.pid
                if _alive(pid) and _is_our_server(pid, self.data_dir / "chroma"):
                    _stop(pid)
                info_path.unlink(missing_ok=True)
        finally:
            self._users.release()
            host_lock.release()
