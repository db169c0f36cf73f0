"""The API's calls without I/O: each builder returns a :class:`Call` (method, path, body,
whether it may be retried, how to read the answer) that :class:`~floodgate_client.Client` and
:class:`~floodgate_client.AsyncClient` send, so both have the same surface by construction."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
)
from urllib.parse import quote

import httpx

from .errors import (
    WAIT_TIMEOUT,
    FloodgateError,
    WaitTimeoutError,
    error_from_response,
    network_error,
    parse_retry_after,
)
from .models import (
    Accepted,
    AdmittedCall,
    BreakerState,
    BreakerView,
    CallOutcome,
    ClaimedJob,
    CompleteBatch,
    Heartbeat,
    HeartbeatBatch,
    Job,
    JobPage,
    LimiterView,
    NewJob,
    PermitGrant,
    PermitLease,
    RateDecision,
    RateLimitView,
    Reported,
)
from .retry import RetryPolicy

T = TypeVar("T")

DEFAULT_SERVER = "http://127.0.0.1:7070"
"""The server when neither ``base_url`` nor ``FLOODGATE_SERVER`` names one."""

USER_AGENT = "floodgate-client-python/0.1.0"

LONG_POLL_MARGIN = 30.0
"""A long-polling claim may take its ``wait`` plus this long before the client gives up."""

_NO_BODY: Any = object()


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: what to send, whether a transient failure may be retried, and how to read
    a successful answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = _NO_BODY
    params: Optional[Dict[str, str]] = None
    headers: Dict[str, str] = field(default_factory=dict)
    idempotent: bool = True
    timeout: Optional[float] = None
    answers: Tuple[str, ...] = ()
    """Problem codes that are answers, read by ``parse`` rather than raised (a rate check's
    ``RATE_LIMITED``)."""

    def request_args(self) -> Dict[str, Any]:
        """Keyword arguments for ``httpx.Client.request`` / ``AsyncClient.request``."""
        args: Dict[str, Any] = {"method": self.method, "url": self.path}
        if self.body is not _NO_BODY:
            args["json"] = self.body
        if self.params:
            args["params"] = self.params
        if self.headers:
            args["headers"] = self.headers
        if self.timeout is not None:
            args["timeout"] = self.timeout
        return args


@dataclass(frozen=True)
class Settings:
    """What both clients are made with: the server, the token, timeouts and retries."""

    base_url: str
    token: Optional[str]
    timeout: float
    retry: RetryPolicy
    headers: Dict[str, str]

    @classmethod
    def resolve(
        cls,
        base_url: Optional[str],
        token: Optional[str],
        timeout: float,
        retry: Optional[RetryPolicy],
        headers: Optional[Mapping[str, str]],
    ) -> Settings:
        """The settings, unset ones from ``FLOODGATE_SERVER`` / ``FLOODGATE_API_TOKEN``."""
        url = base_url or os.environ.get("FLOODGATE_SERVER") or DEFAULT_SERVER
        tok = token if token is not None else os.environ.get("FLOODGATE_API_TOKEN") or None
        all_headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if tok:
            all_headers["authorization"] = f"Bearer {tok}"
        all_headers.update(headers or {})
        return cls(url.rstrip("/"), tok, timeout, retry or RetryPolicy(), all_headers)


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A successful call's parsed answer."""

    value: T


def outcome(
    call: Call[T], response: Optional[httpx.Response], failure: Optional[Exception], url: str
) -> Union[Answer[T], FloodgateError]:
    """The parsed answer, or the error to raise (or retry), for one try of ``call``."""
    if failure is not None:
        return network_error(failure, url)
    assert response is not None
    if not response.is_success:
        error = error_from_response(response)
        if error.code not in call.answers:
            return error
    try:
        return Answer(call.parse(response))
    except (KeyError, ValueError, TypeError) as e:
        error = FloodgateError(
            "INVALID_RESPONSE",
            status=response.status_code,
            title="Invalid response",
            detail=f"{call.method} {call.path}: the answer could not be read ({e!r})",
        )
        error.__cause__ = e
        return error


