// Limits as a service against the real binary, started with [limiters.*], [rate_limits.*] and
// [breakers.*] settings: permits (withPermit and the calls under it), rate checks, breakers and
// guarded. Nothing here decides by a fixed sleep: waits are for conditions, with deadlines.
// A few checks of the client alone (the RateLimit field, a 503 rate check) use a local stub.

import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { test } from "node:test";

import { Floodgate, FloodgateError, isFloodgateError, parseRateLimit } from "../dist/index.js";
import { delay, eventually, startServer } from "./helpers/server.mjs";

const CONFIG = `
[limiters.llm]
max_concurrency = 3
max_queue = 100
max_wait = 30
lease_ttl = 30

[limiters.single]
max_concurrency = 1
max_queue = 10
max_wait = 30
lease_ttl = 30

[limiters.brief]
max_concurrency = 1
max_queue = 10
max_wait = 1
lease_ttl = 30

[limiters.short]
max_concurrency = 1
max_queue = 10
max_wait = 5
lease_ttl = 1

[rate_limits.per_customer]
rate = 3
per = 60

[rate_limits.guard]
rate = 2
per = 60

[breakers.payments]
consecutive_failures = 2
open_wait = 60
half_open_probes = 1
call_deadline = 60

[breakers.picky]
consecutive_failures = 2
open_wait = 60
half_open_probes = 1
call_deadline = 60

[breakers.guard]
consecutive_failures = 1
open_wait = 60
half_open_probes = 1
call_deadline = 60
`;

/** A server with the settings above and a client of it; stopped after the test. */
async function setUp(t, clientOptions = {}) {
  const server = await startServer({ config: CONFIG });
  t.after(() => server.close());
  const client = new Floodgate({ baseUrl: server.url, ...clientOptions });
  return { server, client };
}

/** The limiter `name` as `GET /v1/limiters` shows it. */
async function limiter(client, name) {
  const found = (await client.listLimiters()).find((l) => l.name === name);
  assert.ok(found, `no limiter ${name}`);
  return found;
}

/** The breaker `name` as `GET /v1/breakers` shows it. */
async function breakerView(client, name) {
  const found = (await client.listBreakers()).find((b) => b.name === name);
  assert.ok(found, `no breaker ${name}`);
  return found;
}

/** Collects the background failures a call reports, instead of printing them. */
function errorsInto(list) {
  return (error, context) => list.push({ error, context });
}

test("withPermit never lets more than the limit run at once across 20 callers", async (t) => {
  const { client } = await setUp(t);
  let running = 0;
  let most = 0;
  let ran = 0;
  const errors = [];
  const callers = Array.from({ length: 20 }, (_, i) =>
    client.withPermit(
      "llm",
      async ({ permit, signal }) => {
        assert.equal(permit.limiter, "llm");
        assert.equal(signal.aborted, false);
        running++;
        most = Math.max(most, running);
        try {
          await delay(30 + (i % 5) * 10);
          return i;
        } finally {
          running--;
          ran++;
        }
      },
      { wait: 120, holder: `caller-${i}`, onError: errorsInto(errors) },
    ),
  );
  const results = await Promise.all(callers);
  assert.deepEqual(results, Array.from({ length: 20 }, (_, i) => i));
  assert.equal(ran, 20);
  assert.ok(most <= 3, `${most} ran at once under a limit of 3`);
  assert.ok(most >= 1);
  assert.deepEqual(errors, []);
  const view = await limiter(client, "llm");
  assert.equal(view.held_here, 0, "every permit was released");
  assert.equal(view.waiting, 0);
  assert.equal(view.acquired, 20);
  assert.equal(view.expired, 0);
});

test("a total wait longer than max_wait is spent in several long polls", async (t) => {
  const { client } = await setUp(t);
  // `brief` allows waits of at most 1 s per request; the permit is held for a while.
  const held = await client.acquirePermit("brief");
  // One request asking more than max_wait waits max_wait, then says so.
  const tooLong = await client.acquirePermit("brief", { wait: 2 }).catch((e) => e);
  assert.ok(isFloodgateError(tooLong, "ACQUIRE_TIMEOUT"), String(tooLong));
  assert.match(tooLong.detail, /within 1 s/);

  let gotIt = false;
  const waiter = client.withPermit("brief", () => (gotIt = true), { wait: 60, maxWait: 1 });
  // The waiter is queued, one long poll after another, well past a single max_wait.
  await eventually(async () => (await limiter(client, "brief")).waiting === 1, { what: "the waiter queued" });
  const queuedAt = Date.now();
  await eventually(() => Date.now() - queuedAt > 2_500, { what: "time passing" });
  assert.equal(gotIt, false);
  await client.releasePermit(held.permit_id);
  await waiter;
  assert.equal(gotIt, true);
  assert.equal((await limiter(client, "brief")).held_here, 0);

  // Without a permit in the total wait: ACQUIRE_TIMEOUT, after more than one poll.
  const blocker = await client.acquirePermit("brief");
  const startedAt = Date.now();
  const timedOut = await client.withPermit("brief", () => assert.fail("must not run"), { wait: 1.5, maxWait: 1 }).catch((e) => e);
  assert.ok(isFloodgateError(timedOut, "ACQUIRE_TIMEOUT"), String(timedOut));
  assert.equal(timedOut.status, 429);
  assert.ok(Date.now() - startedAt >= 1_400, `gave up after ${Date.now() - startedAt} ms of a 1.5 s wait`);
  assert.match(timedOut.detail, /1\.5 s/);
  await client.releasePermit(blocker.permit_id);
});

