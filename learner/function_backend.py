"""A backend whose replies a Python function decides: the scripted LLM for tests (pydantic-ai's FunctionModel)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from debrief.learner.backend import ChatReply, ChatRequest, Message, ToolCall, Usage, estimate_tokens

ReplyFunction = Callable[[ChatRequest, int], str | Message | Awaitable[str | Message]]
"""Decides one choice: ``(request, choice) -> text``. ``choice`` counts from 0 within the request.

In agent mode it may return an assistant :class:`Message` carrying ``tool_calls`` instead of text.

A deterministic script can seed its randomness with ``(request.seed or 0) + choice``: a group asked for as
``n = G`` with seed ``S`` and the same group asked for as G single requests with seeds ``S, S+1, ...`` then get
the same attempts.
"""


@dataclass
class FunctionBackend:
    """A :class:`~debrief.learner.backend.ChatBackend` calling ``function`` for every choice, recording every request.

    ``honours_n=False`` makes it answer one choice whatever ``n`` asks for, like Ollama or llama.cpp.
    Usage is estimated from text length (four characters a token); the prompt is billed once per request.
    """

    function: ReplyFunction
    model: str = "function"
    honours_n: bool = True
    calls: list[ChatRequest] = field(default_factory=list)

    async def complete(self, request: ChatRequest) -> ChatReply:
        """Record ``request`` and answer it with ``function``."""
        self.calls.append(request)
        count = request.n if self.honours_n else 1
        texts: list[str] = []
        tool_calls: list[tuple[ToolCall, ...]] = []
        for choice in range(count):
            text = self.function(request, choice)
            if inspect.isawaitable(text):
                text = await text
            if isinstance(text, Message):
                tool_calls.append(text.tool_calls)
                text = text.content
            else:
                tool_calls.append(())
            texts.append(text)
        prompt = sum(estimate_tokens(message.content) for message in request.messages)
        usage = Usage(
            prompt_tokens=prompt,
            completion_tokens=sum(estimate_tokens(text) for text in texts),
            requests=1,
        )
        calls = tuple(tool_calls) if any(tool_calls) else ()
        return ChatReply(texts=tuple(texts), usage=usage, model=self.model, tool_calls=calls)

    def calls_for(self, stage: str) -> list[ChatRequest]:
        """The recorded requests of one stage."""
        return [call for call in self.calls if call.stage == stage]
