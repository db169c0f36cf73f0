"""A floodgate worker built on the Python client package (``pip install ./clients/python``).

Usage: ``python examples/python/worker.py [--server URL] [--idle-exit SECONDS]``

It handles the demo kinds ``email`` (a plain function, run in a thread), ``resize`` (an
``async def``, cancelled if the job is), ``always_fails`` (dead at once) and ``flaky``
(retried with the server's backoff). The server defaults to ``$FLOODGATE_SERVER`` or
``http://127.0.0.1:7070``, the token to ``$FLOODGATE_API_TOKEN``. Ctrl-C or SIGTERM stops it
gracefully: running jobs get 30 s, then the rest go back on the queue for another worker;
``--idle-exit`` stops it once it has had nothing to do for that long.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from typing import Any, Dict

from floodgate_client import (
    AsyncJobContext,
    ClaimedJob,
    Client,
    PermanentError,
    SyncJobContext,
    Worker,
)


def send_email(job: ClaimedJob, ctx: SyncJobContext) -> Dict[str, Any]:
    return {"sent_to": job.payload["to"]}


async def resize(job: ClaimedJob, ctx: AsyncJobContext) -> Dict[str, Any]:
    await asyncio.sleep(float(job.payload.get("seconds", 0)))  # cancelled if the job is
    return {"ok": True}


def always_fails(job: ClaimedJob, ctx: SyncJobContext) -> None:
    raise PermanentError("this job always fails")


def flaky(job: ClaimedJob, ctx: SyncJobContext) -> None:
    raise RuntimeError("the service is flaky today")


def stop_when_idle(worker: Worker, seconds: float) -> None:
    """Stops ``worker`` once it has held no job and claimed none for ``seconds``."""
    claimed, since = -1, time.monotonic()
    while True:
        time.sleep(0.1)
        if worker.stats.claimed != claimed or worker.stats.in_hand:
            claimed, since = worker.stats.claimed, time.monotonic()
        elif time.monotonic() - since >= seconds:
            worker.stop()
            return


def main() -> None:
    parser = argparse.ArgumentParser(description="A floodgate worker for the demo kinds.")
    parser.add_argument("--server", help="the server (default: $FLOODGATE_SERVER)")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="stop after SECONDS with nothing to do")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    worker = Worker(
        Client(args.server),
        handlers={
            "email": send_email,
            "resize": resize,
            "always_fails": always_fails,
            "flaky": flaky,
        },
        concurrency=10,
        lease_ttl=60,
    )
    if args.idle_exit is not None:
        threading.Thread(target=stop_when_idle, args=(worker, args.idle_exit), daemon=True).start()
    worker.run()


if __name__ == "__main__":
    main()
