"""One heartbeat loop for every job a worker holds: ``POST /v1/jobs/heartbeat`` each interval
(a third of the lease by default), firing a job's cancellation signal when the answer says
its cancellation was asked for or its lease is lost. A job whose lease was not confirmed
within the lease length (the server could not be reached) is taken as lost too."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional, Tuple

from ..async_client import AsyncClient
from ..errors import FloodgateError, LeaseLostError
from ..models import HeartbeatBatch
from ._held import HeldJobs
from ._reports import MAX_BATCH, missing_route

log = logging.getLogger("floodgate_client.worker")

PER_JOB_CONCURRENCY = 16
"""Heartbeats in flight at once against a server without the batch route."""


class Heartbeats:
    """Beats every ``interval`` seconds for the jobs in ``held`` until :meth:`stop`."""

    def __init__(
        self,
        client: AsyncClient,
        held: HeldJobs,
        *,
        worker: str,
        lease_ttl: int,
        interval: float,
    ) -> None:
        self._client = client
        self._held = held
        self._worker = worker
        self._lease_ttl = lease_ttl
        self._interval = interval
        self._batch_route = True
        self._stopped = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Ends the loop (a beat in flight is finished first)."""
        self._stopped.set()
        await self._task

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped.is_set():
            try:
                await asyncio.wait_for(self._stopped.wait(), self._interval)
                return
            except asyncio.TimeoutError:
                pass
            leases = self._held.leases()
            if leases:
                sent_at = loop.time()
                for start in range(0, len(leases), MAX_BATCH):
                    await self._beat(leases[start : start + MAX_BATCH], sent_at)
            self._expire(loop.time())

    async def _beat(self, leases: List[Tuple[int, str]], sent_at: float) -> None:
        answer: Optional[HeartbeatBatch] = None
        if self._batch_route:
            try:
                answer = await self._client.heartbeat_many(
                    leases, worker=self._worker, lease_ttl=self._lease_ttl
                )
            except FloodgateError as e:
                if not missing_route(e):
                    log.warning("heartbeat of %d job(s) failed: %s", len(leases), e)
                    return
                log.warning("the server has no POST /v1/jobs/heartbeat; beating one by one")
                self._batch_route = False
        if answer is None:
            answer = await self._beat_each(leases)
        for job_id in [*answer.extended, *answer.cancel_requested]:
            held = self._held.get(job_id)
            if held is not None:
                held.deadline = sent_at + self._lease_ttl
        for job_id in answer.cancel_requested:
            held = self._held.get(job_id)
            if held is not None and held.running and held.stop("cancel_requested"):
                log.info("job %d: cancellation requested", job_id)
        for job_id in answer.lease_lost:
            held = self._held.get(job_id)
            if held is not None and held.running and held.stop("lease_lost"):
                log.warning("job %d: lease lost", job_id)

    async def _beat_each(self, leases: List[Tuple[int, str]]) -> HeartbeatBatch:
        """The batch answer, from one heartbeat per job."""
        gate = asyncio.Semaphore(PER_JOB_CONCURRENCY)
        status: Dict[int, str] = {}
        expires = datetime.now(timezone.utc) + timedelta(seconds=self._lease_ttl)

        async def one(job_id: int, token: str) -> None:
            async with gate:
                try:
                    beat = await self._client.heartbeat(
                        job_id, token, worker=self._worker, lease_ttl=self._lease_ttl
                    )
                except LeaseLostError:
                    status[job_id] = "lost"
                except FloodgateError as e:
                    log.warning("heartbeat of job %d failed: %s", job_id, e)
                else:
                    status[job_id] = "cancel" if beat.cancel_requested else "extended"

        await asyncio.gather(*(one(i, t) for i, t in leases))
        return HeartbeatBatch(
            extended=[i for i, s in status.items() if s != "lost"],
            cancel_requested=[i for i, s in status.items() if s == "cancel"],
            lease_lost=[i for i, s in status.items() if s == "lost"],
            lease_expires_at=expires,
        )

    def _expire(self, now: float) -> None:
        """Jobs whose lease was not confirmed in time are lost as far as this worker knows."""
        for held in self._held:
            if held.running and now > held.deadline and held.stop("lease_lost"):
                log.warning("job %d: lease not confirmed in time; taken as lost", held.job.id)
