"""A client and a worker for floodgate, the durable job queue server.

- :class:`Client` and :class:`AsyncClient`: enqueue, inspect, cancel, retry and wait for jobs,
  and the worker protocol (claim, heartbeat, complete, fail, snooze).
- :class:`Worker`: runs handlers for claimed jobs, heartbeats their leases, reports outcomes
  in batches, and shuts down gracefully on SIGTERM/SIGINT.
- :class:`FloodgateError`: every failure, with the server's problem ``code``.
"""

from .async_client import AsyncClient
from .client import Client
from .errors import (
    NETWORK_ERROR,
    WAIT_TIMEOUT,
    AuthError,
    FloodgateError,
    IdempotencyKeyReusedError,
    InvalidStateError,
    LeaseLostError,
    NotFoundError,
    OverloadedError,
    ValidationError,
    WaitTimeoutError,
)
from .models import (
    FINISHED_STATES,
    Accepted,
    ClaimedJob,
    CompleteBatch,
    Heartbeat,
    HeartbeatBatch,
    Job,
    JobPage,
    JobState,
    NewJob,
    Reported,
)
from .retry import NO_RETRY, RetryPolicy
from .worker import (
    AsyncJobContext,
    CancelReason,
    Handler,
    JobCancelled,
    JobContext,
    PermanentError,
    RetryLater,
    Snooze,
    SyncJobContext,
    Worker,
    WorkerStats,
)

__version__ = "0.1.0"
"""This package's version."""

__all__ = [
    "Accepted",
    "AsyncClient",
    "AsyncJobContext",
    "AuthError",
    "CancelReason",
    "ClaimedJob",
    "Client",
    "CompleteBatch",
    "FINISHED_STATES",
    "FloodgateError",
    "Handler",
    "Heartbeat",
    "HeartbeatBatch",
    "IdempotencyKeyReusedError",
    "InvalidStateError",
    "Job",
    "JobCancelled",
    "JobContext",
    "JobPage",
    "JobState",
    "LeaseLostError",
    "NETWORK_ERROR",
    "NO_RETRY",
    "NewJob",
    "NotFoundError",
    "OverloadedError",
    "PermanentError",
    "Reported",
    "RetryLater",
    "RetryPolicy",
    "Snooze",
    "SyncJobContext",
    "ValidationError",
    "WAIT_TIMEOUT",
    "WaitTimeoutError",
    "Worker",
    "WorkerStats",
    "__version__",
]