test("the permit is released when fn throws, and fn's error is what rejects", async (t) => {
  const { client } = await setUp(t);
  const boom = new Error("boom");
  const error = await client
    .withPermit("single", () => {
      throw boom;
    })
    .catch((e) => e);
  assert.equal(error, boom);
  const asyncError = await client.withPermit("single", async () => Promise.reject(boom)).catch((e) => e);
  assert.equal(asyncError, boom);
  // Free at once: an acquire without waiting succeeds.
  const next = await client.acquirePermit("single", { wait: 0 });
  assert.equal(next.limiter, "single");
  assert.equal(next.scope, "local");
  assert.equal(next.enforced, true);
  assert.equal(next.lease_ttl, 30);
  assert.equal((await limiter(client, "single")).held_here, 1);
  await client.releasePermit(next.permit_id);
  await client.releasePermit(next.permit_id); // a release again is still a success
  assert.equal((await limiter(client, "single")).held_here, 0);
});

test("the limiter's refusals are FloodgateErrors: ACQUIRE_TIMEOUT, QUEUE_FULL, NOT_FOUND", async (t) => {
  const { client } = await setUp(t);
  const held = await client.acquirePermit("single");
  const timeout = await client.withPermit("single", () => assert.fail("must not run")).catch((e) => e);
  assert.ok(timeout instanceof FloodgateError);
  assert.equal(timeout.code, "ACQUIRE_TIMEOUT");
  assert.equal(timeout.status, 429);
  assert.ok(timeout.retryAfter >= 1);

  // `single` lets 10 wait; the 11th is refused at once.
  const controller = new AbortController();
  const waiters = Array.from({ length: 10 }, () => client.acquirePermit("single", { wait: 30, signal: controller.signal }).catch((e) => e));
  await eventually(async () => (await limiter(client, "single")).waiting === 10, { what: "10 waiters" });
  const full = await client.withPermit("single", () => assert.fail("must not run"), { wait: 30 }).catch((e) => e);
  assert.ok(isFloodgateError(full, "QUEUE_FULL"), String(full));
  assert.equal(full.status, 429);
  controller.abort(new Error("enough"));
  for (const w of await Promise.all(waiters)) assert.equal(w.message, "enough");

  const unknown = await client.withPermit("nope", () => assert.fail("must not run")).catch((e) => e);
  assert.ok(isFloodgateError(unknown, "NOT_FOUND"), String(unknown));
  await client.releasePermit(held.permit_id);
  await eventually(async () => (await limiter(client, "single")).waiting === 0, { what: "the aborted waits dropped" });
});

test("aborting while waiting aborts the request and leaves no permit behind", async (t) => {
  const { client } = await setUp(t);
  const held = await client.acquirePermit("single");
  const controller = new AbortController();
  const reason = new Error("the caller gave up");
  let ran = false;
  const waiting = client.withPermit("single", () => (ran = true), { wait: 60, signal: controller.signal }).catch((e) => e);
  await eventually(async () => (await limiter(client, "single")).waiting === 1, { what: "the caller waiting on the server" });
  controller.abort(reason);
  assert.equal(await waiting, reason);
  assert.equal(ran, false);
  await eventually(async () => (await limiter(client, "single")).waiting === 0, { what: "the server dropped the wait" });
  assert.equal((await limiter(client, "single")).held_here, 1, "only the permit held before");

  await client.releasePermit(held.permit_id);
  const view = await limiter(client, "single");
  assert.equal(view.held_here, 0);
  // Had the aborted wait taken the freed permit, this would time out.
  const later = await client.acquirePermit("single", { wait: 0 });
  await client.releasePermit(later.permit_id);

  // An already aborted signal sends nothing.
  const early = await client.withPermit("single", () => assert.fail("must not run"), { signal: AbortSignal.abort(reason) }).catch((e) => e);
  assert.equal(early, reason);
  assert.equal((await limiter(client, "single")).acquired, 2);
});

