"""Chat backends for learning: the configured OpenAI-compatible endpoint, or the embedded local model."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio

from debrief.learner.backend import Backends
from debrief.learner.config import RunConfig
from debrief.learner.openai_backend import OpenAIBackend
from debrief.server.backends.endpoint_check import check_endpoint
from debrief.server.errors import InvalidInput, ModelRequestsRefused
from debrief.server.settings import Settings


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where a model answers."""

    base_url: str
    api_key: str
    model: str
    reflect_model: str
    local: bool


class ModelProvider:
    """Hands out backends; starts the embedded local model once, on first need, and stops it on close."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stack = AsyncExitStack()
        self._lock = anyio.Lock()
        self._local: Endpoint | None = None
        self._backends: dict[tuple[str, str], OpenAIBackend] = {}
        self._checked: set[tuple[str, str, str]] = set()

    @property
    def configured(self) -> bool:
        """Whether an external endpoint is configured (else the embedded local model is used)."""
        return self._settings.models.base_url is not None

    def choose_model(self, requested: str | None) -> str | None:
        """The model a client asked for, if the allow-list permits it; ``None`` means the default."""
        if requested is None:
            return None
        allowed = list(self._settings.models.allowed)
        if self._settings.models.name is not None:
            allowed = [self._settings.models.name, *allowed]
        if requested not in allowed:
            listed = ", ".join(repr(name) for name in allowed) or "none (the server's default model only)"
            raise InvalidInput(f"model {requested!r} is not allowed here; allowed: {listed}")
        return requested

    async def endpoint(self, model: str | None = None) -> Endpoint:
        """The endpoint to use for ``model`` (``None``: the configured default)."""
        settings = self._settings
        models = settings.models
        if models.base_url is not None:
            name = model or models.name
            if models.refuses(models.base_url):
                raise ModelRequestsRefused(models.base_url, "model")
            if name is None:
                raise InvalidInput("DEBRIEF_MODEL is not set: name the model to use at DEBRIEF_MODEL_BASE_URL")
            key = (models.api_key.get_secret_value() if models.api_key else None) or "not-needed"
            return Endpoint(
                base_url=models.base_url,
                api_key=key,
                model=name,
                reflect_model=models.reflect_name or name,
                local=False,
            )
        async with self._lock:
            if self._local is None:
                from debrief.server.backends.local_model import LocalModelServer  # only when no endpoint is set

                local = await self._stack.enter_async_context(
                    LocalModelServer.start(models.local_path, log_path=settings.data_dir / "local-model.log")
                )
                self._local = Endpoint(
                    base_url=local.base_url,
                    api_key=local.api_key,
                    model=local.model,
                    reflect_model=local.model,
                    local=True,
                )
            return self._local

    async def backends(self, model: str | None = None) -> tuple[Backends, Endpoint]:
        """Policy and reflection backends for ``model``, sharing HTTP connections across runs."""
        endpoint = await self.endpoint(model)
        await self.check(endpoint)
        policy = self._backend(endpoint, endpoint.model)
        reflect = (
            policy if endpoint.reflect_model == endpoint.model else self._backend(endpoint, endpoint.reflect_model)
        )
        return Backends(policy=policy, reflect=reflect), endpoint

    async def check(self, endpoint: Endpoint) -> None:
        """Send one small request to an external endpoint (once per URL and models) before any work starts.

        Raises ``EndpointUnavailable`` naming the cause and the fix for a wrong URL, key or model.
        """
        key = (endpoint.base_url, endpoint.model, endpoint.reflect_model)
        if endpoint.local or key in self._checked:
            return
        await check_endpoint(
            base_url=endpoint.base_url, api_key=endpoint.api_key, models=[endpoint.model, endpoint.reflect_model]
        )
        self._checked.add(key)

    def _backend(self, endpoint: Endpoint, model: str) -> OpenAIBackend:
        key = (endpoint.base_url, model)
        if key not in self._backends:
            runs = self._settings.runs
            self._backends[key] = OpenAIBackend(
                model=model,
                base_url=endpoint.base_url,
                api_key=endpoint.api_key,
                # the run's Caller enforces the request timeout; the HTTP one is a backstop just beyond it
                timeout=runs.request_timeout + 5.0,
                max_connections=runs.concurrency or RunConfig.model_fields["concurrency"].default,
            )
        return self._backends[key]

    async def aclose(self) -> None:
        """Close HTTP clients and stop the local model if it was started."""
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()
        await self._stack.aclose()
        self._local = None