def wait_timeout(job: Job, timeout: Optional[float]) -> WaitTimeoutError:
    """The error ``wait_for`` raises when ``job`` has not finished within ``timeout``."""
    return WaitTimeoutError(
        WAIT_TIMEOUT,
        title="Wait timed out",
        detail=f"job {job.id} is still {job.state} after {timeout} s",
    )


# --- Parsers -----------------------------------------------------------------------------


def _json(response: httpx.Response) -> Any:
    return response.json()


def _accepted(response: httpx.Response) -> Accepted:
    return Accepted.from_json(response.json())


def _accepted_many(response: httpx.Response) -> List[Accepted]:
    return [Accepted.from_json(a) for a in response.json()["jobs"]]


def _job(response: httpx.Response) -> Job:
    return Job.from_json(response.json())


def _job_and_retry_after(response: httpx.Response) -> Tuple[Job, Optional[float]]:
    return Job.from_json(response.json()), parse_retry_after(response.headers.get("retry-after"))


def _page(response: httpx.Response) -> JobPage:
    return JobPage.from_json(response.json())


def _reported(response: httpx.Response) -> Reported:
    return Reported.from_json(response.json())


def _claimed(response: httpx.Response) -> List[ClaimedJob]:
    return [ClaimedJob.from_json(j) for j in response.json()["jobs"]]


def _heartbeat(response: httpx.Response) -> Heartbeat:
    return Heartbeat.from_json(response.json())


def _heartbeat_batch(response: httpx.Response) -> HeartbeatBatch:
    return HeartbeatBatch.from_json(response.json())


def _complete_batch(response: httpx.Response) -> CompleteBatch:
    return CompleteBatch.from_json(response.json())


# --- Builders ----------------------------------------------------------------------------


def _key_header(idempotency_key: Optional[str]) -> Dict[str, str]:
    return {} if idempotency_key is None else {"idempotency-key": idempotency_key}


def enqueue(
    kind: str,
    payload: Any,
    *,
    queue: Optional[str],
    priority: Optional[int],
    run_at: Optional[Union[datetime, timedelta]],
    max_attempts: Optional[int],
    ordering_key: Optional[str],
    metadata: Optional[Mapping[str, Any]],
    idempotency_key: Optional[str],
) -> Call[Accepted]:
    """``POST /v1/jobs`` for one job; retried only with an idempotency key."""
    job = NewJob(kind, payload, queue, priority, run_at, max_attempts, ordering_key, metadata)
    return Call(
        "POST",
        "/v1/jobs",
        _accepted,
        body=job.to_json(with_key=False),
        headers=_key_header(idempotency_key),
        idempotent=idempotency_key is not None,
    )


def enqueue_many(
    jobs: Iterable[Union[NewJob, Mapping[str, Any]]], idempotency_key: Optional[str]
) -> Call[List[Accepted]]:
    """``POST /v1/jobs`` with ``{"jobs": [...]}``, one transaction; retried only when every job
    is keyed (by the header, or each by its own key)."""
    docs = [NewJob.coerce(j) for j in jobs]
    all_keyed = all(j.idempotency_key is not None for j in docs)
    return Call(
        "POST",
        "/v1/jobs",
        _accepted_many,
        body={"jobs": [j.to_json() for j in docs]},
        headers=_key_header(idempotency_key),
        idempotent=idempotency_key is not None or (bool(docs) and all_keyed),
    )


def get(job_id: int) -> Call[Job]:
    """``GET /v1/jobs/{id}``."""
    return Call("GET", f"/v1/jobs/{int(job_id)}", _job)


def poll(job_id: int) -> Call[Tuple[Job, Optional[float]]]:
    """``GET /v1/jobs/{id}`` with the answer's ``Retry-After``."""
    return Call("GET", f"/v1/jobs/{int(job_id)}", _job_and_retry_after)


def list_jobs(filters: Mapping[str, Any]) -> Call[JobPage]:
    """``GET /v1/jobs`` with the filters that are set."""
    params = {k: str(v) for k, v in filters.items() if v is not None}
    return Call("GET", "/v1/jobs", _page, params=params)


