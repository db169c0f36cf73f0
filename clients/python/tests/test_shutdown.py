"""SIGTERM to a worker process mid-run: it stops claiming, lets a job finish within the
shutdown timeout, releases the jobs still running (300 s leases: only a release puts them back
at once), and exits 0; another worker then finishes them."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from _helpers import DEADLINE, ThreadedWorker, eventually
from _server import Server

from floodgate_client import Client, Worker

HERE = Path(__file__).resolve().parent


def test_sigterm_releases_running_jobs(server: Server, client: Client, tmp_path: Path) -> None:
    stuck = [client.enqueue(kind, {"n": i}).id
             for i, kind in enumerate(["stuck_async", "stuck_sync"] * 2)]
    short = client.enqueue("short", {}).id
    marker = tmp_path / "finish-short"
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "worker_process.py"), server.url, str(marker)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        eventually(lambda: len(client.list(state="running").jobs) == 5, "5 running jobs")
        proc.send_signal(signal.SIGTERM)
        marker.touch()  # the short job may finish now, within the shutdown timeout
        assert proc.wait(DEADLINE) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "worker.log").read_text()
    assert client.get(short).state == "succeeded", output
    for job_id in stuck:
        job = client.get(job_id)
        assert job.state == "pending", (job, output)
        assert job.lease_expires_at is None
    worker = Worker(
        client,
        handlers={"stuck_async": lambda job, ctx: "done", "stuck_sync": lambda job, ctx: "done"},
        poll_wait=1,
    )
    with ThreadedWorker(worker):
        finished = [client.wait_for(job_id, timeout=DEADLINE) for job_id in stuck]
    assert [j.state for j in finished] == ["succeeded"] * 4
    assert all(j.result == "done" for j in finished)
