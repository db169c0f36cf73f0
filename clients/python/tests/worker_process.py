"""A worker process for the shutdown test: ``python worker_process.py URL MARKER``.

Kinds: ``stuck_async`` and ``stuck_sync`` run until cancelled; ``short`` finishes once the
file MARKER exists. Lease 300 s, so only a release puts its jobs back at once."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from floodgate_client import AsyncJobContext, ClaimedJob, SyncJobContext, Worker


async def stuck_async(job: ClaimedJob, ctx: AsyncJobContext) -> None:
    await asyncio.sleep(3600)


def stuck_sync(job: ClaimedJob, ctx: SyncJobContext) -> None:
    ctx.cancelled.wait(3600)


async def short(job: ClaimedJob, ctx: AsyncJobContext) -> str:
    while not os.path.exists(sys.argv[2]):
        await asyncio.sleep(0.05)
    return "finished during the shutdown"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    Worker(
        sys.argv[1],
        handlers={"stuck_async": stuck_async, "stuck_sync": stuck_sync, "short": short},
        concurrency=5,
        lease_ttl=300,
        shutdown_timeout=5,
        poll_wait=2,
        name="terminated-worker",
    ).run()


if __name__ == "__main__":
    main()
