"""What a handler gets besides its job: the cancellation signal, and why it fired."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, Literal, Optional, Union

from ..models import ClaimedJob

__all__ = [
    "CancelReason",
    "JobContext",
    "AsyncJobContext",
    "SyncJobContext",
    "AsyncHandler",
    "SyncHandler",
    "Handler",
]

CancelReason = Literal["cancel_requested", "lease_lost", "shutdown"]
"""Why a job's cancellation signal fired:

- ``cancel_requested``: someone cancelled the job while it ran (a heartbeat said so);
  failing or raising now ends the job ``cancelled``.
- ``lease_lost``: the server no longer holds the job for this worker (the lease ran out and it
  was taken back, or it was finished elsewhere); nothing the handler does is reported.
- ``shutdown``: the worker is stopping and the shutdown timeout passed; the job is put back on
  the queue (its attempt not spent) for another worker.
"""


class JobContext:
    """The base of a handler's context: the job, the worker, and why it was told to stop."""

    def __init__(self, job: ClaimedJob, worker: str) -> None:
        self.job = job
        """The job being handled (with its lease token)."""
        self.worker = worker
        """The name of the worker running it (the lease owner)."""
        self.reason: Optional[CancelReason] = None
        """Why the cancellation signal fired, or ``None`` while it has not."""

    @property
    def is_cancelled(self) -> bool:
        """Whether the cancellation signal fired."""
        return self.reason is not None

    def raise_if_cancelled(self) -> None:
        """Raises :class:`~floodgate_client.JobCancelled` once the signal fired (a handy
        check point in a long loop of a plain function)."""
        from .outcomes import JobCancelled

        if self.reason is not None:
            raise JobCancelled(self.reason)

    def _fire(self, reason: CancelReason) -> bool:
        """Sets the reason (the first one wins) and the signal; ``True`` the first time."""
        if self.reason is not None:
            return False
        self.reason = reason
        self._set()
        return True

    def _set(self) -> None:
        raise NotImplementedError


class AsyncJobContext(JobContext):
    """The context of an ``async def`` handler: ``cancelled`` is an ``asyncio.Event``. The
    handler's task is also cancelled (``task.cancel()``) when the signal fires."""

    def __init__(self, job: ClaimedJob, worker: str) -> None:
        super().__init__(job, worker)
        self.cancelled = asyncio.Event()
        """Set when the job is cancelled, its lease lost, or the worker shuts down."""

    def _set(self) -> None:
        self.cancelled.set()


class SyncJobContext(JobContext):
    """The context of a plain-function handler (run in a thread): ``cancelled`` is a
    ``threading.Event``, to check or wait on."""

    def __init__(self, job: ClaimedJob, worker: str) -> None:
        super().__init__(job, worker)
        self.cancelled = threading.Event()
        """Set when the job is cancelled, its lease lost, or the worker shuts down."""

    def _set(self) -> None:
        self.cancelled.set()


AsyncHandler = Callable[[ClaimedJob, AsyncJobContext], Awaitable[Any]]
"""An ``async def handler(job, ctx)``: runs on the worker's event loop."""

SyncHandler = Callable[[ClaimedJob, SyncJobContext], Any]
"""A plain ``def handler(job, ctx)``: runs in one of the worker's threads."""

Handler = Union[AsyncHandler, SyncHandler]
"""A job handler. Its return value is the job's result (any JSON, or a
:class:`~floodgate_client.Snooze`); what it raises fails the attempt."""