test("heartbeats keep a permit past its lease while fn runs", async (t) => {
  let heartbeats = 0;
  const { client } = await setUp(t, {
    fetch: (url, init) => {
      if (init?.method === "POST" && /\/v1\/permits\/[^/]+\/heartbeat$/.test(String(url))) heartbeats++;
      return fetch(url, init);
    },
  });
  const errors = [];
  const result = await client.withPermit(
    "short",
    async ({ signal, permit }) => {
      // A lease of 2 s (the limiter's is 1 s) leaves a heartbeat every ~667 ms room on a busy
      // machine; the function runs for more than two leases.
      assert.equal(permit.lease_ttl, 2);
      const until = Date.now() + 5_000;
      while (Date.now() < until) {
        assert.equal(signal.aborted, false, String(signal.reason));
        await delay(100);
      }
      return "done";
    },
    { leaseTtl: 2, onError: errorsInto(errors) },
  );
  assert.equal(result, "done");
  assert.ok(heartbeats >= 2, `${heartbeats} heartbeats in 5 s`);
  const view = await limiter(client, "short");
  assert.equal(view.expired, 0, `the lease ran out (background errors: ${errors.map((e) => String(e.error)).join("; ")})`);
  assert.equal(view.held_here, 0);
});

test("a lost permit surfaces PERMIT_LOST: heartbeat, release, signal and withPermit", async (t) => {
  const { client } = await setUp(t);

  // Low level: a lease of 1 s left to run out.
  const permit = await client.acquirePermit("short");
  await eventually(async () => (await limiter(client, "short")).expired === 1, { what: "the lease ran out" });
  const beat = await client.heartbeatPermit(permit.permit_id).catch((e) => e);
  assert.ok(isFloodgateError(beat, "PERMIT_LOST"), String(beat));
  assert.equal(beat.status, 409);
  const release = await client.releasePermit(permit.permit_id).catch((e) => e);
  assert.ok(isFloodgateError(release, "PERMIT_LOST"), String(release));

  // A heartbeat answering PERMIT_LOST aborts fn's signal (heartbeats here come after the lease).
  let reason;
  const viaSignal = await client
    .withPermit(
      "short",
      async ({ signal }) => {
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        reason = signal.reason;
        throw signal.reason;
      },
      { heartbeatIntervalMs: 2_500 },
    )
    .catch((e) => e);
  assert.ok(isFloodgateError(viaSignal, "PERMIT_LOST"), String(viaSignal));
  assert.equal(viaSignal, reason);

  // fn returns after its permit was taken back (no heartbeat in time): the release answers
  // PERMIT_LOST, and so does withPermit, rather than the value.
  const viaRelease = await client
    .withPermit(
      "short",
      async () => {
        await eventually(async () => (await limiter(client, "short")).expired === 3, { what: "the third lease ran out" });
        return "too late";
      },
      { heartbeatIntervalMs: 600_000 },
    )
    .catch((e) => e);
  assert.ok(isFloodgateError(viaRelease, "PERMIT_LOST"), String(viaRelease));

  // And fn's own error still wins over a lost permit.
  const own = new Error("fn's own");
  const masked = await client
    .withPermit(
      "short",
      async () => {
        await eventually(async () => (await limiter(client, "short")).expired === 4, { what: "the fourth lease ran out" });
        throw own;
      },
      { heartbeatIntervalMs: 600_000 },
    )
    .catch((e) => e);
  assert.equal(masked, own);
  assert.equal((await limiter(client, "short")).held_here, 0);
});

test("rateCheck: allowed with what remains, refused with retryAfter (not thrown)", async (t) => {
  const { client } = await setUp(t);
  for (const remaining of [2, 1, 0]) {
    const decision = await client.rateCheck("per_customer", "ada");
    assert.equal(decision.allowed, true);
    assert.equal(decision.remaining, remaining);
    assert.ok(decision.resetAfter > 0);
    assert.equal(decision.retryAfter, undefined);
    assert.equal(decision.enforced, true);
    assert.equal(decision.scope, "local");
  }
  const refused = await client.rateCheck("per_customer", "ada");
  assert.equal(refused.allowed, false);
  assert.equal(refused.remaining, 0);
  assert.ok(refused.retryAfter >= 1 && refused.retryAfter <= 60, `retryAfter ${refused.retryAfter}`);
  assert.ok(refused.resetAfter > 0);
  assert.equal(refused.enforced, true);

  // Keys are apart; a cost takes that many.
  const other = await client.rateCheck("per_customer", "grace", { cost: 3 });
  assert.equal(other.allowed, true);
  assert.equal(other.remaining, 0);
  assert.equal((await client.rateCheck("per_customer", "grace")).allowed, false);

  const unknown = await client.rateCheck("nope", "ada").catch((e) => e);
  assert.ok(isFloodgateError(unknown, "NOT_FOUND"), String(unknown));
  const invalid = await client.rateCheck("per_customer", "").catch((e) => e);
  assert.ok(isFloodgateError(invalid, "VALIDATION_FAILED"), String(invalid));

  const [view] = (await client.listRateLimits()).filter((r) => r.name === "per_customer");
  assert.equal(view.allowed, 4);
  assert.equal(view.limited, 2);
});

