"""Enqueueing inside the caller's own PostgreSQL transaction with ``floodgate_enqueue``: the
job and the business row commit together, or neither exists. The server runs on a schema of
its own, chosen with ``options=-csearch_path=<schema>`` in its database URL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Iterator, Tuple
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from _helpers import pg_url_or_skip
from _server import Server

from floodgate_client import Client, NotFoundError


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``options=-csearch_path=<schema>`` added to its query."""
    parts = urlsplit(url)
    option = "options=" + quote(f"-csearch_path={schema}", safe="")
    query = f"{parts.query}&{option}" if parts.query else option
    return urlunsplit(parts._replace(query=query))


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[Tuple[Server, str, str]]:
    """A server on a fresh schema of ``$DATABASE_URL``; the schema is dropped afterwards."""
    base = pg_url_or_skip()
    schema = f"fg_py_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = with_search_path(base, schema)
    server = Server(url, tmp_path)
    try:
        server.start()
        yield server, url, schema
    finally:
        server.stop()
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_enqueue_commits_and_rolls_back_with_the_business_row(
    pg_server: Tuple[Server, str, str],
) -> None:
    server, url, schema = pg_server
    base = pg_url_or_skip()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, email text NOT NULL)")
        conn.commit()

        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES (1, 'ada@example.com')")
            row = conn.execute(
                "SELECT floodgate_enqueue(kind => 'email', payload => %s::jsonb)",
                (json.dumps({"order": 1, "to": "ada@example.com"}),),
            ).fetchone()
        assert row is not None
        committed_id = int(row[0])

        with conn.transaction():
            conn.execute("INSERT INTO orders VALUES (3, 'cy@example.com')")
            batch = [{"kind": "email", "payload": {"order": 3}, "queue": "mail", "priority": 9},
                     {"kind": "invoice", "payload": {"order": 3}, "idempotency_key": "inv:3"}]
            many = [int(r[0]) for r in conn.execute(
                "SELECT floodgate_enqueue_many(%s::jsonb)", (json.dumps(batch),)
            ).fetchall()]
        assert len(many) == 2

        with pytest.raises(psycopg.Error) as bad:
            with conn.transaction():
                conn.execute("SELECT floodgate_enqueue(kind => 'email', priority => 11)")
        assert bad.value.sqlstate == "FG003"

        rolled_back_id = None
        with pytest.raises(RuntimeError, match="abandon"):
            with conn.transaction():
                conn.execute("INSERT INTO orders VALUES (2, 'bob@example.com')")
                row = conn.execute(
                    "SELECT floodgate_enqueue(kind => 'email', payload => %s::jsonb)",
                    (json.dumps({"order": 2, "to": "bob@example.com"}),),
                ).fetchone()
                assert row is not None
                rolled_back_id = int(row[0])
                raise RuntimeError("abandon the order")  # rolls the transaction back

        orders = [r[0] for r in conn.execute("SELECT id FROM orders ORDER BY id").fetchall()]

    # A session on the default search_path sets the server's schema for its transaction.
    with psycopg.connect(base) as other:
        with other.transaction():
            other.execute(f'SET LOCAL search_path TO "{schema}", public')
            row = other.execute("SELECT floodgate_enqueue(kind => 'audit')").fetchone()
            assert row is not None
            audit_id = int(row[0])
    assert orders == [1, 3]
    assert rolled_back_id is not None
    with Client(server.url) as client:
        job = client.get(committed_id)
        assert (job.kind, job.state, job.queue) == ("email", "pending", "default")
        assert job.payload == {"order": 1, "to": "ada@example.com"}
        with pytest.raises(NotFoundError):
            client.get(rolled_back_id)
        assert client.get(audit_id).kind == "audit"
        email, invoice = client.get(many[0]), client.get(many[1])
        assert (email.queue, email.priority, invoice.idempotency_key) == ("mail", 9, "inv:3")
