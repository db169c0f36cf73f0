"""The synchronous client (``httpx.Client``)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
)

import httpx

from . import _api
from ._api import Call, Settings
from .limits import Breaker, ExceptionTypes, Permit, rate_limited
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

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """A client of a floodgate server, over one pooled ``httpx.Client``.

    ``base_url`` defaults to ``$FLOODGATE_SERVER`` (else ``http://127.0.0.1:7070``) and
    ``token`` to ``$FLOODGATE_API_TOKEN``; the token is sent as a bearer token. Idempotent
    calls retry transient failures per ``retry``; every failure raises
    :class:`~floodgate_client.FloodgateError`. Use it as a context manager, or call
    :meth:`close`.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        *,
        token: Optional[str] = None,
        timeout: float = 30.0,
        retry: Optional[RetryPolicy] = None,
        headers: Optional[Mapping[str, str]] = None,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self.settings = Settings.resolve(base_url, token, timeout, retry, headers)
        """The server, token, timeout, retry policy and headers in use."""
        self._http = httpx.Client(
            base_url=self.settings.base_url,
            headers=self.settings.headers,
            timeout=timeout,
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self.settings.base_url

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        """Sends ``call``, retrying transient failures when it is idempotent."""
        url = f"{self.settings.base_url}{call.path}"
        attempts = 0
        while True:
            attempts += 1
            response: Optional[httpx.Response] = None
            failure: Optional[Exception] = None
            try:
                response = self._http.request(**call.request_args())
            except httpx.TransportError as e:
                failure = e
            out = _api.outcome(call, response, failure, url)
            if isinstance(out, _api.Answer):
                return out.value
            error = out
            delay = self.settings.retry.delay(error, attempts) if call.idempotent else None
            if delay is None:
                raise error from (failure or error.__cause__)
            time.sleep(delay)

    # --- Producers ---------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        payload: Any = None,
        *,
        queue: Optional[str] = None,
        priority: Optional[int] = None,
        run_at: Optional[Union[datetime, timedelta]] = None,
        max_attempts: Optional[int] = None,
        ordering_key: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
    ) -> Accepted:
        """Enqueues one job. With ``idempotency_key`` (sent as the ``Idempotency-Key``
        header) a repeat returns the first job, so the call is retried on transient
        failures; without one it is sent once. ``run_at``: an aware ``datetime``, or a
        ``timedelta`` from now."""
        return self.send(
            _api.enqueue(
                kind,
                payload,
                queue=queue,
                priority=priority,
                run_at=run_at,
                max_attempts=max_attempts,
                ordering_key=ordering_key,
                metadata=metadata,
                idempotency_key=idempotency_key,
            )
        )

    def enqueue_many(
        self,
        jobs: Iterable[Union[NewJob, Mapping[str, Any]]],
        idempotency_key: Optional[str] = None,
    ) -> List[Accepted]:
        """Enqueues jobs in one transaction (all or none), answers in request order. With
        ``idempotency_key`` each job without a key of its own is keyed ``{key}:{index}``."""
        return self.send(_api.enqueue_many(jobs, idempotency_key))

    def get(self, job_id: int) -> Job:
        """The job with this id (:class:`~floodgate_client.NotFoundError` if none)."""
        return self.send(_api.get(job_id))

    def list(
        self,
        *,
        state: Optional[str] = None,
        queue: Optional[str] = None,
        kind: Optional[str] = None,
        error: Optional[str] = None,
        path: Optional[str] = None,
        value: Optional[str] = None,
        cursor: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> JobPage:
        """One page of jobs, newest first; pass the page's ``next`` as ``cursor`` for the
        next one. ``path``/``value`` filter on a payload field (``customer.id`` = ``42``)."""
        filters = dict(state=state, queue=queue, kind=kind, error=error, path=path, value=value)
        return self.send(_api.list_jobs({**filters, "cursor": cursor, "limit": limit}))

    def iter_jobs(
        self,
        *,
        state: Optional[str] = None,
        queue: Optional[str] = None,
        kind: Optional[str] = None,
        error: Optional[str] = None,
        path: Optional[str] = None,
        value: Optional[str] = None,
        cursor: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Job]:
        """Every job matching the filters, newest first, fetched a page (``limit``) at a time
        by following each page's ``next`` cursor."""
        filters: Dict[str, Any] = dict(
            state=state, queue=queue, kind=kind, error=error, path=path, value=value
        )
        while True:
            page = self.send(_api.list_jobs({**filters, "cursor": cursor, "limit": limit}))
            yield from page.jobs
            if page.next is None:
                return
            cursor = page.next

    def cancel(self, job_id: int) -> Reported:
        """Cancels a waiting job (state ``cancelled``), or asks a running one to stop (state
        ``running``; its worker sees it at its next heartbeat)."""
        return self.send(_api.cancel(job_id))

    def retry(self, job_id: int) -> Reported:
        """Runs a dead or cancelled job again, with a fresh set of attempts."""
        return self.send(_api.retry(job_id))

    def wait_for(
        self, job_id: int, timeout: Optional[float] = None, *, poll_interval: float = 1.0
    ) -> Job:
        """Polls the job until it is succeeded, dead or cancelled, and returns it. Between
        polls it waits the ``Retry-After`` the server sent (``poll_interval`` without one).
        Raises :class:`~floodgate_client.WaitTimeoutError` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job, retry_after = self.send(_api.poll(job_id))
            if job.finished:
                return job
            pause = poll_interval if retry_after is None else retry_after
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _api.wait_timeout(job, timeout)
                pause = min(pause, left)
            time.sleep(pause)

    def openapi(self) -> Dict[str, Any]:
        """The server's API document (``GET /openapi.json``)."""
        return self.send(_api.openapi())

    # --- Workers -----------------------------------------------------------------------

    def claim(
        self,
        queue: str,
        *,
        worker: str,
        limit: int = 1,
        wait: Optional[float] = None,
        kinds: Optional[Iterable[str]] = None,
        lease_ttl: Optional[int] = None,
    ) -> List[ClaimedJob]:
        """Claims up to ``limit`` jobs of ``queue`` (long-polling up to ``wait`` seconds, at
        most 30, when none is ready). Never retried: a lost answer would strand its jobs
        until their leases run out."""
        return self.send(
            _api.claim(
                queue,
                worker=worker,
                limit=limit,
                wait=wait,
                kinds=kinds,
                lease_ttl=lease_ttl,
                timeout=self.settings.timeout,
            )
        )

    def heartbeat(
        self,
        job_id: int,
        lease_token: str,
        *,
        worker: Optional[str] = None,
        lease_ttl: Optional[int] = None,
    ) -> Heartbeat:
        """Extends one job's lease; says whether its cancellation was asked for."""
        return self.send(_api.heartbeat(job_id, lease_token, worker=worker, lease_ttl=lease_ttl))

    def heartbeat_many(
        self,
        leases: Iterable[Tuple[int, str]],
        *,
        worker: str,
        lease_ttl: Optional[int] = None,
    ) -> HeartbeatBatch:
        """Extends many leases (``(id, lease_token)`` pairs) in one request."""
        return self.send(_api.heartbeat_many(leases, worker=worker, lease_ttl=lease_ttl))

    def complete(self, job_id: int, lease_token: str, result: Any = None) -> Reported:
        """Marks the job succeeded with ``result`` (any JSON)."""
        return self.send(_api.complete(job_id, lease_token, result))

    def complete_many(self, completions: Iterable[Tuple[int, str, Any]]) -> CompleteBatch:
        """Marks many jobs succeeded (``(id, lease_token, result)`` triples) in one request."""
        return self.send(_api.complete_many(completions))

    def fail(
        self,
        job_id: int,
        lease_token: str,
        error: str,
        *,
        retry_in: Optional[float] = None,
        permanent: bool = False,
    ) -> Reported:
        """Records a failed attempt: retried after ``retry_in`` seconds (default: the server's
        backoff), or dead when ``permanent`` or out of attempts."""
        return self.send(
            _api.fail(job_id, lease_token, error, retry_in=retry_in, permanent=permanent)
        )

    def snooze(self, job_id: int, lease_token: str, delay: float = 0) -> Reported:
        """Puts the job back to run after ``delay`` seconds without spending the attempt
        (``delay=0`` releases it for another worker at once)."""
        return self.send(_api.snooze(job_id, lease_token, delay))

    # --- Limits: permits, rate limits, circuit breakers --------------------------------

    def permit(
        self,
        limiter: str,
        *,
        wait: Optional[float] = None,
        priority: Optional[int] = None,
        lease_ttl: Optional[float] = None,
        holder: Optional[str] = None,
    ) -> Permit:
        """A permit of ``limiter``, for a ``with`` block: entering waits up to ``wait``
        seconds in all (``None``/0: answer at once; ``math.inf``: until one comes free) in
        long polls of at most 30 s, at ``priority`` (1..10, higher first), then heartbeats it
        in a thread every ``lease_ttl / 3``; leaving releases it. See
        :class:`~floodgate_client.Permit`."""
        return Permit(
            self, limiter, wait=wait, priority=priority, lease_ttl=lease_ttl, holder=holder
        )

    def with_permit(
        self,
        limiter: str,
        fn: Callable[[], T],
        *,
        wait: Optional[float] = None,
        priority: Optional[int] = None,
        lease_ttl: Optional[float] = None,
        holder: Optional[str] = None,
    ) -> T:
        """``fn()`` while holding a permit of ``limiter`` (as :meth:`permit`)."""
        with self.permit(limiter, wait=wait, priority=priority, lease_ttl=lease_ttl,
                         holder=holder):
            return fn()

    def acquire_permit(
        self,
        limiter: str,
        *,
        wait: Optional[float] = None,
        priority: Optional[int] = None,
        lease_ttl: Optional[float] = None,
        holder: Optional[str] = None,
    ) -> PermitGrant:
        """One acquire request (``wait`` at most the limiter's ``max_wait``); no heartbeats,
        no release: the low-level call under :meth:`permit`. Never retried."""
        return self.send(
            _api.acquire_permit(
                limiter,
                wait=wait,
                priority=priority,
                lease_ttl=lease_ttl,
                holder=holder,
                timeout=self.settings.timeout,
            )
        )

    def heartbeat_permit(
        self, permit_id: str, *, lease_ttl: Optional[float] = None
    ) -> PermitLease:
        """Extends a permit's lease (by its own ``lease_ttl`` unless given);
        :class:`~floodgate_client.PermitLostError` once it is lost."""
        return self.send(_api.heartbeat_permit(permit_id, lease_ttl=lease_ttl))

    def release_permit(self, permit_id: str) -> None:
        """Releases a permit (again: nothing happens); :class:`~floodgate_client.PermitLostError`
        when its lease ran out first."""
        self.send(_api.release_permit(permit_id))

    def limiters(self) -> List[LimiterView]:
        """Every configured limiter with its live counts."""
        return self.send(_api.limiters())

    def set_limit(self, limiter: str, max_concurrency: int) -> LimiterView:
        """Changes a limiter's permits at once, at run time."""
        return self.send(_api.set_limit(limiter, max_concurrency))


    def rate_check(self, name: str, key: str, *, cost: int = 1) -> RateDecision:
        """Takes ``cost`` from ``key``'s allowance under rate limit ``name``. A refusal
        (``429 RATE_LIMITED``) is returned, ``allowed=False`` with ``retry_after``, not
        raised; :class:`~floodgate_client.RateLimitUnavailableError` when a fleet-wide limit
        cannot reach Redis. Never retried (a lost answer may have taken the cost)."""
        return self.send(_api.rate_check(name, key, cost=cost))

    def rate_limits(self) -> List[RateLimitView]:
        """Every configured rate limit with its counts."""
        return self.send(_api.rate_limits())

    def breaker(self, name: str, *, ignore: ExceptionTypes = ()) -> Breaker:
        """Circuit breaker ``name``: ``breaker.call(fn, *args, **kwargs)`` admits, runs,
        times and reports a call (exceptions of the ``ignore`` classes count as neither
        success nor failure); ``breaker.reset()``. See :class:`~floodgate_client.Breaker`."""
        return Breaker(self, name, ignore=ignore)

    def admit_call(self, breaker: str) -> AdmittedCall:
        """Asks breaker ``breaker`` to admit a call; :class:`~floodgate_client.BreakerOpenError`
        while it is open. Report the call with :meth:`report_call`. Never retried."""
        return self.send(_api.admit_call(breaker))

    def report_call(
        self,
        breaker: str,
        call_id: str,
        outcome: CallOutcome,
        *,
        duration_ms: Optional[float] = None,
        error: Optional[str] = None,
    ) -> BreakerState:
        """Reports how an admitted call went (``success``, ``failure``, ``ignored``, ``slow``);
        the breaker judges slowness from ``duration_ms``."""
        return self.send(
            _api.report_call(breaker, call_id, outcome, duration_ms=duration_ms, error=error)
        )

    def reset_breaker(self, breaker: str) -> BreakerState:
        """Closes a breaker and forgets its window."""
        return self.send(_api.reset_breaker(breaker))

    def breakers(self) -> List[BreakerView]:
        """Every configured breaker with its live state."""
        return self.send(_api.breakers())

    def guarded(
        self,
        fn: Callable[[], T],
        *,
        rate_limit: Optional[Tuple[str, str]] = None,
        cost: int = 1,
        permit: Optional[str] = None,
        wait: Optional[float] = None,
        priority: Optional[int] = None,
        lease_ttl: Optional[float] = None,
        holder: Optional[str] = None,
        breaker: Optional[str] = None,
        ignore: ExceptionTypes = (),
    ) -> T:
        """``fn()`` behind each guard given, in this order: the rate limit
        (``(name, key)``, taking ``cost``; a refusal raises
        :class:`~floodgate_client.RateLimitedError` with ``retry_after``), a permit of limiter
        ``permit`` (``wait``, ``priority``, ``lease_ttl``, ``holder`` as :meth:`permit`), and
        circuit breaker ``breaker`` (``ignore`` as :meth:`breaker`)."""
        if rate_limit is not None:
            name, key = rate_limit
            decision = self.rate_check(name, key, cost=cost)
            if not decision.allowed:
                raise rate_limited(name, key, decision)

        def run() -> T:
            if breaker is None:
                return fn()
            return self.breaker(breaker, ignore=ignore).call(fn)

        if permit is None:
            return run()
        return self.with_permit(
            permit, run, wait=wait, priority=priority, lease_ttl=lease_ttl, holder=holder
        )
