"""A ChatBackend for any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, Ollama)."""

from __future__ import annotations

import logging
import random
from typing import Any

import anyio
import httpx2
import openai

from debrief.learner.backend import ChatReply, ChatRequest, Usage, estimate_tokens
from debrief.learner.errors import BackendError, ResponseFormatRejected

logger = logging.getLogger(__name__)

_RETRIED_STATUSES = frozenset({408, 409, 429})
_FORMAT_REFUSALS = frozenset({400, 422, 500, 501})


class OpenAIBackend:
    """Chat completions over ``openai.AsyncOpenAI``, with its own retries so backoff and fallbacks are explicit.

    Retries 408/409/429/5xx, timeouts and connection errors with exponential backoff (honouring a short
    ``Retry-After``). A request carrying a ``response_format`` that fails with 400/422/500/501 is not retried but
    raises :class:`ResponseFormatRejected` at once, so the caller can step down to a weaker structured mode
    (llama.cpp's server answers ``json_schema`` with a 500).
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.model = model
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
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
            "messages": [{"role": message.role, "content": message.content} for message in request.messages],
            "temperature": request.temperature,
        }
        if request.n > 1:
            arguments["n"] = request.n
        if request.max_tokens is not None:
            arguments["max_tokens"] = request.max_tokens
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

    def _delay(self, attempt: int, error: openai.APIError) -> float:
        delay: float = min(self.backoff_max, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
        if isinstance(error, openai.APIStatusError):
            header: str | None = error.response.headers.get("retry-after")
            try:
                after: float | None = float(header) if header is not None else None
            except ValueError:
                after = None
            if after is not None and 0 <= after <= self.backoff_max:
                delay = after
        return delay

    async def complete(self, request: ChatRequest) -> ChatReply:
        """Send ``request``; retry what is worth retrying; raise :class:`BackendError` when out of retries."""
        arguments = self._arguments(request)
        for attempt in range(self.max_retries + 1):
            try:
                completion = await self._client.chat.completions.create(**arguments)
            except openai.APIStatusError as error:
                status = error.status_code
                if request.response_format is not None and status in _FORMAT_REFUSALS:
                    raise ResponseFormatRejected(
                        f"{self.model!r} refused response_format {request.response_format.kind!r} "
                        f"with HTTP {status}: {error.message}",
                        status=status,
                    ) from error
                if status not in _RETRIED_STATUSES and status < 500:
                    raise BackendError(
                        f"{self.model!r} answered HTTP {status}: {error.message}", status=status
                    ) from error
                last: openai.APIError = error
            except openai.APIConnectionError as error:
                last = error
            else:
                return self._reply(request, completion)
            if attempt == self.max_retries:
                break
            delay = self._delay(attempt, last)
            logger.info("%s %s failed (%s); retry %d in %.2fs", self.model, request.stage, last, attempt + 1, delay)
            await anyio.sleep(delay)
        last_status = last.status_code if isinstance(last, openai.APIStatusError) else None
        kind = "timed out" if isinstance(last, openai.APITimeoutError) else f"failed: {last.message}"
        raise BackendError(
            f"{self.model!r} {kind} after {self.max_retries + 1} attempt(s)", status=last_status
        ) from last

    def _reply(self, request: ChatRequest, completion: Any) -> ChatReply:
        texts = tuple(choice.message.content or "" for choice in completion.choices)
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
        return ChatReply(texts=texts, usage=counted, model=str(completion.model or self.model))
