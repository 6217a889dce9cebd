"""The tool seam of agent mode: what a policy may call and what comes back."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""The tool names the OpenAI-compatible tools API accepts."""


@dataclass(frozen=True, kw_only=True)
class ToolSpec:
    """One tool as the model is offered it: a name, what it does, and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class ToolResult:
    """What one tool call returned: text for the model, and whether it is an error."""

    text: str
    is_error: bool = False


class Tools(Protocol):
    """A set of tools: the built-in code tool, the tools of MCP servers, or a test's own."""

    async def list_tools(self) -> Sequence[ToolSpec]:
        """The tools available now (a server that died and could not be restarted drops out)."""
        ...

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Call ``name``; failures come back as an error result, never as an exception, and never hang."""
        ...


def valid_tool_name(name: str) -> bool:
    """Whether the OpenAI-compatible tools API accepts ``name``."""
    return _TOOL_NAME.match(name) is not None


class CombinedTools:
    """Several tool sets offered as one. A name two sets share goes to the first set that lists it."""

    def __init__(self, *parts: Tools) -> None:
        self.parts = parts

    async def list_tools(self) -> Sequence[ToolSpec]:
        """Every part's tools, first listing of a name wins."""
        seen: dict[str, ToolSpec] = {}
        for part in self.parts:
            for spec in await part.list_tools():
                seen.setdefault(spec.name, spec)
        return list(seen.values())

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Send the call to the first part that lists ``name``."""
        for part in self.parts:
            if any(spec.name == name for spec in await part.list_tools()):
                return await part.call(name, arguments)
        return ToolResult(text=f"unknown tool {name!r}", is_error=True)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters (head and tail kept), the cut marked, or unchanged if it fits."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-(limit // 3) :]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters cut ...]\n{tail}"
