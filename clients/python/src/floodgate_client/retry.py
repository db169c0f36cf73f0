"""When a failed call is tried again: transient failures of idempotent calls, with exponential
backoff and full jitter, never sooner than the server's ``Retry-After``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import FrozenSet, Optional

from .errors import NETWORK_ERROR, FloodgateError

__all__ = ["RetryPolicy", "TRANSIENT_STATUSES", "NO_RETRY", "is_transient"]

TRANSIENT_STATUSES: FrozenSet[int] = frozenset({429, 502, 503, 504})
"""HTTP statuses worth another try: busy, or a proxy that could not reach the server."""


def is_transient(error: FloodgateError) -> bool:
    """Whether ``error`` may go away by itself: no answer (``NETWORK_ERROR``), or a
    429/502/503/504."""
    return error.code == NETWORK_ERROR or error.status in TRANSIENT_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls retry transient failures.

    The n-th retry waits a random time between 0 and ``min(max_delay, base_delay * 2**(n-1))``
    (full jitter), and at least the ``Retry-After`` the server sent. A ``Retry-After`` longer
    than ``max_retry_after`` is not waited for: the error is raised, and its ``retry_after``
    says how long the server asked for. Non-idempotent calls (an enqueue without an
    idempotency key, a claim) are never retried.
    """

    max_attempts: int = 5
    """Tries in all, the first included (1: never retry)."""
    base_delay: float = 0.2
    """The backoff's first ceiling, in seconds."""
    max_delay: float = 10.0
    """The backoff's largest ceiling, in seconds."""
    max_retry_after: float = 60.0
    """The longest ``Retry-After`` waited for, in seconds."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, retry: int) -> float:
        """A random delay before the ``retry``-th retry (1 for the first), full jitter."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, retry - 1)))
        return random.uniform(0.0, ceiling)

    def delay(self, error: FloodgateError, attempts: int) -> Optional[float]:
        """Seconds to wait before trying an idempotent call again after ``attempts`` tries
        ended in ``error``, or ``None`` to give up and raise it."""
        if attempts >= self.max_attempts or not is_transient(error):
            return None
        wait = self.backoff(attempts)
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            wait = max(wait, error.retry_after)
        return wait


NO_RETRY = RetryPolicy(max_attempts=1)
"""A policy that never retries."""
