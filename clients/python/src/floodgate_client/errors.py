"""The one exception the client raises, built from the server's RFC 9457 problem documents.

Every failed call raises :class:`FloodgateError` (or one of its subclasses, picked by the
problem's ``code``), whether the server answered with a problem document, answered something
else, or could not be reached at all (``code == "NETWORK_ERROR"``, chained with ``from`` to the
``httpx`` error).
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Type

import httpx

if TYPE_CHECKING:
    from .models import RateDecision

__all__ = [
    "FloodgateError",
    "NotFoundError",
    "ValidationError",
    "InvalidStateError",
    "LeaseLostError",
    "IdempotencyKeyReusedError",
    "AuthError",
    "OverloadedError",
    "WaitTimeoutError",
    "QueueFullError",
    "AcquireTimeoutError",
    "LimiterUnavailableError",
    "PermitLostError",
    "RateLimitedError",
    "RateLimitUnavailableError",
    "BreakerOpenError",
    "CallExpiredError",
    "NETWORK_ERROR",
    "WAIT_TIMEOUT",
    "error_from_response",
    "network_error",
    "parse_retry_after",
]

NETWORK_ERROR = "NETWORK_ERROR"
"""The ``code`` of an error raised when the server could not be reached or did not answer."""

WAIT_TIMEOUT = "WAIT_TIMEOUT"
"""The ``code`` of the error ``wait_for`` raises when the job has not finished in time."""


class FloodgateError(Exception):
    """A call to the server failed.

    Attributes:
        code: the problem's stable code (``NOT_FOUND``, ``VALIDATION_FAILED``, ``LEASE_LOST``,
            ...), ``NETWORK_ERROR`` when no answer came, or ``HTTP_<status>`` for an answer
            that is not a problem document (a proxy's error page, say).
        status: the HTTP status, or ``None`` when no answer came.
        title: the problem's short summary.
        detail: what went wrong in this request, and what to fix.
        retry_after: seconds the server asked to wait before retrying (``Retry-After``).
        problem: the whole problem document as sent, or ``None``.
    """

    code: str
    status: Optional[int]
    title: str
    detail: str
    retry_after: Optional[float]
    problem: Optional[Dict[str, Any]]

    def __init__(
        self,
        code: str,
        *,
        status: Optional[int] = None,
        title: str = "",
        detail: str = "",
        retry_after: Optional[float] = None,
        problem: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.code = code
        self.status = status
        self.title = title
        self.detail = detail
        self.retry_after = retry_after
        self.problem = problem
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"{self.status} {self.code}" if self.status is not None else self.code
        text = self.detail or self.title
        return f"{head}: {text}" if text else head

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"detail={self.detail!r})"
        )


class NotFoundError(FloodgateError):
    """``404 NOT_FOUND``: the job (or route) does not exist."""


class ValidationError(FloodgateError):
    """``422 VALIDATION_FAILED`` (or a malformed request): a field is invalid."""


class InvalidStateError(FloodgateError):
    """``409 INVALID_STATE``: the job is not in a state the operation applies to."""


class LeaseLostError(FloodgateError):
    """``409 LEASE_LOST``: the lease token no longer holds the job; nothing was written."""


class IdempotencyKeyReusedError(FloodgateError):
    """``422 IDEMPOTENCY_KEY_REUSED``: the key was first used for a different request."""


class AuthError(FloodgateError):
    """``401 UNAUTHORIZED`` or ``403 FORBIDDEN``: a token is missing, wrong, or read-only."""


class OverloadedError(FloodgateError):
    """``429``/``503``: the server is busy or its database unavailable; retry after
    ``retry_after``."""


class WaitTimeoutError(FloodgateError, TimeoutError):
    """``wait_for`` gave up: the job had not finished within the timeout (code
    ``WAIT_TIMEOUT``)."""


class QueueFullError(OverloadedError):
    """``429 QUEUE_FULL``: too many callers already wait for the limiter's permits (its
    ``max_queue``); nothing was acquired."""


class AcquireTimeoutError(OverloadedError, TimeoutError):
    """``429 ACQUIRE_TIMEOUT``: no permit came free within the wait asked for (for
    :meth:`Client.permit <floodgate_client.Client.permit>`: the whole ``wait``)."""


class LimiterUnavailableError(OverloadedError):
    """``503 LIMITER_UNAVAILABLE``: a fleet-wide limiter could not reach Redis and its failure
    policy is ``closed``."""


class PermitLostError(FloodgateError):
    """``409 PERMIT_LOST``: the permit no longer counts (its lease ran out and it was taken
    back, or it was released); the work it guarded ran, or runs, unguarded."""


class RateLimitedError(OverloadedError):
    """``429 RATE_LIMITED``: the key is over the rate limit; ``retry_after`` says when it may
    call again. :meth:`Client.rate_check <floodgate_client.Client.rate_check>` returns a
    refusal as a :class:`~floodgate_client.RateDecision` instead; :meth:`Client.guarded
    <floodgate_client.Client.guarded>` raises this, with the decision as ``decision``."""

    decision: Optional[RateDecision] = None
    """The refused :class:`~floodgate_client.RateDecision`, when the client made this error
    from one."""


class RateLimitUnavailableError(OverloadedError):
    """``503 RATE_LIMIT_UNAVAILABLE``: a fleet-wide rate limit could not reach Redis and its
    failure policy is ``closed``."""


class BreakerOpenError(OverloadedError):
    """``503 BREAKER_OPEN``: the circuit breaker is open; the call was not admitted (and not
    made). ``retry_after``: seconds until it admits a probe."""


class CallExpiredError(FloodgateError):
    """``409 CALL_EXPIRED``: a breaker call was reported twice, or after its deadline (it was
    counted as failed then)."""


_BY_CODE: Mapping[str, Type[FloodgateError]] = {
    "NOT_FOUND": NotFoundError,
    "VALIDATION_FAILED": ValidationError,
    "MALFORMED_JSON": ValidationError,
    "DUPLICATE_MEMBER": ValidationError,
    "PAYLOAD_TOO_LARGE": ValidationError,
    "INVALID_STATE": InvalidStateError,
    "LEASE_LOST": LeaseLostError,
    "IDEMPOTENCY_KEY_REUSED": IdempotencyKeyReusedError,
    "UNAUTHORIZED": AuthError,
    "FORBIDDEN": AuthError,
    "OVERLOADED": OverloadedError,
    "DATABASE_UNAVAILABLE": OverloadedError,
    "QUEUE_FULL": QueueFullError,
    "ACQUIRE_TIMEOUT": AcquireTimeoutError,
    "LIMITER_UNAVAILABLE": LimiterUnavailableError,
    "PERMIT_LOST": PermitLostError,
    "RATE_LIMITED": RateLimitedError,
    "RATE_LIMIT_UNAVAILABLE": RateLimitUnavailableError,
    "BREAKER_OPEN": BreakerOpenError,
    "CALL_EXPIRED": CallExpiredError,
}


def parse_retry_after(value: Optional[str], *, now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date
    (``None`` when absent or unreadable; never negative)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def error_from_response(response: httpx.Response) -> FloodgateError:
    """The error for a non-2xx ``response``: the subclass for its problem ``code``, with the
    document's members and ``Retry-After``."""
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    problem: Optional[Dict[str, Any]] = None
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        problem = body
    busy = response.status_code in (429, 503)
    if problem is None:
        text = response.text[:500].strip() if response.content else ""
        return (OverloadedError if busy else FloodgateError)(
            f"HTTP_{response.status_code}",
            status=response.status_code,
            title=response.reason_phrase,
            detail=text,
            retry_after=retry_after,
        )
    code = str(problem["code"])
    error_class = _BY_CODE.get(code, OverloadedError if busy else FloodgateError)
    status = problem.get("status")
    return error_class(
        code,
        status=status if isinstance(status, int) else response.status_code,
        title=str(problem.get("title", "")),
        detail=str(problem.get("detail", "")),
        retry_after=retry_after,
        problem=problem,
    )


def network_error(error: Exception, url: str) -> FloodgateError:
    """A ``NETWORK_ERROR`` for ``error`` (raise it ``from error``)."""
    reason = str(error) or type(error).__name__
    return FloodgateError(
        NETWORK_ERROR,
        title="Network error",
        detail=f"{url}: {type(error).__name__}: {reason}",
    )
