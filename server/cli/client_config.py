"""``debrief config <client>``: the MCP client snippet for this install, printed or merged into the client's file."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from debrief.server.cli.flags import settings_from_flags
from debrief.server.errors import InvalidInput

ClientName = Literal["claude-desktop", "cursor", "vscode", "claude-code"]
Scope = Literal["project", "user"]
CLIENTS: tuple[ClientName, ...] = get_args(ClientName)
SERVER_NAME = "debrief"
DEFAULT_URL = "http://127.0.0.1:8000/mcp"
# Claude Desktop speaks stdio only from its config file; mcp-remote bridges stdio to Streamable HTTP.
MCP_REMOTE_HEADER_ENV = "DEBRIEF_AUTH_HEADER"


@dataclass(frozen=True, kw_only=True)
class StdioTarget:
    """Start this install's server as a subprocess of the client."""

    command: str
    args: tuple[str, ...]
    data_dir: Path
    chroma_url: str | None = None

    def env(self) -> dict[str, str]:
        """The environment the server needs, beyond the client's own."""
        env = {"DEBRIEF_DATA_DIR": str(self.data_dir)}
        if self.chroma_url:
            env["DEBRIEF_CHROMA_URL"] = self.chroma_url
        return env


@dataclass(frozen=True, kw_only=True)
class HttpTarget:
    """Reach a running ``debrief serve --http`` at ``url``, with a bearer token when it needs one."""

    url: str
    token: str | None = None


Target = StdioTarget | HttpTarget


def server_command(executable: str | None = None) -> tuple[str, tuple[str, ...]]:
    """The absolute command that runs ``debrief serve`` with this install: the script, else ``-m debrief.server``."""
    python = Path(executable or sys.executable).absolute()  # not resolve(): a venv's python is a symlink
    script = python.parent / ("debrief.exe" if os.name == "nt" else "debrief")
    if script.is_file():
        return str(script), ("serve",)
    return str(python), ("-m", "debrief.server", "serve")


def stdio_target(data_dir: Path, *, chroma_url: str | None = None, executable: str | None = None) -> StdioTarget:
    """A stdio target for this install on ``data_dir`` (and a Chroma server, when given)."""
    command, args = server_command(executable)
    return StdioTarget(command=command, args=args, data_dir=data_dir.expanduser().absolute(), chroma_url=chroma_url)


def _needs_allow_http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1")


def server_entry(client: ClientName, target: Target) -> dict[str, Any]:
    """The value to store under ``"debrief"`` in the client's server map."""
    if isinstance(target, StdioTarget):
        entry: dict[str, Any] = {
            "command": target.command,
            "args": list(target.args),
            "env": target.env(),
        }
        return {"type": "stdio", **entry} if client in ("vscode", "claude-code") else entry
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    if client == "claude-desktop":
        args = ["-y", "mcp-remote", target.url, "--transport", "http-only"]
        if _needs_allow_http(target.url):
            args.append("--allow-http")
        if not target.token:
            return {"command": "npx", "args": args}
        # No space inside the argument: some clients split args on spaces when they call npx.
        args += ["--header", f"Authorization:${{{MCP_REMOTE_HEADER_ENV}}}"]
        return {"command": "npx", "args": args, "env": {MCP_REMOTE_HEADER_ENV: headers["Authorization"]}}
    entry = {"url": target.url}
    if client in ("vscode", "claude-code"):
        entry = {"type": "http", **entry}
    if headers:
        entry["headers"] = headers
    return entry


def servers_key(client: ClientName) -> str:
    """The top-level key holding the server map: VS Code uses ``servers``, the others ``mcpServers``."""
    return "servers" if client == "vscode" else "mcpServers"


def config_document(client: ClientName, target: Target) -> dict[str, Any]:
    """A whole config file holding only Debrief."""
    return {servers_key(client): {SERVER_NAME: server_entry(client, target)}}