def cancel(job_id: int) -> Call[Reported]:
    """``POST /v1/jobs/{id}/cancel``."""
    return Call("POST", f"/v1/jobs/{int(job_id)}/cancel", _reported)


def retry(job_id: int) -> Call[Reported]:
    """``POST /v1/jobs/{id}/retry``."""
    return Call("POST", f"/v1/jobs/{int(job_id)}/retry", _reported)


def openapi() -> Call[Dict[str, Any]]:
    """``GET /openapi.json``."""
    return Call("GET", "/openapi.json", _json)


def _claim_body(
    worker: str,
    limit: int,
    wait: Optional[float],
    kinds: Optional[Iterable[str]],
    lease_ttl: Optional[int],
) -> Dict[str, Any]:
    body: Dict[str, Any] = {"worker": worker, "limit": limit}
    if wait is not None:
        body["wait"] = int(wait)
    if kinds is not None:
        body["kinds"] = list(kinds)
    if lease_ttl is not None:
        body["lease_ttl"] = int(lease_ttl)
    return body


def claim(
    queue: str,
    *,
    worker: str,
    limit: int,
    wait: Optional[float],
    kinds: Optional[Iterable[str]],
    lease_ttl: Optional[int],
    timeout: float,
) -> Call[List[ClaimedJob]]:
    """``POST /v1/queues/{queue}/claim``; never retried (a lost answer would strand jobs)."""
    return Call(
        "POST",
        f"/v1/queues/{quote(queue, safe='')}/claim",
        _claimed,
        body=_claim_body(worker, limit, wait, kinds, lease_ttl),
        idempotent=False,
        timeout=max(timeout, (wait or 0) + LONG_POLL_MARGIN),
    )


def _claimed_and_retry_after(response: httpx.Response) -> Tuple[List[ClaimedJob], Optional[float]]:
    return _claimed(response), parse_retry_after(response.headers.get("retry-after"))


def claim_polled(
    queue: str,
    *,
    worker: str,
    limit: int,
    wait: Optional[float],
    kinds: Optional[Iterable[str]],
    lease_ttl: Optional[int],
    timeout: float,
) -> Call[Tuple[List[ClaimedJob], Optional[float]]]:
    """A claim, with the ``Retry-After`` the server adds when it could not hold the long poll
    (too many waiting) and answered at once."""
    return Call(
        "POST",
        f"/v1/queues/{quote(queue, safe='')}/claim",
        _claimed_and_retry_after,
        body=_claim_body(worker, limit, wait, kinds, lease_ttl),
        idempotent=False,
        timeout=max(timeout, (wait or 0) + LONG_POLL_MARGIN),
    )


def heartbeat(
    job_id: int, lease_token: str, *, worker: Optional[str], lease_ttl: Optional[int]
) -> Call[Heartbeat]:
    """``POST /v1/jobs/{id}/heartbeat``."""
    body: Dict[str, Any] = {"lease_token": lease_token}
    if worker is not None:
        body["worker"] = worker
    if lease_ttl is not None:
        body["lease_ttl"] = int(lease_ttl)
    return Call("POST", f"/v1/jobs/{int(job_id)}/heartbeat", _heartbeat, body=body)


def heartbeat_many(
    leases: Iterable[Tuple[int, str]], *, worker: str, lease_ttl: Optional[int]
) -> Call[HeartbeatBatch]:
    """``POST /v1/jobs/heartbeat`` for many leases at once."""
    body: Dict[str, Any] = {
        "worker": worker,
        "jobs": [{"id": int(i), "lease_token": t} for i, t in leases],
    }
    if lease_ttl is not None:
        body["lease_ttl"] = int(lease_ttl)
    return Call("POST", "/v1/jobs/heartbeat", _heartbeat_batch, body=body)


def complete(job_id: int, lease_token: str, result: Any) -> Call[Reported]:
    """``POST /v1/jobs/{id}/complete`` (lease-fenced, so retried)."""
    body = {"lease_token": lease_token, "result": result}
    return Call("POST", f"/v1/jobs/{int(job_id)}/complete", _reported, body=body)


