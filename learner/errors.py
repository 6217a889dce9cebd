"""The learner's exceptions: each says what went wrong and, where it can, how to fix it."""

from __future__ import annotations


class LearnerError(Exception):
    """Base of every error the learner raises on purpose."""


class ConfigError(LearnerError):
    """A run, dataset or verifier was configured wrongly; nothing was started."""


class BackendError(LearnerError):
    """A chat backend failed after its retries.

    ``status`` is the HTTP status when there was one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ResponseFormatRejected(BackendError):
    """The endpoint refused the requested ``response_format``; a weaker structured mode may work."""


class InvalidReply(LearnerError):
    """A structured reply stayed invalid after the bounded re-asks."""


def describe(group: BaseExceptionGroup[LearnerError]) -> str:
    """The distinct messages of a group of learner errors (concurrent calls that failed together), joined."""
    messages: list[str] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop(0)
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        elif str(error) not in messages:
            messages.append(str(error))
    return "; ".join(messages)
