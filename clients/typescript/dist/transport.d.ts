/**
 * HTTP for the client: one request with a timeout and the caller's signal, answers and
 * problems turned into values or `FloodgateError`s, and retries of idempotent requests.
 * Node's `fetch` keeps connections alive between requests, so a busy worker reuses a few.
 *
 * @module
 */
import { type ErrorCode } from "./errors.js";
import { type RetryPolicy } from "./retry.js";
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
export declare class Transport {
    #private;
    /** A transport with these settings. */
    constructor(config: TransportConfig);
    /** Sends `call`, retrying an idempotent one on transient failures as the policy says. */
    request<T>(call: Call): Promise<Answer<T>>;
}
