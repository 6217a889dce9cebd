"""One small request to a model endpoint before a run, so a wrong URL, key or model stops it at once."""

from __future__ import annotations

import openai

from debrief.server.errors import DebriefError

CHECK_TIMEOUT_SECONDS = 15.0
KEY_HINT = "set DEBRIEF_MODEL_API_KEY or OPENAI_API_KEY (or pass --api-key)"
URL_HINT = "check DEBRIEF_MODEL_BASE_URL (or --base-url; it usually ends in /v1) and that the server is running"
MODEL_HINT = "set DEBRIEF_MODEL (or --model) to one the endpoint offers"


class EndpointUnavailable(DebriefError):
    """The model endpoint cannot be reached, refuses the key, or does not offer the model."""


async def check_endpoint(
    *, base_url: str, api_key: str, models: list[str], timeout: float = CHECK_TIMEOUT_SECONDS
) -> None:
    """Make sure ``base_url`` answers with this key and offers every model in ``models``.

    Asks ``/models`` first (one request, no tokens). Where ``/models`` is not offered or does not list a model
    (llama.cpp and some proxies accept any name), a one-token chat completion decides instead.

    Raises:
        EndpointUnavailable: with the cause and the fix.
    """
    async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout) as client:
        offered: list[str] | None
        try:
            offered = [model.id async for model in client.models.list()]
        except openai.NotFoundError:
            offered = None
        except openai.APIError as error:
            raise _explained(error, base_url, "/models") from error
        for model in dict.fromkeys(models):
            if offered is not None and model in offered:
                continue
            try:
                await client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "Say OK."}], max_tokens=1
                )
            except (openai.NotFoundError, openai.BadRequestError) as error:
                listed = ", ".join(repr(name) for name in offered[:20]) if offered else "no list of models"
                raise EndpointUnavailable(
                    f"{error.status_code} from {base_url} for model {model!r}: {_message(error)}; the endpoint "
                    f"offers {listed}: {MODEL_HINT}"
                ) from error
            except openai.APIError as error:
                raise _explained(error, base_url, "/chat/completions") from error


def _explained(error: openai.APIError, base_url: str, path: str) -> EndpointUnavailable:
    if isinstance(error, openai.APITimeoutError):
        return EndpointUnavailable(f"cannot reach {base_url}: no answer to {path} within the time allowed; {URL_HINT}")
    if isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        return EndpointUnavailable(f"cannot reach {base_url}: {type(cause).__name__}: {cause}; {URL_HINT}")
    if isinstance(error, openai.AuthenticationError):
        return EndpointUnavailable(f"401 from {base_url}: the API key was refused ({_message(error)}); {KEY_HINT}")
    if isinstance(error, openai.PermissionDeniedError):
        return EndpointUnavailable(
            f"403 from {base_url}: this key may not use the endpoint ({_message(error)}); {KEY_HINT}"
        )
    if isinstance(error, openai.APIStatusError):
        return EndpointUnavailable(f"HTTP {error.status_code} from {base_url}{path}: {_message(error)}; {URL_HINT}")
    return EndpointUnavailable(f"the endpoint {base_url} failed: {error.message}; {URL_HINT}")


def _message(error: openai.APIError) -> str:
    text = " ".join(str(error.message).split())
    return text if len(text) <= 200 else text[:200] + "…"
