"""Drains no-op jobs through the Python worker and prints jobs/s (indicative).

    python benchmarks/drain.py [--jobs 5000] [--concurrency 10] [--server URL] [--sync]

Without ``--server`` it starts ``$FLOODGATE_BIN`` (default: the workspace's debug build) on a
fresh SQLite file. ``--sync`` uses a plain-function handler (run in threads) instead of an
``async def`` one."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _server import Server  # noqa: E402

from floodgate_client import (  # noqa: E402
    AsyncClient,
    AsyncJobContext,
    ClaimedJob,
    NewJob,
    SyncJobContext,
    Worker,
)


async def noop(job: ClaimedJob, ctx: AsyncJobContext) -> None:
    return None


def noop_sync(job: ClaimedJob, ctx: SyncJobContext) -> None:
    return None


async def drain(url: str, jobs: int, concurrency: int, sync: bool) -> None:
    async with AsyncClient(url) as client:
        started = time.perf_counter()
        for start in range(0, jobs, 1000):
            batch = [NewJob("noop", {"n": n}) for n in range(start, min(jobs, start + 1000))]
            await client.enqueue_many(batch)
        enqueued = time.perf_counter() - started
        handler: Any = noop_sync if sync else noop
        worker = Worker(client, handlers={"noop": handler}, concurrency=concurrency)
        started = time.perf_counter()
        running = asyncio.ensure_future(worker.run_async())
        while worker.stats.succeeded < jobs:
            if running.done():
                running.result()
                raise RuntimeError(f"the worker stopped early: {worker.stats}")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        worker.stop()
        await running
    kind = "sync (threads)" if sync else "async"
    print(f"enqueued {jobs} jobs in {enqueued:.2f} s (batches of 1000)")
    print(f"drained {jobs} no-op jobs, {kind} handler, concurrency {concurrency}: "
          f"{elapsed:.2f} s, {jobs / elapsed:.0f} jobs/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--server")
    parser.add_argument("--sync", action="store_true")
    args = parser.parse_args()
    server: Optional[Server] = None
    with tempfile.TemporaryDirectory() as tmp:
        url = args.server
        if url is None:
            server = Server(str(Path(tmp) / "jobs.db"), Path(tmp)).start()
            url = server.url
        try:
            asyncio.run(drain(url, args.jobs, args.concurrency, args.sync))
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
