"""A tiny scripted HTTP server (``http.server`` in a thread) that records the requests it got
and answers each from a script: ``(status, headers, body)`` per request, per route."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Tuple

Answer = Tuple[int, Dict[str, str], Any]


class Stub:
    """Answers ``METHOD /path`` with the next scripted answer (the last one repeats)."""

    def __init__(self, script: Dict[str, List[Answer]]) -> None:
        self.script = script
        self.requests: List[Tuple[str, str, Dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                route = f"{self.command} {self.path.split('?')[0]}"
                with stub.lock:
                    stub.requests.append((self.command, self.path, dict(self.headers), body))
                    answers = stub.script.get(route) or [(404, {}, {"code": "NOT_FOUND"})]
                    status, headers, doc = answers.pop(0) if len(answers) > 1 else answers[0]
                data = b"" if status == 204 else json.dumps(doc).encode()
                self.send_response(status)
                is_problem = status >= 400 and isinstance(doc, dict)
                ctype = "application/problem+json" if is_problem else "application/json"
                if status != 204:
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def count(self, method: str, path: str) -> int:
        """How many requests ``method path`` got."""
        with self.lock:
            return sum(1 for m, p, _, _ in self.requests if m == method and p == path)

    def __enter__(self) -> "Stub":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def problem(status: int, code: str, detail: str = "") -> Dict[str, Any]:
    """A problem document as the server writes it."""
    return {
        "type": f"urn:floodgate:problem:{code.lower()}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail or code,
    }


def job_doc(job_id: int, state: str = "succeeded") -> Dict[str, Any]:
    """A job document as ``GET /v1/jobs/{id}`` writes it."""
    now = "2026-01-02T03:04:05.123456789Z"
    return {
        "id": job_id, "queue": "default", "kind": "email", "state": state, "attempt": 1,
        "max_attempts": 25, "priority": 5, "run_at": now, "last_error": None,
        "result": {"ok": True}, "payload": {}, "idempotency_key": None, "ordering_key": None,
        "lease_expires_at": None, "cancel_requested": False, "metadata": {},
        "created_at": now, "updated_at": now, "finished_at": now,
    }
