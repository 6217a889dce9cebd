"""``debrief config``: every snippet parses, and the server it names answers MCP."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from debrief.server.cli.client_config import (
    CLIENTS,
    ClientName,
    HttpTarget,
    Scope,
    StdioTarget,
    default_config_path,
    merge_into,
    register,
    render,
    server_command,
    server_entry,
    stdio_target,
)
from debrief.server.errors import InvalidInput
from tests.clients.running import free_port, http_server

JSON_CLIENTS: list[ClientName] = ["claude-desktop", "cursor", "vscode"]
EXPECTED_TOOLS = {"retrieve_experiences", "add_experience", "list_experiences"}


def run_config(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``debrief config …`` through the same parser shape cli.py builds."""
    parser = argparse.ArgumentParser(prog="debrief")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data-dir", type=Path, default=None)
        sub.add_argument("--chroma-url", default=None)

    register(commands, common)
    args = parser.parse_args(["config", *argv])
    code = args.handler(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def server_map(client: ClientName, document: dict[str, Any]) -> dict[str, Any]:
    servers = document["servers" if client == "vscode" else "mcpServers"]
    assert isinstance(servers, dict)
    return servers


def test_stdio_command_is_the_absolute_debrief_script_next_to_python() -> None:
    command, args = server_command()

    assert Path(command).is_absolute()
    assert Path(command).parent == Path(sys.executable).absolute().parent
    assert Path(command).name.startswith("debrief")
    assert args == ("serve",)


def test_stdio_command_falls_back_to_python_dash_m_without_the_script(tmp_path: Path) -> None:
    python = tmp_path / "bin" / "python3"

    assert server_command(str(python)) == (str(python), ("-m", "debrief.server", "serve"))


@pytest.mark.parametrize("client", JSON_CLIENTS)
def test_printed_stdio_snippet_is_json_naming_the_install_and_data_dir(
    client: ClientName, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_config([client, "--data-dir", str(tmp_path / "store")], capsys)

    entry = server_map(client, json.loads(out))["debrief"]
    assert code == 0
    assert (entry["command"], entry["args"]) == (server_command()[0], ["serve"])
    assert entry["env"] == {"DEBRIEF_DATA_DIR": str(tmp_path / "store")}
    assert ("type" in entry) == (client == "vscode")
    if client == "vscode":
        assert entry["type"] == "stdio"


@pytest.mark.parametrize("client", ["cursor", "vscode"])
def test_http_snippet_carries_the_url_and_bearer_header(client: ClientName, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_config([client, "--url", "https://debrief.example.com/mcp", "--token", "s3cret"], capsys)

    entry = server_map(client, json.loads(out))["debrief"]
    assert code == 0
    assert entry["url"] == "https://debrief.example.com/mcp"
    assert entry["headers"] == {"Authorization": "Bearer s3cret"}
    assert entry.get("type") == ("http" if client == "vscode" else None)
    assert "debrief serve --http" in err


def test_claude_desktop_reaches_an_http_server_through_mcp_remote_with_the_token_in_env() -> None:
    entry = server_entry("claude-desktop", HttpTarget(url="http://10.0.0.5:8000/mcp", token="s3cret"))

    assert entry["command"] == "npx"
    assert entry["args"][:3] == ["-y", "mcp-remote", "http://10.0.0.5:8000/mcp"]
    assert "--allow-http" in entry["args"]
    assert entry["args"][-2:] == ["--header", "Authorization:${DEBRIEF_AUTH_HEADER}"]
    assert entry["env"] == {"DEBRIEF_AUTH_HEADER": "Bearer s3cret"}
    assert not any(" " in arg for arg in entry["args"])


def test_claude_code_commands_register_stdio_and_http_servers(tmp_path: Path) -> None:
    stdio = shlex.split(render("claude-code", stdio_target(tmp_path)))
    http = shlex.split(render("claude-code", HttpTarget(url="http://127.0.0.1:8000/mcp", token="s3cret")))

    assert stdio[:3] == ["claude", "mcp", "add"]
    assert stdio[stdio.index("--transport") + 1] == "stdio"
    assert f"--env=DEBRIEF_DATA_DIR={tmp_path}" in stdio
    assert stdio[stdio.index("--") + 1 :] == [server_command()[0], "serve"]
    assert http[http.index("--transport") + 1] == "http"
    assert http[-4:] == ["debrief", "http://127.0.0.1:8000/mcp", "--header", "Authorization: Bearer s3cret"]


def test_token_without_http_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidInput, match="--http"):
        run_config(["cursor", "--token", "s3cret"], capsys)


@pytest.mark.parametrize(
    ("client", "platform", "expected"),
    [
        ("claude-desktop", "darwin", "home/Library/Application Support/Claude/claude_desktop_config.json"),
        ("claude-desktop", "win32", "appdata/Claude/claude_desktop_config.json"),
        ("claude-desktop", "linux", "home/.config/Claude/claude_desktop_config.json"),
        ("cursor", "linux", "home/.cursor/mcp.json"),
        ("vscode", "darwin", "project/.vscode/mcp.json"),
        ("claude-code", "linux", "home/.claude.json"),
    ],
)
def test_default_config_path_follows_the_client_and_platform(
    client: ClientName, platform: str, expected: str, tmp_path: Path
) -> None:
    path = default_config_path(
        client,
        platform=platform,
        home=tmp_path / "home",
        environ={"APPDATA": str(tmp_path / "appdata")},
        cwd=tmp_path / "project",
    )

    assert path == tmp_path / expected


def test_write_merges_beside_other_servers_and_keeps_a_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "claude_desktop_config.json"
    original: dict[str, Any] = {
        "globalShortcut": "Ctrl+Space",
        "mcpServers": {"files": {"command": "npx", "args": ["fs"]}},
    }
    path.write_text(json.dumps(original), encoding="utf-8")

    code, out, err = run_config(["claude-desktop", "--data-dir", str(tmp_path / "s"), "--write", str(path)], capsys)

    written = json.loads(path.read_text(encoding="utf-8"))
    backups = list(tmp_path.glob("claude_desktop_config.json.bak-*"))
    assert code == 0 and out == ""
    assert written["globalShortcut"] == "Ctrl+Space"
    assert written["mcpServers"]["files"] == original["mcpServers"]["files"]
    assert written["mcpServers"]["debrief"]["env"] == {"DEBRIEF_DATA_DIR": str(tmp_path / "s")}
    assert len(backups) == 1 and json.loads(backups[0].read_text(encoding="utf-8")) == original
    assert str(backups[0]) in err


def test_write_creates_a_missing_file_and_its_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "project" / ".vscode" / "mcp.json"

    code, _, _ = run_config(["vscode", "--data-dir", str(tmp_path / "s"), "--write", str(path)], capsys)

    assert code == 0
    assert json.loads(path.read_text(encoding="utf-8"))["servers"]["debrief"]["type"] == "stdio"
    assert list(path.parent.iterdir()) == [path]


def test_writing_the_same_entry_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    entry = server_entry("cursor", stdio_target(tmp_path))
    merge_into(path, "cursor", entry)
    before = path.read_text(encoding="utf-8")

    again = merge_into(path, "cursor", entry)

    assert not again.changed and again.backup is None
    assert path.read_text(encoding="utf-8") == before
    assert [item.name for item in tmp_path.iterdir()] == ["mcp.json"]


def test_a_different_debrief_entry_is_kept_unless_forced(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    theirs = {"mcpServers": {"debrief": {"command": "/opt/other/debrief", "args": ["serve"]}}}
    path.write_text(json.dumps(theirs), encoding="utf-8")
    entry = server_entry("cursor", stdio_target(tmp_path))

    with pytest.raises(InvalidInput, match="--force"):
        merge_into(path, "cursor", entry)
    assert json.loads(path.read_text(encoding="utf-8")) == theirs

    forced = merge_into(path, "cursor", entry, force=True, now=datetime(2026, 1, 2, 3, 4, 5))
    assert json.loads(path.read_text(encoding="utf-8"))["mcpServers"]["debrief"] == entry
    assert forced.backup == tmp_path / "mcp.json.bak-20260102-030405"
    assert json.loads(forced.backup.read_text(encoding="utf-8")) == theirs


def test_a_file_that_is_not_plain_json_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    text = '{\n  // my servers\n  "servers": {}\n}\n'
    path.write_text(text, encoding="utf-8")

    with pytest.raises(InvalidInput, match="not plain JSON"):
        merge_into(path, "vscode", server_entry("vscode", stdio_target(tmp_path)))

    assert path.read_text(encoding="utf-8") == text
    assert [item.name for item in tmp_path.iterdir()] == ["mcp.json"]


def snippet_stdio_parameters(client: ClientName, data_dir: Path) -> StdioServerParameters:
    """The server a client would start from the printed snippet, plus what a test environment needs."""
    target = stdio_target(data_dir)
    if client == "claude-code":
        argv = shlex.split(render(client, target))
        env = dict(item.removeprefix("--env=").split("=", 1) for item in argv if item.startswith("--env="))
        command, *args = argv[argv.index("--") + 1 :]
        entry: dict[str, Any] = {"command": command, "args": args, "env": env}
    else:
        entry = server_map(client, json.loads(render(client, target)))["debrief"]
    # What a desktop client passes besides the snippet's env: a PATH and HOME. The store runs in-process here.
    base = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env = {**base, **entry["env"], "DEBRIEF_CHROMA_MODE": "in-process"}
    return StdioServerParameters(command=entry["command"], args=entry["args"], env=env)


@pytest.mark.anyio
@pytest.mark.parametrize("client", CLIENTS)
async def test_stdio_snippet_starts_a_server_that_answers_initialize_and_lists_tools(
    client: ClientName, tmp_path: Path
) -> None:
    parameters = snippet_stdio_parameters(client, tmp_path / "store")

    with anyio.fail_after(120):
        async with Client(parameters, mode="legacy", read_timeout_seconds=60) as session:
            tools = await session.list_tools()
            info = session.server_info
            protocol = session.protocol_version

    assert EXPECTED_TOOLS <= {tool.name for tool in tools.tools}
    assert info is not None and info.name == "debrief"
    assert protocol == "2025-11-25"
    assert (tmp_path / "store").is_dir()


@pytest.mark.anyio
@pytest.mark.parametrize("client", ["cursor", "vscode", "claude-code"])
async def test_http_snippet_reaches_debrief_serve_http(client: ClientName, tmp_path: Path) -> None:
    port = free_port()
    token = "test-token-0b8e1f5c"
    command, args = server_command()
    env = {
        **os.environ,
        "DEBRIEF_DATA_DIR": str(tmp_path / "store"),
        "DEBRIEF_CHROMA_MODE": "in-process",
        "DEBRIEF_HTTP_TOKENS": token,
    }
    target = HttpTarget(url=f"http://127.0.0.1:{port}/mcp", token=token)
    if client == "claude-code":
        argv = shlex.split(render(client, target))
        url, header = argv[-3], argv[-1]
        name, value = header.split(": ", 1)
        headers = {name: value}
    else:
        entry = server_map(client, json.loads(render(client, target)))["debrief"]
        url, headers = entry["url"], entry["headers"]

    argv = [command, *args, "--http", "--host", "127.0.0.1", "--port", str(port)]

    with anyio.fail_after(120):
        async with http_server(argv, env):
            http = httpx2.AsyncClient(headers=headers, timeout=30)
            async with http, Client(streamable_http_client(url, http_client=http), mode="legacy") as session:
                tools = await session.list_tools()

    assert EXPECTED_TOOLS <= {tool.name for tool in tools.tools}


def test_every_client_has_a_stdio_and_an_http_rendering(tmp_path: Path) -> None:
    for client in CLIENTS:
        for target in (stdio_target(tmp_path), HttpTarget(url="http://127.0.0.1:8000/mcp")):
            text = render(client, target)
            if client == "claude-code":
                assert text.startswith("claude mcp add ")
            else:
                assert list(server_map(client, json.loads(text))) == ["debrief"]


EXAMPLES = Path(__file__).resolve().parents[2] / "clients" / "configs"
PLACEHOLDER_STDIO = StdioTarget(
    command="/absolute/path/to/.venv/bin/debrief", args=("serve",), data_dir=Path("/absolute/path/to/debrief-data")
)
PLACEHOLDER_HTTP = HttpTarget(url="http://127.0.0.1:8000/mcp", token="YOUR_DEBRIEF_TOKEN")


@pytest.mark.parametrize(
    ("name", "client", "target"),
    [
        ("claude-desktop/claude_desktop_config.json", "claude-desktop", PLACEHOLDER_STDIO),
        ("claude-desktop/claude_desktop_config.http.json", "claude-desktop", PLACEHOLDER_HTTP),
        ("cursor/mcp.json", "cursor", PLACEHOLDER_STDIO),
        ("cursor/mcp.http.json", "cursor", PLACEHOLDER_HTTP),
        ("vscode/mcp.json", "vscode", PLACEHOLDER_STDIO),
        ("vscode/mcp.http.json", "vscode", PLACEHOLDER_HTTP),
    ],
)
def test_static_example_snippets_parse_and_match_what_debrief_config_prints(
    name: str, client: ClientName, target: StdioTarget | HttpTarget
) -> None:
    text = (EXAMPLES / name).read_text(encoding="utf-8")

    assert json.loads(text) == json.loads(render(client, target))


def test_static_claude_code_example_holds_both_commands() -> None:
    lines = (EXAMPLES / "claude-code" / "add-debrief.sh").read_text(encoding="utf-8").splitlines()

    commands = [line for line in lines if line.startswith("claude ")]
    assert commands == [
        render("claude-code", PLACEHOLDER_STDIO).strip(),
        render("claude-code", PLACEHOLDER_HTTP).strip(),
    ]


def test_a_written_config_holding_a_token_and_its_backup_are_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {}}', encoding="utf-8")
    path.chmod(0o644)
    token_file = tmp_path / "token.txt"
    token_file.write_text("file-token-8d1c2b\n", encoding="utf-8")

    code, _, err = run_config(
        ["cursor", "--http", "--token-file", str(token_file), "--write", str(path), "--force"], capsys
    )

    [backup] = tmp_path.glob("mcp.json.bak-*")
    assert code == 0 and "0600" in err
    assert path.stat().st_mode & 0o777 == 0o600
    assert backup.stat().st_mode & 0o777 == 0o600
    assert "Bearer file-token-8d1c2b" in path.read_text(encoding="utf-8")


def test_the_token_can_come_from_an_environment_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_DEBRIEF_TOKEN", "env-token-5e7a90")
    _, out, _ = run_config(["cursor", "--http", "--token-env", "MY_DEBRIEF_TOKEN"], capsys)
    assert "Bearer env-token-5e7a90" in out
    with pytest.raises(InvalidInput, match="not set"):
        run_config(["cursor", "--http", "--token-env", "NOT_SET_ANYWHERE_42"], capsys)
    with pytest.raises(InvalidInput, match="one way"):
        run_config(["cursor", "--http", "--token", "x", "--token-env", "MY_DEBRIEF_TOKEN"], capsys)


def test_a_config_without_a_token_keeps_the_usual_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mcp.json"
    old = os.umask(0o022)
    try:
        run_config(["cursor", "--data-dir", str(tmp_path / "s"), "--write", str(path)], capsys)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("client", "scope", "platform", "expected"),
    [
        ("claude-code", "user", "linux", "home/.claude.json"),
        ("claude-code", "project", "linux", "project/.mcp.json"),
        ("vscode", "project", "linux", "project/.vscode/mcp.json"),
        ("vscode", "user", "linux", "home/.config/Code/User/mcp.json"),
        ("vscode", "user", "darwin", "home/Library/Application Support/Code/User/mcp.json"),
        ("vscode", "user", "win32", "appdata/Code/User/mcp.json"),
    ],
)
def test_each_scope_has_its_own_config_file(
    client: ClientName, scope: Scope, platform: str, expected: str, tmp_path: Path
) -> None:
    path = default_config_path(
        client,
        platform=platform,
        home=tmp_path / "home",
        environ={"APPDATA": str(tmp_path / "appdata")},
        cwd=tmp_path / "project",
        scope=scope,
    )
    assert path == tmp_path / expected


@pytest.mark.parametrize("scope", [None, "user", "project"])
def test_claude_code_write_uses_the_scope_the_printed_command_names(
    scope: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(project)
    flags = ["--data-dir", str(tmp_path / "data"), *(["--scope", scope] if scope else [])]
    code, printed, _ = run_config(["claude-code", *flags], capsys)
    assert code == 0
    argv = shlex.split(printed)
    named = argv[argv.index("--scope") + 1]
    assert named == (scope or "user")
    code, _, told = run_config(["claude-code", *flags, "--write"], capsys)
    assert code == 0
    written = home / ".claude.json" if named == "user" else project / ".mcp.json"
    other = project / ".mcp.json" if named == "user" else home / ".claude.json"
    entry = json.loads(written.read_text(encoding="utf-8"))["mcpServers"]["debrief"]
    assert not other.exists()
    assert [entry["command"], *entry["args"]] == argv[argv.index("--") + 1 :]
    assert entry["env"]["DEBRIEF_DATA_DIR"] == str(tmp_path / "data")
    assert ("holds this machine's paths" in told) == (named == "project")


def test_vscode_user_scope_writes_the_profile_mcp_json_and_the_snippet_names_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    _, _, hint = run_config(["vscode", "--data-dir", str(tmp_path / "data")], capsys)
    assert ".vscode/mcp.json" in hint and "Code/User/mcp.json" in hint
    code, _, _ = run_config(["vscode", "--data-dir", str(tmp_path / "data"), "--scope", "user", "--write"], capsys)
    assert code == 0
    written = tmp_path / "home" / ".config" / "Code" / "User" / "mcp.json"
    assert json.loads(written.read_text(encoding="utf-8"))["servers"]["debrief"]["type"] == "stdio"
    assert not (tmp_path / ".vscode").exists()


def test_scope_is_refused_for_clients_with_one_global_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InvalidInput, match="drop --scope"):
        run_config(["cursor", "--scope", "user"], capsys)
