// @ts-check
/**
 * The transfer service (node:http): `POST /transfers` records a transfer and enqueues its job
 * in one transaction (see `outbox.mjs`) and answers `202 Accepted`; `GET /transfers/{id}`
 * tells how it stands: `pending`, `processing` (its job is running in a worker, as the
 * floodgate server says), `confirmed` or `failed`.
 *
 * Environment: `DATABASE_URL` (PostgreSQL, floodgate's schema on the search_path),
 * `FLOODGATE_URL` (default `http://127.0.0.1:7070`), `FLOODGATE_API_TOKEN` (if the server
 * wants one), `PORT` (default 3000; 0 picks a free port), `HOST` (default `127.0.0.1`).
 * It prints `transfer service listening on http://HOST:PORT` once it answers.
 *
 * @module
 */

import http from "node:http";
import { Floodgate } from "@floodgate/client";

import { applySchema, createPool } from "./db.mjs";
import { createTransfer, readTransfer, UnknownAccountError, validateTransfer } from "./outbox.mjs";
import { problem, sendProblem } from "./problem.mjs";

/** The largest request body read, in bytes. */
const MAX_BODY_BYTES = 16 * 1024;

/** How long `GET /transfers/{id}` waits for the floodgate server before answering without it. */
const JOB_LOOKUP_TIMEOUT_MS = 2_000;

const env = process.env;
const pool = createPool(env.DATABASE_URL, { max: 10, name: "transfer-service" });
const floodgate = new Floodgate({ baseUrl: env.FLOODGATE_URL ?? "http://127.0.0.1:7070", token: env.FLOODGATE_API_TOKEN, retries: 1 });

/**
 * Sends `value` as JSON.
 *
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {unknown} value
 * @param {Record<string, string>} [headers]
 */
function sendJson(res, status, value, headers = {}) {
  const body = JSON.stringify(value);
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

/**
 * The request's body parsed as JSON, or a problem to answer with instead.
 *
 * @param {http.IncomingMessage} req
 * @returns {Promise<{ ok: true, value: unknown } | { ok: false, problem: import("./problem.mjs").Problem }>}
 */
async function readJson(req) {
  const type = (req.headers["content-type"] ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json") {
    return { ok: false, problem: problem(415, "UNSUPPORTED_MEDIA_TYPE", `send the transfer as application/json, not ${JSON.stringify(type)}`) };
  }
  /** @type {Buffer[]} */
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return { ok: false, problem: problem(413, "BODY_TOO_LARGE", `the body is larger than ${MAX_BODY_BYTES} bytes`) };
    chunks.push(chunk);
  }
  try {
    return { ok: true, value: JSON.parse(Buffer.concat(chunks).toString("utf8")) };
  } catch (error) {
    return { ok: false, problem: problem(400, "INVALID_JSON", `the body is not JSON: ${error instanceof Error ? error.message : String(error)}`) };
  }
}

/**
 * `POST /transfers`: validate, record and enqueue in one transaction, answer 202.
 *
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 */
async function postTransfer(req, res) {
  const body = await readJson(req);
  if (!body.ok) return sendProblem(res, body.problem, body.problem.status === 413 ? { connection: "close" } : {});
  const checked = validateTransfer(body.value);
  if (!checked.ok) {
    return sendProblem(res, problem(400, "VALIDATION_FAILED", checked.errors.map((e) => `${e.field || "body"}: ${e.message}`).join("; "), checked.errors));
  }
  let created;
  try {
    created = await createTransfer(pool, checked.value);
  } catch (error) {
    if (error instanceof UnknownAccountError) {
      return sendProblem(res, problem(422, "UNKNOWN_ACCOUNT", error.message, [{ field: error.field, message: "no such account" }]));
    }
    throw error;
  }
  const statusUrl = `/transfers/${created.id}`;
  sendJson(res, 202, { id: created.id, status: "pending", status_url: statusUrl, job_id: created.jobId }, { location: statusUrl });
}

