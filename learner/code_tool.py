"""The built-in code tool of agent mode: runs a Python program in a subprocess, bounded and offline.

Limits: wall time (the process group is killed), CPU seconds, address space and file size (``resource.setrlimit``
in the child before the program runs), output (kept up to a bound, the rest read and dropped). A fresh scratch
directory per call is the working directory and is removed afterwards.

No network: where unprivileged user namespaces work (probed once), the child runs under ``unshare --net
--map-root-user`` and has no network interface but loopback; in every case an audit hook in the child refuses
socket creation (so name lookups too) and starting processes; ctypes stays allowed because numpy and sympy
load it. The hook alone is a guard against accidents, not a sandbox against hostile code (C extensions and ctypes
can bypass it); the namespace is the real barrier.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import anyio
from anyio.abc import ByteReceiveStream

from debrief.learner.tools import ToolResult, ToolSpec, truncate

CODE_TOOL_NAME = "run_python"

_LAUNCHER = r"""
import resource, runpy, sys
memory, cpu, file_size = (int(value) for value in sys.argv[1:4])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
_BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn", "pty.")
def _guard(event, args):
    if event.startswith(_BLOCKED):
        raise PermissionError(f"{event} is not allowed in the code tool (no network, no processes)")
sys.addaudithook(_guard)
del _guard
sys.argv = ["main.py"]
runpy.run_path("main.py", run_name="__main__")
"""

Isolation = Literal["network namespace + audit hook", "audit hook"]


def _namespace_works() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        done = subprocess.run(
            [unshare, "--net", "--map-root-user", sys.executable, "-c", "pass"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


async def _read_bounded(stream: ByteReceiveStream | None, limit: int) -> tuple[bytes, int]:
    kept, dropped = bytearray(), 0
    if stream is None:
        return bytes(kept), dropped
    async for chunk in stream:
        room = max(0, limit - len(kept))
        kept.extend(chunk[:room])
        dropped += max(0, len(chunk) - room)
    return bytes(kept), dropped


def _without_launcher_frames(text: str) -> str:
    # Tracebacks pass through the launcher and runpy; those frames say nothing about the model's program.
    return "\n".join(
        line for line in text.split("\n") if not line.startswith(('  File "<string>"', '  File "<frozen runpy>"'))
    )


class CodeTool:
    """A :class:`~debrief.learner.tools.Tools` with one tool, ``run_python``."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        memory_mb: int = 512,
        output_chars: int = 4000,
        file_size_mb: int = 16,
        scratch_root: Path | None = None,
        python: str = sys.executable,
        use_namespace: bool | None = None,
    ) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.output_chars = output_chars
        self.file_size_mb = file_size_mb
        self.scratch_root = scratch_root
        self.python = python
        self._use_namespace = use_namespace

    @property
    def isolation(self) -> Isolation:
        """How the child is kept off the network (the namespace is probed on first use)."""
        if self._use_namespace is None:
            self._use_namespace = _namespace_works()
        return "network namespace + audit hook" if self._use_namespace else "audit hook"

    async def list_tools(self) -> Sequence[ToolSpec]:
        """The one tool."""
        return [
            ToolSpec(
                name=CODE_TOOL_NAME,
                description=(
                    "Run a Python 3 program and get what it prints (stdout and stderr). Use print() for results. "
                    f"Limits: {self.timeout:g} s, {self.memory_mb} MB memory, no network, no subprocesses; each run "
                    "starts fresh in an empty directory."
                ),
                parameters={
                    "type": "object",
                    "properties": {"code": {"type": "string", "description": "The complete Python program."}},
                    "required": ["code"],
                    "additionalProperties": False,
                },
            )
        ]

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Run ``arguments["code"]``; a non-zero exit, a timeout or a limit is an error result."""
        if name != CODE_TOOL_NAME:
            return ToolResult(text=f"unknown tool {name!r}; this tool set has {CODE_TOOL_NAME!r}", is_error=True)
        code = arguments.get("code")
        if not isinstance(code, str) or not code.strip():
            return ToolResult(text="argument 'code' must be a non-empty string holding a Python program", is_error=True)
        namespace = await anyio.to_thread.run_sync(lambda: self.isolation) == "network namespace + audit hook"
        scratch = Path(tempfile.mkdtemp(prefix="debrief-code-", dir=self.scratch_root))
        try:
            (scratch / "main.py").write_text(code, encoding="utf-8")
            return await self._run(scratch, namespace)
        finally:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(scratch, ignore_errors=True))

    async def _run(self, scratch: Path, namespace: bool) -> ToolResult:
        limits = [str(self.memory_mb * 2**20), str(max(1, int(self.timeout + 0.999))), str(self.file_size_mb * 2**20)]
        command = [self.python, "-I", "-c", _LAUNCHER, *limits]
        if namespace:
            command = ["unshare", "--net", "--map-root-user", *command]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(scratch),
            "PYTHONIOENCODING": "utf-8",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
        limit = self.output_chars * 4
        outputs: dict[str, tuple[bytes, int]] = {}
        timed_out = False
        process = await anyio.open_process(
            command, stdin=subprocess.DEVNULL, cwd=scratch, env=env, start_new_session=True
        )
        try:

            async def read(key: str, stream: ByteReceiveStream | None) -> None:
                outputs[key] = await _read_bounded(stream, limit)

            with anyio.move_on_after(self.timeout) as scope:
                async with anyio.create_task_group() as group:
                    group.start_soon(read, "stdout", process.stdout)
                    group.start_soon(read, "stderr", process.stderr)
                await process.wait()
            timed_out = scope.cancelled_caught
        finally:
            if process.returncode is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                with anyio.CancelScope(shield=True):
                    await process.wait()
        return self._result(outputs, process.returncode, timed_out)

    def _result(self, outputs: dict[str, tuple[bytes, int]], returncode: int | None, timed_out: bool) -> ToolResult:
        parts: list[str] = []
        for key in ("stdout", "stderr"):
            data, dropped = outputs.get(key, (b"", 0))
            text = _without_launcher_frames(data.decode("utf-8", errors="replace"))
            if dropped:
                text += f"\n[... {dropped} more bytes of {key} dropped ...]"
            if text.strip():
                parts.append(f"{key}:\n{text.rstrip()}")
        body = truncate("\n".join(parts), self.output_chars) if parts else "(no output)"
        if timed_out:
            return ToolResult(text=f"timed out after {self.timeout:g} s and was killed\n{body}", is_error=True)
        if returncode == -signal.SIGXCPU or returncode == -signal.SIGKILL:
            return ToolResult(text=f"killed by a limit (signal {-returncode})\n{body}", is_error=True)
        if returncode:
            memory = "MemoryError" in body
            hint = f" (memory limit {self.memory_mb} MB)" if memory else ""
            return ToolResult(text=f"exited with status {returncode}{hint}\n{body}", is_error=True)
        return ToolResult(text=body)
