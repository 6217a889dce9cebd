"""Structured replies: ``json_schema``, then ``json_object`` with a schema, then plain prompting; always validated."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from debrief.learner.backend import ChatRequest, Message, ResponseFormat
from debrief.learner.calls import Caller, StructuredMode
from debrief.learner.errors import InvalidReply, ResponseFormatRejected

T = TypeVar("T", bound=BaseModel)

MODES: tuple[StructuredMode, ...] = ("json_schema", "json_object", "plain")
_ERROR_CHARS = 1500


def parse_reply(text: str, output: type[T]) -> T:
    """Validate ``text`` as ``output``: the whole text, else the first JSON object inside it that validates.

    Models wrap JSON in fences or prose; every candidate still goes through pydantic validation.
    """
    try:
        return output.model_validate_json(text.strip())
    except ValidationError as whole_error:
        error = whole_error
        candidate_error: ValidationError | None = None
        decoder = json.JSONDecoder()
        start = text.find("{")
        while start != -1:
            try:
                value, end = decoder.raw_decode(text, start)
            except json.JSONDecodeError:
                start = text.find("{", start + 1)
                continue
            if isinstance(value, dict):
                try:
                    return output.model_validate(value)
                except ValidationError as invalid:
                    candidate_error = candidate_error or invalid
            start = text.find("{", end)
        raise (candidate_error or error) from None


def _instruction(output: type[BaseModel], mode: StructuredMode) -> str:
    if mode == "json_schema":
        return "Reply with the JSON object only."
    schema = json.dumps(output.model_json_schema(), separators=(",", ":"))
    return f"Reply with only a JSON object (no prose, no code fences) that matches this JSON schema:\n{schema}"


def _with_mode(
    request: ChatRequest, messages: list[Message], output: type[BaseModel], mode: StructuredMode
) -> ChatRequest:
    first_user = next(index for index, message in enumerate(messages) if message.role == "user")
    shown = list(messages)
    shown[first_user] = Message(role="user", content=f"{messages[first_user].content}\n\n{_instruction(output, mode)}")
    response_format = None
    if mode != "plain":
        response_format = ResponseFormat(kind=mode, name=output.__name__, schema=output.model_json_schema())
    return replace(request, messages=tuple(shown), n=1, response_format=response_format)


async def ask_structured(
    caller: Caller,
    request: ChatRequest,
    output: type[T],
    *,
    max_reasks: int = 2,
    check: Callable[[T], str | None] | None = None,
) -> T:
    """Ask for a reply that validates as ``output``.

    Starts from the structured mode that last worked for the role and steps down when the endpoint refuses
    one. An invalid reply is sent back with the validation errors at most ``max_reasks`` times. ``check`` may
    object to a valid reply once (for example experiences over the word cap); the reply is then sent back once
    with its objection and the next valid reply is returned as it is.
    """
    messages = list(request.messages)
    mode_index = MODES.index(caller.structured_modes.get(request.role, "json_schema"))
    reasks = 0
    checked = False
    while True:
        try:
            reply, _ = await caller.complete(_with_mode(request, messages, output, MODES[mode_index]))
        except ResponseFormatRejected:
            if MODES[mode_index] == "plain":
                raise
            mode_index += 1
            continue
        text = reply.texts[0] if reply.texts else ""
        try:
            value = parse_reply(text, output)
        except ValidationError as error:
            if reasks >= max_reasks:
                raise InvalidReply(
                    f"{request.stage} reply stayed invalid after {max_reasks} re-asks: {str(error)[:_ERROR_CHARS]}"
                ) from error
            reasks += 1
            messages += [
                Message(role="assistant", content=text),
                Message(
                    role="user",
                    content=f"That reply is not valid: {str(error)[:_ERROR_CHARS]}\nReply again with only the "
                    "corrected JSON object.",
                ),
            ]
            continue
        caller.structured_modes[request.role] = MODES[mode_index]
        objection = check(value) if check is not None and not checked else None
        if objection is None:
            return value
        checked = True
        messages += [Message(role="assistant", content=text), Message(role="user", content=objection)]
