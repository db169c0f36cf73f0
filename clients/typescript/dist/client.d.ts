/**
 * `Floodgate`: the client of a floodgate server. Producers enqueue and follow jobs; workers
 * use `work()` (or the lease-fenced calls below it: claim, heartbeat, complete, fail, snooze).
 *
 * @module
 */
import { Breaker, type AcquireOptions, type BreakerOptions, type GuardContext, type GuardOptions, type PermitContext, type PermitOptions, type RateCheckOptions, type RateDecision } from "./limits.js";
import { type RetryPolicy } from "./retry.js";
import { type Accepted, type BreakerState, type BreakerView, type CallAdmitted, type CallReport, type ClaimedJob, type CompleteItem, type CompletedMany, type HeartbeatMany, type HeartbeatResponse, type Job, type JobPage, type LeaseRef, type ListAllFilters, type LimiterView, type ListFilters, type NewBatchJob, type NewJob, type PermitGranted, type PermitLease, type RateLimitView, type Reported } from "./types.js";
import { Worker, type WorkOptions } from "./worker.js";
/** Options of a {@link Floodgate} client. */
export interface FloodgateOptions {
    /** The server, e.g. `http://127.0.0.1:7070`. */
    baseUrl: string | URL;
    /** The bearer token, when the server has `api_token` set. */
    token?: string;
    /** The `fetch` to use (default: the global one). */
    fetch?: typeof globalThis.fetch;
    /** Retries of idempotent calls: a count (default 3) or a partial {@link RetryPolicy}. */
    retries?: number | Partial<RetryPolicy>;
    /** A request's timeout in ms (default 30,000; a long-polling claim adds its wait). */
    timeoutMs?: number;
}
/** Options every call takes. */
export interface CallOptions {
    /** Aborts the call (and its retries); it then rejects with the signal's reason. */
    signal?: AbortSignal;
}
/** Options of {@link Floodgate.enqueue} and {@link Floodgate.enqueueMany}. */
export interface EnqueueOptions extends CallOptions {
    /**
     * Makes a repeat of the request return the first job instead of a new one (for a batch, each
     * job without its own key is keyed `{key}:{index}`). With a key the call is idempotent and
     * retried on transient failures; without one it is sent exactly once.
     */
    idempotencyKey?: string;
}
/** Options of {@link Floodgate.waitFor}. */
export interface WaitOptions extends CallOptions {
    /** Give up after this many ms with a `WAIT_TIMEOUT` error (default: wait as long as it takes). */
    timeoutMs?: number;
}
/** Options of {@link Floodgate.claim}. */
export interface ClaimOptions extends CallOptions {
    /** The worker's name, recorded as the lease owner. */
    worker: string;
    /** At most this many jobs, 1..=1000 (default 1). */
    limit?: number;
    /** Long poll: wait up to this many seconds (0..=30) for a job when none is ready. */
    wait?: number;
    /** Only these kinds (default: any). */
    kinds?: readonly string[];
    /** Lease length in seconds (default: the server's, 300). */
    leaseTtl?: number;
}
/** What a claim returned. */
export interface ClaimResult {
    /** The claimed jobs, highest priority first (possibly none). */
    jobs: ClaimedJob[];
    /** When the server is busy with long polls it claims at once and says when to come back. */
    retryAfter: number | undefined;
}
/** Options of {@link Floodgate.fail}. */
export interface FailOptions extends CallOptions {
    /** What went wrong (kept as the job's last error). */
    error: string;
    /** Do not retry: the job goes dead now. */
    permanent?: boolean;
    /** Retry after this many seconds (default: the server's exponential backoff). */
    retryIn?: number;
}
/** A client of one floodgate server. Cheap to share; every call is independent. */
export declare class Floodgate {
    #private;
    /** A client; no request is sent until a call. */
    constructor(options: FloodgateOptions);
    /**
     * Enqueues one job (`POST /v1/jobs`). With `idempotencyKey` (sent as `Idempotency-Key`) a
     * repeat returns the first job (`duplicate: true`) and the call is retried on transient
     * failures; without one it is sent once and never retried.
     */
    enqueue(job: NewJob, options?: EnqueueOptions): Promise<Accepted>;
    /**
     * Enqueues up to 1,000 jobs in one transaction (`{"jobs": [...]}`); one {@link Accepted} per
     * job, in order. Retried on transient failures only with `idempotencyKey`.
     */
    enqueueMany(jobs: readonly NewBatchJob[], options?: EnqueueOptions): Promise<Accepted[]>;
    /** A job (`GET /v1/jobs/{id}`). */
    get(id: number, options?: CallOptions): Promise<Job>;
    /** One page of jobs, newest first (`GET /v1/jobs`); pass `next` as `cursor` for the next. */
    list(filters?: ListFilters, options?: CallOptions): Promise<JobPage>;
    /** Every job matching `filters`, newest first, fetching page after page (`next` as `cursor`). */
    listAll(filters?: ListAllFilters, options?: CallOptions): AsyncGenerator<Job, void, undefined>;
    /**
     * Cancels a job (`POST /v1/jobs/{id}/cancel`): a waiting one at once; a running one is asked
     * to stop (its worker sees it at the next heartbeat) and the answer's state is `running`.
     */
    cancel(id: number, options?: CallOptions): Promise<Reported>;
    /** Runs a dead or cancelled job again with fresh attempts (`POST /v1/jobs/{id}/retry`). */
    retry(id: number, options?: CallOptions): Promise<Reported>;
    /**
     * Polls the job until it has finished (`succeeded`, `dead` or `cancelled`) and resolves with
     * it, waiting between polls as long as the server's `Retry-After` says.
     */
    waitFor(id: number, options?: WaitOptions): Promise<Job>;
    /**
     * Claims up to `limit` jobs of `queue` (`POST /v1/queues/{queue}/claim`), each with a lease
     * token. Not idempotent (a repeat would claim other jobs), so never retried here.
     */
    claim(queue: string, options: ClaimOptions): Promise<ClaimResult>;
    /** Extends one job's lease (`POST /v1/jobs/{id}/heartbeat`); lease-fenced, so retried. */
    heartbeat(id: number, leaseToken: string, options?: CallOptions & {
        leaseTtl?: number;
        worker?: string;
    }): Promise<HeartbeatResponse>;
    /** Extends every lease a worker holds in one request (`POST /v1/jobs/heartbeat`, 1..=1000 jobs). */
    heartbeatMany(worker: string, jobs: readonly LeaseRef[], options?: CallOptions & {
        leaseTtl?: number;
    }): Promise<HeartbeatMany>;
    /** Marks a job succeeded with `result` (`POST /v1/jobs/{id}/complete`); 409 `LEASE_LOST` if no longer held. */
    complete(id: number, leaseToken: string, result?: unknown, options?: CallOptions): Promise<Reported>;
    /** Marks many jobs succeeded in one statement (`POST /v1/jobs/complete`, 1..=1000 jobs). */
    completeMany(jobs: readonly CompleteItem[], options?: CallOptions): Promise<CompletedMany>;
    /** Records a failed attempt (`POST /v1/jobs/{id}/fail`): retried later, or dead. */
    fail(id: number, leaseToken: string, options: FailOptions): Promise<Reported>;
    /**
     * Puts a held job back to run after `delaySeconds` without spending its attempt
     * (`POST /v1/jobs/{id}/snooze`); 0 releases it for another worker at once.
     */
    snooze(id: number, leaseToken: string, delaySeconds: number, options?: CallOptions): Promise<Reported>;
    /** Starts a worker on one queue; see {@link WorkOptions}. It runs until `stop()` (or a signal). */
    work(options: WorkOptions): Worker;
    /**
     * Runs `fn` while holding a permit of the limiter `name` (`[limiters.NAME]`): waits up to
     * `options.wait` seconds in all for one (long polls of at most `maxWait` each; 0, the
     * default, takes one only if free now), heartbeats it every `heartbeatIntervalMs` (a third
     * of the lease) while `fn` runs, and releases it when `fn` settles, also when it throws.
     *
     * `fn` gets `{ signal, permit }`; `signal` aborts when the permit is lost (reason: a
     * `FloodgateError` `PERMIT_LOST`) or `options.signal` aborts. Rejects with `fn`'s error when
     * it throws; with `PERMIT_LOST` when `fn` returned but the permit was lost meanwhile; before
     * `fn` runs, with `QUEUE_FULL` or `ACQUIRE_TIMEOUT` (429), `LIMITER_UNAVAILABLE` (503) or
     * `NOT_FOUND` (no such limiter). Aborting `options.signal` while waiting aborts the request:
     * the server drops the wait and no permit is left behind.
     */
    withPermit<T>(name: string, fn: (context: PermitContext) => Promise<T> | T, options?: PermitOptions): Promise<T>;
    /**
     * One permit request (`POST /v1/limiters/{name}/permits`), waiting up to `options.wait`
     * seconds (at most the limiter's `max_wait`). Not retried (a repeat could take a second
     * permit). Heartbeat the permit within its `lease_ttl` and release it; or use
     * {@link withPermit}.
     */
    acquirePermit(name: string, options?: AcquireOptions): Promise<PermitGranted>;
    /**
     * Extends a permit's lease by its own `lease_ttl` (or `leaseTtl` seconds) from now
     * (`POST /v1/permits/{id}/heartbeat`); 409 `PERMIT_LOST` once its lease ran out.
     */
    heartbeatPermit(permitId: string, options?: CallOptions & {
        leaseTtl?: number;
    }): Promise<PermitLease>;
    /**
     * Releases a permit (`DELETE /v1/permits/{id}`; again: still a success); 409 `PERMIT_LOST`
     * when its lease ran out first (its slot was taken back already).
     */
    releasePermit(permitId: string, options?: CallOptions): Promise<void>;
    /** Every configured limiter with its live counts (`GET /v1/limiters`). */
    listLimiters(options?: CallOptions): Promise<LimiterView[]>;
    /** Changes a limiter's limit at run time (`PUT /v1/limiters/{name}`); shrinking revokes no permit. */
    setLimit(name: string, maxConcurrency: number, options?: CallOptions): Promise<LimiterView>;
    /**
     * Takes `cost` (default 1) from `key`'s allowance under the rate limit `name`
     * (`POST /v1/rate-limits/{name}/check`). A refusal (429 `RATE_LIMITED`) is not thrown: it
     * resolves `allowed: false` with `retryAfter` (seconds, from `Retry-After`). Fields the body
     * lacks are read from the `RateLimit` header. Rejects with `RATE_LIMIT_UNAVAILABLE` (503)
     * when Redis cannot answer under a closed policy. Not retried (a repeat takes again).
     */
    rateCheck(name: string, key: string, options?: RateCheckOptions): Promise<RateDecision>;
    /** Every configured rate limit with its counts (`GET /v1/rate-limits`). */
    listRateLimits(options?: CallOptions): Promise<RateLimitView[]>;
    /**
     * The breaker `name` (`[breakers.NAME]`): `call(fn, { classify?, signal? })` runs `fn`
     * through it (admitted, timed, reported) and `reset()` closes it. See {@link Breaker}.
     */
    breaker(name: string, options?: BreakerOptions): Breaker;
    /**
     * Admits one call through the breaker `name` (`POST /v1/breakers/{name}/calls`); 503
     * `BREAKER_OPEN` with `retryAfter` while open. Not retried (each admission is a call the
     * server waits a report for). Report it with {@link reportCall} by `report_by`.
     */
    admitCall(name: string, options?: CallOptions): Promise<CallAdmitted>;
    /**
     * Reports an admitted call's outcome (`POST /v1/breakers/{name}/calls/{call_id}`); 409
     * `CALL_EXPIRED` when reported already or past its deadline (then it counted failed).
     */
    reportCall(name: string, callId: string, report: CallReport, options?: CallOptions): Promise<BreakerState>;
    /** Closes the breaker `name` and forgets its window (`POST /v1/breakers/{name}/reset`). */
    resetBreaker(name: string, options?: CallOptions): Promise<BreakerState>;
    /** Every configured breaker with its live state (`GET /v1/breakers`). */
    listBreakers(options?: CallOptions): Promise<BreakerView[]>;
    /**
     * Runs `fn` behind each guard `options` names, in this order: a rate check (`rateLimit`; a
     * refusal rejects with a `FloodgateError` `RATE_LIMITED`, status 429, `retryAfter` seconds,
     * and nothing else happens), a permit (`permit`, as {@link withPermit}) held while the rest
     * runs, and a call through a breaker (`breaker`, as {@link Breaker.call}). `fn` gets
     * `{ signal, rate, permit, call }`.
     */
    guarded<T>(fn: (context: GuardContext) => Promise<T> | T, options?: GuardOptions): Promise<T>;
}
