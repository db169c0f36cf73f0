"""The async client and the worker on one event loop, against a real server."""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List

import pytest
from _helpers import DEADLINE

from floodgate_client import (
    AsyncClient,
    AsyncJobContext,
    ClaimedJob,
    NotFoundError,
    RetryLater,
    Snooze,
    SyncJobContext,
    Worker,
)


@pytest.mark.asyncio
async def test_enqueue_worker_succeeded_async(aclient: AsyncClient) -> None:
    async def resize(job: ClaimedJob, ctx: AsyncJobContext) -> Dict[str, Any]:
        await asyncio.sleep(0)
        return {"width": job.payload["width"] // 2}

    def thumbnail(job: ClaimedJob, ctx: SyncJobContext) -> str:
        return f"thumb-{job.id}"

    ids = [(await aclient.enqueue("resize", {"width": 100 + i})).id for i in range(5)]
    ids.append((await aclient.enqueue("thumbnail", {}, idempotency_key="t-1")).id)
    worker = Worker(
        aclient, handlers={"resize": resize, "thumbnail": thumbnail}, concurrency=3, poll_wait=1
    )
    running = asyncio.ensure_future(worker.run_async())
    try:
        jobs = await asyncio.wait_for(
            asyncio.gather(*(aclient.wait_for(i, timeout=DEADLINE) for i in ids)), DEADLINE
        )
    finally:
        worker.stop()
        await asyncio.wait_for(running, DEADLINE)
    assert [j.state for j in jobs] == ["succeeded"] * 6
    assert [j.result for j in jobs[:5]] == [{"width": (100 + i) // 2} for i in range(5)]
    assert jobs[5].result == f"thumb-{ids[5]}"
    assert worker.stats.succeeded == 6 and worker.stats.claimed == 6
    listed: List[int] = [j.id async for j in aclient.iter_jobs(state="succeeded", limit=2)]
    assert sorted(listed) == sorted(ids)


@pytest.mark.asyncio
async def test_retry_later_and_snooze(aclient: AsyncClient) -> None:
    async def later(job: ClaimedJob, ctx: AsyncJobContext) -> None:
        raise RetryLater(3600, "the API is rate limited")

    async def snooze(job: ClaimedJob, ctx: AsyncJobContext) -> Snooze:
        return Snooze(3600)

    retry_id = (await aclient.enqueue("later", {})).id
    snooze_id = (await aclient.enqueue("snooze", {})).id
    worker = Worker(aclient, handlers={"later": later, "snooze": snooze}, poll_wait=1)
    running = asyncio.ensure_future(worker.run_async())
    try:
        async def settled() -> None:
            while worker.stats.failed + worker.stats.snoozed < 2:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(settled(), DEADLINE)
    finally:
        worker.stop()
        await asyncio.wait_for(running, DEADLINE)
    retried = await aclient.get(retry_id)
    assert retried.state == "failed_will_retry"
    assert retried.last_error == "the API is rate limited" and retried.attempt == 1
    assert (retried.run_at - retried.updated_at).total_seconds() > 3500
    snoozed = await aclient.get(snooze_id)
    assert snoozed.state == "scheduled" and snoozed.last_error is None
    assert (snoozed.run_at - snoozed.updated_at).total_seconds() > 3500


@pytest.mark.asyncio
async def test_async_errors_are_floodgate_errors(aclient: AsyncClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await aclient.get(424242)
    assert info.value.status == 404 and info.value.code == "NOT_FOUND"