def complete_many(completions: Iterable[Tuple[int, str, Any]]) -> Call[CompleteBatch]:
    """``POST /v1/jobs/complete`` for many jobs at once (lease-fenced, so retried)."""
    jobs = [{"id": int(i), "lease_token": t, "result": r} for i, t, r in completions]
    return Call("POST", "/v1/jobs/complete", _complete_batch, body={"jobs": jobs})


def fail(
    job_id: int, lease_token: str, error: str, *, retry_in: Optional[float], permanent: bool
) -> Call[Reported]:
    """``POST /v1/jobs/{id}/fail`` (lease-fenced, so retried)."""
    body: Dict[str, Any] = {"lease_token": lease_token, "error": error, "permanent": permanent}
    if retry_in is not None:
        body["retry_in"] = whole_seconds(retry_in)
    return Call("POST", f"/v1/jobs/{int(job_id)}/fail", _reported, body=body)


def snooze(job_id: int, lease_token: str, delay: float) -> Call[Reported]:
    """``POST /v1/jobs/{id}/snooze`` (lease-fenced, so retried); delay 0 releases the job."""
    body = {"lease_token": lease_token, "delay": whole_seconds(delay)}
    return Call("POST", f"/v1/jobs/{int(job_id)}/snooze", _reported, body=body)


def whole_seconds(seconds: float) -> int:
    """``seconds`` rounded up to a whole, non-negative number (the API counts in seconds)."""
    whole = int(seconds)
    return max(0, whole + 1 if seconds > whole else whole)


# --- Limits: permits, rate limits, circuit breakers -------------------------------------

MAX_PERMIT_POLL = 30.0
"""The longest one acquire request waits (the server's default ``max_wait``); a longer
``wait`` is spent in several long polls."""


def _name(name: str) -> str:
    return quote(name, safe="")


def _permit_grant(response: httpx.Response) -> PermitGrant:
    return PermitGrant.from_json(response.json())


def _permit_lease(response: httpx.Response) -> PermitLease:
    return PermitLease.from_json(response.json())


def _nothing(response: httpx.Response) -> None:
    return None


def _limiters(response: httpx.Response) -> List[LimiterView]:
    return [LimiterView.from_json(v) for v in response.json()["limiters"]]


def _limiter(response: httpx.Response) -> LimiterView:
    return LimiterView.from_json(response.json())


def parse_ratelimit(value: Optional[str]) -> Dict[str, str]:
    """The parameters of the first item of a ``RateLimit`` (or ``RateLimit-Policy``) field,
    ``"name";r=2;t=20`` → ``{"name": "name", "r": "2", "t": "20"}`` (empty when absent)."""
    if not value:
        return {}
    first = value.split(",", 1)[0]
    parts = [p.strip() for p in first.split(";")]
    out: Dict[str, str] = {"name": parts[0].strip('"')}
    for part in parts[1:]:
        key, sep, val = part.partition("=")
        if sep:
            out[key.strip()] = val.strip().strip('"')
    return out


def _rate_decision(response: httpx.Response) -> RateDecision:
    if response.is_success:
        return RateDecision.from_json(response.json())
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    fields = parse_ratelimit(response.headers.get("ratelimit"))
    reset_after = float(fields.get("t", retry_after or 0.0))
    return RateDecision(
        allowed=False,
        remaining=int(fields.get("r", 0)),
        reset_after=reset_after,
        retry_after=retry_after,
        enforced=True,
    )


def _rate_limits(response: httpx.Response) -> List[RateLimitView]:
    return [RateLimitView.from_json(v) for v in response.json()["rate_limits"]]


def _admitted(response: httpx.Response) -> AdmittedCall:
    return AdmittedCall.from_json(response.json())


def _breaker_state(response: httpx.Response) -> BreakerState:
    return BreakerState.from_json(response.json())


def _breakers(response: httpx.Response) -> List[BreakerView]:
    return [BreakerView.from_json(v) for v in response.json()["breakers"]]


