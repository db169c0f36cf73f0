"""Problem documents become FloodgateErrors; wait_for polls at the server's Retry-After."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import List, Optional, Tuple

import httpx
import pytest
from _helpers import DEADLINE, FAST_RETRY, ThreadedWorker
from _server import Server

from floodgate_client import (
    WAIT_TIMEOUT,
    Client,
    FloodgateError,
    NotFoundError,
    ValidationError,
    WaitTimeoutError,
    Worker,
)


def test_a_404_problem(client: Client) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get(987654)
    error = info.value
    assert isinstance(error, FloodgateError)
    assert (error.status, error.code, error.title) == (404, "NOT_FOUND", "Not found")
    assert error.detail == "job 987654 does not exist"
    assert error.problem is not None and error.problem["type"] == "urn:floodgate:problem:not_found"
    assert error.retry_after is None
    assert "404 NOT_FOUND" in str(error)


def test_a_422_problem(client: Client) -> None:
    with pytest.raises(ValidationError) as info:
        client.enqueue("email", {}, priority=11)
    error = info.value
    assert (error.status, error.code) == (422, "VALIDATION_FAILED")
    assert "priority" in error.detail
    assert error.problem is not None and error.problem["status"] == 422


class RecordingTransport(httpx.HTTPTransport):
    """Notes when each job poll was answered, with its Retry-After."""

    def __init__(self) -> None:
        super().__init__()
        self.polls: List[Tuple[float, Optional[str]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "GET" and request.url.path.startswith("/v1/jobs/"):
            self.polls.append((time.monotonic(), response.headers.get("retry-after")))
        return response


def test_wait_for_honours_retry_after(server: Server, client: Client) -> None:
    transport = RecordingTransport()
    accepted = client.enqueue("email", {"to": "a"}, run_at=timedelta(seconds=5))
    worker = Worker(client, handlers={"email": lambda job, ctx: "sent"}, poll_wait=1)
    poller = Client(server.url, retry=FAST_RETRY, transport=transport)
    with ThreadedWorker(worker), poller:
        job = poller.wait_for(accepted.id, timeout=DEADLINE, poll_interval=0.01)
    assert job.state == "succeeded" and job.result == "sent"
    polls = transport.polls
    assert len(polls) >= 2
    first_retry_after = polls[0][1]
    assert first_retry_after is not None and int(first_retry_after) >= 2, polls
    for (at, retry_after), (next_at, _) in zip(polls, polls[1:]):
        assert retry_after is not None
        waited = next_at - at
        assert waited >= int(retry_after) - 0.05, f"polled after {waited:.2f} s, not {retry_after}"


def test_wait_for_times_out(client: Client) -> None:
    accepted = client.enqueue("nobody-handles-this", {})
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError) as info:
        client.wait_for(accepted.id, timeout=1.5)
    assert time.monotonic() - started >= 1.5
    assert info.value.code == WAIT_TIMEOUT and isinstance(info.value, TimeoutError)

