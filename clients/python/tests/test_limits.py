"""Limits as a service with the sync client, against a real server configured with
``LIMITS_CONFIG``: permits in ``with`` blocks (never more than the limit at once, released
when the block raises, heartbeated, lost), rate checks, circuit breakers and ``guarded``."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, List

import pytest
from _helpers import DEADLINE, eventually

from floodgate_client import (
    AcquireTimeoutError,
    BreakerOpenError,
    Client,
    LimiterView,
    NotFoundError,
    OverloadedError,
    PermitLostError,
    QueueFullError,
    RateLimitedError,
    ValidationError,
)


class Boom(Exception):
    """What the guarded code raises in these tests."""


def limiter(client: Client, name: str) -> LimiterView:
    return next(v for v in client.limiters() if v.name == name)


def settled(client: Client, name: str) -> Callable[[], bool]:
    """A probe: nothing held or waiting on limiter ``name``."""

    def probe() -> bool:
        view = limiter(client, name)
        return view.held_here == 0 and view.waiting == 0

    return probe


class Gauge:
    """Counts the holders inside a block at once, and the most ever seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.done = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1
            self.done += 1


# --- Permits -----------------------------------------------------------------------------


def test_never_more_than_the_limit_at_once_across_threads(lclient: Client) -> None:
    gauge = Gauge()

    def work(i: int) -> int:
        with lclient.permit("llm", wait=DEADLINE, holder=f"thread-{i}") as permit:
            assert not permit.lost.is_set()
            with gauge:
                time.sleep(0.05)
        return i

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(work, range(20)))
    assert results == list(range(20))
    assert gauge.done == 20
    assert 1 <= gauge.most <= 3, gauge.most
    eventually(settled(lclient, "llm"), "every permit released")
    view = limiter(lclient, "llm")
    assert view.acquired == 20 and view.expired == 0 and view.limit == 3


def test_with_permit_returns_what_fn_returns(lclient: Client) -> None:
    assert lclient.with_permit("llm", lambda: 42, wait=1) == 42
    eventually(settled(lclient, "llm"), "the permit released")


def test_the_permit_is_released_when_the_block_raises(lclient: Client) -> None:
    with pytest.raises(Boom):
        with lclient.permit("solo") as permit:
            assert permit.grant is not None and permit.grant.limiter == "solo"
            assert limiter(lclient, "solo").held_here == 1
            raise Boom("inside")
    # Released on the way out: one asking without waiting gets it at once.
    with lclient.permit("solo", wait=0) as again:
        assert again.id != permit.id
    assert limiter(lclient, "solo").held_here == 0


def test_with_permit_releases_when_fn_raises(lclient: Client) -> None:
    def fail() -> None:
        raise Boom("fn")

    with pytest.raises(Boom):
        lclient.with_permit("solo", fail)
    assert lclient.with_permit("solo", lambda: "free", wait=0) == "free"


def test_acquire_timeout_and_queue_full(lclient: Client) -> None:
    holder = lclient.permit("solo").acquire()
    with pytest.raises(AcquireTimeoutError) as timeout:
        with lclient.permit("solo", wait=0):
            pass
    assert timeout.value.status == 429 and timeout.value.retry_after is not None
    assert isinstance(timeout.value, TimeoutError)
    # One waiter fills solo's queue (max_queue = 1); the next is refused at once.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        waiter = pool.submit(lclient.with_permit, "solo", lambda: "waited", wait=DEADLINE)
        eventually(lambda: limiter(lclient, "solo").waiting == 1, "the waiter queued")
        with pytest.raises(QueueFullError) as full:
            lclient.acquire_permit("solo", wait=5)
        assert isinstance(full.value, OverloadedError) and full.value.code == "QUEUE_FULL"
        holder.release()
        assert waiter.result(DEADLINE) == "waited"
    finally:
        holder.release()
        pool.shutdown(wait=True)


