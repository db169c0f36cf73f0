/**
 * HTTP for the client: one request with a timeout and the caller's signal, answers and
 * problems turned into values or `FloodgateError`s, and retries of idempotent requests.
 * Node's `fetch` keeps connections alive between requests, so a busy worker reuses a few.
 *
 * @module
 */

import { FloodgateError, isProblem, parseRetryAfter, type ErrorCode } from "./errors.js";
import { backoffMs, sleep, type RetryPolicy } from "./retry.js";

/** What the transport needs from the client's options. */
export interface TransportConfig {
  /** The server's base URL, without a trailing slash. */
  baseUrl: string;
  /** A bearer token for `/v1`. */
  token: string | undefined;
  /** The `fetch` to call. */
  fetch: typeof globalThis.fetch;
  /** Retries of idempotent calls. */
  retry: RetryPolicy;
  /** A request's default timeout in ms. */
  timeoutMs: number;
}

/** One request. */
export interface Call {
  /** The HTTP method. */
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** The path, starting with `/`. */
  path: string;
  /** Query parameters; `undefined` and `null` values are left out. */
  query?: Record<string, string | number | undefined | null> | undefined;
  /** A JSON body. */
  body?: unknown;
  /** More headers. */
  headers?: Record<string, string> | undefined;
  /** Whether the call may be repeated: only those are retried. */
  idempotent: boolean;
  /** The caller's signal. */
  signal?: AbortSignal | undefined;
  /** This request's timeout in ms (default: the client's). */
  timeoutMs?: number | undefined;
  /**
   * Problem codes answered as values instead of thrown: an error answer whose problem document
   * has one of these codes resolves with the document as `data` (and its status and headers).
   */
  answerProblems?: readonly ErrorCode[] | undefined;
}

/** A successful answer. */
export interface Answer<T> {
  /** The parsed JSON body. */
  data: T;
  /** The HTTP status. */
  status: number;
  /** `Retry-After` in seconds, when sent. */
  retryAfter: number | undefined;
  /** The answer's headers. */
  headers: Headers;
}

/** Sends requests for a client. */
export class Transport {
  readonly #config: TransportConfig;
  readonly #headers: Record<string, string>;

  /** A transport with these settings. */
  constructor(config: TransportConfig) {
    this.#config = config;
    this.#headers = { accept: "application/json, application/problem+json" };
    if (config.token !== undefined) this.#headers.authorization = `Bearer ${config.token}`;
  }

  /** Sends `call`, retrying an idempotent one on transient failures as the policy says. */
  async request<T>(call: Call): Promise<Answer<T>> {
    const policy = this.#config.retry;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once<T>(call);
      } catch (error) {
        if (!call.idempotent || attempt >= policy.retries || !(error instanceof FloodgateError) || !error.transient) throw error;
        let wait: number;
        if (error.retryAfter !== undefined) {
          wait = error.retryAfter * 1000;
          if (wait > policy.maxRetryAfterMs) throw error;
        } else {
          wait = backoffMs(attempt, policy.baseDelayMs, policy.maxDelayMs);
        }
        await sleep(wait, call.signal);
      }
    }
  }

  async #once<T>(call: Call): Promise<Answer<T>> {
    const outer = call.signal;
    if (outer?.aborted) throw outer.reason;
    const controller = new AbortController();
    const timeoutMs = call.timeoutMs ?? this.#config.timeoutMs;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort(outer!.reason);
    outer?.addEventListener("abort", onAbort, { once: true });
    try {
      const headers = call.body === undefined ? { ...this.#headers, ...call.headers } : { ...this.#headers, "content-type": "application/json", ...call.headers };
      let response: Response;
      try {
        response = await this.#config.fetch(this.#url(call), {
          method: call.method,
          headers,
          body: call.body === undefined ? null : JSON.stringify(call.body),
          signal: controller.signal,
        });
      } catch (cause) {
        throw this.#noAnswer(call, cause, timedOut, timeoutMs);
      }
      let text: string;
      try {
        text = await response.text();
      } catch (cause) {
        throw this.#noAnswer(call, cause, timedOut, timeoutMs);
      }
      const retryAfter = parseRetryAfter(response.headers.get("retry-after"));
      if (!response.ok) {
        const error = errorFromAnswer(call, response, text, retryAfter);
        if (error.problem !== undefined && call.answerProblems?.includes(error.code)) {
          return { data: error.problem as T, status: response.status, retryAfter, headers: response.headers };
        }
        throw error;
      }
      let data: T;
      try {
        data = (text === "" ? undefined : JSON.parse(text)) as T;
      } catch (cause) {
        throw new FloodgateError({
          code: "INVALID_RESPONSE",
          status: response.status,
          title: "Invalid response",
          detail: `${call.method} ${call.path} answered ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`,
          retryAfter,
          cause,
        });
      }
      return { data, status: response.status, retryAfter, headers: response.headers };
    } finally {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onAbort);
    }
  }

  #url(call: Call): string {
    let url = this.#config.baseUrl + call.path;
    if (call.query !== undefined) {
      const params = new URLSearchParams();
      for (const [k, v] of Object.entries(call.query)) {
        if (v !== undefined && v !== null) params.append(k, String(v));
      }
      const qs = params.toString();
      if (qs !== "") url += `?${qs}`;
    }
    return url;
  }

  /** The error for a request that got no (whole) answer: the caller's abort, a timeout, or the network. */
  #noAnswer(call: Call, cause: unknown, timedOut: boolean, timeoutMs: number): unknown {
    if (call.signal?.aborted) return call.signal.reason;
    if (timedOut) {
      return new FloodgateError({
        code: "REQUEST_TIMEOUT",
        status: 0,
        title: "Request timed out",
        detail: `${call.method} ${call.path} got no answer within ${timeoutMs} ms`,
        cause,
      });
    }
    const reason = cause instanceof Error ? describe(cause) : String(cause);
    return new FloodgateError({
      code: "NETWORK_ERROR",
      status: 0,
      title: "Network error",
      detail: `${call.method} ${this.#config.baseUrl}${call.path} failed: ${reason}`,
      cause,
    });
  }
}

/** An error's message with its cause's (fetch's `TypeError: fetch failed` hides the reason there). */
function describe(error: Error): string {
  const inner = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${error.message}${inner}`;
}

/** The error for a non-2xx answer: its problem document, or a plain `HTTP_ERROR`. */
function errorFromAnswer(call: Call, response: Response, text: string, retryAfter: number | undefined): FloodgateError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (isProblem(parsed)) {
    return new FloodgateError({
      code: parsed.code,
      status: response.status,
      title: parsed.title,
      detail: typeof parsed.detail === "string" ? parsed.detail : parsed.title,
      retryAfter,
      problem: parsed,
    });
  }
  return new FloodgateError({
    code: "HTTP_ERROR",
    status: response.status,
    title: response.statusText || `HTTP ${response.status}`,
    detail: `${call.method} ${call.path} answered ${response.status} without a problem document${text ? `: ${text.slice(0, 200)}` : ""}`,
    retryAfter,
  });
}
