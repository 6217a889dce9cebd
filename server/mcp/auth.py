"""Bearer-token auth for ``debrief serve --http``: static tokens from ``DEBRIEF_HTTP_TOKENS``, checked by the SDK."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings

from debrief.server.errors import InvalidInput
from debrief.server.mcp.access import FULL, Grant, load_tokens_file
from debrief.server.settings import Settings

TOKEN_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class StaticTokenVerifier(TokenVerifier):
    """Accepts exactly the configured bearer tokens, compared in constant time."""

    def __init__(self, tokens: Sequence[str | tuple[str, Grant]]) -> None:
        if not tokens:
            raise InvalidInput(f"a token verifier needs at least one token; {TOKEN_HINT}")
        # A bare token has full access; a (token, grant) pair is scoped (see debrief.server.mcp.access).
        pairs = [(item, FULL) if isinstance(item, str) else item for item in tokens]
        self._tokens = tuple(token.encode("utf-8") for token, _ in pairs)
        self._grants = tuple(grant for _, grant in pairs)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The access the token grants, or None when it is not one of the configured tokens."""
        presented = token.encode("utf-8")
        matched: int | None = None
        # Every configured token is compared, so the time taken does not say which one (or how many) matched.
        for index, expected in enumerate(self._tokens):
            if hmac.compare_digest(presented, expected) and matched is None:
                matched = index
        if matched is None:
            return None
        # The client id names the token by position, never by value: it ends up in logs and session ownership.
        return AccessToken(token=token, client_id=f"debrief-token-{matched + 1}", scopes=self._grants[matched].scopes())


def configured_tokens(settings: Settings) -> list[str]:
    """The bearer tokens in ``settings.http.tokens`` (the settings drop blanks and surrounding spaces)."""
    return [token.get_secret_value() for token in settings.http.tokens]


def configured_grants(settings: Settings) -> list[tuple[str, Grant]]:
    """Every accepted token with its grant: ``DEBRIEF_HTTP_TOKENS`` (full access), then the tokens file's."""
    grants = [(token, FULL) for token in configured_tokens(settings)]
    if settings.http.tokens_file is not None:
        grants += load_tokens_file(settings.http.tokens_file)
    return grants


PROTECTED_LOOPBACK = ("127.0.0.1", "localhost", "::1")
"""The host names for which the SDK turns on Host/Origin (DNS-rebinding) protection by itself."""


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resource_url(settings: Settings, host: str, port: int) -> str:
    """The URL clients reach the MCP endpoint at: ``settings.http.public_url``, else ``http://HOST:PORT/mcp``."""
    if settings.http.public_url:
        return settings.http.public_url
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/mcp"


def http_auth(settings: Settings, host: str, port: int) -> tuple[TokenVerifier, AuthSettings] | None:
    """The verifier and auth settings to pass to ``MCPServer``, or None when no tokens are configured."""
    tokens = configured_grants(settings)
    if not tokens:
        return None
    resource = resource_url(settings, host, port)
    parts = urlsplit(resource)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(
            f"DEBRIEF_PUBLIC_URL must be an http(s) URL such as https://debrief.example.com/mcp; got {resource!r}"
        )
    # AuthSettings insists on an issuer. Tokens here are handed out by the operator, not by an OAuth server, so
    # the issuer named in the protected-resource metadata is this server's own origin.
    auth = AuthSettings(
        issuer_url=f"{parts.scheme}://{parts.netloc}",  # type: ignore[arg-type]  # pydantic parses the string
        resource_server_url=resource,  # type: ignore[arg-type]
        # The verifier itself decides which tokens belong to this server; static tokens carry no audience.
        validate_token_resource=False,
    )
    return StaticTokenVerifier(tokens), auth


def check_bind_allowed(host: str, settings: Settings) -> None:
    """Refuse to serve HTTP without bearer tokens anywhere but the SDK-protected loopback names.

    Other loopback addresses (``127.0.0.2``, ``[::1]``) get no Host/Origin check from the SDK, so a web page could
    reach them through DNS rebinding: they need tokens like any other address.
    """
    if host in PROTECTED_LOOPBACK or configured_grants(settings):
        return
    raise InvalidInput(
        f"refusing to serve on {host!r} without authentication: anyone who can reach that address could read and "
        "rewrite the experience library. Set DEBRIEF_HTTP_TOKENS to one or more comma-separated bearer tokens "
        f"({TOKEN_HINT}) or DEBRIEF_HTTP_TOKENS_FILE to a file of scoped tokens, or serve on 127.0.0.1, localhost "
        "or ::1 (the names that get Host/Origin checks)"
    )
