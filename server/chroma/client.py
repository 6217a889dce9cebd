"""Opening the Chroma client the settings ask for, and closing it cleanly.

- ``chroma_url`` set: an ``HttpClient`` to that server.
- ``chroma_mode="in-process"``: a ``PersistentClient`` on ``<data_dir>/chroma``, with the data dir's users
  lock held exclusive so no other process opens it (Chroma supports one process per directory).
- ``chroma_mode="shared"`` (default): an ``HttpClient`` to the data dir's shared ``chroma run`` server,
  see :mod:`debrief.server.chroma.host`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread

from debrief.server.chroma.host import ChromaHost, in_use_message, users_lock
from debrief.server.chroma.locks import FileLock
from debrief.server.errors import StoreUnavailable
from debrief.server.settings import Settings


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False)


def _http_client(url: str) -> Any:
    import chromadb

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreUnavailable(f"chroma_url {url!r} is not valid: use a URL such as 'http://127.0.0.1:8001'")
    port = parts.port or (443 if parts.scheme == "https" else 8000)
    try:
        return chromadb.HttpClient(
            host=parts.hostname, port=port, ssl=parts.scheme == "https", settings=_chroma_settings()
        )
    except ValueError as error:  # chromadb's way of saying the server did not answer
        raise StoreUnavailable(f"could not reach the Chroma server at {url!r}: {error}; check that it runs") from None


def close_client(client: Any) -> None:
    """Close a Chroma client, including the HTTP sessions chromadb leaves open."""
    from chromadb.api.shared_system_client import SharedSystemClient

    owners = [client, getattr(client, "_admin_client", None)]
    servers = [(getattr(o, "_server", None), getattr(o, "_identifier", None)) for o in owners if o is not None]
    client.close()
    # chromadb's HTTP API objects (one for the client, one for its admin client) keep httpx sessions that
    # close() leaves open; close each once no client of its system is left in this process.
    for server, identifier in servers:
        session = getattr(server, "_session", None)
        if session is not None and identifier not in SharedSystemClient._identifier_to_system:
            session.close()


@dataclass
class ChromaConnection:
    """A Chroma client with whatever keeps it valid (a shared host attachment, or the in-process lock)."""

    client: Any
    where: str
    host: ChromaHost | None = None
    guard: FileLock | None = None

    async def revive(self) -> bool:
        """After a failed call on the shared host: restart it if it died; True when this client can go on."""
        return self.host is not None and await self.host.revive()

    async def aclose(self) -> None:
        """Close the client, then detach from the shared host or drop the in-process lock."""
        try:
            await anyio.to_thread.run_sync(close_client, self.client)
        finally:
            if self.host is not None:
                await self.host.detach()
            if self.guard is not None:
                self.guard.release()


async def connect(settings: Settings) -> ChromaConnection:
    """Open the client for ``settings``; ``StoreUnavailable`` says why when that is impossible."""
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if settings.chroma_url:
        url = settings.chroma_url
        return ChromaConnection(client=await anyio.to_thread.run_sync(_http_client, url), where=repr(url))
    if settings.chroma_mode == "in-process":
        guard = users_lock(data_dir)
        if not guard.acquire(exclusive=True, blocking=False):
            guard.release()
            raise StoreUnavailable(in_use_message(data_dir, "in-process"))
        path = data_dir / "chroma"
        try:
            import chromadb

            client = await anyio.to_thread.run_sync(
                lambda: chromadb.PersistentClient(str(path), settings=_chroma_settings())
            )
        except BaseException:
            guard.release()
            raise
        return ChromaConnection(client=client, where=repr(str(path)), guard=guard)
    host = await ChromaHost.attach(data_dir)
    try:
        client = await anyio.to_thread.run_sync(_http_client, host.url)
    except BaseException:
        await host.detach()
        raise
    return ChromaConnection(client=client, where=f"{host.url!r} (shared host of {str(data_dir)!r})", host=host)
