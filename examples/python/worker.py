#!/usr/bin/env python3
"""A floodgate worker in plain Python (standard library only).

It long-polls a queue of a running `floodgate serve`, runs one handler per job kind, and
reports each job back: `complete` with the handler's return value, or `fail` with the
exception's message (permanently for `PermanentError`, otherwise to be retried). While it
holds jobs, a background thread heartbeats their leases. A `409 LEASE_LOST` answer means the
job is no longer ours (the lease ran out and the job was taken back, or it was finished): the
worker drops it and writes nothing. SIGINT or SIGTERM lets the current job finish, puts the
jobs it has claimed but not started back on the queue, and exits; a second signal exits at
once (the server takes those jobs back when their leases run out).

Run a server, enqueue a job, run the worker:

    floodgate serve --database-url ./jobs.db &
    curl -X POST http://127.0.0.1:7070/v1/jobs -H 'content-type: application/json' \\
         -d '{"kind": "email", "payload": {"to": "ada@example.com"}}'
    python3 worker.py                       # Ctrl-C to stop
    python3 worker.py --idle-exit 3         # or: stop after 3 s with nothing to do

Options: --server (or FLOODGATE_SERVER), --token (or FLOODGATE_API_TOKEN), --queue, --worker,
--limit, --lease-ttl, --max-jobs, --idle-exit; see `python3 worker.py --help`.

To write your own handlers, edit HANDLERS: each takes the job's payload and returns any JSON
value (kept as the job's result).
"""

import argparse
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request


