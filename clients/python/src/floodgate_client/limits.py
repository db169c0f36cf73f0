"""Limits as a service, the Pythonic way: a permit held inside a ``with`` block (heartbeated in
the background, released on the way out), and calls made through a circuit breaker (admitted,
timed, reported). :class:`Permit` and :class:`Breaker` go with
:class:`~floodgate_client.Client`; :class:`AsyncPermit` and :class:`AsyncBreaker` with
:class:`~floodgate_client.AsyncClient`. Get them from ``client.permit(...)`` and
``client.breaker(...)``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Optional,
    Tuple,
    Type,
    TypeVar,
)

from ._api import MAX_PERMIT_POLL
from .errors import (
    AcquireTimeoutError,
    FloodgateError,
    NotFoundError,
    PermitLostError,
    RateLimitedError,
)
from .models import BreakerState, BreakerView, CallOutcome, PermitGrant, RateDecision

if TYPE_CHECKING:
    from .async_client import AsyncClient
    from .client import Client

__all__ = [
    "Permit",
    "AsyncPermit",
    "Breaker",
    "AsyncBreaker",
    "ExceptionTypes",
]

log = logging.getLogger("floodgate_client.limits")

T = TypeVar("T")

ExceptionTypes = Tuple[Type[BaseException], ...]
"""Exception classes, as ``except`` and ``isinstance`` take them."""


# --- Shared, without I/O -----------------------------------------------------------------


class _WaitPlan:
    """How one permit's total ``wait`` is spent in long polls of at most ``max_poll``
    seconds."""

    def __init__(self, wait: Optional[float], now: float) -> None:
        self.total = max(0.0, wait or 0.0)
        self.deadline = now + self.total
        self.max_poll = MAX_PERMIT_POLL
        self._first = True

    def next_wait(self, now: float) -> Optional[float]:
        """The next request's ``wait`` (the first request is always sent), or ``None`` when
        the time is up."""
        left = self.deadline - now
        if self._first:
            self._first = False
        elif left <= 0:
            return None
        return round(min(max(0.0, left), self.max_poll), 3)  # whole milliseconds

    def pause(
        self, error: FloodgateError, asked: float, took: float, now: float
    ) -> Optional[float]:
        """After an ``ACQUIRE_TIMEOUT`` to a request that waited ``asked`` and took ``took``
        seconds: the pause before the next request, or ``None`` to give up. A request answered
        well before its wait was not held as a long poll (the server had no slot for it), so
        the next one waits the ``Retry-After`` first."""
        left = self.deadline - now
        if left <= 0:
            return None
        if took < asked / 2:
            return min(left, error.retry_after if error.retry_after is not None else 1.0)
        return 0.0

    def timed_out(self, limiter: str, last: FloodgateError) -> AcquireTimeoutError:
        """The error for a ``wait`` spent in several polls without a permit."""
        error = AcquireTimeoutError(
            last.code,
            status=last.status,
            title=last.title or "Acquire timeout",
            detail=f"no permit of limiter {limiter!r} came free within {self.total:g} s",
            retry_after=last.retry_after,
            problem=last.problem,
        )
        error.__cause__ = last
        return error


def _lost_error(permit_id: str, lease_ttl: float) -> PermitLostError:
    return PermitLostError(
        "PERMIT_LOST",
        title="Permit lost",
        detail=f"the permit {permit_id!r} was not confirmed by a heartbeat within its "
        f"{lease_ttl:g} s lease (the server could not be reached)",
    )


def _as_lost(error: FloodgateError) -> PermitLostError:
    """A heartbeat's ``PERMIT_LOST``, or its ``404`` (the server no longer knows the permit:
    restarted, say) as one."""
    if isinstance(error, PermitLostError):
        return error
    return PermitLostError(
        "PERMIT_LOST", status=error.status, title=error.title, detail=error.detail,
        problem=error.problem,
    )


def _error_text(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _outcome_of(error: BaseException, ignore: ExceptionTypes) -> CallOutcome:
    """A raised call's outcome: ``ignored`` for the ``ignore`` classes and for what is not an
    ``Exception`` (a cancellation, ``KeyboardInterrupt``), else ``failure``."""
    if isinstance(error, ignore) or not isinstance(error, Exception):
        return "ignored"
    return "failure"


def rate_limited(name: str, key: str, decision: RateDecision) -> RateLimitedError:
    """The ``RATE_LIMITED`` error for a refused ``decision`` (``guarded`` raises it)."""
    wait = "" if decision.retry_after is None else f"; retry in {decision.retry_after:g} s"
    error = RateLimitedError(
        "RATE_LIMITED",
        status=429,
        title="Rate limited",
        detail=f"{key!r} is over the rate limit {name!r}{wait}",
        retry_after=decision.retry_after,
    )
    error.decision = decision
    return error


class _PermitBase:
    """What both permits share: the request, the grant, the lost signal's reason."""

    def __init__(
        self,
        limiter: str,
        *,
        wait: Optional[float],
        priority: Optional[int],
        lease_ttl: Optional[float],
        holder: Optional[str],
    ) -> None:
        self.limiter = limiter
        """The limiter."""
        self.wait = wait
        """Seconds to wait for a permit in all (``None`` or 0: answer at once)."""
        self.priority = priority
        self.lease_ttl = lease_ttl
        self.holder = holder
        self.grant: Optional[PermitGrant] = None
        """What the server gave (``None`` until acquired)."""
        self.lost_error: Optional[PermitLostError] = None
        """Why the permit was lost (``None`` while it was not)."""
        self._used = False
        self._released = False

    @property
    def id(self) -> str:
        """The permit's id (``RuntimeError`` before it is acquired)."""
        if self.grant is None:
            raise RuntimeError("the permit is not acquired")
        return self.grant.permit_id

    def raise_if_lost(self) -> None:
        """Raises :class:`~floodgate_client.PermitLostError` once the permit is lost (a
        handy check point in a long loop)."""
        if self.lost_error is not None:
            raise self.lost_error

    def _start(self) -> None:
        if self._used:
            raise RuntimeError("a permit is acquired once; ask client.permit(...) for another")
        self._used = True

    def _interval(self, grant: PermitGrant) -> float:
        return max(0.05, grant.lease_ttl / 3)

    def __repr__(self) -> str:
        held = self.grant.permit_id if self.grant is not None else None
        return (
            f"{type(self).__name__}(limiter={self.limiter!r}, permit_id={held!r}, "
            f"lost={self.lost_error is not None})"
        )


