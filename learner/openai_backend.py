"""A ChatBackend for any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, Ollama)."""

from __future__ import annotations

import logging
import random
import re
from typing import Any

import anyio
import httpx2
import openai

from debrief.learner.backend import ChatReply, ChatRequest, Message, ToolCall, Usage, estimate_tokens
from debrief.learner.errors import BackendError, ResponseFormatRejected

logger = logging.getLogger(__name__)

_NAMES_FORMAT = re.compile(r"response_format|json_schema|json_object|structured output", re.IGNORECASE)
_SAYS_UNSUPPORTED = re.compile(
    r"not supported|unsupported|not implemented|does not support|input should be|not allowed|unknown|invalid",
    re.IGNORECASE,
)


def format_refused(status: int, message: str) -> bool:
    """Whether an error clearly says the endpoint refuses structured output (never a bare 5xx).

    Clear signals: a 400/422 naming ``response_format``/``json_schema``, or any status whose message names the
    format and says it is unsupported or invalid (llama.cpp's server answers ``json_schema`` with a 500 whose
    message is the request validation error naming ``response_format``).
    """
    if not _NAMES_FORMAT.search(message):
        return False
    return status in (400, 422) or _SAYS_UNSUPPORTED.search(message) is not None


def _retry_after(error: openai.APIStatusError) -> float | None:
    header: str | None = error.response.headers.get("retry-after")
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


class OpenAIBackend:
    """Chat completions over ``openai.AsyncOpenAI``; failures are classified so the caller can act on them.

    By default it sends each request once: :class:`debrief.learner.calls.Caller` retries transient failures
    (408/409/429/5xx, timeouts, connection errors) in every stage and adapts its concurrency to 429/503, so it
    must see them. Set ``max_retries`` to use the adapter on its own with its own backoff. A request whose
    ``response_format`` the endpoint clearly refuses (see :func:`format_refused`) raises
    :class:`ResponseFormatRejected` at once; a transient failure never does. The connection pool keeps
    ``max_connections`` connections alive, sized for the run's concurrency.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 0,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        max_connections: int = 128,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.model = model
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        if http_client is None:
            limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
            http_client = httpx2.AsyncClient(limits=limits, timeout=timeout)
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "not-needed",
            timeout=timeout,
            max_retries=0,
            http_client=http_client,
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def __aenter__(self) -> OpenAIBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [_wire_message(message) for message in request.messages],
            "temperature": request.temperature,
        }
        if request.tools:  # agent mode (issue 13)
            arguments["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": spec.name,
                        "description": spec.description,
                        "parameters": dict(spec.parameters),
                    },
                }
                for spec in request.tools
            ]
        if request.n > 1:
            arguments["n"] = request.n
        if request.max_tokens is not None:
            arguments["max_tokens"] = request.max_tokens
        if request.top_p is not None:
            arguments["top_p"] = request.top_p
        if request.seed is not None:
            arguments["seed"] = request.seed
        response_format = request.response_format
        if response_format is not None and response_format.kind == "json_schema":
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": response_format.name, "schema": response_format.schema, "strict": False},
            }
        elif response_format is not None:
            arguments["response_format"] = {"type": "json_object", "schema": response_format.schema}
        return arguments

    def _error(self, request: ChatRequest, error: openai.APIError) -> BackendError:
        """``error`` as a classified :class:`BackendError`."""
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            if request.response_format is not None and format_refused(status, error.message):
                return ResponseFormatRejected(
                    f"{self.model!r} refused response_format {request.response_format.kind!r} "
                    f"with HTTP {status}: {error.message}",
                    status=status,
                )
            return BackendError(
                f"{self.model!r} answered HTTP {status}: {error.message}",
                status=status,
                retry_after=_retry_after(error),
            )
        if isinstance(error, openai.APITimeoutError):
            return BackendError(f"{self.model!r} timed out", transient=True)
        return BackendError(f"{self.model!r} could not be reached: {error.message}", transient=True)

    async def complete(self, request: ChatRequest) -> ChatReply:
        """Send ``request`` (retrying transient failures ``max_retries`` times); raise a classified error."""
        arguments = self._arguments(request)
        attempt = 0
        while True:
            try:
                completion = await self._client.chat.completions.create(**arguments)
            except (openai.APIStatusError, openai.APIConnectionError) as raw:
                error = self._error(request, raw)
                if not error.transient or attempt >= self.max_retries:
                    if attempt:
                        error.args = (f"{error} (after {attempt + 1} attempts)",)
                    raise error from raw
                delay = float(min(self.backoff_max, self.backoff * 2**attempt) * (0.5 + random.random() / 2))
                if error.retry_after is not None and 0 <= error.retry_after <= self.backoff_max:
                    delay = error.retry_after
                attempt += 1
                logger.info("%s %s failed (%s); retry %d in %.2fs", self.model, request.stage, error, attempt, delay)
                await anyio.sleep(delay)
                continue
            return self._reply(request, completion)

    def _reply(self, request: ChatRequest, completion: Any) -> ChatReply:
        texts = tuple(choice.message.content or "" for choice in completion.choices)
        called = tuple(_tool_calls(choice.message) for choice in completion.choices)
        usage = completion.usage
        if usage is None:
            counted = Usage(
                prompt_tokens=sum(estimate_tokens(message.content) for message in request.messages),
                completion_tokens=sum(estimate_tokens(text) for text in texts),
                requests=1,
            )
        else:
            details = usage.prompt_tokens_details
            counted = Usage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cached_tokens=(details.cached_tokens or 0) if details is not None else 0,
                requests=1,
            )
        return ChatReply(
            texts=texts,
            usage=counted,
            model=str(completion.model or self.model),
            tool_calls=called if any(called) else (),
        )


def _wire_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = [
            {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def _tool_calls(message: Any) -> tuple[ToolCall, ...]:
    return tuple(
        ToolCall(call_id=call.id, name=call.function.name, arguments=call.function.arguments or "{}")
        for call in message.tool_calls or ()
        if getattr(call, "function", None) is not None
    )
