"""Test helpers: polling with deadlines instead of fixed sleeps, workers run in a thread,
and the PostgreSQL URL (or a skip)."""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional, TypeVar

import pytest

from floodgate_client import RetryPolicy, Worker

T = TypeVar("T")

DEADLINE = 60.0
"""How long a test waits for something that should happen soon (a loaded machine is slow)."""

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05)
"""Retries that do not slow tests down."""

LIMITS_CONFIG = """
[limiters.llm]          # the concurrency tests: 3 at once, many waiting
max_concurrency = 3
lease_ttl = 30

[limiters.solo]         # one at a time, a short queue
max_concurrency = 1
max_queue = 1
lease_ttl = 30

[limiters.short]        # a max_wait under the client's 30 s polls
max_concurrency = 1
max_wait = 1

[rate_limits.per_customer]
rate = 3
per = 60

[breakers.payments]     # open long enough to be seen open
consecutive_failures = 2
open_wait = 60
half_open_probes = 1
call_deadline = 60
"""
"""The ``--config`` of the limits tests' servers."""


def eventually(
    probe: Callable[[], Optional[T]], what: str, deadline: float = DEADLINE, every: float = 0.05
) -> T:
    """Polls ``probe`` until it returns something other than ``None``/``False``."""
    end = time.monotonic() + deadline
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(every)


class ThreadedWorker:
    """A worker running in a thread (``Worker.run`` installs no signal handlers there)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as e:  # surfaced by stop()
            self.error = e

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.stop(now=True)

    def stop(self, now: bool = False) -> None:
        """Stops the worker and waits for its thread."""
        self.worker.stop(now=now)
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive(), "the worker did not stop"
        if self.error is not None:
            raise self.error


def pg_url_or_skip() -> str:
    """``$DATABASE_URL``, or skip (fail with ``FLOODGATE_REQUIRE_SERVICES=1``)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    reason = "DATABASE_URL is unset: PostgreSQL tests need it"
    if os.environ.get("FLOODGATE_REQUIRE_SERVICES") in ("1", "true"):
        pytest.fail(f"{reason} (FLOODGATE_REQUIRE_SERVICES=1)")
    print(f"skipping: {reason}")
    pytest.skip(reason)