test("a breaker opens after failures; then call() rejects BREAKER_OPEN without calling fn", async (t) => {
  const { client } = await setUp(t);
  const payments = client.breaker("payments");
  assert.equal(payments.name, "payments");

  assert.equal(await payments.call(({ call }) => (assert.equal(call.breaker, "payments"), "paid")), "paid");
  for (let i = 0; i < 2; i++) {
    const boom = new Error(`card declined ${i}`);
    const error = await payments
      .call(async () => {
        await delay(5);
        throw boom;
      })
      .catch((e) => e);
    assert.equal(error, boom, "fn's own error is rethrown");
  }
  const view = await breakerView(client, "payments");
  assert.equal(view.state, "open");
  assert.equal(view.calls, 3);
  assert.equal(view.failures, 2);
  assert.equal(view.last_failure, "card declined 1");

  let called = false;
  const open = await payments.call(() => (called = true)).catch((e) => e);
  assert.equal(called, false);
  assert.ok(open instanceof FloodgateError);
  assert.equal(open.code, "BREAKER_OPEN");
  assert.equal(open.status, 503);
  assert.ok(open.retryAfter >= 1 && open.retryAfter <= 60, `retryAfter ${open.retryAfter}`);
  assert.equal((await breakerView(client, "payments")).rejected, 1);

  const reset = await payments.reset();
  assert.deepEqual(reset, { breaker: "payments", state: "closed" });
  assert.equal(await payments.call(() => 42), 42);
});

test("a breaker call classifies errors; ignored ones neither count nor open it", async (t) => {
  const { client } = await setUp(t);
  const errors = [];
  const picky = client.breaker("picky", { onError: errorsInto(errors) });
  const notFound = Object.assign(new Error("404 from the service"), { status: 404 });
  const classify = (e) => (e.status === 404 ? "ignored" : "failure");
  for (let i = 0; i < 3; i++) {
    assert.equal(await picky.call(() => Promise.reject(notFound), { classify }).catch((e) => e), notFound);
  }
  let view = await breakerView(client, "picky");
  assert.equal(view.state, "closed");
  assert.equal(view.failures, 0);

  // The caller's own abort counts ignored too.
  const controller = new AbortController();
  const aborted = picky.call(({ signal }) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true })), { signal: controller.signal });
  controller.abort(new Error("stop"));
  assert.equal((await aborted.catch((e) => e)).message, "stop");
  assert.equal((await breakerView(client, "picky")).state, "closed");

  // A non-Error thrown is reported by its text (kept as what opened the breaker), and rethrown as is.
  for (let i = 0; i < 2; i++) assert.equal(await picky.call(() => Promise.reject("plain text")).catch((e) => e), "plain text");
  view = await breakerView(client, "picky");
  assert.equal(view.failures, 2);
  assert.equal(view.state, "open");
  assert.equal(view.last_failure, "plain text");
  assert.deepEqual(errors, []);

  const unknown = await client.breaker("nope").call(() => assert.fail("must not run")).catch((e) => e);
  assert.ok(isFloodgateError(unknown, "NOT_FOUND"), String(unknown));
});

