"""What the worker sends: one batch heartbeat for all held jobs and batched completions; and,
against a server without those routes, one request per job instead."""

from __future__ import annotations

import asyncio
import json
from typing import List, Set, Tuple

import httpx
import pytest
from _helpers import DEADLINE, FAST_RETRY
from _server import Server

from floodgate_client import AsyncClient, AsyncJobContext, ClaimedJob, Worker

BATCH_ROUTES = {"/v1/jobs/complete", "/v1/jobs/heartbeat"}


class Recorder(httpx.AsyncHTTPTransport):
    """Passes requests to the server and notes them; with ``old_server``, answers the batch
    routes 405 as a server from before them would."""

    def __init__(self, old_server: bool = False) -> None:
        super().__init__()
        self.old_server = old_server
        self.requests: List[Tuple[str, str, bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append((request.method, request.url.path, body))
        if self.old_server and request.method == "POST" and request.url.path in BATCH_ROUTES:
            problem = {"type": "urn:floodgate:problem:method_not_allowed", "status": 405,
                       "title": "Method not allowed", "code": "METHOD_NOT_ALLOWED",
                       "detail": f"POST is not allowed on {request.url.path}"}
            return httpx.Response(405, json=problem, headers={"allow": "GET,HEAD"})
        return await super().handle_async_request(request)

    def posts(self, suffix: str) -> List[bytes]:
        return [b for m, p, b in self.requests if m == "POST" and p.endswith(suffix)]


def beats_seen(recorder: Recorder) -> bool:
    """Whether a heartbeat (batch, or one job's) reached the server."""
    for method, path, _ in recorder.requests:
        if method == "POST" and path.endswith("/heartbeat"):
            one_job = path.count("/") == 4
            if one_job or not recorder.old_server:
                return True
    return False


async def drain(server: Server, recorder: Recorder, jobs: int) -> Set[str]:
    """Runs ``jobs`` jobs that all start, then hold their leases until heartbeats were sent,
    then finish together."""
    release = asyncio.Event()
    started: List[int] = []

    async def gated(job: ClaimedJob, ctx: AsyncJobContext) -> int:
        started.append(job.id)
        if len(started) == jobs:
            release.set()
        await release.wait()
        while not beats_seen(recorder):
            await asyncio.sleep(0.02)
        return job.id

    async with AsyncClient(server.url, retry=FAST_RETRY, transport=recorder) as client:
        ids = [a.id for a in await client.enqueue_many([{"kind": "gated"}] * jobs)]
        worker = Worker(client, handlers={"gated": gated}, concurrency=jobs,
                        heartbeat_interval=0.2, poll_wait=1)
        running = asyncio.ensure_future(worker.run_async())
        try:
            done = await asyncio.wait_for(
                asyncio.gather(*(client.wait_for(i, timeout=DEADLINE) for i in ids)), DEADLINE
            )
        finally:
            worker.stop()
            await asyncio.wait_for(running, DEADLINE)
    assert [j.result for j in done] == ids
    return {j.state for j in done}


@pytest.mark.asyncio
async def test_heartbeats_and_completions_are_batched(server: Server) -> None:
    recorder = Recorder()
    assert await drain(server, recorder, 8) == {"succeeded"}
    beats = [json.loads(b) for b in recorder.posts("/v1/jobs/heartbeat")]
    assert beats and max(len(b["jobs"]) for b in beats) == 8
    completions = [json.loads(b) for b in recorder.posts("/v1/jobs/complete")]
    assert sum(len(c["jobs"]) for c in completions) == 8
    assert max(len(c["jobs"]) for c in completions) > 1
    per_job = [p for m, p, _ in recorder.requests
               if p.startswith("/v1/jobs/") and p.count("/") == 4 and m == "POST"]
    assert per_job == [], per_job


@pytest.mark.asyncio
async def test_a_server_without_batch_routes_gets_one_request_per_job(server: Server) -> None:
    recorder = Recorder(old_server=True)
    assert await drain(server, recorder, 4) == {"succeeded"}
    assert len(recorder.posts("/v1/jobs/complete")) == 1  # tried once, then one by one
    assert len(recorder.posts("/v1/jobs/heartbeat")) == 1
    per_job_completes = [b for m, p, b in recorder.requests
                         if m == "POST" and p.endswith("/complete") and p.count("/") == 4]
    assert len(per_job_completes) == 4
    per_job_beats = [p for m, p, _ in recorder.requests
                     if m == "POST" and p.endswith("/heartbeat") and p.count("/") == 4]
    assert per_job_beats
