"""Retries against a scripted stub server: a non-idempotent enqueue is sent once, idempotent
calls retry transient failures (honouring Retry-After), and no answer is a NETWORK_ERROR."""

from __future__ import annotations

import time

import httpx
import pytest
from _helpers import FAST_RETRY
from _server import free_port
from _stub import Stub, job_doc, problem

from floodgate_client import (
    NETWORK_ERROR,
    AsyncClient,
    Client,
    FloodgateError,
    OverloadedError,
    RetryPolicy,
)

BUSY = (503, {"retry-after": "0"}, problem(503, "OVERLOADED", "busy"))
ACCEPTED = (202, {}, {"id": 1, "state": "pending", "duplicate": False, "location": "/v1/jobs/1"})


def test_enqueue_without_key_is_sent_once_on_503() -> None:
    with Stub({"POST /v1/jobs": [BUSY, ACCEPTED]}) as stub, Client(
        stub.url, retry=FAST_RETRY
    ) as client:
        with pytest.raises(OverloadedError) as info:
            client.enqueue("email", {"to": "a"})
        assert stub.count("POST", "/v1/jobs") == 1
    error = info.value
    assert error.status == 503 and error.code == "OVERLOADED" and error.retry_after == 0
    assert error.problem is not None and error.problem["detail"] == "busy"


def test_enqueue_with_key_is_retried_on_503() -> None:
    with Stub({"POST /v1/jobs": [BUSY, BUSY, ACCEPTED]}) as stub, Client(
        stub.url, retry=FAST_RETRY
    ) as client:
        accepted = client.enqueue("email", {"to": "a"}, idempotency_key="k-1")
        assert accepted.id == 1
        assert stub.count("POST", "/v1/jobs") == 3
        assert all(h.get("idempotency-key") == "k-1" for _, _, h, _ in stub.requests)


def test_get_is_retried_and_honours_retry_after() -> None:
    script = {
        "GET /v1/jobs/7": [
            (503, {"retry-after": "1"}, problem(503, "DATABASE_UNAVAILABLE")),
            (502, {}, {"gateway": "down"}),
            (200, {}, job_doc(7)),
        ]
    }
    with Stub(script) as stub, Client(stub.url, retry=FAST_RETRY) as client:
        started = time.monotonic()
        job = client.get(7)
        elapsed = time.monotonic() - started
        assert job.id == 7 and job.state == "succeeded" and job.result == {"ok": True}
        assert stub.count("GET", "/v1/jobs/7") == 3
    assert elapsed >= 0.95, f"Retry-After: 1 was not waited for ({elapsed:.2f} s)"


def test_retries_give_up_after_max_attempts() -> None:
    script = {"GET /v1/jobs/8": [(504, {}, problem(504, "TIMEOUT"))]}
    with Stub(script) as stub, Client(stub.url, retry=FAST_RETRY) as client:
        with pytest.raises(FloodgateError) as info:
            client.get(8)
        assert stub.count("GET", "/v1/jobs/8") == FAST_RETRY.max_attempts
    assert info.value.status == 504 and info.value.code == "TIMEOUT"


def test_a_404_is_not_retried() -> None:
    script = {"GET /v1/jobs/9": [(404, {}, problem(404, "NOT_FOUND", "job 9 does not exist"))]}
    with Stub(script) as stub, Client(stub.url, retry=FAST_RETRY) as client:
        with pytest.raises(FloodgateError):
            client.get(9)
        assert stub.count("GET", "/v1/jobs/9") == 1


def test_no_answer_is_a_network_error_chained_from_httpx() -> None:
    port = free_port()  # nothing listens there
    policy = RetryPolicy(max_attempts=2, base_delay=0.01)
    with Client(f"http://127.0.0.1:{port}", retry=policy) as client:
        with pytest.raises(FloodgateError) as info:
            client.get(1)
    error = info.value
    assert error.code == NETWORK_ERROR and error.status is None and error.problem is None
    assert isinstance(error.__cause__, httpx.TransportError)


@pytest.mark.asyncio
async def test_async_client_retries_the_same_way() -> None:
    with Stub({"GET /v1/jobs/3": [BUSY, (200, {}, job_doc(3))], "POST /v1/jobs": [BUSY]}) as stub:
        async with AsyncClient(stub.url, retry=FAST_RETRY) as client:
            assert (await client.get(3)).id == 3
            with pytest.raises(OverloadedError):
                await client.enqueue("email", {})
        assert stub.count("GET", "/v1/jobs/3") == 2
        assert stub.count("POST", "/v1/jobs") == 1


def test_an_error_page_that_is_not_a_problem() -> None:
    script = {"GET /v1/jobs/4": [(418, {}, ["not", "a", "problem"])]}
    with Stub(script) as stub, Client(stub.url, retry=FAST_RETRY) as client:
        with pytest.raises(FloodgateError) as info:
            client.get(4)
    assert info.value.code == "HTTP_418" and info.value.status == 418
