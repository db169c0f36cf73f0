"""Reporting outcomes: completions gathered into ``POST /v1/jobs/complete`` batches (those that
pile up while one batch is in flight go in the next), failures and snoozes one by one. Every
report is lease-fenced, so the client retries transient failures; an answer of ``LEASE_LOST``
means the job is no longer this worker's, and nothing more is said about it."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable, List, Set, Tuple

from ..async_client import AsyncClient
from ..errors import FloodgateError, LeaseLostError, ValidationError
from ._held import Held
from .outcomes import Complete, Drop, Fail, Outcome, Release

log = logging.getLogger("floodgate_client.worker")

MAX_BATCH = 1000
"""The most completions in one request (the server's bound)."""

_MISSING_ROUTE = ("NOT_FOUND", "METHOD_NOT_ALLOWED")


def missing_route(error: FloodgateError) -> bool:
    """Whether ``error`` says the server has no such route (an older server)."""
    return error.status in (404, 405) and error.code in _MISSING_ROUTE


class Reporter:
    """Sends each held job's outcome, then calls ``done(held, state)`` with the state the
    server reported (``succeeded``, ``dead``, ...), ``lease_lost``, ``dropped`` or
    ``unreported`` (the server could not be told; the lease running out puts the job back)."""

    def __init__(self, client: AsyncClient, done: Callable[[Held, str], None]) -> None:
        self._client = client
        self._done = done
        self._pending: List[Tuple[Held, Any]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._batch_route = True
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._loop_task = asyncio.get_running_loop().create_task(self._complete_loop())

    def report(self, held: Held, outcome: Outcome) -> None:
        """Reports ``outcome`` for ``held`` (once; later calls for the same job are ignored)."""
        if held.settled:
            return
        held.settled = True
        if isinstance(outcome, Drop):
            self._done(held, "dropped")
        elif isinstance(outcome, Complete):
            try:
                json.dumps(outcome.result)
            except (TypeError, ValueError) as e:
                self._spawn(self._fail(held, Fail(f"the result is not JSON: {e}")))
                return
            self._pending.append((held, outcome.result))
            self._wake.set()
        elif isinstance(outcome, Fail):
            self._spawn(self._fail(held, outcome))
        else:
            self._spawn(self._release(held, outcome))

    async def close(self) -> None:
        """Waits until every report so far has been sent (or given up)."""
        self._closing = True
        self._wake.set()
        await self._loop_task
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task: "asyncio.Task[None]" = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _complete_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                await self._complete_batch(batch)
            if self._closing and not self._pending:
                return

    async def _complete_batch(self, batch: List[Tuple[Held, Any]]) -> None:
        if self._batch_route:
            triples = [(h.job.id, h.job.lease_token, r) for h, r in batch]
            try:
                answer = await self._client.complete_many(triples)
            except FloodgateError as e:
                if missing_route(e):
                    log.warning("the server has no POST /v1/jobs/complete; completing one by one")
                    self._batch_route = False
                elif not isinstance(e, ValidationError):
                    log.warning("could not report %d completion(s): %s", len(batch), e)
                    for held, _ in batch:
                        self._done(held, "unreported")
                    return
                # A result the server refused fails alone: each job on its own.
            else:
                succeeded, lost = set(answer.succeeded), set(answer.lease_lost)
                for held, _ in batch:
                    if held.job.id in succeeded:
                        self._done(held, "succeeded")
                    elif held.job.id in lost:
                        self._done(held, "lease_lost")
                    else:
                        self._done(held, "unreported")
                return
        await asyncio.gather(*(self._complete_one(h, r) for h, r in batch))

    async def _complete_one(self, held: Held, result: Any) -> None:
        try:
            answer = await self._client.complete(held.job.id, held.job.lease_token, result)
        except LeaseLostError:
            self._done(held, "lease_lost")
        except ValidationError as e:
            await self._fail(held, Fail(f"the server refused the result: {e.detail}"))
        except FloodgateError as e:
            log.warning("could not report job %d succeeded: %s", held.job.id, e)
            self._done(held, "unreported")
        else:
            self._done(held, answer.state)

    async def _fail(self, held: Held, outcome: Fail) -> None:
        try:
            answer = await self._client.fail(
                held.job.id,
                held.job.lease_token,
                outcome.error,
                retry_in=outcome.retry_in,
                permanent=outcome.permanent,
            )
        except LeaseLostError:
            self._done(held, "lease_lost")
        except FloodgateError as e:
            log.warning("could not report job %d failed: %s", held.job.id, e)
            self._done(held, "unreported")
        else:
            self._done(held, answer.state)

    async def _release(self, held: Held, outcome: Release) -> None:
        try:
            answer = await self._client.snooze(held.job.id, held.job.lease_token, outcome.delay)
        except LeaseLostError:
            self._done(held, "lease_lost")
        except FloodgateError as e:
            log.warning("could not put job %d back: %s", held.job.id, e)
            self._done(held, "unreported")
        else:
            self._done(held, "released" if outcome.delay == 0 else answer.state)
