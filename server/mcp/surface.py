"""What a client sees of the server: clean tool descriptions, lean output schemas, one resource per namespace.

``DebriefServer`` is the SDK's ``MCPServer`` with three listings shaped for clients:
- ``tools/list``: descriptions without docstring indentation, and output schemas cut to what a client or model
  reads (two levels of properties with their types and descriptions; no per-field titles, no constraints, no
  ``$defs`` copied into every tool). Results are still validated on the server against the full models.
- ``resources/list``: ``experiences://<namespace>`` for every namespace in the store, besides the template.
- after a tool call that may change a library, a resources list-changed event to ``subscriptions/listen``
  streams (2026-07-28; the SDK offers no way to advertise it on the 2025-11-25 handshake).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from mcp.server import MCPServer
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.types import ListResourcesResult, PaginatedRequestParams, Resource, Tool

from debrief.server.mcp.state import AppState

logger = logging.getLogger(__name__)

SCHEMA_DEPTH = 1
"""Levels of ``properties`` an output schema keeps: a result's fields (and the fields of the records in its lists)."""
_DROPPED_KEYS = frozenset(
    {
        "title",
        "$defs",
        "default",
        "examples",
        "maxLength",
        "minLength",
        "maximum",
        "minimum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "maxItems",
        "minItems",
        "pattern",
        "format",
    }
)
_NESTED_KEYS = frozenset({"items", "anyOf", "oneOf", "allOf", "additionalProperties", "prefixItems"})
LIBRARY_URI = "experiences://{namespace}"


def lean_schema(schema: dict[str, Any], depth: int = SCHEMA_DEPTH) -> dict[str, Any]:
    """``schema`` with ``$ref`` inlined, cut below ``depth`` levels of properties, without titles or constraints."""
    definitions: dict[str, Any] = schema.get("$defs", {})
    lean = _lean(schema, definitions, depth, frozenset(), listed=False)
    assert isinstance(lean, dict)
    return lean


def _lean(node: Any, definitions: dict[str, Any], depth: int, expanding: frozenset[str], *, listed: bool) -> Any:
    if isinstance(node, list):
        return [_lean(item, definitions, depth, expanding, listed=listed) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        if name in expanding:  # a recursive model: stop at an untyped object
            return {"type": "object"}
        rest = {key: value for key, value in node.items() if key != "$ref"}
        return _lean({**definitions.get(name, {}), **rest}, definitions, depth, expanding | {name}, listed=listed)
    lean: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            if depth > 0:
                # The records of a result's first list (ranked experiences, a run's steps) keep their fields
                # at the list's own level; lists inside them do not.
                lean[key] = {
                    name: _lean(
                        field,
                        definitions,
                        depth if _is_list(field) and not listed else depth - 1,
                        expanding,
                        listed=listed or _is_list(field),
                    )
                    for name, field in value.items()
                }
        elif key == "required":
            if depth > 0:
                lean[key] = value
        elif key in _NESTED_KEYS:
            lean[key] = _lean(value, definitions, depth, expanding, listed=listed)
        else:
            lean[key] = value
    return lean


def _is_list(node: Any) -> bool:
    options = [node, *node.get("anyOf", [])] if isinstance(node, dict) else []
    return any(isinstance(option, dict) and option.get("type") == "array" for option in options)


def clean_description(text: str | None) -> str | None:
    """A docstring as plain text: common indentation and surrounding blank lines removed."""
    return None if text is None else inspect.cleandoc(text)


class DebriefServer(MCPServer[AppState]):
    """``MCPServer`` with the listings shaped for clients (see the module docstring)."""

    async def list_tools(self) -> list[Tool]:
        """Every tool, with a clean description and a lean output schema."""
        return [
            tool.model_copy(
                update={
                    "description": clean_description(tool.description),
                    "output_schema": None if tool.output_schema is None else lean_schema(tool.output_schema),
                }
            )
            for tool in await super().list_tools()
        ]

    async def _handle_list_resources(
        self, ctx: ServerRequestContext[AppState], params: PaginatedRequestParams | None
    ) -> ListResourcesResult:
        listed = await super()._handle_list_resources(ctx, params)
        namespaces = await ctx.lifespan_context.store.namespaces()
        libraries = [
            Resource(
                uri=LIBRARY_URI.format(namespace=info.namespace),
                name=f"experiences of {info.namespace}",
                title=f"Experience library '{info.namespace}'",
                description=f"The {info.active} active experiences of namespace {info.namespace!r} (version "
                f"{info.version}) as plain text, ready for a system prompt.",
                mime_type="text/plain",
            )
            for info in namespaces
        ]
        return listed.model_copy(update={"resources": [*listed.resources, *libraries]})

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> Any:
        """Call a tool; after one that may change a library, tell the client the resource list changed."""
        result = await super().call_tool(name, arguments, context)
        tool = self._tool_manager.get_tool(name)
        read_only = tool is not None and tool.annotations is not None and tool.annotations.read_only_hint
        if context is not None and not read_only and not getattr(result, "is_error", False):
            await _notify_resources_changed(context)
        return result


async def _notify_resources_changed(context: Context[AppState, Any]) -> None:
    # Only subscriptions/listen streams (2026-07-28) advertise listChanged here; the SDK's MCPServer gives no
    # way to advertise it on the 2025-11-25 handshake, so those sessions re-list when they choose.
    try:
        await context.notify_resources_changed()
    except Exception:  # a notification nobody can carry must not fail the tool call that changed the library
        logger.debug("resources list-changed notification not sent", exc_info=True)
