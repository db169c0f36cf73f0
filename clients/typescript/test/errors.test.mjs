// Errors and retries. Problems from the real server become FloodgateErrors; the retry rules
// are checked against a tiny local HTTP stub that answers what each test scripts: a
// non-idempotent enqueue is sent once, an idempotent call is retried and waits as long as
// Retry-After says.

import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { test } from "node:test";

import { Floodgate, FloodgateError, isFloodgateError } from "../dist/index.js";
import { startServer } from "./helpers/server.mjs";

/**
 * A stub server answering each request with `script(req, n)` → `{ status, headers?, body? }`
 * (`n` counts requests from 1; `undefined`: never answer). Returns `{ url, requests, close }`.
 */
async function stub(t, script) {
  const requests = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      requests.push({ method: req.method, url: req.url, headers: req.headers, body, at: Date.now() });
      const answer = script(req, requests.length);
      if (answer === undefined) return;
      const text = answer.body === undefined ? "" : typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
      res.writeHead(answer.status, { "content-type": answer.type ?? "application/json", ...answer.headers });
      res.end(text);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${/** @type {import("node:net").AddressInfo} */ (server.address()).port}`, requests };
}

const overloaded = (retryAfter) => ({
  status: 503,
  type: "application/problem+json",
  headers: { "retry-after": String(retryAfter) },
  body: { type: "urn:floodgate:problem:overloaded", title: "Overloaded", status: 503, code: "OVERLOADED", detail: "too many requests in flight; retry in a moment" },
});

const TOKEN = "secret-token-for-the-tests";

const job = { id: 1, queue: "default", kind: "k", state: "succeeded", attempt: 1, max_attempts: 25, priority: 5, run_at: "2026-01-01T00:00:00Z", payload: null, cancel_requested: false, metadata: {}, created_at: "2026-01-01T00:00:00Z", updated_at: "2026-01-01T00:00:00Z" };

test("a problem answer becomes a FloodgateError with its code, status, title and detail", async (t) => {
  const server = await startServer({ env: { FLOODGATE_API_TOKEN: TOKEN } });
  t.after(() => server.close());
  const client = new Floodgate({ baseUrl: server.url, token: TOKEN });

  const missing = await client.get(424242).catch((e) => e);
  assert.ok(missing instanceof FloodgateError);
  assert.ok(missing instanceof Error);
  assert.equal(missing.name, "FloodgateError");
  assert.equal(missing.code, "NOT_FOUND");
  assert.equal(missing.status, 404);
  assert.equal(missing.title, missing.problem.title);
  assert.match(missing.detail, /424242/);
  assert.equal(missing.problem.type, "urn:floodgate:problem:not_found");
  assert.equal(missing.retryAfter, undefined);
  assert.equal(missing.transient, false);
  assert.match(missing.message, /^NOT_FOUND \(404\): /);

  const invalid = await client.enqueue({ kind: "k", priority: 11 }).catch((e) => e);
  assert.ok(isFloodgateError(invalid, "VALIDATION_FAILED"));
  assert.equal(invalid.status, 422);
  assert.match(invalid.detail, /priority/);

  const { id } = await client.enqueue({ kind: "k", queue: "errors" });
  const [claimed] = (await client.claim("errors", { worker: "w", limit: 1 })).jobs;
  assert.equal(claimed.id, id);
  await client.complete(id, claimed.lease_token, { ok: true });
  const stale = await client.complete(id, claimed.lease_token).catch((e) => e);
  assert.ok(isFloodgateError(stale, "LEASE_LOST"));
  assert.equal(stale.status, 409);
  const again = await client.retry(id).catch((e) => e);
  assert.ok(isFloodgateError(again, "INVALID_STATE"), String(again));

  const anonymous = new Floodgate({ baseUrl: server.url });
  const refused = await anonymous.get(id).catch((e) => e);
  assert.ok(isFloodgateError(refused, "UNAUTHORIZED"));
  assert.equal(refused.status, 401);
});

test("an enqueue without an idempotency key is sent once, even when the server answers 503", async (t) => {
  const server = await stub(t, () => overloaded(1));
  const client = new Floodgate({ baseUrl: server.url, retries: { retries: 5, baseDelayMs: 1 } });
  const error = await client.enqueue({ kind: "k" }).catch((e) => e);
  assert.ok(isFloodgateError(error, "OVERLOADED"));
  assert.equal(error.status, 503);
  assert.equal(error.retryAfter, 1);
  assert.equal(error.transient, true);
  assert.equal(server.requests.length, 1);
  assert.equal(server.requests[0].headers["idempotency-key"], undefined);
  const batch = await client.enqueueMany([{ kind: "k" }]).catch((e) => e);
  assert.ok(isFloodgateError(batch, "OVERLOADED"));
  assert.equal(server.requests.length, 2);
});

test("an enqueue with an idempotency key is retried, the key sent every time", async (t) => {
  const server = await stub(t, (_req, n) => (n < 3 ? overloaded(0) : { status: 202, body: { id: 7, state: "pending", duplicate: false, location: "/v1/jobs/7" } }));
  const client = new Floodgate({ baseUrl: server.url, retries: { retries: 3, baseDelayMs: 1 } });
  const accepted = await client.enqueue({ kind: "k" }, { idempotencyKey: "order-7" });
  assert.equal(accepted.id, 7);
  assert.deepEqual(server.requests.map((r) => r.headers["idempotency-key"]), ["order-7", "order-7", "order-7"]);
  assert.deepEqual(JSON.parse(server.requests[2].body), { kind: "k" });
});

test("an idempotent GET is retried, waiting as long as Retry-After says", async (t) => {
  const server = await stub(t, (_req, n) => (n === 1 ? overloaded(1) : n === 2 ? { status: 502, type: "text/html", body: "<h1>bad gateway</h1>" } : { status: 200, body: job }));
  // Backoff without Retry-After is at most a few ms here: only Retry-After explains a 1 s wait.
  const client = new Floodgate({ baseUrl: server.url, retries: { retries: 3, baseDelayMs: 5, maxDelayMs: 5 } });
  const got = await client.get(1);
  assert.equal(got.id, 1);
  assert.equal(server.requests.length, 3);
  const [first, second, third] = server.requests.map((r) => r.at);
  assert.ok(second - first >= 950, `retried ${second - first} ms after a Retry-After: 1`);
  assert.ok(third - second < 900, `a 502 without Retry-After is retried after the short backoff (${third - second} ms)`);
});

test("retries stop after the policy's count, and a Retry-After past the limit is not waited for", async (t) => {
  const server = await stub(t, () => ({ status: 504, type: "text/plain", body: "gateway timeout" }));
  const client = new Floodgate({ baseUrl: server.url, retries: { retries: 2, baseDelayMs: 1 } });
  const error = await client.get(1).catch((e) => e);
  assert.ok(isFloodgateError(error, "HTTP_ERROR"));
  assert.equal(error.status, 504);
  assert.match(error.detail, /gateway timeout/);
  assert.equal(server.requests.length, 3);

  const slow = await stub(t, () => overloaded(3_600));
  const impatient = new Floodgate({ baseUrl: slow.url, retries: { retries: 5, maxRetryAfterMs: 10_000 } });
  const busy = await impatient.get(1).catch((e) => e);
  assert.ok(isFloodgateError(busy, "OVERLOADED"));
  assert.equal(busy.retryAfter, 3_600);
  assert.equal(slow.requests.length, 1);
});

test("a network failure is a FloodgateError NETWORK_ERROR keeping its cause, retried when idempotent", async () => {
  // A port nothing listens on: taken, then given back.
  const probe = createServer();
  probe.listen(0, "127.0.0.1");
  await once(probe, "listening");
  const deadPort = /** @type {import("node:net").AddressInfo} */ (probe.address()).port;
  probe.close();
  await once(probe, "close");
  let calls = 0;
  const client = new Floodgate({
    baseUrl: `http://127.0.0.1:${deadPort}`,
    retries: { retries: 2, baseDelayMs: 1 },
    fetch: (url, init) => {
      calls++;
      return fetch(url, init);
    },
  });
  const error = await client.get(1).catch((e) => e);
  assert.ok(isFloodgateError(error, "NETWORK_ERROR"), String(error));
  assert.equal(error.status, 0);
  assert.ok(error.cause instanceof Error, "the cause is kept");
  assert.equal(calls, 3, "an idempotent call is retried");
  calls = 0;
  await client.enqueue({ kind: "k" }).catch((e) => e);
  assert.equal(calls, 1, "a non-idempotent one is not");
});

