/**
 * `Floodgate`: the client of a floodgate server. Producers enqueue and follow jobs; workers
 * use `work()` (or the lease-fenced calls below it: claim, heartbeat, complete, fail, snooze).
 *
 * @module
 */
import { type RetryPolicy } from "./retry.js";
import { type Accepted, type ClaimedJob, type CompleteItem, type CompletedMany, type HeartbeatMany, type HeartbeatResponse, type Job, type JobPage, type LeaseRef, type ListAllFilters, type ListFilters, type NewBatchJob, type NewJob, type Reported } from "./types.js";
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
}
