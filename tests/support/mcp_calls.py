"""Calling Debrief's MCP tools from tests, and the experience texts the tool tests store."""

from __future__ import annotations

from typing import Any

from mcp import Client
from mcp.types import CallToolResult, TextContent

LESSON = "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic."
OTHER = "When an answer must be an integer, check it by substituting it back into the original statement."
THIRD = "When debugging a flaky test, first make the failure reproducible with a fixed random seed."


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured result of a tool call that must succeed."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, error_text(result)
    content: dict[str, Any] | None = result.structured_content
    assert content is not None
    return content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """The error message of a tool call that must fail."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have failed: {result.structured_content}"
    return error_text(result)


def error_text(result: CallToolResult) -> str:
    """The text blocks of a tool result, joined."""
    return " ".join(block.text for block in result.content if isinstance(block, TextContent))


async def active_texts(client: Client, namespace: str) -> list[str]:
    """The texts of a namespace's active experiences."""
    page = await call(client, "list_experiences", namespace=namespace, limit=100)
    return [item["text"] for item in page["items"]]