# --- Handlers ----------------------------------------------------------------------------


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: the job goes dead at once."""


class RetryLater(Exception):
    """Raised by a handler to retry after `retry_in` seconds (instead of the server's
    exponential backoff)."""

    def __init__(self, message, retry_in):
        super().__init__(message)
        self.retry_in = retry_in


def send_email(payload):
    return {"sent_to": payload["to"]}


def resize(payload):
    time.sleep(float(payload.get("seconds", 0)))
    return {"ok": True}


def always_fails(payload):
    raise PermanentError("this job always fails")


def flaky(payload):
    raise RuntimeError("the service is flaky today")


HANDLERS = {
    "email": send_email,
    "resize": resize,
    "always_fails": always_fails,
    "flaky": flaky,
}


# --- HTTP --------------------------------------------------------------------------------


class LeaseLost(Exception):
    """The server answered 409 LEASE_LOST: the job is no longer ours."""


class ApiError(Exception):
    """Any other error answer (a problem document), or no answer at all (status 0)."""

    def __init__(self, status, code, detail):
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code


class Client:
    """POSTs JSON to the server and returns the JSON answer."""

    def __init__(self, server, token=None):
        self.server = server.rstrip("/")
        self.token = token

    def post(self, path, body, timeout=30):
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.server + path, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.load(response)
        except urllib.error.HTTPError as e:
            try:
                problem = json.load(e)
            except ValueError:
                problem = {}
            code = problem.get("code", "HTTP_ERROR")
            detail = problem.get("detail", e.reason)
            if e.code == 409 and code == "LEASE_LOST":
                raise LeaseLost(detail) from None
            raise ApiError(e.code, code, detail) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ApiError(0, "UNREACHABLE", f"{self.server}: {reason}") from None

    def report(self, job_id, what, body):
        """A report (complete, fail, snooze), retried a few times while the server cannot be
        reached or is busy. Reports are fenced by the lease token, so a repeat cannot write
        twice; it raises LeaseLost (after the server took the job back, or finished it)."""
        for attempt in range(5):
            try:
                return self.post(f"/v1/jobs/{job_id}/{what}", body)
            except ApiError as e:
                if e.status not in (0, 503) or attempt == 4:
                    raise
                time.sleep(1 + attempt)


# --- Heartbeats --------------------------------------------------------------------------


class Heartbeats(threading.Thread):
    """Extends the leases of the jobs this worker holds (claimed and not yet reported),
    every third of the lease length, and notes the jobs whose lease was lost."""

    def __init__(self, client, worker, lease_ttl):
        super().__init__(daemon=True)
        self.client = client
        self.worker = worker
        self.lease_ttl = lease_ttl
        self.lock = threading.Lock()
        self.held = {}  # job id -> lease token
        self.lost = set()  # job ids whose lease the server no longer honours
        self.cancel_requested = set()

    def hold(self, job_id, token):
        with self.lock:
            self.held[job_id] = token

    def release(self, job_id):
        with self.lock:
            self.held.pop(job_id, None)
            self.cancel_requested.discard(job_id)
            self.lost.discard(job_id)

    def is_lost(self, job_id):
        with self.lock:
            return job_id in self.lost

    def run(self):
        interval = max(self.lease_ttl / 3, 1)
        while True:
            time.sleep(interval)
            with self.lock:
                held = list(self.held.items())
            for job_id, token in held:
                body = {"lease_token": token, "worker": self.worker, "lease_ttl": self.lease_ttl}
                try:
                    answer = self.client.post(f"/v1/jobs/{job_id}/heartbeat", body)
                except LeaseLost:
                    with self.lock:
                        if self.held.pop(job_id, None) is None:
                            continue  # reported meanwhile: nothing was lost
                        self.lost.add(job_id)
                    log(f"  #{job_id}: heartbeat answered LEASE_LOST")
                    continue
                except ApiError as e:
                    # The next beat tries again; the lease is three beats long.
                    log(f"  heartbeat of #{job_id} failed: {e}")
                    continue
                if answer.get("cancel_requested"):
                    with self.lock:
                        new = job_id in self.held and job_id not in self.cancel_requested
                        self.cancel_requested.add(job_id)
                    if new:
                        log(f"  #{job_id}: cancellation requested (it is reported when it ends)")


# --- The worker --------------------------------------------------------------------------


def log(line):
    print(line, flush=True)


def error_message(exc):
    if isinstance(exc, (PermanentError, RetryLater)):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


class Worker:
    def __init__(self, args):
        self.client = Client(args.server, args.token)
        self.queue = args.queue
        self.name = args.worker
        self.limit = args.limit
        self.lease_ttl = args.lease_ttl
        self.max_jobs = args.max_jobs
        self.idle_exit = args.idle_exit
        self.heartbeats = Heartbeats(self.client, args.worker, args.lease_ttl)
        self.stopping = False
        self.handled = 0

    def stop(self, signum, frame):
        if self.stopping:
            log("second signal: exiting now (our jobs go back when their leases run out)")
            raise KeyboardInterrupt
        self.stopping = True
        log("stopping: finishing the current job or poll (up to 10 s), claiming no more")

    def run(self):
        self.heartbeats.start()
        kinds = ", ".join(HANDLERS)
        log(f"worker {self.name} on queue {self.queue!r} at {self.client.server} ({kinds})")
        idle_since = time.monotonic()
        while not self.stopping:
            if self.max_jobs is not None and self.handled >= self.max_jobs:
                break
            wait = 10
            if self.idle_exit is not None:
                left = self.idle_exit - (time.monotonic() - idle_since)
                if left <= 0:
                    log(f"idle for {self.idle_exit:g} s: exiting")
                    break
                wait = min(wait, max(1, math.ceil(left)))
            jobs = self.claim(wait)
            if not jobs:
                continue
            for i, job in enumerate(jobs):
                if self.stopping:
                    self.put_back(jobs[i:])
                    break
                self.handle(job)
                self.handled += 1
            idle_since = time.monotonic()
        log(f"stopped after {self.handled} job(s)")

    def claim(self, wait):
        limit = self.limit
        if self.max_jobs is not None:
            limit = min(limit, self.max_jobs - self.handled)
        body = {"worker": self.name, "limit": limit, "lease_ttl": self.lease_ttl, "wait": wait}
        try:
            answer = self.client.post(f"/v1/queues/{self.queue}/claim", body, timeout=wait + 30)
            jobs = answer["jobs"]
        except ApiError as e:
            if 400 <= e.status < 500:
                sys.exit(f"claim refused: {e}")  # a bad token, queue name or option: give up
            log(f"claim failed: {e}; trying again in 2 s")
            time.sleep(2)
            return []
        for job in jobs:
            self.heartbeats.hold(job["id"], job["lease_token"])
        return jobs

    def handle(self, job):
        job_id, kind, token = job["id"], job["kind"], job["lease_token"]
        label = f"{kind} #{job_id}"
        if self.heartbeats.is_lost(job_id):
            self.heartbeats.release(job_id)
            log(f"⚠ {label}: lease lost before it started; dropped")
            return
        handler = HANDLERS.get(kind)
        try:
            if handler is None:
                kinds = ", ".join(HANDLERS)
                raise PermanentError(f"no handler for kind {kind!r} (this worker handles {kinds})")
            result = handler(job["payload"])
            json.dumps(result)  # a result that is not JSON fails here, like a handler error
        except Exception as exc:  # any error of the handler is the job's failure
            message = error_message(exc)
            permanent = isinstance(exc, PermanentError)
            body = {"lease_token": token, "error": message, "permanent": permanent}
            if getattr(exc, "retry_in", None) is not None:
                body["retry_in"] = max(0, int(exc.retry_in))
            self.send(job_id, label, "fail", body,
                      lambda answer: f"✘ {label} ({answer['state']}): {message}")
        else:
            body = {"lease_token": token, "result": result}
            self.send(job_id, label, "complete", body, lambda answer: f"✔ {label}")

    def send(self, job_id, label, what, body, line):
        # Sent even when a heartbeat saw the lease lost: the server writes a report only while
        # our lease token still holds the job, so the report itself is the final word.
        try:
            log(line(self.client.report(job_id, what, body)))
        except LeaseLost:
            log(f"⚠ {label}: lease lost (taken back or finished); dropped, nothing written")
        except ApiError as e:
            log(f"⚠ {label}: could not report {what}: {e} (it runs again after its lease)")
        finally:
            self.heartbeats.release(job_id)

    def put_back(self, jobs):
        """Jobs claimed but not started go back on the queue without spending an attempt."""
        for job in jobs:
            try:
                body = {"lease_token": job["lease_token"], "delay": 0}
                self.client.report(job["id"], "snooze", body)
                log(f"↩ {job['kind']} #{job['id']}: put back")
            except (LeaseLost, ApiError) as e:
                log(f"⚠ {job['kind']} #{job['id']}: not put back ({e})")
            finally:
                self.heartbeats.release(job["id"])


def main():
    env = os.environ.get
    parser = argparse.ArgumentParser(description="A floodgate worker (see the module docstring).")
    parser.add_argument("--server", default=env("FLOODGATE_SERVER", "http://127.0.0.1:7070"),
                        help="the server (default: $FLOODGATE_SERVER or http://127.0.0.1:7070)")
    parser.add_argument("--token", default=env("FLOODGATE_API_TOKEN"),
                        help="API token, sent as a bearer token (default: $FLOODGATE_API_TOKEN)")
    parser.add_argument("--queue", default="default", help="the queue (default: default)")
    parser.add_argument("--worker", default=f"{socket.gethostname()}-{os.getpid()}",
                        help="this worker's name, the lease owner (default: hostname-pid)")
    parser.add_argument("--limit", type=int, default=10,
                        help="jobs per claim, 1..1000 (default: 10)")
    parser.add_argument("--lease-ttl", type=int, default=60,
                        help="lease length in seconds, renewed every third (default: 60)")
    parser.add_argument("--max-jobs", type=int, metavar="N", help="exit after handling N jobs")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="exit after SECONDS with nothing to do")
    args = parser.parse_args()
    if not 1 <= args.limit <= 1000:
        parser.error("--limit must be 1..1000")
    if not 3 <= args.lease_ttl <= 3600:
        parser.error("--lease-ttl must be 3..3600")
    if args.max_jobs is not None and args.max_jobs < 1:
        parser.error("--max-jobs must be at least 1")

    sys.stdout.reconfigure(errors="replace")  # ✔ and ✘ must not crash a non-UTF-8 terminal
    worker = Worker(args)
    signal.signal(signal.SIGINT, worker.stop)
    signal.signal(signal.SIGTERM, worker.stop)
    try:
        worker.run()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
