"""Bearer-token auth for the Streamable HTTP server, through the SDK's own middleware."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server import MCPServer

from debrief.server.errors import InvalidInput
from debrief.server.mcp.auth import StaticTokenVerifier, check_bind_allowed, http_auth, is_loopback_host
from debrief.server.settings import HttpSettings, Settings
from tests.support.http import serving

TOKENS = "first-token-4f9a0c2e, second-token-b71d93aa"


def settings_with(tmp_path: Path, tokens: str | None, public_url: str | None = None) -> Settings:
    return Settings(
        data_dir=tmp_path,
        # The comma-separated form DEBRIEF_HTTP_TOKENS takes.
        http=HttpSettings.model_validate({"tokens": tokens or "", "public_url": public_url}),
    )


@pytest.mark.anyio
async def test_verifier_accepts_each_configured_token_and_names_it_by_position() -> None:
    verifier = StaticTokenVerifier(["alpha-token", "beta-token"])

    first = await verifier.verify_token("alpha-token")
    second = await verifier.verify_token("beta-token")

    assert first is not None and first.client_id == "debrief-token-1"
    assert second is not None and second.client_id == "debrief-token-2"
    assert "token" not in first.client_id.removeprefix("debrief-token-")


@pytest.mark.anyio
@pytest.mark.parametrize("presented", ["", "alpha", "alpha-token ", "ALPHA-TOKEN", "alpha-tokenX", "ålpha-token"])
async def test_verifier_rejects_anything_but_an_exact_token(presented: str) -> None:
    verifier = StaticTokenVerifier(["alpha-token"])

    assert await verifier.verify_token(presented) is None


def test_verifier_without_tokens_is_refused() -> None:
    with pytest.raises(InvalidInput, match="at least one token"):
        StaticTokenVerifier([])


def test_http_auth_is_off_when_no_tokens_are_configured(tmp_path: Path) -> None:
    assert http_auth(settings_with(tmp_path, None), "127.0.0.1", 8000) is None
    assert http_auth(settings_with(tmp_path, " , ,"), "127.0.0.1", 8000) is None


@pytest.mark.anyio
async def test_http_auth_splits_comma_separated_tokens_and_uses_the_public_url(tmp_path: Path) -> None:
    configured = http_auth(settings_with(tmp_path, TOKENS, "https://debrief.example.com/mcp"), "0.0.0.0", 8000)

    assert configured is not None
    verifier, auth = configured
    assert await verifier.verify_token("second-token-b71d93aa") is not None
    assert await verifier.verify_token(TOKENS) is None
    assert str(auth.resource_server_url) == "https://debrief.example.com/mcp"
    assert str(auth.issuer_url) == "https://debrief.example.com"


def test_http_auth_defaults_the_resource_to_the_bound_address(tmp_path: Path) -> None:
    configured = http_auth(settings_with(tmp_path, TOKENS), "::1", 8123)

    assert configured is not None
    assert str(configured[1].resource_server_url) == "http://[::1]:8123/mcp"


def test_http_auth_rejects_a_public_url_that_is_not_http(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="DEBRIEF_PUBLIC_URL"):
        http_auth(settings_with(tmp_path, TOKENS, "debrief.example.com/mcp"), "0.0.0.0", 8000)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_the_sdk_protected_loopback_names_may_be_served_without_tokens(tmp_path: Path, host: str) -> None:
    assert is_loopback_host(host)
    check_bind_allowed(host, settings_with(tmp_path, None))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "debrief.example.com", "127.0.0.2", "[::1]"])
def test_serving_beyond_loopback_without_tokens_is_refused_with_the_fix(tmp_path: Path, host: str) -> None:
    with pytest.raises(InvalidInput, match="DEBRIEF_HTTP_TOKENS") as raised:
        check_bind_allowed(host, settings_with(tmp_path, None))

    assert repr(host) in str(raised.value)
    check_bind_allowed(host, settings_with(tmp_path, TOKENS))


def echo_server(settings: Settings, port: int) -> MCPServer:
    configured = http_auth(settings, "127.0.0.1", port)
    assert configured is not None
    verifier, auth = configured
    server = MCPServer("auth-test", token_verifier=verifier, auth=auth)

    @server.tool()
    def echo(text: str) -> str:
        """Return the text."""
        return text

    return server


@pytest.mark.anyio
async def test_http_server_answers_401_without_a_valid_token_and_serves_with_one(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, TOKENS)
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    }
    headers = {"Accept": "application/json, text/event-stream"}

    with anyio.fail_after(30):
        async with serving(lambda port: echo_server(settings, port)) as url:
            async with httpx2.AsyncClient(timeout=10) as http:
                missing = await http.post(url, json=initialize, headers=headers)
                wrong = await http.post(url, json=initialize, headers={**headers, "Authorization": "Bearer nope"})
                not_bearer = await http.post(
                    url, json=initialize, headers={**headers, "Authorization": "Basic Zmlyc3QtdG9rZW4="}
                )
                metadata = await http.get(url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp"))

            authorised = httpx2.AsyncClient(headers={"Authorization": "Bearer second-token-b71d93aa"}, timeout=10)
            async with authorised, Client(streamable_http_client(url, http_client=authorised), mode="legacy") as client:
                tools = await client.list_tools()
                result = await client.call_tool("echo", {"text": "hello"})

    assert [missing.status_code, wrong.status_code, not_bearer.status_code] == [401, 401, 401]
    assert missing.headers["www-authenticate"].startswith("Bearer ")
    assert "resource_metadata=" in missing.headers["www-authenticate"]
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == url
    assert [tool.name for tool in tools.tools] == ["echo"]
    assert not result.is_error
    assert result.structured_content == {"result": "hello"}
