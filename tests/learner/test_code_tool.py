from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from debrief.learner.code_tool import CODE_TOOL_NAME, CodeTool

pytestmark = pytest.mark.anyio


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port that accepts connections, so a refused connection is the tool's doing."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield sock.getsockname()[1]


async def run(tool: CodeTool, code: str) -> tuple[str, bool]:
    with anyio.fail_after(30):
        result = await tool.call(CODE_TOOL_NAME, {"code": code})
    return result.text, result.is_error


async def test_a_program_runs_and_its_output_comes_back(tmp_path: Path) -> None:
    text, is_error = await run(CodeTool(scratch_root=tmp_path), "import math\nprint(math.comb(30, 15))")
    assert (text, is_error) == ("stdout:\n155117520", False)


async def test_a_program_that_runs_too_long_is_killed_at_the_time_limit(tmp_path: Path) -> None:
    text, is_error = await run(
        CodeTool(timeout=1, scratch_root=tmp_path), "print('started', flush=True)\nwhile True: pass"
    )
    assert is_error and text.startswith("timed out after 1 s and was killed")


async def test_a_program_over_the_memory_limit_fails_with_a_memory_error(tmp_path: Path) -> None:
    text, is_error = await run(CodeTool(memory_mb=256, scratch_root=tmp_path), "block = bytearray(600 * 2**20)")
    assert is_error and "memory limit 256 MB" in text and "MemoryError" in text


@pytest.mark.parametrize("use_namespace", [None, False], ids=["default isolation", "audit hook only"])
async def test_a_program_cannot_reach_the_network(tmp_path: Path, listener: int, use_namespace: bool | None) -> None:
    tool = CodeTool(scratch_root=tmp_path, use_namespace=use_namespace)
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {listener}), timeout=5)\nprint('connected')"
    text, is_error = await run(tool, code)
    assert is_error and "connected" not in text.split("stderr:")[0]
    if use_namespace is False:
        assert "is not allowed in the code tool (no network, no processes)" in text
        assert tool.isolation == "audit hook"


async def test_a_program_cannot_start_processes(tmp_path: Path) -> None:
    text, is_error = await run(CodeTool(scratch_root=tmp_path), "import subprocess\nsubprocess.run(['true'])")
    assert is_error and "not allowed in the code tool" in text


async def test_long_output_is_cut_to_the_bound_and_the_cut_is_marked(tmp_path: Path) -> None:
    text, is_error = await run(CodeTool(output_chars=1000, scratch_root=tmp_path), "print('x' * 100_000)")
    assert not is_error
    assert len(text) < 1200 and "characters cut" in text


async def test_each_run_starts_in_a_fresh_scratch_directory_that_is_removed_after(tmp_path: Path) -> None:
    tool = CodeTool(scratch_root=tmp_path)
    first, _ = await run(tool, "import os\nopen('note.txt', 'w').write('hi')\nprint(os.getcwd())")
    second, _ = await run(tool, "import os\nprint(os.path.exists('note.txt'))")
    assert first.startswith(f"stdout:\n{tmp_path}")
    assert second == "stdout:\nFalse"
    assert list(tmp_path.iterdir()) == []


async def test_a_call_without_code_is_an_error_that_says_what_is_missing(tmp_path: Path) -> None:
    result = await CodeTool(scratch_root=tmp_path).call(CODE_TOOL_NAME, {"program": "print(1)"})
    assert result.is_error and "'code' must be a non-empty string" in result.text
