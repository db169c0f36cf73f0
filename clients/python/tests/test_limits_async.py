"""Limits as a service with the async client, against a real server configured with
``LIMITS_CONFIG``: permits in ``async with`` blocks across many tasks, a cancelled waiter
leaving no permit, a cancelled block releasing its permit, lost permits, rate checks,
circuit breakers around coroutines, and ``guarded``."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, List, Optional, TypeVar

import pytest
from _helpers import DEADLINE

from floodgate_client import (
    AcquireTimeoutError,
    AsyncClient,
    AsyncPermit,
    BreakerOpenError,
    LimiterView,
    PermitLostError,
    RateLimitedError,
)

T = TypeVar("T")


class Boom(Exception):
    """What the guarded code raises in these tests."""


async def limiter(client: AsyncClient, name: str) -> LimiterView:
    return next(v for v in await client.limiters() if v.name == name)


async def until(probe: Callable[[], Awaitable[Optional[T]]], what: str) -> T:
    """Polls ``probe`` until it returns something other than ``None``/``False``."""
    end = time.monotonic() + DEADLINE
    while True:
        value = await probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {DEADLINE} s waiting for {what}")
        await asyncio.sleep(0.05)


def counts(client: AsyncClient, name: str, held: int, waiting: int) -> Callable[
    [], Awaitable[bool]
]:
    async def probe() -> bool:
        view = await limiter(client, name)
        return view.held_here == held and view.waiting == waiting

    return probe


# --- Permits -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_never_more_than_the_limit_at_once_across_tasks(alclient: AsyncClient) -> None:
    now = 0
    most = 0

    async def work(i: int) -> int:
        nonlocal now, most
        async with alclient.permit("llm", wait=DEADLINE, holder=f"task-{i}") as permit:
            assert not permit.lost.is_set()
            now += 1
            most = max(most, now)
            await asyncio.sleep(0.05)
            now -= 1
        return i

    results = await asyncio.wait_for(asyncio.gather(*(work(i) for i in range(20))), 2 * DEADLINE)
    assert results == list(range(20))
    assert 1 <= most <= 3, most
    await until(counts(alclient, "llm", 0, 0), "every permit released")
    assert (await limiter(alclient, "llm")).acquired == 20


@pytest.mark.asyncio
async def test_the_permit_is_released_when_the_block_raises(alclient: AsyncClient) -> None:
    with pytest.raises(Boom):
        async with alclient.permit("solo"):
            assert (await limiter(alclient, "solo")).held_here == 1
            raise Boom("inside")
    async with alclient.permit("solo", wait=0):
        pass

    async def fail() -> None:
        raise Boom("fn")

    with pytest.raises(Boom):
        await alclient.with_permit("solo", fail)

    async def free() -> str:
        return "free"

    assert await alclient.with_permit("solo", free, wait=0) == "free"


@pytest.mark.asyncio
async def test_cancelling_a_waiter_leaves_no_permit(alclient: AsyncClient) -> None:
    holder = await alclient.acquire_permit("solo")
    entered: List[AsyncPermit] = []

    async def waiter() -> None:
        async with alclient.permit("solo", wait=DEADLINE) as permit:
            entered.append(permit)

    task = asyncio.ensure_future(waiter())
    await until(counts(alclient, "solo", 1, 1), "the waiter queued")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(counts(alclient, "solo", 1, 0), "the aborted request to leave the queue")
    await alclient.release_permit(holder.permit_id)
    await until(counts(alclient, "solo", 0, 0), "nothing held")
    assert entered == []
    async with alclient.permit("solo", wait=0):
        assert (await limiter(alclient, "solo")).held_here == 1


@pytest.mark.asyncio
async def test_a_cancelled_block_releases_its_permit(alclient: AsyncClient) -> None:
    inside = asyncio.Event()

    async def hold() -> None:
        async with alclient.permit("solo"):
            inside.set()
            await asyncio.sleep(3600)

    task = asyncio.ensure_future(hold())
    await asyncio.wait_for(inside.wait(), DEADLINE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(counts(alclient, "solo", 0, 0), "the permit released")
    async with alclient.permit("solo", wait=0):
        pass


@pytest.mark.asyncio
async def test_a_timeout_around_the_wait(alclient: AsyncClient) -> None:
    async with alclient.permit("solo"):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(alclient.permit("solo", wait=DEADLINE).acquire(), 0.5)
        await until(counts(alclient, "solo", 1, 0), "the aborted request to leave the queue")
        with pytest.raises(AcquireTimeoutError):
            async with alclient.permit("solo", wait=0.2):
                pass
    await until(counts(alclient, "solo", 0, 0), "nothing held")


@pytest.mark.asyncio
async def test_heartbeats_keep_a_short_lease(alclient: AsyncClient) -> None:
    async with alclient.permit("llm", lease_ttl=3) as permit:
        await asyncio.sleep(4.5)  # longer than the lease: only the heartbeats keep it
        assert not permit.lost.is_set()
    view = await limiter(alclient, "llm")
    assert view.expired == 0 and view.held_here == 0


@pytest.mark.asyncio
async def test_a_lost_permit_surfaces(alclient: AsyncClient) -> None:
    grant = await alclient.acquire_permit("llm", lease_ttl=1)

    async def expired() -> bool:
        return (await limiter(alclient, "llm")).expired == 1

    await until(expired, "the lease to run out")
    with pytest.raises(PermitLostError):
        await alclient.heartbeat_permit(grant.permit_id)
    # In a block: taken away behind its back, the background heartbeat notices.
    async with alclient.permit("llm", lease_ttl=1) as permit:
        await alclient.release_permit(permit.id)
        await asyncio.wait_for(permit.lost.wait(), DEADLINE)
        with pytest.raises(PermitLostError):
            permit.raise_if_lost()


@pytest.mark.asyncio
async def test_a_release_finding_the_permit_lost_does_not_mask_the_blocks_error(
    alclient: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_heartbeat(permit_id: str, **_: Any) -> Any:
        raise AssertionError("no heartbeat in this test")

    async def expired() -> bool:
        return (await limiter(alclient, "llm")).expired >= 1

    with pytest.raises(Boom):
        async with alclient.permit("llm", lease_ttl=1) as permit:
            monkeypatch.setattr(alclient, "heartbeat_permit", no_heartbeat)
            await until(expired, "the lease to run out")
            raise Boom("the block's own error")
    with pytest.raises(PermitLostError):
        await alclient.release_permit(permit.id)


# --- Rate limits and breakers ------------------------------------------------------------


@pytest.mark.asyncio
async def test_rate_check_allows_then_refuses(alclient: AsyncClient) -> None:
    allowed = [await alclient.rate_check("per_customer", "a-1") for _ in range(3)]
    assert all(d.allowed for d in allowed) and allowed[-1].remaining == 0
    refused = await alclient.rate_check("per_customer", "a-1")
    assert not refused.allowed and refused.retry_after is not None and refused.retry_after > 0


@pytest.mark.asyncio
async def test_a_breaker_around_a_coroutine(alclient: AsyncClient) -> None:
    breaker = alclient.breaker("payments", ignore=(LookupError,))
    called: List[str] = []

    async def charge(amount: int, *, currency: str) -> str:
        called.append(currency)
        await asyncio.sleep(0)
        if amount < 0:
            raise LookupError("ignored")
        if amount == 0:
            raise Boom("card declined")
        return f"charged {amount} {currency}"

    assert await breaker.call(charge, 5, currency="EUR") == "charged 5 EUR"
    with pytest.raises(LookupError):
        await breaker.call(charge, -1, currency="EUR")
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(charge, 0, currency="EUR")
    status = await breaker.status()
    assert status.state == "open" and status.failures == 2
    assert status.last_failure == "card declined"
    with pytest.raises(BreakerOpenError) as refused:
        await breaker.call(charge, 5, currency="EUR")
    assert len(called) == 4
    assert refused.value.retry_after is not None and refused.value.retry_after > 0
    assert (await breaker.reset()).state == "closed"
    assert await breaker.call(charge, 1, currency="USD") == "charged 1 USD"


@pytest.mark.asyncio
async def test_guarded_composes(alclient: AsyncClient) -> None:
    held: List[int] = []

    async def work() -> str:
        held.append((await limiter(alclient, "solo")).held_here)
        return "done"

    async def fail() -> str:
        raise Boom("downstream")

    guards: Any = dict(rate_limit=("per_customer", "g-1"), permit="solo", breaker="payments")
    assert await alclient.guarded(work, **guards) == "done"
    assert held == [1]
    for _ in range(2):
        with pytest.raises(Boom):
            await alclient.guarded(fail, **guards)
    with pytest.raises(RateLimitedError) as limited:
        await alclient.guarded(work, **guards)
    assert limited.value.retry_after is not None and limited.value.retry_after > 0
    with pytest.raises(BreakerOpenError):
        await alclient.guarded(work, rate_limit=("per_customer", "g-2"), permit="solo",
                               breaker="payments")
    assert held == [1]
    await until(counts(alclient, "solo", 0, 0), "the permit released")
