"""The example worker (examples/python/worker.py) drains the demo kinds and exits by itself
with ``--idle-exit``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _helpers import DEADLINE
from _server import Server

from floodgate_client import Client

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "python" / "worker.py"


def test_example_worker_drains_the_demo_kinds(server: Server, client: Client) -> None:
    emails = {client.enqueue("email", {"to": f"user{i}@example.com"}).id: i for i in range(5)}
    dead = [client.enqueue("always_fails", {}).id for _ in range(2)]
    resize = client.enqueue("resize", {"seconds": 0.2}).id
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--server", server.url, "--idle-exit", "2"],
        capture_output=True, text=True, timeout=DEADLINE * 2,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for job_id, i in emails.items():
        job = client.get(job_id)
        assert job.state == "succeeded" and job.result == {"sent_to": f"user{i}@example.com"}
    for job_id in dead:
        job = client.get(job_id)
        assert job.state == "dead" and job.last_error == "this job always fails"
    assert client.get(resize).result == {"ok": True}
