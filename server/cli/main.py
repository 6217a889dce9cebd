"""The ``debrief`` command line: serve, curate and (with other modules) learn and demo."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from debrief.learner.fencing import strip_controls
from debrief.server.cli.flags import settings_from_flags
from debrief.server.errors import DebriefError
from debrief.server.settings import Settings
from debrief.server.version import package_version

logger = logging.getLogger("debrief")


STDIO_BANNER = (
    "debrief serve speaks MCP on stdio and is waiting for a client on this terminal; an MCP client starts it "
    "itself: run `debrief config claude-desktop|cursor|vscode|claude-code` for the config to add "
    "(or `debrief serve --http` for a URL). Ctrl-C stops it."
)
"""The one line ``debrief serve`` prints on stderr when a person runs it on a terminal."""


def _serve(args: argparse.Namespace) -> int:
    from debrief.server.mcp.app import create_server  # heavy imports only for the command that needs them
    from debrief.server.mcp.auth import check_bind_allowed, http_auth

    settings = settings_from_flags(args)
    if args.http:
        check_bind_allowed(args.host, settings)
        server = create_server(
            settings, http_auth=http_auth(settings, args.host, args.port), hook_endpoint=settings.hooks.endpoint
        )
        server.run(transport="streamable-http", host=args.host, port=args.port, streamable_http_path="/mcp")
    else:
        if sys.stdin.isatty():
            # Started by hand: say what this is instead of waiting in silence (stdout stays protocol-only).
            print(STDIO_BANNER, file=sys.stderr, flush=True)
        create_server(settings, hook_endpoint=settings.hooks.endpoint).run()
    return 0


async def _open_store(settings: Settings) -> Any:
    from debrief.server.embedding.embedder import make_embedder
    from debrief.server.store.experience_store import ExperienceStore

    return await ExperienceStore.open(settings, make_embedder(settings))


def _experiences(args: argparse.Namespace) -> int:
    settings = settings_from_flags(args)

    async def run() -> int:
        from debrief.server.mcp.guidance import library_text
        from debrief.server.store.models import LibraryExport

        store = await _open_store(settings)
        try:
            if args.action == "list":
                export: LibraryExport = await store.export(args.namespace)
                active = [item for item in export.experiences if item.status == "active"]
                for item in active:
                    # Text stored before control characters were refused must not drive the terminal either.
                    print(f"{item.experience_id}\t{strip_controls(item.text)}")
                print(
                    f"{len(active)} active experiences in {args.namespace!r} (version {export.version})",
                    file=sys.stderr,
                )
            elif args.action == "export":
                export = await store.export(args.namespace)
                if args.format == "json":
                    text = export.model_dump_json(indent=2) + "\n"
                else:
                    text = library_text(args.namespace, export.version, await store.active(args.namespace))
                if args.output is None:
                    sys.stdout.write(text)
                else:
                    Path(args.output).write_text(text, encoding="utf-8")
            else:
                raw = sys.stdin.read() if args.input == "-" else Path(args.input).read_text(encoding="utf-8")
                data = LibraryExport.model_validate(json.loads(raw))
                change = await store.import_library(
                    args.namespace or data.namespace, data, mode=args.mode, trust_export=args.trust
                )
                if change is None:
                    print("nothing to import: the library already has all of it", file=sys.stderr)
                else:
                    print(
                        f"imported as version {change.version} ({len(change.edits)} experiences changed)",
                        file=sys.stderr,
                    )
            return 0
        finally:
            await store.aclose()

    return anyio.run(run)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``debrief``."""
    parser = argparse.ArgumentParser(prog="debrief", description="An experience memory that learns, over MCP.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    parser.add_argument("--version", action="version", version=f"debrief {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--data-dir", type=Path, default=None, help="store location (env DEBRIEF_DATA_DIR)")
        sub.add_argument("--chroma-url", default=None, help="use a Chroma server (env DEBRIEF_CHROMA_URL)")

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    common(serve)
    serve.add_argument("--http", action="store_true", help="serve Streamable HTTP at /mcp instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP host (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.set_defaults(handler=_serve)

    experiences = commands.add_parser("experiences", help="list, export or import a namespace's library")
    actions = experiences.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="print the active experiences, one per line")
    common(listing)
    listing.add_argument("--namespace", "-n", required=True)
    export = actions.add_parser("export", help="export a library as JSON, or as text for a system prompt")
    common(export)
    export.add_argument("--namespace", "-n", required=True)
    export.add_argument("--format", choices=["json", "text"], default="json")
    export.add_argument("--output", "-o", default=None, help="file to write (default stdout)")
    importing = actions.add_parser("import", help="import a JSON export")
    common(importing)
    importing.add_argument("input", help="the export file, or - for stdin")
    importing.add_argument("--namespace", "-n", default=None, help="target namespace (default: the export's)")
    importing.add_argument("--mode", choices=["merge", "replace"], default="merge")
    importing.add_argument(
        "--trust",
        action="store_true",
        help="a backup of your own: keep its sources and helpful/harmful/retrieved counts (default: the import "
        "is the source and counts start at 0)",
    )
    experiences.set_defaults(handler=_experiences)

    from debrief.server.cli.demo import register as register_demo

    register_demo(commands, common)
    from debrief.server.cli.learn import register as register_learn

    register_learn(commands, common)
    from debrief.server.cli.eval import register as register_eval

    register_eval(commands, common)
    from debrief.server.cli.prune import register as register_prune

    register_prune(commands, common)
    from debrief.server.cli.plots import register as register_runs

    register_runs(commands, common)
    from debrief.server.cli.client_config import register as register_config

    register_config(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``debrief`` console script."""
    # The embedder's small matrix products run faster on one BLAS thread than on threads that fight the
    # server's other work for 2 cores (measured: one query 13-15 ms against 36 ms). Set before numpy loads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if list(sys.argv[1:] if argv is None else argv)[:1] == ["hook"]:
        # Claude Code hooks run on every prompt: skip the parser, whose subcommands import the MCP SDK.
        from debrief.server.cli.hook import run as run_hook

        sys.exit(run_hook(list(sys.argv[2:] if argv is None else argv[1:])))
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # One line per HTTP request to Chroma or the model drowns what matters.
        for noisy in ("httpx", "httpx2", "chromadb"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        code = args.handler(args)
    except DebriefError as error:
        print(f"debrief: {error}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
