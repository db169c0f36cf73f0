"""The server's JSON documents as typed, frozen dataclasses.

The fields follow the server's API document (``GET /openapi.json``: ``JobView``,
``ClaimedJob``, ``Accepted``, ``Reported``, ``JobList``, the heartbeat and completion answers);
a test compares them with a running server's document. Members a newer server adds are
ignored when parsing, so an older client keeps working.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Literal, Mapping, Optional, Tuple, Union, cast

__all__ = [
    "JobState",
    "FINISHED_STATES",
    "Job",
    "ClaimedJob",
    "Accepted",
    "Reported",
    "JobPage",
    "Heartbeat",
    "HeartbeatBatch",
    "CompleteBatch",
    "NewJob",
    "Scope",
    "FailurePolicy",
    "CallOutcome",
    "PermitGrant",
    "PermitLease",
    "LimiterView",
    "RateDecision",
    "RateLimitView",
    "AdmittedCall",
    "BreakerState",
    "BreakerView",
    "parse_datetime",
    "format_run_at",
]

JobState = Literal[
    "pending", "scheduled", "running", "succeeded", "failed_will_retry", "dead", "cancelled"
]
"""A job's state as the server shows it (``ApiState``)."""

FINISHED_STATES: Tuple[JobState, ...] = ("succeeded", "dead", "cancelled")
"""The states a job does not leave by itself (``wait_for`` returns on these)."""

_DATETIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def parse_datetime(value: str) -> datetime:
    """An RFC 3339 timestamp as the server writes it (``Z`` or an offset, up to nanoseconds;
    Python 3.9's ``fromisoformat`` takes neither) as an aware ``datetime``."""
    match = _DATETIME.match(value)
    if match is None:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}")
    day, clock, fraction, offset = match.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    if offset is None or offset in ("Z", "z"):
        zone = "+00:00"
    elif ":" not in offset:
        zone = f"{offset[:3]}:{offset[3:]}"
    else:
        zone = offset
    return datetime.fromisoformat(f"{day}T{clock}.{micros}{zone}")