test("guarded: a rate check, then a permit, then the breaker, around one call", async (t) => {
  const { client } = await setUp(t);
  const guards = { rateLimit: { name: "guard", key: "ada" }, permit: { name: "single", wait: 10 }, breaker: "guard" };
  const seen = await client.guarded(async ({ signal, rate, permit, call }) => {
    assert.equal(signal.aborted, false);
    assert.equal(rate.allowed, true);
    assert.equal(rate.remaining, 1);
    assert.equal(permit.limiter, "single");
    assert.equal(call.breaker, "guard");
    // The permit is held while the call runs.
    assert.equal((await limiter(client, "single")).held_here, 1);
    return "ok";
  }, guards);
  assert.equal(seen, "ok");
  assert.equal((await limiter(client, "single")).held_here, 0);
  assert.equal((await breakerView(client, "guard")).calls, 1);

  // A failure inside: rethrown as is, reported to the breaker (which opens), permit released.
  const boom = new Error("downstream broke");
  assert.equal(await client.guarded(() => Promise.reject(boom), guards).catch((e) => e), boom);
  assert.equal((await breakerView(client, "guard")).state, "open");
  assert.equal((await limiter(client, "single")).held_here, 0);

  // The rate limit is spent now: refused first, before any permit or breaker.
  let ran = false;
  const acquiredBefore = (await limiter(client, "single")).acquired;
  const limited = await client.guarded(() => (ran = true), guards).catch((e) => e);
  assert.equal(ran, false);
  assert.ok(limited instanceof FloodgateError);
  assert.equal(limited.code, "RATE_LIMITED");
  assert.equal(limited.status, 429);
  assert.ok(limited.retryAfter >= 1, `retryAfter ${limited.retryAfter}`);
  assert.equal((await limiter(client, "single")).acquired, acquiredBefore);

  // Without the rate limit: the permit is taken, the open breaker refuses, the permit is freed.
  const open = await client.guarded(() => (ran = true), { permit: { name: "single" }, breaker: "guard" }).catch((e) => e);
  assert.equal(ran, false);
  assert.ok(isFloodgateError(open, "BREAKER_OPEN"), String(open));
  assert.equal((await limiter(client, "single")).held_here, 0);

  // No guards at all: just the call.
  assert.equal(await client.guarded(({ rate, permit, call }) => [rate, permit, call].every((x) => x === undefined)), true);
});

test("parseRateLimit reads the IETF RateLimit field", () => {
  assert.deepEqual(parseRateLimit('"per_customer";r=2;t=20'), { name: "per_customer", remaining: 2, resetAfter: 20 });
  assert.deepEqual(parseRateLimit('"a";r=0;t=5, "b";r=9;t=1', "b"), { name: "b", remaining: 9, resetAfter: 1 });
  assert.deepEqual(parseRateLimit('"a,b";t=5', "a,b"), { name: "a,b", remaining: undefined, resetAfter: 5 });
  assert.deepEqual(parseRateLimit("token;r=1"), { name: "token", remaining: 1, resetAfter: undefined });
  assert.equal(parseRateLimit(null), undefined);
  assert.equal(parseRateLimit(""), undefined);
});

/** A stub answering every request with `answer(req)`; returns its URL. */
async function stub(t, answer) {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      const { status, headers = {}, body } = answer(req);
      res.writeHead(status, headers);
      res.end(body === undefined ? "" : JSON.stringify(body));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${/** @type {import("node:net").AddressInfo} */ (server.address()).port}`;
}

test("rateCheck throws RATE_LIMIT_UNAVAILABLE, and falls back on the RateLimit header", async (t) => {
  let mode = "unavailable";
  const url = await stub(t, () =>
    mode === "unavailable"
      ? {
          status: 503,
          headers: { "content-type": "application/problem+json", "retry-after": "1" },
          body: { type: "urn:floodgate:problem:rate_limit_unavailable", title: "Rate limit unavailable", status: 503, code: "RATE_LIMIT_UNAVAILABLE", detail: "the fleet-wide rate limit cannot reach Redis" },
        }
      : mode === "bare"
        ? { status: 200, headers: { "content-type": "application/json", ratelimit: '"x";r=7;t=12' }, body: { allowed: true } }
        : { status: 429, headers: { "content-type": "application/problem+json", ratelimit: '"x";r=0;t=30' }, body: { type: "urn:floodgate:problem:rate_limited", title: "Rate limited", status: 429, code: "RATE_LIMITED", detail: "over" } },
  );
  const client = new Floodgate({ baseUrl: url, retries: { retries: 3, baseDelayMs: 1 } });
  const error = await client.rateCheck("x", "k").catch((e) => e);
  assert.ok(isFloodgateError(error, "RATE_LIMIT_UNAVAILABLE"), String(error));
  assert.equal(error.status, 503);
  assert.equal(error.retryAfter, 1);

  mode = "bare";
  assert.deepEqual(await client.rateCheck("x", "k"), { allowed: true, remaining: 7, resetAfter: 12, retryAfter: undefined, enforced: true, scope: undefined });
  mode = "limited"; // no Retry-After: the reset is the safe guess
  assert.deepEqual(await client.rateCheck("x", "k"), { allowed: false, remaining: 0, resetAfter: 30, retryAfter: 30, enforced: true, scope: undefined });
});