def claude_code_command(target: Target, scope: Scope = "user") -> list[str]:
    """The ``claude mcp add`` command line that registers Debrief with Claude Code."""
    if isinstance(target, StdioTarget):
        return [
            "claude", "mcp", "add", "--transport", "stdio", "--scope", scope,
            SERVER_NAME, *(f"--env={key}={value}" for key, value in target.env().items()),
            "--", target.command, *target.args,
        ]  # fmt: skip
    command = ["claude", "mcp", "add", "--transport", "http", "--scope", scope, SERVER_NAME, target.url]
    if target.token:
        command += ["--header", f"Authorization: Bearer {target.token}"]
    return command


def render(client: ClientName, target: Target, scope: Scope = "user") -> str:
    """The snippet to show: JSON for the editor clients, a command line for Claude Code (in ``scope``)."""
    if client == "claude-code":
        return shlex.join(claude_code_command(target, scope)) + "\n"
    return json.dumps(config_document(client, target), indent=2) + "\n"


def default_config_path(
    client: ClientName,
    *,
    platform: str | None = None,
    home: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    scope: Scope | None = None,
) -> Path:
    """Where the client reads its MCP servers on this platform, in ``scope`` (default: the client's usual one).

    Claude Code: ``user`` is ``~/.claude.json`` (what ``claude mcp add --scope user`` writes), ``project`` the
    project's ``.mcp.json``. VS Code: ``project`` is the workspace's ``.vscode/mcp.json``, ``user`` the user
    profile's ``mcp.json``. Claude Desktop and Cursor have one global file.
    """
    platform = platform or sys.platform
    home = home or Path.home()
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    if client == "claude-desktop":
        if platform == "darwin":
            return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
        if platform.startswith("win"):
            appdata = environ.get("APPDATA")
            base = Path(appdata) if appdata else home / "AppData" / "Roaming"
            return base / "Claude" / "claude_desktop_config.json"
        config_home = environ.get("XDG_CONFIG_HOME")
        return (Path(config_home) if config_home else home / ".config") / "Claude" / "claude_desktop_config.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"  # global: every project sees the same memory
    if client == "vscode":
        if scope != "user":
            return cwd / ".vscode" / "mcp.json"
        return _vscode_user_dir(platform, home, environ) / "mcp.json"
    if scope == "project":
        return cwd / ".mcp.json"  # Claude Code's project scope: meant to be shared, so no machine paths
    return home / ".claude.json"  # Claude Code's user scope, where `claude mcp add --scope user` writes


def _vscode_user_dir(platform: str, home: Path, environ: Mapping[str, str]) -> Path:
    if platform == "darwin":
        return home / "Library" / "Application Support" / "Code" / "User"
    if platform.startswith("win"):
        appdata = environ.get("APPDATA")
        return (Path(appdata) if appdata else home / "AppData" / "Roaming") / "Code" / "User"
    config_home = environ.get("XDG_CONFIG_HOME")
    return (Path(config_home) if config_home else home / ".config") / "Code" / "User"


def default_scope(client: ClientName) -> Scope:
    """The scope ``debrief config CLIENT`` uses without ``--scope``: user for Claude Code, project for VS Code."""
    return "project" if client == "vscode" else "user"


@dataclass(frozen=True, kw_only=True)
class WriteResult:
    """What merging into a config file did."""

    path: Path
    changed: bool
    backup: Path | None