def format_run_at(run_at: Union[datetime, timedelta]) -> str:
    """``run_at`` as RFC 3339: an aware ``datetime``, or a ``timedelta`` from now. A naive
    ``datetime`` is refused (its time zone would be a guess)."""
    if isinstance(run_at, timedelta):
        run_at = datetime.now(timezone.utc) + run_at
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise ValueError("run_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return run_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _opt_datetime(value: Any) -> Optional[datetime]:
    return None if value is None else parse_datetime(str(value))


def _opt_str(value: Any) -> Optional[str]:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Job:
    """A job, as ``GET /v1/jobs/{id}`` shows it (the server's ``JobView``)."""

    id: int
    """Its id."""
    queue: str
    """Its queue."""
    kind: str
    """Its kind."""
    state: JobState
    """Where it is."""
    attempt: int
    """Attempts started so far."""
    max_attempts: int
    """Attempts allowed."""
    priority: int
    """1..=10, higher first."""
    run_at: datetime
    """When it runs (next)."""
    last_error: Optional[str]
    """The last attempt's error."""
    result: Any
    """What the handler returned (any JSON; ``None`` when nothing yet)."""
    payload: Any
    """Its payload (any JSON)."""
    idempotency_key: Optional[str]
    """Its idempotency key."""
    ordering_key: Optional[str]
    """Its ordering key."""
    lease_expires_at: Optional[datetime]
    """While running: when the lease runs out."""
    cancel_requested: bool
    """Whether cancellation was asked for while it ran."""
    metadata: Any
    """Its metadata (a JSON object)."""
    created_at: datetime
    """When it was enqueued."""
    updated_at: datetime
    """When it last changed."""
    finished_at: Optional[datetime]
    """When it finished."""

    @property
    def finished(self) -> bool:
        """Whether the job is succeeded, dead or cancelled."""
        return self.state in FINISHED_STATES

    @staticmethod
    def _fields(doc: Mapping[str, Any]) -> Dict[str, Any]:
        return {
            "id": int(doc["id"]),
            "queue": str(doc["queue"]),
            "kind": str(doc["kind"]),
            "state": cast(JobState, str(doc["state"])),
            "attempt": int(doc["attempt"]),
            "max_attempts": int(doc["max_attempts"]),
            "priority": int(doc["priority"]),
            "run_at": parse_datetime(str(doc["run_at"])),
            "last_error": _opt_str(doc.get("last_error")),
            "result": doc.get("result"),
            "payload": doc.get("payload"),
            "idempotency_key": _opt_str(doc.get("idempotency_key")),
            "ordering_key": _opt_str(doc.get("ordering_key")),
            "lease_expires_at": _opt_datetime(doc.get("lease_expires_at")),
            "cancel_requested": bool(doc.get("cancel_requested", False)),
            "metadata": doc.get("metadata", {}),
            "created_at": parse_datetime(str(doc["created_at"])),
            "updated_at": parse_datetime(str(doc["updated_at"])),
            "finished_at": _opt_datetime(doc.get("finished_at")),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Job:
        """The job from the server's JSON document."""
        return cls(**cls._fields(doc))


@dataclass(frozen=True)
class ClaimedJob(Job):
    """A claimed job: the job and the lease token every report on it must carry."""

    lease_token: str
    """The lease token (a string: it does not fit a JavaScript number)."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ClaimedJob:
        """The claimed job from one entry of a claim's ``jobs``."""
        return cls(**cls._fields(doc), lease_token=str(doc["lease_token"]))


@dataclass(frozen=True)
class Accepted:
    """What an enqueue did with one job."""

    id: int
    """The job's id (the existing job's, for a repeated idempotency key)."""
    state: JobState
    """Its state now."""
    duplicate: bool
    """``True`` when an idempotency key matched an existing job and nothing was written."""
    location: str
    """Where to poll it."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Accepted:
        """From the server's ``Accepted`` document."""
        return cls(
            id=int(doc["id"]),
            state=cast(JobState, str(doc["state"])),
            duplicate=bool(doc["duplicate"]),
            location=str(doc["location"]),
        )


@dataclass(frozen=True)
class Reported:
    """A job's id and state after a report, a cancel or a retry."""

    id: int
    """The job."""
    state: JobState
    """Its state now."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Reported:
        """From the server's ``Reported`` document."""
        return cls(id=int(doc["id"]), state=cast(JobState, str(doc["state"])))


@dataclass(frozen=True)
class JobPage:
    """One page of ``GET /v1/jobs``, newest first."""

    jobs: List[Job]
    """The jobs."""
    next: Optional[int]
    """Pass as ``cursor`` for the next page; ``None`` on the last page."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> JobPage:
        """From the server's ``JobList`` document."""
        nxt = doc.get("next")
        return cls(
            jobs=[Job.from_json(j) for j in doc["jobs"]],
            next=None if nxt is None else int(nxt),
        )


@dataclass(frozen=True)
class Heartbeat:
    """The answer to one job's heartbeat."""

    cancel_requested: bool
    """``True`` when cancellation was asked for: stop and report the job."""
    lease_expires_at: datetime
    """When the lease now runs out."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Heartbeat:
        """From the server's ``HeartbeatResponse`` document."""
        return cls(
            cancel_requested=bool(doc["cancel_requested"]),
            lease_expires_at=parse_datetime(str(doc["lease_expires_at"])),
        )


def _ids(doc: Mapping[str, Any], key: str) -> List[int]:
    return [int(i) for i in doc.get(key) or []]


@dataclass(frozen=True)
class HeartbeatBatch:
    """The answer to ``POST /v1/jobs/heartbeat``: each job's lease was extended (some of them
    with a cancellation asked for) or is lost."""

    extended: List[int]
    """Jobs whose lease was extended; carry on."""
    cancel_requested: List[int]
    """Jobs whose lease was extended but whose cancellation was asked for: stop them."""
    lease_lost: List[int]
    """Jobs no longer held under the token sent: stop working on them."""
    lease_expires_at: datetime
    """When the extended leases now run out."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HeartbeatBatch:
        """From the server's batch heartbeat answer."""
        return cls(
            extended=_ids(doc, "extended"),
            cancel_requested=_ids(doc, "cancel_requested"),
            lease_lost=_ids(doc, "lease_lost"),
            lease_expires_at=parse_datetime(str(doc["lease_expires_at"])),
        )


@dataclass(frozen=True)
class CompleteBatch:
    """The answer to ``POST /v1/jobs/complete``."""

    succeeded: List[int]
    """Jobs now succeeded."""
    lease_lost: List[int]
    """Jobs not written: their lease no longer held (taken back, or already reported)."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CompleteBatch:
        """From the server's batch completion answer."""
        return cls(succeeded=_ids(doc, "succeeded"), lease_lost=_ids(doc, "lease_lost"))


@dataclass(frozen=True)
class NewJob:
    """One job for :meth:`Client.enqueue_many` (plain mappings with the same keys work too)."""

    kind: str
    """What the job does; workers claim by kind."""
    payload: Any = None
    """Any JSON."""
    queue: Optional[str] = None
    """The queue (server default ``default``)."""
    priority: Optional[int] = None
    """1..=10, higher first (server default 5)."""
    run_at: Optional[Union[datetime, timedelta]] = None
    """Not before this (aware) time, or this long from now."""
    max_attempts: Optional[int] = None
    """Attempts before the job goes dead (server default 25)."""
    ordering_key: Optional[str] = None
    """Jobs with one ordering key run one at a time, in order."""
    metadata: Optional[Mapping[str, Any]] = None
    """A JSON object kept with the job."""
    idempotency_key: Optional[str] = None
    """A repeat with this key returns the first job instead of making another."""

    def to_json(self, *, with_key: bool = True) -> Dict[str, Any]:
        """The request document (``JobRequest``), unset members left out."""
        doc: Dict[str, Any] = {"kind": self.kind, "payload": self.payload}
        if self.queue is not None:
            doc["queue"] = self.queue
        if self.priority is not None:
            doc["priority"] = self.priority
        if self.run_at is not None:
            doc["run_at"] = format_run_at(self.run_at)
        if self.max_attempts is not None:
            doc["max_attempts"] = self.max_attempts
        if self.ordering_key is not None:
            doc["ordering_key"] = self.ordering_key
        if self.metadata is not None:
            doc["metadata"] = dict(self.metadata)
        if with_key and self.idempotency_key is not None:
            doc["idempotency_key"] = self.idempotency_key
        return doc

    @classmethod
    def coerce(cls, job: Union[NewJob, Mapping[str, Any]]) -> NewJob:
        """``job`` itself, or a ``NewJob`` from a mapping with the same keys."""
        if isinstance(job, NewJob):
            return job
        return cls(**dict(job))


# --- Limits: permits, rate limits, circuit breakers -------------------------------------

Scope = Literal["local", "fleet"]
"""Where a limit holds: ``local`` (this server) or ``fleet`` (every server sharing Redis)."""

FailurePolicy = Literal["closed", "open"]
"""What a fleet-wide limit does when Redis cannot answer: ``closed`` refuses (503), ``open``
lets the call through (``enforced`` false)."""

CallOutcome = Literal["success", "failure", "ignored", "slow"]
"""How a call through a circuit breaker went."""


def _opt_int(value: Any) -> Optional[int]:
    return None if value is None else int(value)


def _opt_float(value: Any) -> Optional[float]:
    return None if value is None else float(value)


@dataclass(frozen=True)
class PermitGrant:
    """A permit given by ``POST /v1/limiters/{name}/permits`` (the server's
    ``PermitGranted``)."""

    permit_id: str
    """Its id, for heartbeats and the release."""
    limiter: str
    """The limiter."""
    scope: Scope
    """``local`` or ``fleet``."""
    lease_expires_at: datetime
    """When it is taken back unless heartbeated."""
    lease_ttl: float
    """Its lease, in seconds."""
    enforced: bool
    """``False`` when Redis could not be reached and the open policy let it through (it then
    counts on that server only)."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PermitGrant:
        """From the server's ``PermitGranted`` document."""
        return cls(
            permit_id=str(doc["permit_id"]),
            limiter=str(doc["limiter"]),
            scope=cast(Scope, str(doc["scope"])),
            lease_expires_at=parse_datetime(str(doc["lease_expires_at"])),
            lease_ttl=float(doc["lease_ttl"]),
            enforced=bool(doc["enforced"]),
        )


@dataclass(frozen=True)
class PermitLease:
    """A permit's lease after a heartbeat."""

    permit_id: str
    """The permit."""
    lease_expires_at: datetime
    """When it is taken back unless heartbeated again."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PermitLease:
        """From the server's ``PermitLease`` document."""
        return cls(
            permit_id=str(doc["permit_id"]),
            lease_expires_at=parse_datetime(str(doc["lease_expires_at"])),
        )


@dataclass(frozen=True)
class LimiterView:
    """A limiter (``[limiters.NAME]``) with its live counts, from ``GET /v1/limiters``."""

    name: str
    """Its name."""
    scope: Scope
    """``local`` or ``fleet``."""
    limit: int
    """Permits at once."""
    held_here: int
    """Permits held through this server now."""
    held_fleet: Optional[int]
    """Permits held across the fleet now (fleet scope, when Redis answered)."""
    waiting: int
    """Callers waiting on this server now."""
    max_queue: int
    """Callers that may wait on this server at once."""
    max_wait: float
    """The longest wait one request may ask for, in seconds."""
    lease_ttl: float
    """A permit's lease unless the request names one, in seconds."""
    acquired: int
    """Permits given on this server since start."""
    queue_full: int
    """Requests refused because the queue was full."""
    expired: int
    """Permits taken back because their lease ran out."""
    failure_policy: Optional[FailurePolicy]
    """Fleet scope: what happens when Redis cannot answer."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> LimiterView:
        """From the server's ``LimiterView`` document."""
        return cls(
            name=str(doc["name"]),
            scope=cast(Scope, str(doc["scope"])),
            limit=int(doc["limit"]),
            held_here=int(doc["held_here"]),
            held_fleet=_opt_int(doc.get("held_fleet")),
            waiting=int(doc["waiting"]),
            max_queue=int(doc["max_queue"]),
            max_wait=float(doc["max_wait"]),
            lease_ttl=float(doc["lease_ttl"]),
            acquired=int(doc["acquired"]),
            queue_full=int(doc["queue_full"]),
            expired=int(doc["expired"]),
            failure_policy=cast(Optional[FailurePolicy], _opt_str(doc.get("failure_policy"))),
        )


@dataclass(frozen=True)
class RateDecision:
    """The answer to a rate check: allowed (``200``) or refused (``429 RATE_LIMITED``, which
    :meth:`Client.rate_check <floodgate_client.Client.rate_check>` returns rather than
    raises)."""

    allowed: bool
    """Whether the call may go ahead (its cost was taken)."""
    remaining: int
    """Calls the key may still make at once."""
    reset_after: float
    """Seconds until the key's allowance is full again."""
    retry_after: Optional[float]
    """Refused: seconds until the key may call again (``Retry-After``); ``None`` when
    allowed."""
    enforced: bool
    """``False`` when Redis could not be reached and the open policy let the call through."""
    scope: Optional[Scope] = None
    """Allowed: ``local`` (this server's count) or ``fleet`` (every server's); ``None`` when
    refused."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RateDecision:
        """From the server's ``RateAllowed`` document."""
        return cls(
            allowed=bool(doc["allowed"]),
            remaining=int(doc["remaining"]),
            reset_after=float(doc["reset_after"]),
            retry_after=None,
            enforced=bool(doc["enforced"]),
            scope=doc["scope"],
        )


@dataclass(frozen=True)
class RateLimitView:
    """A rate limit (``[rate_limits.NAME]``) with its counts, from ``GET /v1/rate-limits``."""

    name: str
    """Its name."""
    scope: Scope
    """``local`` or ``fleet``."""
    rate: int
    """Calls per period, per key."""
    per: float
    """The period, in seconds."""
    burst: int
    """Calls a key may make at once after a quiet spell."""
    keys: Optional[int]
    """Keys remembered on this server (local scope)."""
    allowed: int
    """Checks allowed on this server since start."""
    limited: int
    """Checks over the limit."""
    unavailable: int
    """Checks refused because Redis could not answer (closed policy)."""
    failure_policy: Optional[FailurePolicy]
    """Fleet scope: what happens when Redis cannot answer."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RateLimitView:
        """From the server's ``RateLimitView`` document."""
        return cls(
            name=str(doc["name"]),
            scope=cast(Scope, str(doc["scope"])),
            rate=int(doc["rate"]),
            per=float(doc["per"]),
            burst=int(doc["burst"]),
            keys=_opt_int(doc.get("keys")),
            allowed=int(doc["allowed"]),
            limited=int(doc["limited"]),
            unavailable=int(doc["unavailable"]),
            failure_policy=cast(Optional[FailurePolicy], _opt_str(doc.get("failure_policy"))),
        )


@dataclass(frozen=True)
class AdmittedCall:
    """A call admitted through a circuit breaker (the server's ``CallAdmitted``): make it,
    then report how it went."""

    call_id: str
    """Report the call's outcome under this id."""
    breaker: str
    """The breaker."""
    probe: bool
    """Whether it is a half-open probe."""
    report_by: datetime
    """Unreported by then, it counts as failed."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AdmittedCall:
        """From the server's ``CallAdmitted`` document."""
        return cls(
            call_id=str(doc["call_id"]),
            breaker=str(doc["breaker"]),
            probe=bool(doc["probe"]),
            report_by=parse_datetime(str(doc["report_by"])),
        )


@dataclass(frozen=True)
class BreakerState:
    """A breaker's state after a report or a reset."""

    breaker: str
    """The breaker."""
    state: str
    """``closed``, ``open``, ``half_open``, ``forced_open`` or ``disabled``."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BreakerState:
        """From the server's ``BreakerState`` document."""
        return cls(breaker=str(doc["breaker"]), state=str(doc["state"]))


@dataclass(frozen=True)
class BreakerView:
    """A circuit breaker (``[breakers.NAME]``) with its live state, from
    ``GET /v1/breakers``."""

    name: str
    """Its name."""
    state: str
    """``closed``, ``open``, ``half_open``, ``forced_open`` or ``disabled``."""
    since_seconds: float
    """Seconds in that state."""
    retry_after_seconds: Optional[float]
    """While open: seconds until it admits probes."""
    failure_rate: float
    """The failure rate over the window, 0 to 1."""
    window_calls: int
    """The calls in the window."""
    calls: int
    """Calls reported since start."""
    failures: int
    """Of those, failures."""
    slow: int
    """Of those, slow."""
    rejected: int
    """Calls refused while open."""
    half_open_probes: int
    """Calls admitted while half-open."""
    last_failure: Optional[str]
    """What last opened it."""

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BreakerView:
        """From the server's ``BreakerView`` document."""
        return cls(
            name=str(doc["name"]),
            state=str(doc["state"]),
            since_seconds=float(doc["since_seconds"]),
            retry_after_seconds=_opt_float(doc.get("retry_after_seconds")),
            failure_rate=float(doc["failure_rate"]),
            window_calls=int(doc["window_calls"]),
            calls=int(doc["calls"]),
            failures=int(doc["failures"]),
            slow=int(doc["slow"]),
            rejected=int(doc["rejected"]),
            half_open_probes=int(doc["half_open_probes"]),
            last_failure=_opt_str(doc.get("last_failure")),
        )