test("a request past timeoutMs is a REQUEST_TIMEOUT; the caller's abort rejects with its reason", async (t) => {
  const server = await stub(t, () => undefined); // never answers
  const client = new Floodgate({ baseUrl: server.url, timeoutMs: 200, retries: 0 });
  const error = await client.get(1).catch((e) => e);
  assert.ok(isFloodgateError(error, "REQUEST_TIMEOUT"), String(error));
  assert.equal(error.transient, true);

  const patient = new Floodgate({ baseUrl: server.url, timeoutMs: 60_000 });
  const controller = new AbortController();
  const reason = new Error("the caller gave up");
  setTimeout(() => controller.abort(reason), 50);
  const aborted = await patient.get(1, { signal: controller.signal }).catch((e) => e);
  assert.equal(aborted, reason);
});

test("waitFor polls as Retry-After says and gives up with WAIT_TIMEOUT", async (t) => {
  const running = { ...job, state: "running" };
  const server = await stub(t, (_req, n) => (n < 3 ? { status: 200, headers: { "retry-after": "1" }, body: running } : { status: 200, body: job }));
  const client = new Floodgate({ baseUrl: server.url });
  const done = await client.waitFor(1);
  assert.equal(done.state, "succeeded");
  assert.equal(server.requests.length, 3);
  const gaps = server.requests.slice(1).map((r, i) => r.at - server.requests[i].at);
  assert.ok(gaps.every((g) => g >= 950), `polled every Retry-After (1 s): ${gaps}`);

  const stuck = await stub(t, () => ({ status: 200, headers: { "retry-after": "1" }, body: running }));
  const impatient = new Floodgate({ baseUrl: stuck.url });
  const error = await impatient.waitFor(1, { timeoutMs: 300 }).catch((e) => e);
  assert.ok(isFloodgateError(error, "WAIT_TIMEOUT"), String(error));
  assert.match(error.detail, /running/);
});