def acquire_permit(
    limiter: str,
    *,
    wait: Optional[float],
    priority: Optional[int],
    lease_ttl: Optional[float],
    holder: Optional[str],
    timeout: float,
) -> Call[PermitGrant]:
    """``POST /v1/limiters/{name}/permits``, one request (a long poll of ``wait`` seconds, up
    to the limiter's ``max_wait``); never retried (a lost answer would strand a permit until
    its lease runs out)."""
    body: Dict[str, Any] = {}
    if wait is not None:
        body["wait"] = float(wait)
    if priority is not None:
        body["priority"] = int(priority)
    if lease_ttl is not None:
        body["lease_ttl"] = float(lease_ttl)
    if holder is not None:
        body["holder"] = holder
    return Call(
        "POST",
        f"/v1/limiters/{_name(limiter)}/permits",
        _permit_grant,
        body=body,
        idempotent=False,
        timeout=max(timeout, (wait or 0) + LONG_POLL_MARGIN),
    )


def heartbeat_permit(permit_id: str, *, lease_ttl: Optional[float]) -> Call[PermitLease]:
    """``POST /v1/permits/{id}/heartbeat`` (default: the permit's own lease)."""
    body: Dict[str, Any] = {} if lease_ttl is None else {"lease_ttl": float(lease_ttl)}
    return Call("POST", f"/v1/permits/{_name(permit_id)}/heartbeat", _permit_lease, body=body)


def release_permit(permit_id: str) -> Call[None]:
    """``DELETE /v1/permits/{id}`` (a repeat answers 204 too, so retried)."""
    return Call("DELETE", f"/v1/permits/{_name(permit_id)}", _nothing)


def limiters() -> Call[List[LimiterView]]:
    """``GET /v1/limiters``."""
    return Call("GET", "/v1/limiters", _limiters)


def set_limit(limiter: str, max_concurrency: int) -> Call[LimiterView]:
    """``PUT /v1/limiters/{name}``."""
    body = {"max_concurrency": int(max_concurrency)}
    return Call("PUT", f"/v1/limiters/{_name(limiter)}", _limiter, body=body)


def rate_check(name: str, key: str, *, cost: int) -> Call[RateDecision]:
    """``POST /v1/rate-limits/{name}/check``; ``429 RATE_LIMITED`` is an answer. Never
    retried: a lost answer may have taken the cost already."""
    return Call(
        "POST",
        f"/v1/rate-limits/{_name(name)}/check",
        _rate_decision,
        body={"key": key, "cost": int(cost)},
        idempotent=False,
        answers=("RATE_LIMITED",),
    )


def rate_limits() -> Call[List[RateLimitView]]:
    """``GET /v1/rate-limits``."""
    return Call("GET", "/v1/rate-limits", _rate_limits)


def admit_call(breaker: str) -> Call[AdmittedCall]:
    """``POST /v1/breakers/{name}/calls``; never retried (an admitted call left unreported
    counts as failed at its deadline)."""
    return Call("POST", f"/v1/breakers/{_name(breaker)}/calls", _admitted, idempotent=False)


def report_call(
    breaker: str,
    call_id: str,
    outcome: CallOutcome,
    *,
    duration_ms: Optional[float],
    error: Optional[str],
) -> Call[BreakerState]:
    """``POST /v1/breakers/{name}/calls/{call_id}`` (a repeat answers ``409 CALL_EXPIRED``
    and changes nothing, so retried)."""
    body: Dict[str, Any] = {"outcome": outcome}
    if duration_ms is not None:
        body["duration_ms"] = max(0.0, float(duration_ms))
    if error is not None:
        body["error"] = error[:MAX_CALL_ERROR]
    path = f"/v1/breakers/{_name(breaker)}/calls/{_name(call_id)}"
    return Call("POST", path, _breaker_state, body=body)


MAX_CALL_ERROR = 1000
"""The longest error text a breaker keeps, in characters (longer ones are cut)."""


def reset_breaker(breaker: str) -> Call[BreakerState]:
    """``POST /v1/breakers/{name}/reset``."""
    return Call("POST", f"/v1/breakers/{_name(breaker)}/reset", _breaker_state)


def breakers() -> Call[List[BreakerView]]:
    """``GET /v1/breakers``."""
    return Call("GET", "/v1/breakers", _breakers)
