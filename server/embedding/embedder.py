"""Text embedders: the seam the store uses to turn text into unit vectors."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np
import openai
from openai.types import CreateEmbeddingResponse

from debrief.server.embedding.minilm import MiniLMEmbedder
from debrief.server.errors import DebriefError, InvalidInput, ModelRequestsRefused
from debrief.server.settings import Settings


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    @property
    def name(self) -> str:
        """Identifies the model, so a store never mixes vectors from two embedders."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order."""
        ...


class EmbeddingFailed(DebriefError):
    """An embedding endpoint failed or replied with vectors that cannot be used."""


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, Ollama, llama.cpp server, ...)."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        dimension: int | None = None,
        batch_size: int = 256,
        timeout: float = 60.0,
        max_retries: int = 2,
    ) -> None:
        """Talk to ``base_url`` (default: OpenAI's) as ``model``; nothing is sent until it is needed.

        Args:
            model: The embedding model name at the endpoint.
            base_url: The endpoint's base URL, ending in ``/v1``; ``None`` means OpenAI.
            api_key: The bearer token; local servers that ignore it may go without.
            dimension: The vector length, when known in advance; replies must match it.
            batch_size: Most texts sent in one request.
            timeout: Seconds allowed per request.
            max_retries: Retries with backoff on connection errors, 408, 409, 429 and 5xx.
        """
        if batch_size < 1:
            raise InvalidInput(f"batch_size must be at least 1, got {batch_size!r}")
        if dimension is not None and dimension < 1:
            raise InvalidInput(f"dimension must be at least 1, got {dimension!r}")
        self._model = model
        self._dimension = dimension
        self._batch_size = batch_size
        # openai refuses to build a client without a key; servers that need none ignore this one.
        self._client_options: dict[str, Any] = {
            "base_url": base_url,
            "api_key": api_key or "unused",
            "timeout": timeout,
            "max_retries": max_retries,
        }
        self._client = openai.AsyncOpenAI(**self._client_options)

    @property
    def name(self) -> str:
        """``openai:<model>``."""
        return f"openai:{self._model}"

    @property
    def dimension(self) -> int:
        """The vector length: as given, else learned from the first reply.

        Asked before any reply, it embeds one probe text with a blocking request (once), because the
        store needs the dimension when it opens, before anything is embedded.
        """
        if self._dimension is None:
            with openai.OpenAI(**self._client_options) as client:
                with self._translated_errors():
                    reply = client.embeddings.create(
                        model=self._model, input=["dimension probe"], encoding_format="float"
                    )
                self._vectors(reply, 1)
        assert self._dimension is not None  # set by _vectors
        return self._dimension

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order, in requests of at most ``batch_size`` texts."""
        if isinstance(texts, str):
            raise InvalidInput(f"embed takes a sequence of texts, not a single string: {texts[:60]!r}")
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            with self._translated_errors():
                # "float": the SDK's default, base64, is not implemented by every compatible server.
                reply = await self._client.embeddings.create(model=self._model, input=batch, encoding_format="float")
            vectors.extend(self._vectors(reply, len(batch)))
        return vectors

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        where = str(self._client.base_url)
        try:
            yield
        except openai.APIStatusError as error:
            raise EmbeddingFailed(
                f"The embedding endpoint {where!r} answered HTTP {error.status_code} for model {self._model!r}: "
                f"{error.message!r}; check the URL, the model name and the API key"
            ) from error
        except openai.APIError as error:
            raise EmbeddingFailed(
                f"Could not get embeddings from {where!r} for model {self._model!r}: {error.message!r}"
            ) from error

    def _vectors(self, reply: CreateEmbeddingResponse, count: int) -> list[list[float]]:
        """The reply's vectors in input order, checked and scaled to unit length."""
        items = sorted(reply.data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(count)):
            raise EmbeddingFailed(
                f"Model {self._model!r} returned vectors for indices {[item.index for item in items]!r} "
                f"of {count!r} inputs"
            )
        lengths = sorted({len(item.embedding) for item in items})
        if len(lengths) != 1:
            raise EmbeddingFailed(f"Model {self._model!r} returned vectors of different lengths: {lengths!r}")
        if self._dimension is None:
            self._dimension = lengths[0]
        elif lengths[0] != self._dimension:
            raise EmbeddingFailed(
                f"Model {self._model!r} returned vectors of length {lengths[0]!r}, expected {self._dimension!r}"
            )
        matrix = np.asarray([item.embedding for item in items], dtype=np.float64)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0.0):
            raise EmbeddingFailed(f"Model {self._model!r} returned a zero or non-finite vector")
        result: list[list[float]] = (matrix / norms).tolist()
        return result

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()


def make_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings.embedding.kind`` names: ``local`` loads MiniLM now, ``openai`` connects lazily."""
    if settings.embedding.kind == "openai":
        if settings.models.refuses(settings.embedding.base_url):
            raise ModelRequestsRefused(str(settings.embedding.base_url), "embedding")
        api_key = settings.embedding.api_key
        return OpenAIEmbedder(
            model=settings.embedding.model,
            base_url=settings.embedding.base_url,
            api_key=None if api_key is None else api_key.get_secret_value(),
        )
    return MiniLMEmbedder()