/**
 * `GET /transfers/{id}`. A row still `pending` is `processing` while its floodgate job runs,
 * and `failed` if the job ended without applying it (dead or cancelled: a technical failure
 * that an operator may retry). When the floodgate server cannot be asked, the row's own
 * status is reported (and `job_state` is null).
 *
 * @param {http.ServerResponse} res
 * @param {number} id
 */
async function getTransfer(res, id) {
  let transfer = await readTransfer(pool, id);
  if (transfer === undefined) return sendProblem(res, problem(404, "NOT_FOUND", `there is no transfer ${id}`));
  /** @type {string | null} */
  let jobState = null;
  /** @type {"pending" | "processing" | "confirmed" | "failed"} */
  let status = transfer.status;
  let failureReason = transfer.failure_reason;
  if (transfer.status === "pending") {
    try {
      const job = await floodgate.get(transfer.job_id, { signal: AbortSignal.timeout(JOB_LOOKUP_TIMEOUT_MS) });
      jobState = job.state;
      if (job.state === "running") {
        status = "processing";
      } else if (job.state === "succeeded") {
        // The worker committed between our two reads: read the row again.
        transfer = (await readTransfer(pool, id)) ?? transfer;
        status = transfer.status;
        failureReason = transfer.failure_reason;
      } else if (job.state === "dead" || job.state === "cancelled") {
        status = "failed";
        failureReason = `job ${job.state}: ${job.last_error ?? "no error recorded"}`;
      }
    } catch (error) {
      console.warn(`transfer-service: could not ask floodgate about job ${transfer.job_id}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  sendJson(res, 200, { ...transfer, status, failure_reason: failureReason, job_state: jobState });
}

/**
 * Routes one request.
 *
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 */
async function route(req, res) {
  const { pathname } = new URL(req.url ?? "/", "http://localhost");
  if (pathname === "/transfers") {
    if (req.method === "POST") return postTransfer(req, res);
    return sendProblem(res, problem(405, "METHOD_NOT_ALLOWED", `${req.method} is not allowed on /transfers; POST a transfer`), { allow: "POST" });
  }
  const match = /^\/transfers\/([^/]+)$/.exec(pathname);
  if (match) {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return sendProblem(res, problem(405, "METHOD_NOT_ALLOWED", `${req.method} is not allowed on a transfer; GET it`), { allow: "GET, HEAD" });
    }
    if (!/^[1-9][0-9]{0,14}$/.test(match[1])) return sendProblem(res, problem(404, "NOT_FOUND", `there is no transfer ${JSON.stringify(match[1])}`));
    return getTransfer(res, Number(match[1]));
  }
  return sendProblem(res, problem(404, "NOT_FOUND", `no route for ${pathname}; try POST /transfers or GET /transfers/{id}`));
}

const server = http.createServer((req, res) => {
  route(req, res).catch((error) => {
    console.error(`transfer-service: ${req.method} ${req.url} failed:`, error);
    if (!res.headersSent) sendProblem(res, problem(500, "INTERNAL", "the transfer could not be handled; try again later"));
    else res.destroy();
  });
});

/** Stops answering, lets requests in flight finish, closes the pool. */
async function shutdown() {
  await new Promise((resolve) => {
    server.close(resolve);
    server.closeIdleConnections();
  });
  await pool.end();
}

try {
  await applySchema(pool);
  const port = Number(env.PORT ?? 3000);
  const host = env.HOST ?? "127.0.0.1";
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(undefined));
  });
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`transfer service listening on http://${host}:${address.port}`);
  for (const signal of /** @type {const} */ (["SIGTERM", "SIGINT"])) {
    process.once(signal, () => {
      console.log(`transfer service: ${signal}, stopping`);
      shutdown().catch((error) => {
        console.error("transfer service: shutdown failed:", error);
        process.exitCode = 1;
      });
    });
  }
} catch (error) {
  console.error("transfer service: could not start:", error);
  process.exitCode = 1;
  await pool.end().catch(() => {});
  server.close();
}
