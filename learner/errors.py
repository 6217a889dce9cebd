"""The learner's exceptions: each says what went wrong and, where it can, how to fix it."""

from __future__ import annotations


class LearnerError(Exception):
    """Base of every error the learner raises on purpose."""


class ConfigError(LearnerError):
    """A run, dataset or verifier was configured wrongly; nothing was started."""


TRANSIENT_STATUSES = frozenset({408, 409, 429})
"""Statuses worth retrying besides 5xx: timeouts, conflicts, rate limits."""

OVERLOAD_STATUSES = frozenset({429, 503})
"""Statuses that say the endpoint is overloaded: concurrency backs off on them."""


class BackendError(LearnerError):
    """A chat backend failed.

    ``status`` is the HTTP status when there was one. ``transient`` says whether trying again may help (5xx, 408,
    409, 429, timeouts, connection errors; by default judged from ``status``), ``retry_after`` is the wait in
    seconds the endpoint asked for, if it did.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.transient = (
            transient
            if transient is not None
            else status is not None and (status in TRANSIENT_STATUSES or status >= 500)
        )
        self.retry_after = retry_after

    @property
    def overload(self) -> bool:
        """Whether the endpoint said it is overloaded (429 or 503)."""
        return self.status in OVERLOAD_STATUSES


class ResponseFormatRejected(BackendError):
    """The endpoint clearly refused the requested ``response_format``; a weaker structured mode may work.

    Raised only on a clear signal (a 4xx naming the format, or an explicit "not supported" message), never on a
    transient failure.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status, transient=False)


class BudgetExhausted(LearnerError):
    """A request would take the run past its token or dollar budget; it was not sent."""


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
