"""The chat backend seam: what the learner sends to a model and what comes back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from debrief.learner.tools import Tools, ToolSpec

Role = Literal["policy", "reflect", "judge"]
"""Who answers: the policy makes attempts, reflect writes summaries and operations, judge grades."""

Stage = Literal["rollout", "summary", "advantage", "consolidation", "judge", "validation"]
"""The step of the method a call belongs to; token accounting is kept per stage."""

STAGES: tuple[Stage, ...] = ("rollout", "summary", "advantage", "consolidation", "judge", "validation")


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """One tool call a model asked for (agent mode). ``arguments`` is the JSON text the model sent, unparsed."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, kw_only=True)
class Message:
    """One chat message. In agent mode an assistant message may carry tool calls, and a tool message answers one."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResponseFormat:
    """A structured-output request: a JSON schema, or a JSON object constrained by a schema."""

    kind: Literal["json_schema", "json_object"]
    name: str
    schema: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ChatRequest:
    """One chat completion request. ``n`` asks for that many choices in one request.

    ``seed`` is passed to servers that honour it, and lets scripted backends vary their samples reproducibly.
    """

    role: Role
    stage: Stage
    messages: tuple[Message, ...]
    temperature: float
    n: int = 1
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    response_format: ResponseFormat | None = None
    tools: tuple[ToolSpec, ...] = ()
    """Tools offered to the model (agent mode); empty for a plain completion."""


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Tokens one or more calls used. ``cached_tokens`` is the part of the prompt the server had cached."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            requests=self.requests + other.requests,
        )

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, kw_only=True)
class ChatReply:
    """The choices a backend returned (possibly fewer than asked for), with usage and the model that answered."""

    texts: tuple[str, ...]
    usage: Usage
    model: str
    tool_calls: tuple[tuple[ToolCall, ...], ...] = ()
    """Per choice, the tools it called (agent mode); empty when no choice called any."""


class ChatBackend(Protocol):
    """Anything that completes chats: the OpenAI-compatible adapter, a scripted test backend, ..."""

    async def complete(self, request: ChatRequest) -> ChatReply:
        """Complete ``request``; raise :class:`debrief.learner.errors.BackendError` when it cannot."""
        ...


@dataclass(frozen=True, kw_only=True)
class Backends:
    """The backend per role. Reflection and judging default to the policy's backend.

    ``tools`` are what the policy may call in agent mode (the run owns them: started before, stopped after).
    """

    policy: ChatBackend
    reflect: ChatBackend | None = None
    judge: ChatBackend | None = None
    tools: Tools | None = None

    def for_role(self, role: Role) -> ChatBackend:
        """The backend that serves ``role``."""
        if role == "reflect" and self.reflect is not None:
            return self.reflect
        if role == "judge" and self.judge is not None:
            return self.judge
        return self.policy


def estimate_tokens(text: str) -> int:
    """A rough token count (four characters a token) for backends that report no usage."""
    return max(1, (len(text) + 3) // 4)
