"""What a handler can say about its job besides returning a result: fail permanently, retry
after a delay of its choosing, snooze, or stop because it was cancelled."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Optional, Union

from .context import CancelReason

__all__ = [
    "PermanentError",
    "RetryLater",
    "Snooze",
    "JobCancelled",
    "Complete",
    "Fail",
    "Release",
    "Drop",
    "Outcome",
    "outcome_of_result",
    "outcome_of_error",
    "error_text",
]


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: the job goes dead at once, with the
    message as its last error."""


class RetryLater(Exception):
    """Raised by a handler to fail this attempt and retry after ``seconds`` (instead of the
    server's exponential backoff); the attempt counts toward ``max_attempts``."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"retry in {seconds} s")
        self.seconds = seconds
        """The delay before the next attempt, in seconds (rounded up to a whole second)."""


class Snooze(Exception):
    """Returned (or raised) by a handler to put the job back for ``seconds`` without spending
    the attempt: ``return Snooze(60)``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"snooze {seconds} s")
        self.seconds = seconds
        """How long the job waits before it runs again, in seconds."""


class JobCancelled(Exception):
    """Raised by ``ctx.raise_if_cancelled()`` once the job's cancellation signal fired."""

    def __init__(self, reason: CancelReason) -> None:
        super().__init__(f"job stopped: {reason}")
        self.reason: CancelReason = reason
        """Why the job was stopped."""


@dataclass(frozen=True)
class Complete:
    """Report the job succeeded with ``result``."""

    result: Any


@dataclass(frozen=True)
class Fail:
    """Report a failed attempt."""

    error: str
    retry_in: Optional[float] = None
    permanent: bool = False


@dataclass(frozen=True)
class Release:
    """Put the job back after ``delay`` seconds without spending the attempt (0: at once)."""

    delay: float = 0


@dataclass(frozen=True)
class Drop:
    """Report nothing: the lease is lost, so the server no longer takes reports for it."""


Outcome = Union[Complete, Fail, Release, Drop]
"""What the worker reports for a job whose handler ended."""


def error_text(error: BaseException) -> str:
    """An error's text as kept on the job: the message of the worker's own exceptions, else
    ``Type: message``."""
    if isinstance(error, (PermanentError, RetryLater, JobCancelled)):
        return str(error) or type(error).__name__
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def outcome_of_result(result: Any, reason: Optional[CancelReason]) -> Outcome:
    """The report for a handler that returned ``result`` (after ``reason`` fired, if any)."""
    if reason == "lease_lost":
        return Drop()
    if reason == "shutdown":
        return Release(0)
    if isinstance(result, Snooze):
        return Release(result.seconds)
    return Complete(result)


def outcome_of_error(error: BaseException, reason: Optional[CancelReason]) -> Outcome:
    """The report for a handler that raised ``error`` (after ``reason`` fired, if any).

    A cancelled job's failure is reported as a failure: the server then marks the job
    cancelled, since its cancellation was asked for."""
    if reason == "lease_lost":
        return Drop()
    if reason == "shutdown":
        return Release(0)
    if reason == "cancel_requested" and isinstance(error, (JobCancelled, asyncio.CancelledError)):
        return Fail("cancelled while running (cancel requested)")
    if isinstance(error, Snooze):
        return Release(error.seconds)
    if isinstance(error, PermanentError):
        return Fail(error_text(error), permanent=True)
    if isinstance(error, RetryLater):
        return Fail(error_text(error), retry_in=error.seconds)
    return Fail(error_text(error))

