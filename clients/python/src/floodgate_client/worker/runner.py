"""The worker: claims jobs for its free slots, runs their handlers, heartbeats their leases,
reports their outcomes, and shuts down gracefully."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import random
import signal
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union, cast

from .. import _api
from ..async_client import AsyncClient
from ..client import Client
from ..errors import FloodgateError
from ..models import ClaimedJob
from ._heartbeats import Heartbeats
from ._held import Held, HeldJobs
from ._reports import Reporter
from .context import AsyncHandler, AsyncJobContext, Handler, SyncHandler, SyncJobContext
from .outcomes import (
    Outcome,
    PermanentError,
    Release,
    RetryLater,
    Snooze,
    outcome_of_error,
    outcome_of_result,
)

__all__ = ["Worker", "WorkerStats"]

log = logging.getLogger("floodgate_client.worker")

CANCEL_GRACE = 2.0
"""Seconds a cancelled handler gets to end before its job is released regardless."""


@dataclass
class WorkerStats:
    """What a worker has done so far, by the state the server reported."""

    claimed: int = 0
    """Jobs claimed."""
    succeeded: int = 0
    """Jobs reported succeeded."""
    failed: int = 0
    """Failed attempts that will be retried."""
    dead: int = 0
    """Jobs reported dead (permanent failures, or out of attempts)."""
    cancelled: int = 0
    """Jobs that ended cancelled."""
    snoozed: int = 0
    """Jobs put back with a delay (``Snooze``)."""
    released: int = 0
    """Jobs put back at once (at shutdown)."""
    lease_lost: int = 0
    """Jobs whose lease was lost: nothing was written for them."""
    unreported: int = 0
    """Jobs whose outcome could not be sent (their leases run out and they run again)."""

    @property
    def in_hand(self) -> int:
        """Jobs claimed and not yet reported (running, or their report under way)."""
        done = (self.succeeded + self.failed + self.dead + self.cancelled + self.snoozed
                + self.released + self.lease_lost + self.unreported)
        return self.claimed - done

    def count(self, state: str) -> None:
        """Counts one job reported in ``state``."""
        field = {
            "failed_will_retry": "failed",
            "pending": "snoozed",
            "scheduled": "snoozed",
            "dropped": "lease_lost",
        }.get(state, state)
        if hasattr(self, field):
            setattr(self, field, getattr(self, field) + 1)


def _is_async(handler: Any) -> bool:
    """Whether ``handler`` is an ``async def`` (or an object whose ``__call__`` is one)."""
    if inspect.iscoroutinefunction(handler):
        return True
    return inspect.iscoroutinefunction(type(handler).__call__)


def _default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs ``handlers`` (``{"kind": fn}``) for the jobs of ``queue``.

    ``client_or_url``: an :class:`~floodgate_client.AsyncClient` (used as is), a
    :class:`~floodgate_client.Client` (its server, token and settings are reused), or the
    server's URL. A handler is ``fn(job, ctx)``: an ``async def`` runs on the event loop
    (``ctx.cancelled`` is an ``asyncio.Event`` and the task is cancelled when it fires); a plain
    function runs in one of ``concurrency`` threads (``ctx.cancelled`` is a
    ``threading.Event``). Its return value completes the job with that result; raising fails
    the attempt (:class:`PermanentError`: dead at once; :class:`RetryLater`: retry after its
    delay); returning or raising :class:`Snooze` puts the job back without spending the
    attempt.

    ``kinds`` (default: the handlers' kinds) are claimed, ``concurrency`` at a time, each
    under a lease of ``lease_ttl`` seconds renewed every ``heartbeat_interval`` (a third of
    it by default). A claim long-polls up to ``poll_wait`` seconds. :meth:`run` blocks and
    stops gracefully on SIGTERM/SIGINT: no more claims, running jobs get
    ``shutdown_timeout`` seconds to finish, then the rest are cancelled and put back on the
    queue at once; a second signal skips the wait.
    """

    def __init__(
        self,
        client_or_url: Union[AsyncClient, Client, str],
        *,
        handlers: Mapping[str, Handler],
        queue: str = "default",
        kinds: Optional[Iterable[str]] = None,
        concurrency: int = 10,
        lease_ttl: int = 30,
        shutdown_timeout: float = 30.0,
        name: Optional[str] = None,
        poll_wait: int = 5,
        heartbeat_interval: Optional[float] = None,
    ) -> None:
        if not handlers:
            raise ValueError("handlers must name at least one kind")
        if not 1 <= concurrency <= 1000:
            raise ValueError("concurrency must be 1..1000")
        if not 1 <= lease_ttl <= 3600:
            raise ValueError("lease_ttl must be 1..3600 seconds")
        if not 1 <= poll_wait <= 30:
            raise ValueError("poll_wait must be 1..30 seconds")
        if shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must not be negative")
        self.handlers = dict(handlers)
        """The handler of each kind."""
        self.queue = queue
        """The queue claimed from."""
        self.kinds: List[str] = list(self.handlers) if kinds is None else list(kinds)
        """The kinds claimed."""
        self.concurrency = concurrency
        """Handlers running at most at once (finished jobs whose report is under way do not
        count, up to as many again)."""
        self.lease_ttl = int(lease_ttl)
        """Lease length in seconds."""
        self.shutdown_timeout = shutdown_timeout
        """Seconds running jobs get to finish once a stop is asked for."""
        self.name = name or _default_name()
        """This worker's name (the lease owner)."""
        self.poll_wait = int(poll_wait)
        """The longest long poll of a claim, in seconds (also the longest a stop waits for a
        claim in flight: its jobs are put back, never abandoned)."""
        self.heartbeat_interval = heartbeat_interval or max(0.5, self.lease_ttl / 3)
        """Seconds between heartbeats."""
        self.stats = WorkerStats()
        """Counts of what the worker did."""
        self._client_arg = client_or_url
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._early_stop: Optional[bool] = None
        self._stopping_flag = False

    # --- Running and stopping ----------------------------------------------------------

    def run(self) -> None:
        """Runs the worker in a new event loop until it is stopped, with SIGTERM and SIGINT
        (from the main thread) asking for a graceful stop; a second signal stops at once."""
        asyncio.run(self._run_with_signals())

    def stop(self, *, now: bool = False) -> None:
        """Asks the worker to stop (from any thread): no more claims; running jobs get
        ``shutdown_timeout`` seconds (none with ``now``) before they are cancelled and put
        back on the queue."""
        loop = self._loop
        if loop is None:
            self._early_stop = now or bool(self._early_stop)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._request_stop(now)
        else:
            loop.call_soon_threadsafe(self._request_stop, now)

    async def run_async(self) -> None:
        """Runs the worker on the running event loop until :meth:`stop` (no signal handlers
        are installed). Raises the :class:`~floodgate_client.FloodgateError` of a claim the
        server refused (a wrong token, queue or kind), after stopping gracefully."""
        if self._loop is not None:
            raise RuntimeError("this worker is already running")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        self._now = asyncio.Event()
        self._stopping_flag = False
        if self._early_stop is not None:
            self._request_stop(self._early_stop)
            self._early_stop = None
        client, owned = self._make_client()
        self._client = client
        self._held = HeldJobs()
        self._running = 0
        self._executor = ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix=f"floodgate-{self.name}"
        )
        self._reporter = Reporter(client, self._reported)
        heartbeats = Heartbeats(
            client,
            self._held,
            worker=self.name,
            lease_ttl=self.lease_ttl,
            interval=self.heartbeat_interval,
        )
        log.info("worker %s: queue %r, kinds %s, concurrency %d",
                 self.name, self.queue, self.kinds, self.concurrency)
        claims = loop.create_task(self._claim_loop())
        self._claims = claims
        try:
            try:
                await claims
            except asyncio.CancelledError:
                if not self._now.is_set():  # this task was cancelled: stop now, then say so
                    self._request_stop(True)
                    raise
            finally:
                self._request_stop(False)
                await self._drain()
                await self._reporter.close()
        finally:
            await heartbeats.stop()
            self._executor.shutdown(wait=False)
            if owned:
                await client.aclose()
            self._loop = None
            log.info("worker %s stopped: %s", self.name, self.stats)

    async def _run_with_signals(self) -> None:
        loop = asyncio.get_running_loop()
        installed: List[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):  # pragma: no cover (Windows)
                    signal.signal(sig, lambda s, f: loop.call_soon_threadsafe(self._on_signal, s))
        try:
            await self.run_async()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if not self._stopping_flag:
            log.warning("worker %s: %s: stopping (up to %g s for running jobs; again to stop now)",
                        self.name, signal.Signals(sig).name, self.shutdown_timeout)
            self._request_stop(False)
        else:
            log.warning("worker %s: %s again: stopping now", self.name, signal.Signals(sig).name)
            self._request_stop(True)

    def _request_stop(self, now: bool) -> None:
        self._stopping_flag = True
        self._stopping.set()
        if now and not self._now.is_set():
            self._now.set()
            claims = getattr(self, "_claims", None)
            if claims is not None and not claims.done():
                claims.cancel()

    # --- Claiming ----------------------------------------------------------------------

    def _make_client(self) -> Tuple[AsyncClient, bool]:
        arg = self._client_arg
        if isinstance(arg, AsyncClient):
            return arg, False
        if isinstance(arg, Client):
            s = arg.settings
            return (
                AsyncClient(s.base_url, token=s.token, timeout=s.timeout, retry=s.retry,
                            headers=s.headers),
                True,
            )
        return AsyncClient(arg), True

    async def _pause(self, seconds: float) -> None:
        """Sleeps ``seconds``, or less when a stop is asked for."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = min(self.concurrency - self._running, 2 * self.concurrency - len(self._held))
            if free <= 0:
                self._held.freed.clear()
                freed = asyncio.ensure_future(self._held.freed.wait())
                stopping = asyncio.ensure_future(self._stopping.wait())
                try:
                    await asyncio.wait([freed, stopping], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    freed.cancel()
                    stopping.cancel()
                continue
            call = _api.claim_polled(
                self.queue,
                worker=self.name,
                limit=free,
                wait=self.poll_wait,
                kinds=self.kinds,
                lease_ttl=self.lease_ttl,
                timeout=self._client.settings.timeout,
            )
            try:
                jobs, retry_after = await self._client.send(call)
            except FloodgateError as e:
                if e.status is not None and 400 <= e.status < 500 and e.status not in (408, 429):
                    log.error("worker %s: claim refused: %s", self.name, e)
                    raise
                failures += 1
                delay = e.retry_after or random.uniform(0, min(10.0, 0.25 * 2**failures))
                log.warning("worker %s: claim failed (%s); again in %.1f s", self.name, e, delay)
                await self._pause(delay)
                continue
            failures = 0
            self.stats.claimed += len(jobs)
            for job in jobs:
                if self._stopping.is_set():
                    self._put_back(job)
                else:
                    self._start(job)
            if not jobs and retry_after:
                await self._pause(retry_after)

    def _put_back(self, job: ClaimedJob) -> None:
        """A job claimed while stopping goes back at once, unstarted."""
        held = Held(job, SyncJobContext(job, self.name), deadline=0.0, running=False)
        self._held.add(held)
        self._reporter.report(held, Release(0))

    def _start(self, job: ClaimedJob) -> None:
        loop = asyncio.get_running_loop()
        handler = self.handlers.get(job.kind)
        is_async = handler is not None and _is_async(handler)
        ctx: Union[AsyncJobContext, SyncJobContext] = (
            AsyncJobContext(job, self.name) if is_async else SyncJobContext(job, self.name)
        )
        held = Held(job, ctx, deadline=loop.time() + self.lease_ttl)
        self._held.add(held)
        self._running += 1
        held.task = loop.create_task(self._handle(held, handler))

    # --- Handling ----------------------------------------------------------------------

    async def _handle(self, held: Held, handler: Optional[Handler]) -> None:
        job, ctx = held.job, held.ctx
        outcome: Outcome
        try:
            if handler is None:
                raise PermanentError(
                    f"no handler for kind {job.kind!r} (worker {self.name} handles "
                    f"{', '.join(sorted(self.handlers))})"
                )
            if isinstance(ctx, AsyncJobContext):
                result = await cast(AsyncHandler, handler)(job, ctx)
            else:
                call = cast(SyncHandler, handler)
                run = functools.partial(contextvars.copy_context().run, call, job, ctx)
                result = await asyncio.get_running_loop().run_in_executor(self._executor, run)
        except asyncio.CancelledError as e:
            if ctx.reason is None:  # cancelled from outside the worker: treat as a shutdown
                ctx._fire("shutdown")
            outcome = outcome_of_error(e, ctx.reason)
        except Exception as e:  # any error of the handler is the attempt's failure
            if ctx.reason is None and not isinstance(e, PermanentError):
                log.warning("job %d (%s) failed: %s", job.id, job.kind, e,
                            exc_info=not isinstance(e, (RetryLater, Snooze)))
            outcome = outcome_of_error(e, ctx.reason)
        else:
            outcome = outcome_of_result(result, ctx.reason)
        finally:
            held.running = False
            self._running -= 1
            self._held.freed.set()
        self._reporter.report(held, outcome)

    def _reported(self, held: Held, state: str) -> None:
        self._held.forget(held)
        self.stats.count(state)
        log.debug("job %d (%s): %s", held.job.id, held.job.kind, state)

    # --- Shutting down -----------------------------------------------------------------

    async def _drain(self) -> None:
        """Lets running handlers finish within ``shutdown_timeout`` (unless stopping now),
        then cancels the rest and puts their jobs back on the queue."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_timeout
        while not self._now.is_set():
            tasks = self._running_tasks()
            left = deadline - loop.time()
            if not tasks or left <= 0:
                break
            now = asyncio.ensure_future(self._now.wait())
            try:
                await asyncio.wait([*tasks, now], timeout=left,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                now.cancel()
        late = [h for h in self._held if h.running]
        if not late:
            return
        log.warning("worker %s: cancelling %d job(s) still running; putting them back",
                    self.name, len(late))
        for held in late:
            held.stop("shutdown")
            if held.task is not None:
                held.task.cancel()  # a thread keeps running; its job is released anyway
        tasks = [h.task for h in late if h.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_GRACE)
        for held in late:
            self._reporter.report(held, Release(0))  # ignored for those already settled

    def _running_tasks(self) -> List["asyncio.Task[None]"]:
        return [h.task for h in self._held if h.running and h.task is not None]