def _backup_path(path: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    counter = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{counter}")
        counter += 1
    return candidate


def _read_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path`` ({} when it is missing or blank), or InvalidInput saying why it cannot be merged."""
    if not path.exists():
        return {}
    raw = path.read_text(encoding="utf-8")
    if not raw.strip():
        return {}
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"{str(path)!r} is not plain JSON ({error.msg} at line {error.lineno}); it may hold comments. "
            "Nothing was written: add the snippet from `debrief config` by hand"
        ) from error
    if not isinstance(loaded, dict):
        raise InvalidInput(f"{str(path)!r} holds a JSON {type(loaded).__name__}, not an object; nothing was written")
    return loaded


def _write_with_backup(
    path: Path, document: Mapping[str, Any], now: datetime | None, *, secret: bool = False
) -> WriteResult:
    """Back up ``path`` (if it exists), then replace it atomically with ``document``.

    ``secret``: the document holds a token, so the new file and the backup are readable by the owner only (0600).
    """
    backup = None
    if path.exists():
        backup = _backup_path(path, now or datetime.now())
        shutil.copy2(path, backup)
        if secret:
            backup.chmod(0o600)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.debrief-tmp")
    mode = 0o600 if secret else 0o666  # 0666 is narrowed by the umask, as open() would
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        if secret:
            os.fchmod(handle.fileno(), 0o600)  # a leftover temporary file may have had a wider mode
        handle.write(json.dumps(document, indent=2) + "\n")
    os.replace(temporary, path)  # atomic: a crash leaves the old file or the new one, never half of one
    return WriteResult(path=path, changed=True, backup=backup)


def merge_into(
    path: Path,
    client: ClientName,
    entry: Mapping[str, Any],
    *,
    force: bool = False,
    now: datetime | None = None,
    secret: bool = False,
) -> WriteResult:
    """Add ``entry`` as the ``debrief`` server in ``path``, keeping everything else and backing up the old file."""
    document = _read_object(path)
    key = servers_key(client)
    servers = document.get(key, {})
    if not isinstance(servers, dict):
        raise InvalidInput(f"{key!r} in {str(path)!r} is not an object; nothing was written")
    existing = servers.get(SERVER_NAME)
    if existing == entry:
        return WriteResult(path=path, changed=False, backup=None)
    if existing is not None and not force:
        raise InvalidInput(
            f"{str(path)!r} already has a different {SERVER_NAME!r} server: {json.dumps(existing)}; "
            "pass --force to replace it (the old file is kept as a backup)"
        )
    document[key] = {**servers, SERVER_NAME: dict(entry)}
    return _write_with_backup(path, document, now, secret=secret)


# ---- Claude Code hooks ------------------------------------------------------------------------------------

HOOK_EVENTS: dict[str, str] = {"UserPromptSubmit": "user-prompt-submit", "Stop": "stop"}
"""Claude Code hook event -> ``debrief hook`` event. ``Stop`` (record each turn) only when asked for."""
HOOK_MODULE = "debrief.server.cli.hook"
HOOK_TIMEOUT_SECONDS = 5


def hook_commands(
    data_dir: Path, *, executable: str | None = None, record_turns: bool = False, root: Path | None = None
) -> dict[str, str]:
    """The command per Claude Code event: Python without ``site`` (``-S``) running the stdlib-only hook module.

    ``debrief``'s own entry point loads settings, and ``site`` alone walks every ``.pth`` file of the
    environment: together more than the hook's latency budget. ``root`` is the folder holding the ``debrief``
    package (default: this install's), put on ``sys.path`` by hand.
    """
    python = Path(executable or sys.executable).absolute()
    data = data_dir.expanduser().absolute()
    folder = root or Path(__file__).absolute().parents[3]
    boot = f"import sys; sys.path.insert(0, {str(folder)!r}); from {HOOK_MODULE} import main; main()"
    return {
        event: shlex.join([str(python), "-S", "-c", boot, name, "--data-dir", str(data)])
        for event, name in HOOK_EVENTS.items()
        if record_turns or event != "Stop"
    }


def _is_debrief_hook(handler: Any) -> bool:
    return isinstance(handler, dict) and HOOK_MODULE in str(handler.get("command", ""))


def claude_settings_path(
    scope: Literal["project", "user"], *, home: Path | None = None, cwd: Path | None = None
) -> Path:
    """Claude Code's settings file: ``.claude/settings.json`` in the project, or ``~/.claude/settings.json``."""
    base = (home or Path.home()) if scope == "user" else (cwd or Path.cwd())
    return base / ".claude" / "settings.json"


def merge_hooks(path: Path, commands: Mapping[str, str], *, now: datetime | None = None) -> WriteResult:
    """Install Debrief's hook commands in a Claude Code settings file, keeping every other hook and setting.

    An earlier Debrief hook for the same event is replaced (never duplicated); the old file is backed up.
    """
    document = _read_object(path)
    hooks = document.get("hooks", {})
    if not isinstance(hooks, dict):
        raise InvalidInput(f"'hooks' in {str(path)!r} is not an object; nothing was written")
    merged = dict(hooks)
    for event, command in commands.items():
        groups = hooks.get(event, [])
        if not isinstance(groups, list):
            raise InvalidInput(f"hooks.{event} in {str(path)!r} is not a list; nothing was written")
        kept = []
        for group in groups:
            handlers = group.get("hooks") if isinstance(group, dict) else None
            if not isinstance(handlers, list) or not any(_is_debrief_hook(handler) for handler in handlers):
                kept.append(group)
                continue
            others = [handler for handler in handlers if not _is_debrief_hook(handler)]
            if others:
                kept.append({**group, "hooks": others})
        handler = {"type": "command", "command": command, "timeout": HOOK_TIMEOUT_SECONDS}
        merged[event] = [*kept, {"hooks": [handler]}]
    if merged == hooks:
        return WriteResult(path=path, changed=False, backup=None)
    return _write_with_backup(path, {**document, "hooks": merged}, now)


def _token_from_args(args: argparse.Namespace) -> str | None:
    """The bearer token from --token, --token-env or --token-file (at most one of them)."""
    given = [name for name in ("token", "token_env", "token_file") if getattr(args, name, None) is not None]
    if len(given) > 1:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise InvalidInput(f"give the token one way, not several ({flags})")
    if getattr(args, "token_env", None) is not None:
        value = os.environ.get(args.token_env, "").strip()
        if not value:
            raise InvalidInput(f"--token-env {args.token_env!r}: that environment variable is not set or empty")
        return value
    if getattr(args, "token_file", None) is not None:
        try:
            lines = Path(args.token_file).expanduser().read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInput(f"--token-file {args.token_file!r} cannot be read: {error}") from None
        value = lines[0].strip() if lines else ""
        if not value:
            raise InvalidInput(f"--token-file {args.token_file!r} is empty: put the token on its first line")
        return value
    token: str | None = args.token
    return token


def target_from_args(args: argparse.Namespace) -> Target:
    """The stdio or HTTP target the ``config`` flags describe."""
    token = _token_from_args(args)
    if args.http or args.url is not None:
        return HttpTarget(url=args.url or DEFAULT_URL, token=token)
    if token is not None:
        raise InvalidInput("--token only applies to an HTTP server; add --http (and --url if it is not local)")
    settings = settings_from_flags(args)
    return stdio_target(settings.data_dir, chroma_url=settings.chroma_url)


def _config_hooks(args: argparse.Namespace) -> int:
    if args.client != "claude-code":
        raise InvalidInput(f"--hooks is for claude-code only, not {args.client!r}")
    target = target_from_args(args)
    if not isinstance(target, StdioTarget):
        raise InvalidInput("--hooks asks the local server on its data dir: drop --http/--url (hooks use loopback)")
    commands = hook_commands(target.data_dir, record_turns=args.record_turns)
    path = Path(args.write).expanduser() if args.write else claude_settings_path(args.scope or "project")
    result = merge_hooks(path, commands)
    if not result.changed:
        print(f"{path} already has Debrief's hooks; nothing to do", file=sys.stderr)
        return 0
    saved = f" (previous file saved as {result.backup})" if result.backup else ""
    print(
        f"wrote Debrief's {', '.join(commands)} hook into {path}{saved}. It asks a running `debrief serve` on "
        f"{target.data_dir}: register the MCP server too (`debrief config claude-code`).",
        file=sys.stderr,
    )
    return 0


def _config(args: argparse.Namespace) -> int:
    client: ClientName = args.client
    if getattr(args, "hooks", False):
        return _config_hooks(args)
    target = target_from_args(args)
    scope: Scope = args.scope or default_scope(client)
    if args.scope is not None and client in ("claude-desktop", "cursor"):
        raise InvalidInput(f"{client} has one config file for every project: drop --scope")
    if args.write is None:
        sys.stdout.write(render(client, target, scope))
        if client == "vscode":
            print(
                f"add it to {default_config_path(client, scope='project')} (this workspace) or "
                f"{default_config_path(client, scope='user')} (every workspace: --scope user); "
                "--write does it for you",
                file=sys.stderr,
            )
        if isinstance(target, HttpTarget):
            print(
                "start the server with: debrief serve --http (set DEBRIEF_HTTP_TOKENS to serve beyond loopback)",
                file=sys.stderr,
            )
        return 0
    path = Path(args.write).expanduser() if args.write else default_config_path(client, scope=scope)
    secret = isinstance(target, HttpTarget) and bool(target.token)
    result = merge_into(path, client, server_entry(client, target), force=args.force, secret=secret)
    if not result.changed:
        print(f"{path} already has this {SERVER_NAME!r} server; nothing to do", file=sys.stderr)
        return 0
    saved = f" (previous file saved as {result.backup})" if result.backup else ""
    print(f"wrote the {SERVER_NAME!r} server into {path}{saved}; restart {client} to load it", file=sys.stderr)
    if client == "claude-code" and scope == "project" and isinstance(target, StdioTarget):
        print(
            f"note: {path} is the project's shared file and now holds this machine's paths; for yourself only, "
            "use the default --scope user",
            file=sys.stderr,
        )
    if isinstance(target, HttpTarget) and target.token:
        print(f"note: {path} now holds the bearer token (mode 0600); keep it out of version control", file=sys.stderr)
    return 0


def register(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the ``config`` subcommand."""
    config = commands.add_parser(
        "config",
        help="print or install the MCP config snippet for a client",
        description="Print the snippet that connects CLIENT to this Debrief install, or merge it into the "
        "client's config file with --write.",
    )
    common(config)
    config.add_argument("client", choices=CLIENTS, help="the MCP client to configure")
    config.add_argument("--http", action="store_true", help="connect to a Streamable HTTP server instead of stdio")
    config.add_argument(
        "--url", default=None, help=f"the HTTP server's MCP URL (default {DEFAULT_URL}; implies --http)"
    )
    config.add_argument(
        "--token",
        default=None,
        help="bearer token for the HTTP server (visible to other users in `ps`: prefer --token-env or --token-file)",
    )
    config.add_argument(
        "--token-env", default=None, metavar="VAR", help="read the bearer token from environment variable VAR"
    )
    config.add_argument(
        "--token-file", default=None, metavar="PATH", help="read the bearer token from the first line of PATH"
    )
    config.add_argument(
        "--write",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="merge into the client's config file (default: its standard location) after backing it up",
    )
    config.add_argument("--force", action="store_true", help="replace an existing, different 'debrief' entry")
    config.add_argument(
        "--hooks",
        action="store_true",
        help="claude-code: install the hook that adds relevant lessons to every prompt into Claude Code's "
        "settings (merged, after a backup); --write PATH for another file",
    )
    config.add_argument(
        "--record-turns",
        action="store_true",
        help="with --hooks: also record every finished turn as an ungraded attempt (Stop hook), so attempts at "
        "the same task can be compared",
    )
    config.add_argument(
        "--scope",
        choices=["project", "user"],
        default=None,
        help="claude-code: user (default: ~/.claude.json, the scope the printed `claude mcp add` uses) or project "
        "(.mcp.json here, meant to be shared); vscode: project (default: .vscode/mcp.json) or user (the profile's "
        "mcp.json); with --hooks: .claude/settings.json in this project (default) or ~/.claude/settings.json",
    )
    config.set_defaults(handler=_config)
