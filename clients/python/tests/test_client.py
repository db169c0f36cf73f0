"""The sync client against a real server: enqueue, a worker runs the job, status, listing,
cancel, retry, idempotency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Dict

from _helpers import DEADLINE, ThreadedWorker

from floodgate_client import (
    Client,
    ClaimedJob,
    InvalidStateError,
    Job,
    NewJob,
    PermanentError,
    SyncJobContext,
    Worker,
)


def send_email(job: ClaimedJob, ctx: SyncJobContext) -> Dict[str, Any]:
    return {"sent_to": job.payload["to"], "attempt": job.attempt}


def test_enqueue_worker_succeeded(client: Client) -> None:
    accepted = client.enqueue(
        "email", {"to": "ada@example.com"}, priority=7, metadata={"tenant": "t1"}
    )
    assert accepted.state == "pending" and not accepted.duplicate
    assert accepted.location == f"/v1/jobs/{accepted.id}"
    worker = Worker(client, handlers={"email": send_email}, concurrency=2, poll_wait=1)
    with ThreadedWorker(worker):
        job = client.wait_for(accepted.id, timeout=DEADLINE)
    assert isinstance(job, Job)
    assert job.state == "succeeded"
    assert job.result == {"sent_to": "ada@example.com", "attempt": 1}
    assert job.priority == 7 and job.metadata == {"tenant": "t1"}
    assert job.finished_at is not None and job.finished_at.tzinfo is not None
    assert worker.stats.succeeded == 1


def test_idempotent_enqueue_returns_the_first_job(client: Client) -> None:
    first = client.enqueue("email", {"to": "a"}, idempotency_key="welcome-a")
    again = client.enqueue("email", {"to": "a"}, idempotency_key="welcome-a")
    assert again.id == first.id and again.duplicate and not first.duplicate
    assert client.get(first.id).idempotency_key == "welcome-a"


def test_enqueue_many_and_iterate_pages(client: Client) -> None:
    jobs = [NewJob("bulk", {"n": i}, queue="bulkq") for i in range(7)]
    accepted = client.enqueue_many(jobs + [{"kind": "other", "queue": "bulkq"}])
    assert len(accepted) == 8 and len({a.id for a in accepted}) == 8
    page = client.list(queue="bulkq", kind="bulk", limit=3)
    assert len(page.jobs) == 3 and page.next is not None
    seen = [j.payload["n"] for j in client.iter_jobs(queue="bulkq", kind="bulk", limit=3)]
    assert sorted(seen) == list(range(7)) and seen == sorted(seen, reverse=True)
    assert [j.kind for j in client.iter_jobs(queue="bulkq", path="n", value="4")] == ["bulk"]


def test_cancel_a_waiting_job_then_retry_it(client: Client) -> None:
    accepted = client.enqueue("later", None, run_at=timedelta(hours=1))
    assert accepted.state == "scheduled"
    assert client.cancel(accepted.id).state == "cancelled"
    assert client.get(accepted.id).state == "cancelled"
    assert client.retry(accepted.id).state == "pending"
    assert client.get(accepted.id).state == "pending"
    try:
        client.retry(accepted.id)
    except InvalidStateError as e:
        assert e.status == 409 and e.code == "INVALID_STATE"
    else:
        raise AssertionError("retrying a pending job should be refused")


def test_permanent_error_makes_the_job_dead(client: Client) -> None:
    def always_fails(job: ClaimedJob, ctx: SyncJobContext) -> None:
        raise PermanentError("the address does not exist")

    accepted = client.enqueue("doomed", {})
    with ThreadedWorker(Worker(client, handlers={"doomed": always_fails}, poll_wait=1)):
        job = client.wait_for(accepted.id, timeout=DEADLINE)
    assert job.state == "dead" and job.last_error == "the address does not exist"