def test_a_wait_longer_than_max_wait_is_spent_in_shorter_polls(lclient: Client) -> None:
    # [limiters.short] has max_wait = 1: a single request asking 2.5 s waits 1 s ...
    with lclient.permit("short"):
        with pytest.raises(AcquireTimeoutError) as once:
            lclient.acquire_permit("short", wait=2.5)
        assert "within 1 s" in once.value.detail
    with lclient.permit("short"):
        started = time.monotonic()
        # ... but the permit's wait is spent in polls of at most max_wait.
        with pytest.raises(AcquireTimeoutError) as info:
            with lclient.permit("short", wait=2.5):
                pass
        assert time.monotonic() - started >= 2.0
        assert "2.5 s" in info.value.detail
    with lclient.permit("short", wait=2.5):
        pass


def test_heartbeats_keep_a_short_lease(lclient: Client) -> None:
    with lclient.permit("llm", lease_ttl=3) as permit:
        assert permit.grant is not None and permit.grant.lease_ttl == 3.0
        time.sleep(4.5)  # longer than the lease: only the heartbeats keep it
        assert not permit.lost.is_set()
        permit.raise_if_lost()
    view = limiter(lclient, "llm")
    assert view.expired == 0 and view.held_here == 0


def test_a_lost_permit_surfaces(lclient: Client) -> None:
    # Low level: a lease of 1 s, never heartbeated, runs out.
    grant = lclient.acquire_permit("llm", lease_ttl=1)
    assert grant.lease_ttl == 1.0 and grant.scope == "local" and grant.enforced
    eventually(lambda: limiter(lclient, "llm").expired == 1, "the lease to run out")
    with pytest.raises(PermitLostError) as beat:
        lclient.heartbeat_permit(grant.permit_id)
    assert beat.value.status == 409 and beat.value.code == "PERMIT_LOST"
    with pytest.raises(PermitLostError):
        lclient.release_permit(grant.permit_id)


def test_the_background_heartbeat_sets_lost(lclient: Client) -> None:
    with lclient.permit("llm", lease_ttl=1) as permit:
        lclient.release_permit(permit.id)  # taken away behind its back
        assert permit.lost.wait(DEADLINE), "lost was never set"
        with pytest.raises(PermitLostError):
            permit.raise_if_lost()
        assert permit.lost_error is not None and permit.lost_error.code == "PERMIT_LOST"
    # The release on the way out finds it released already: 204, nothing raised.


