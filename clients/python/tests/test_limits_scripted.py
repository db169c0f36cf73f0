"""The limits' client side against a scripted stub server, for what a local server does not
show: the Redis-down errors (typed, never retried), a long poll the server could not hold
(paused by Retry-After instead of a tight loop), a heartbeat answered 404, and the request
bodies sent."""

from __future__ import annotations

import json
import time
from typing import Any, Dict

import pytest
from _helpers import DEADLINE, FAST_RETRY
from _stub import Stub, problem

from floodgate_client import (
    AcquireTimeoutError,
    BreakerOpenError,
    Client,
    LimiterUnavailableError,
    PermitLostError,
    RateLimitUnavailableError,
)
from floodgate_client._api import parse_ratelimit

PERMITS = "/v1/limiters/l/permits"


def grant(lease_ttl: float = 30.0) -> Dict[str, Any]:
    return {
        "permit_id": "p1", "limiter": "l", "scope": "fleet",
        "lease_expires_at": "2026-01-02T03:04:05.123456789Z", "lease_ttl": lease_ttl,
        "enforced": True,
    }


def test_redis_down_errors_are_typed_and_sent_once() -> None:
    script = {
        f"POST {PERMITS}": [
            (503, {"retry-after": "1"}, problem(503, "LIMITER_UNAVAILABLE", "redis down"))
        ],
        "POST /v1/rate-limits/r/check": [
            (503, {"retry-after": "1"}, problem(503, "RATE_LIMIT_UNAVAILABLE", "redis down"))
        ],
        "POST /v1/breakers/b/calls": [
            (503, {"retry-after": "7"}, problem(503, "BREAKER_OPEN", "open"))
        ],
    }
    with Stub(script) as stub, Client(stub.url, retry=FAST_RETRY) as client:
        with pytest.raises(LimiterUnavailableError) as limiter:
            with client.permit("l", wait=10):
                pass
        assert limiter.value.retry_after == 1 and limiter.value.status == 503
        with pytest.raises(RateLimitUnavailableError):
            client.rate_check("r", "k")
        called = []
        with pytest.raises(BreakerOpenError) as breaker:
            client.breaker("b").call(lambda: called.append(1))
        assert breaker.value.retry_after == 7 and called == []
        assert stub.count("POST", PERMITS) == 1
        assert stub.count("POST", "/v1/rate-limits/r/check") == 1
        assert stub.count("POST", "/v1/breakers/b/calls") == 1


def test_a_long_poll_the_server_could_not_hold_is_paused_not_hammered() -> None:
    timeout = (429, {"retry-after": "1"}, problem(429, "ACQUIRE_TIMEOUT", "no slot"))
    with Stub({f"POST {PERMITS}": [timeout]}) as stub, Client(stub.url) as client:
        started = time.monotonic()
        with pytest.raises(AcquireTimeoutError) as info:
            with client.permit("l", wait=2.5, priority=9, holder="me", lease_ttl=5):
                pass
        assert time.monotonic() - started >= 2.0
        # Answered at once each time: about one request per Retry-After, not a busy loop.
        assert 2 <= stub.count("POST", PERMITS) <= 5
        assert "2.5 s" in info.value.detail
        first = json.loads(stub.requests[0][3])
        assert first == {"wait": 2.5, "priority": 9, "holder": "me", "lease_ttl": 5.0}


def test_a_heartbeat_answered_404_sets_lost() -> None:
    script = {
        f"POST {PERMITS}": [(201, {"location": "/v1/permits/p1"}, grant(lease_ttl=1))],
        "POST /v1/permits/p1/heartbeat": [(404, {}, problem(404, "NOT_FOUND", "no permit"))],
        "DELETE /v1/permits/p1": [(204, {}, None)],
    }
    with Stub(script) as stub, Client(stub.url, retry=FAST_RETRY) as client:
        with client.permit("l") as permit:
            assert permit.lost.wait(DEADLINE)
            assert isinstance(permit.lost_error, PermitLostError)
        assert stub.count("DELETE", "/v1/permits/p1") == 1
        assert json.loads(stub.requests[0][3]) == {"wait": 0.0}  # no wait: answer at once


def test_parse_ratelimit() -> None:
    assert parse_ratelimit('"per_customer";r=2;t=20') == {
        "name": "per_customer", "r": "2", "t": "20"
    }
    assert parse_ratelimit('"a";r=0;t=5, "b";r=9;t=1')["r"] == "0"
    assert parse_ratelimit(None) == {}