# --- Sync --------------------------------------------------------------------------------


class Permit(_PermitBase):
    """A permit of a limiter, for a ``with`` block (from :meth:`Client.permit
    <floodgate_client.Client.permit>`)::

        with client.permit("llm", wait=5) as permit:
            ...                             # at most the limiter's max_concurrency at once

    Entering waits up to ``wait`` seconds in all for a permit (in long polls of at most 30 s)
    and raises :class:`~floodgate_client.AcquireTimeoutError` when none came free,
    :class:`~floodgate_client.QueueFullError` when too many wait already. While held, a
    daemon thread heartbeats it every third of its lease; ``lost`` (a ``threading.Event``) is
    set when a heartbeat answers ``PERMIT_LOST``, or none was confirmed within the lease.
    Leaving releases it, whether the block raised or not; a release that fails (``PERMIT_LOST``:
    the lease ran out first) raises after a block that did not, and is only logged after one
    that did, so the block's own exception is what propagates.
    """

    def __init__(
        self,
        client: Client,
        limiter: str,
        *,
        wait: Optional[float] = None,
        priority: Optional[int] = None,
        lease_ttl: Optional[float] = None,
        holder: Optional[str] = None,
    ) -> None:
        super().__init__(limiter, wait=wait, priority=priority, lease_ttl=lease_ttl, holder=holder)
        self._client = client
        self.lost = threading.Event()
        """Set when the permit is lost: it no longer counts, so the work it guards runs
        unguarded."""
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def acquire(self) -> Permit:
        """Waits for the permit and starts heartbeating it (what entering the ``with`` block
        does)."""
        self._start()
        self.grant = self._acquire()
        self._thread = threading.Thread(
            target=self._heartbeats,
            args=(self.grant, time.monotonic()),
            name=f"floodgate-permit-{self.grant.permit_id[:8]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def _acquire(self) -> PermitGrant:
        plan = _WaitPlan(self.wait, time.monotonic())
        last: Optional[FloodgateError] = None
        while True:
            asked = plan.next_wait(time.monotonic())
            if asked is None:
                assert last is not None
                raise plan.timed_out(self.limiter, last)
            started = time.monotonic()
            try:
                return self._client.acquire_permit(
                    self.limiter,
                    wait=asked,
                    priority=self.priority,
                    lease_ttl=self.lease_ttl,
                    holder=self.holder,
                )
            except AcquireTimeoutError as e:
                now = time.monotonic()
                pause = plan.pause(e, asked, now - started, now)
                if pause is None:
                    if plan.total > asked:
                        raise plan.timed_out(self.limiter, e) from e
                    raise
                last = e
                if pause > 0:
                    time.sleep(pause)

    def _heartbeats(self, grant: PermitGrant, confirmed: float) -> None:
        interval = self._interval(grant)
        next_beat = confirmed + interval
        while not self._stop.wait(max(0.0, next_beat - time.monotonic())):
            sent = time.monotonic()
            next_beat = sent + interval
            try:
                self._client.heartbeat_permit(grant.permit_id)
                confirmed = sent
            except (PermitLostError, NotFoundError) as e:
                self._lose(_as_lost(e))
                return
            except Exception as e:  # whatever it is, the thread must not die silently
                log.warning("heartbeat of permit %s failed: %s", grant.permit_id, e)
                if time.monotonic() - confirmed >= grant.lease_ttl:
                    self._lose(_lost_error(grant.permit_id, grant.lease_ttl))
                    return

    def _lose(self, error: PermitLostError) -> None:
        if self._stop.is_set():
            return  # released meanwhile: the answer is about the release
        log.warning("permit %s of limiter %r lost: %s", self.id, self.limiter, error)
        self.lost_error = error
        self.lost.set()

    def release(self) -> None:
        """Stops the heartbeats and releases the permit (once; later calls do nothing).
        Raises :class:`~floodgate_client.PermitLostError` when its lease had run out."""
        self._stop.set()
        if self.grant is None or self._released:
            return
        self._released = True
        self._client.release_permit(self.grant.permit_id)

    def __enter__(self) -> Permit:
        return self.acquire()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        try:
            self.release()
        except FloodgateError as e:
            if exc is None:
                raise
            log.warning("release of permit %s failed (the block raised): %s", self.id, e)


class Breaker:
    """Calls through a circuit breaker (from :meth:`Client.breaker
    <floodgate_client.Client.breaker>`). :meth:`call` asks the server to admit the call
    (raising :class:`~floodgate_client.BreakerOpenError` while the breaker is open, without
    calling ``fn``), runs it, times it, and reports success, or failure with ``str(error)``
    when it raises (and re-raises). Exceptions of the ``ignore`` classes, and what is not an
    ``Exception`` (``KeyboardInterrupt``), are reported as ``ignored``. A report that fails is
    logged, never raised: the call's own result or exception is what you get."""

    def __init__(self, client: Client, name: str, *, ignore: ExceptionTypes = ()) -> None:
        self._client = client
        self.name = name
        """The breaker."""
        self.ignore = ignore
        """Exception classes reported as ``ignored`` (neither success nor failure)."""

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` through the breaker."""
        admitted = self._client.admit_call(self.name)
        started = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:
            took = (time.perf_counter() - started) * 1000
            outcome = _outcome_of(e, self.ignore)
            self._report(admitted.call_id, outcome, took, _error_text(e))
            raise
        self._report(admitted.call_id, "success", (time.perf_counter() - started) * 1000, None)
        return result

    def _report(
        self, call_id: str, outcome: CallOutcome, took: float, error: Optional[str]
    ) -> None:
        try:
            self._client.report_call(
                self.name, call_id, outcome, duration_ms=took,
                error=error if outcome == "failure" else None,
            )
        except FloodgateError as e:
            log.warning("report of call %s to breaker %r failed: %s", call_id, self.name, e)

    def reset(self) -> BreakerState:
        """Closes the breaker and forgets its window."""
        return self._client.reset_breaker(self.name)

    def status(self) -> BreakerView:
        """The breaker's live state (from ``GET /v1/breakers``)."""
        for view in self._client.breakers():
            if view.name == self.name:
                return view
        raise NotFoundError("NOT_FOUND", status=404, title="Not found",
                            detail=f"no breaker is named {self.name!r}")

    def __repr__(self) -> str:
        return f"Breaker(name={self.name!r})"


# --- Async -------------------------------------------------------------------------------


class AsyncPermit(_PermitBase):
    """A permit of a limiter, for an ``async with`` block (from :meth:`AsyncClient.permit
    <floodgate_client.AsyncClient.permit>`)::

        async with client.permit("llm", wait=5) as permit:
            ...

    As :class:`Permit`, with a task that heartbeats and ``lost`` an ``asyncio.Event``.
    Cancelling the task that waits for the permit aborts the request, and the server then
    leaves no permit behind. A cancelled block releases the permit on its way out.
    """

    def __init__(
        self,
        client: AsyncClient,
        limiter: str,
        *,
        wait: Optional[float] = None,
        priority: Optional[int] = None,
        lease_ttl: Optional[float] = None,
        holder: Optional[str] = None,
    ) -> None:
        super().__init__(limiter, wait=wait, priority=priority, lease_ttl=lease_ttl, holder=holder)
        self._client = client
        self.lost = asyncio.Event()
        """Set when the permit is lost: it no longer counts, so the work it guards runs
        unguarded."""
        self._task: Optional[asyncio.Task[None]] = None

    async def acquire(self) -> AsyncPermit:
        """Waits for the permit and starts heartbeating it (what entering the ``async with``
        block does)."""
        self._start()
        loop = asyncio.get_running_loop()
        self.grant = await self._acquire()
        self._task = loop.create_task(self._heartbeats(self.grant, loop.time()))
        return self

    async def _acquire(self) -> PermitGrant:
        loop = asyncio.get_running_loop()
        plan = _WaitPlan(self.wait, loop.time())
        last: Optional[FloodgateError] = None
        while True:
            asked = plan.next_wait(loop.time())
            if asked is None:
                assert last is not None
                raise plan.timed_out(self.limiter, last)
            started = loop.time()
            try:
                return await self._client.acquire_permit(
                    self.limiter,
                    wait=asked,
                    priority=self.priority,
                    lease_ttl=self.lease_ttl,
                    holder=self.holder,
                )
            except AcquireTimeoutError as e:
                now = loop.time()
                pause = plan.pause(e, asked, now - started, now)
                if pause is None:
                    if plan.total > asked:
                        raise plan.timed_out(self.limiter, e) from e
                    raise
                last = e
                if pause > 0:
                    await asyncio.sleep(pause)

    async def _heartbeats(self, grant: PermitGrant, confirmed: float) -> None:
        loop = asyncio.get_running_loop()
        interval = self._interval(grant)
        next_beat = confirmed + interval
        while True:
            await asyncio.sleep(max(0.0, next_beat - loop.time()))
            sent = loop.time()
            next_beat = sent + interval
            try:
                await self._client.heartbeat_permit(grant.permit_id)
                confirmed = sent
            except (PermitLostError, NotFoundError) as e:
                self._lose(_as_lost(e))
                return
            except Exception as e:  # whatever it is, the task must not die silently
                log.warning("heartbeat of permit %s failed: %s", grant.permit_id, e)
                if loop.time() - confirmed >= grant.lease_ttl:
                    self._lose(_lost_error(grant.permit_id, grant.lease_ttl))
                    return

    def _lose(self, error: PermitLostError) -> None:
        if self._released:
            return
        log.warning("permit %s of limiter %r lost: %s", self.id, self.limiter, error)
        self.lost_error = error
        self.lost.set()

    async def _stop_heartbeats(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def release(self) -> None:
        """Stops the heartbeats and releases the permit (once; later calls do nothing).
        Raises :class:`~floodgate_client.PermitLostError` when its lease had run out."""
        if self.grant is None or self._released:
            return
        self._released = True
        await self._stop_heartbeats()
        await self._client.release_permit(self.grant.permit_id)

    async def __aenter__(self) -> AsyncPermit:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        try:
            await self.release()
        except FloodgateError as e:
            if exc is None:
                raise
            log.warning("release of permit %s failed (the block raised): %s", self.id, e)


class AsyncBreaker:
    """Calls through a circuit breaker (from :meth:`AsyncClient.breaker
    <floodgate_client.AsyncClient.breaker>`): as :class:`Breaker`, with :meth:`call`
    awaiting a coroutine function. A cancelled call is reported as ``ignored``."""

    def __init__(self, client: AsyncClient, name: str, *, ignore: ExceptionTypes = ()) -> None:
        self._client = client
        self.name = name
        """The breaker."""
        self.ignore = ignore
        """Exception classes reported as ``ignored`` (neither success nor failure)."""

    async def call(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` through the breaker."""
        admitted = await self._client.admit_call(self.name)
        started = time.perf_counter()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as e:
            took = (time.perf_counter() - started) * 1000
            outcome = _outcome_of(e, self.ignore)
            await self._report(admitted.call_id, outcome, took, _error_text(e))
            raise
        took = (time.perf_counter() - started) * 1000
        await self._report(admitted.call_id, "success", took, None)
        return result

    async def _report(
        self, call_id: str, outcome: CallOutcome, took: float, error: Optional[str]
    ) -> None:
        try:
            await self._client.report_call(
                self.name, call_id, outcome, duration_ms=took,
                error=error if outcome == "failure" else None,
            )
        except FloodgateError as e:
            log.warning("report of call %s to breaker %r failed: %s", call_id, self.name, e)

    async def reset(self) -> BreakerState:
        """Closes the breaker and forgets its window."""
        return await self._client.reset_breaker(self.name)

    async def status(self) -> BreakerView:
        """The breaker's live state (from ``GET /v1/breakers``)."""
        for view in await self._client.breakers():
            if view.name == self.name:
                return view
        raise NotFoundError("NOT_FOUND", status=404, title="Not found",
                            detail=f"no breaker is named {self.name!r}")

    def __repr__(self) -> str:
        return f"AsyncBreaker(name={self.name!r})"
