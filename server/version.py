"""The installed Debrief version, for ``debrief --version``, the MCP handshake and ``get_server_info``."""

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "debrief-mcp"


def package_version() -> str:
    """The installed ``debrief-mcp`` version (``0`` when run from a tree that was never installed)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0"
