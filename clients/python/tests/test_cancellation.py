"""A handler's cancellation signal: fired by a lost lease (nothing is reported) and by a
cancel request (the job ends cancelled), for async handlers (task cancelled, asyncio.Event)
and plain ones (threading.Event)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List, Optional, Tuple, Union

import pytest
from _helpers import DEADLINE, ThreadedWorker, eventually

from floodgate_client import (
    AsyncClient,
    AsyncJobContext,
    ClaimedJob,
    Client,
    Handler,
    SyncJobContext,
    Worker,
)

def fast_worker(client: Union[Client, AsyncClient], kind: str, handler: Handler) -> Worker:
    """A worker that heartbeats every 0.3 s (a long lease, so only the test takes it away)."""
    return Worker(client, handlers={kind: handler}, lease_ttl=20, heartbeat_interval=0.3,
                  poll_wait=1)


class AsyncProbe:
    """An async handler that waits forever and notes how it was stopped."""

    def __init__(self) -> None:
        self.started: "asyncio.Queue[ClaimedJob]" = asyncio.Queue()
        self.stopped: "asyncio.Queue[Tuple[Optional[str], bool, bool]]" = asyncio.Queue()

    async def __call__(self, job: ClaimedJob, ctx: AsyncJobContext) -> str:
        await self.started.put(job)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await self.stopped.put((ctx.reason, ctx.cancelled.is_set(), True))
            raise
        return "finished"


async def _run(worker: Worker, body: Any) -> Any:
    running = asyncio.ensure_future(worker.run_async())
    try:
        return await asyncio.wait_for(body, DEADLINE)
    finally:
        worker.stop(now=True)
        await asyncio.wait_for(running, DEADLINE)


@pytest.mark.asyncio
async def test_lost_lease_cancels_an_async_handler(aclient: AsyncClient) -> None:
    probe = AsyncProbe()
    accepted = await aclient.enqueue("slow", {})
    worker = fast_worker(aclient, "slow", probe)

    async def scenario() -> Tuple[Optional[str], bool, bool]:
        job = await probe.started.get()
        # Someone else finishes the job with the lease token: the worker's lease is gone.
        await aclient.fail(job.id, job.lease_token, "taken over", permanent=True)
        return await probe.stopped.get()

    reason, event_set, task_cancelled = await _run(worker, scenario())
    assert (reason, event_set, task_cancelled) == ("lease_lost", True, True)
    job = await aclient.get(accepted.id)
    assert job.state == "dead" and job.last_error == "taken over"  # the worker wrote nothing
    assert worker.stats.lease_lost == 1 and worker.stats.succeeded == 0


def test_lost_lease_signals_a_sync_handler(client: Client) -> None:
    started: List[ClaimedJob] = []
    seen: List[Optional[str]] = []

    def slow(job: ClaimedJob, ctx: SyncJobContext) -> str:
        started.append(job)
        assert ctx.cancelled.wait(DEADLINE)
        seen.append(ctx.reason)
        return "finished anyway"  # not reported: the lease is lost

    accepted = client.enqueue("slow", {})
    worker = fast_worker(client, "slow", slow)
    with ThreadedWorker(worker):
        job = eventually(lambda: started[0] if started else None, "the handler to start")
        client.snooze(job.id, job.lease_token, delay=3600)
        eventually(lambda: seen == ["lease_lost"], "the lease_lost signal")
        eventually(lambda: worker.stats.lease_lost == 1, "the job dropped")
    after = client.get(accepted.id)
    assert after.state == "scheduled" and after.result is None


@pytest.mark.asyncio
async def test_cancel_request_cancels_an_async_handler(aclient: AsyncClient) -> None:
    probe = AsyncProbe()
    accepted = await aclient.enqueue("slow", {})
    worker = fast_worker(aclient, "slow", probe)

    async def scenario() -> Any:
        await probe.started.get()
        assert (await aclient.cancel(accepted.id)).state == "running"
        stopped = await probe.stopped.get()
        return stopped, await aclient.wait_for(accepted.id, timeout=DEADLINE)

    (reason, event_set, task_cancelled), job = await _run(worker, scenario())
    assert (reason, event_set, task_cancelled) == ("cancel_requested", True, True)
    assert job.state == "cancelled"
    assert worker.stats.cancelled == 1


def test_cancel_request_signals_a_sync_handler(client: Client) -> None:
    started = threading.Event()

    def slow(job: ClaimedJob, ctx: SyncJobContext) -> str:
        started.set()
        ctx.cancelled.wait(DEADLINE)
        ctx.raise_if_cancelled()
        return "not cancelled"

    accepted = client.enqueue("slow", {})
    worker = fast_worker(client, "slow", slow)
    with ThreadedWorker(worker):
        assert started.wait(DEADLINE)
        client.cancel(accepted.id)
        job = client.wait_for(accepted.id, timeout=DEADLINE)
    assert job.state == "cancelled" and job.result is None
    assert worker.stats.cancelled == 1
