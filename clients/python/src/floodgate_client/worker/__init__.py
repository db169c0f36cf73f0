"""The asyncio worker: :class:`Worker`, the handler context, and the outcomes a handler can
ask for besides a result (:class:`PermanentError`, :class:`RetryLater`, :class:`Snooze`)."""

from .context import (
    AsyncHandler,
    AsyncJobContext,
    CancelReason,
    Handler,
    JobContext,
    SyncHandler,
    SyncJobContext,
)
from .outcomes import JobCancelled, PermanentError, RetryLater, Snooze
from .runner import Worker, WorkerStats

__all__ = [
    "AsyncHandler",
    "AsyncJobContext",
    "CancelReason",
    "Handler",
    "JobCancelled",
    "JobContext",
    "PermanentError",
    "RetryLater",
    "Snooze",
    "SyncHandler",
    "SyncJobContext",
    "Worker",
    "WorkerStats",
]