def _stall_heartbeats(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_heartbeat(permit_id: str, **_: Any) -> Any:
        raise AssertionError("no heartbeat in this test")

    monkeypatch.setattr(client, "heartbeat_permit", no_heartbeat)


def test_a_release_finding_the_permit_lost_does_not_mask_the_blocks_error(
    lclient: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(Boom):
        with lclient.permit("llm", lease_ttl=1):
            _stall_heartbeats(lclient, monkeypatch)
            eventually(lambda: limiter(lclient, "llm").expired == 1, "the lease to run out")
            raise Boom("the block's own error")


def test_a_release_finding_the_permit_lost_raises_after_a_clean_block(
    lclient: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PermitLostError):
        with lclient.permit("llm", lease_ttl=1):
            _stall_heartbeats(lclient, monkeypatch)
            eventually(lambda: limiter(lclient, "llm").expired == 1, "the lease to run out")


def test_unknown_limiter(lclient: Client) -> None:
    with pytest.raises(NotFoundError):
        with lclient.permit("nope"):
            pass


def test_set_limit(lclient: Client) -> None:
    assert lclient.set_limit("solo", 2).limit == 2
    with lclient.permit("solo"), lclient.permit("solo", wait=0):
        assert limiter(lclient, "solo").held_here == 2


# --- Rate limits -------------------------------------------------------------------------


def test_rate_check_allows_then_refuses_with_retry_after(lclient: Client) -> None:
    decisions = [lclient.rate_check("per_customer", "c-1") for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    assert all(d.retry_after is None and d.enforced for d in decisions)
    refused = lclient.rate_check("per_customer", "c-1")
    assert not refused.allowed and refused.remaining == 0
    assert refused.retry_after is not None and 0 < refused.retry_after <= 60
    assert refused.reset_after > 0
    # Another key has its own allowance; a cost takes several at once.
    other = lclient.rate_check("per_customer", "c-2", cost=3)
    assert other.allowed and other.remaining == 0
    assert not lclient.rate_check("per_customer", "c-2").allowed
    with pytest.raises(ValidationError):
        lclient.rate_check("per_customer", "c-3", cost=4)  # more than the burst
    with pytest.raises(NotFoundError):
        lclient.rate_check("nope", "c-1")
    view = next(v for v in lclient.rate_limits() if v.name == "per_customer")
    assert view.limited == 2 and view.rate == 3 and view.per == 60.0


# --- Breakers ----------------------------------------------------------------------------


def test_a_failing_call_is_reported_and_reraised_then_the_breaker_opens(
    lclient: Client,
) -> None:
    breaker = lclient.breaker("payments")
    calls: List[str] = []

    def charge(amount: int, *, currency: str) -> str:
        calls.append(currency)
        raise Boom(f"card declined: {amount} {currency}")

    errors = []
    for _ in range(2):
        with pytest.raises(Boom) as info:
            breaker.call(charge, 10, currency="EUR")
        errors.append(info.value)
    assert len(calls) == 2 and errors[0] is not errors[1]
    status = breaker.status()
    assert status.state == "open" and status.failures == 2
    assert status.last_failure == "card declined: 10 EUR"
    # Open: refused without calling fn.
    with pytest.raises(BreakerOpenError) as refused:
        breaker.call(charge, 10, currency="EUR")
    assert len(calls) == 2
    assert refused.value.status == 503 and refused.value.retry_after is not None
    assert refused.value.retry_after > 0
    assert breaker.reset().state == "closed"
    assert breaker.call(lambda x: x * 2, 21) == 42
    assert breaker.status().calls == 3


def test_ignored_exceptions_do_not_open_the_breaker(lclient: Client) -> None:
    breaker = lclient.breaker("payments", ignore=(KeyError,))

    def missing() -> None:
        raise KeyError("not a failure of the service")

    for _ in range(3):
        with pytest.raises(KeyError):
            breaker.call(missing)
    status = breaker.status()
    assert status.state == "closed" and status.failures == 0
    assert breaker.call(lambda: "ok") == "ok"


# --- guarded -----------------------------------------------------------------------------


def test_guarded_composes_rate_limit_permit_and_breaker(lclient: Client) -> None:
    seen: List[int] = []

    def work() -> str:
        seen.append(limiter(lclient, "solo").held_here)
        return "done"

    guards: Any = dict(rate_limit=("per_customer", "g-1"), permit="solo", breaker="payments")
    assert lclient.guarded(work, **guards) == "done"
    assert seen == [1]  # ran holding the permit
    assert limiter(lclient, "solo").held_here == 0

    def fail() -> str:
        raise Boom("downstream")

    with pytest.raises(Boom):
        lclient.guarded(fail, **guards)
    with pytest.raises(Boom):
        lclient.guarded(fail, **guards)  # the key's third call: 3 per minute
    eventually(settled(lclient, "solo"), "the permit released after failures")
    # The fourth is over the rate limit: refused before anything else.
    with pytest.raises(RateLimitedError) as limited:
        lclient.guarded(work, **guards)
    assert limited.value.retry_after is not None and limited.value.retry_after > 0
    assert limited.value.decision is not None and not limited.value.decision.allowed
    # Another key: the breaker is open now (two failures), so work is not called.
    with pytest.raises(BreakerOpenError):
        lclient.guarded(work, rate_limit=("per_customer", "g-2"), permit="solo",
                        breaker="payments")
    assert seen == [1]
    assert limiter(lclient, "solo").held_here == 0
    # A permit that is not free in time.
    with lclient.permit("solo"):
        with pytest.raises(AcquireTimeoutError):
            lclient.guarded(work, permit="solo", wait=0)
    assert lclient.guarded(lambda: 7) == 7  # no guard at all
