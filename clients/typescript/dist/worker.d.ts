/**
 * The worker runtime: `client.work({ queue, handlers, concurrency })` claims jobs (long polls,
 * at most as many as it has free slots), runs each under its kind's handler, keeps their
 * leases alive (one batched heartbeat per interval), reports every outcome (successes batched),
 * and stops gracefully: on `stop()`, on its `signal`, or on SIGTERM/SIGINT it stops claiming,
 * lets running handlers finish for `shutdownTimeoutMs`, then aborts the rest and releases their
 * jobs at once for another worker.
 *
 * @module
 */
import type { Floodgate } from "./client.js";
import type { ClaimedJob } from "./types.js";
/** What a handler gets besides its job. */
export interface JobContext {
    /**
     * Aborts when the job should stop: its cancellation was asked for (reason code
     * `CANCEL_REQUESTED`), its lease was lost (`LEASE_LOST`; nothing the handler does is reported
     * then), or the worker is stopping and its grace ran out (`WORKER_STOPPED`; the job is
     * released). Pass it on to `fetch` and the like.
     */
    signal: AbortSignal;
    /**
     * Extends this job's lease now (the worker also does so every interval); rejects with the
     * signal's reason when the job should stop.
     */
    heartbeat(): Promise<void>;
    /** The worker's name. */
    worker: string;
}
/**
 * Runs one job. Return the result (kept on the job) or `snooze(seconds)`; throw to fail the
 * attempt (`PermanentError`: no retry; `RetryError`: retry after a delay; `SnoozeError`: put
 * back without spending the attempt).
 */
export type Handler = (job: ClaimedJob, context: JobContext) => unknown;
/** Where a worker's background failure happened. */
export interface WorkerErrorContext {
    /** `claim`, `heartbeat`, `report` (complete, fail, snooze) or `release` (at shutdown). */
    during: "claim" | "heartbeat" | "report" | "release";
    /** The job concerned, if one. */
    jobId?: number;
}
/** Options of {@link Floodgate.work}. */
export interface WorkOptions {
    /** The queue to work (default `default`). */
    queue?: string;
    /** A handler per kind. */
    handlers: Record<string, Handler>;
    /** The kinds to claim (default: those with a handler); each needs a handler. */
    kinds?: readonly string[];
    /** Handlers running at once (default 10). */
    concurrency?: number;
    /** Lease length in seconds, 1..=3600 (default 30); heartbeats renew it. */
    leaseTtl?: number;
    /** Between heartbeats, in ms, shorter than the lease (default a third of the lease). */
    heartbeatIntervalMs?: number;
    /** Long poll of each claim in seconds, 0..=30 (default 20). */
    wait?: number;
    /** How long running handlers may take to finish once stopping, in ms (default 30,000). */
    shutdownTimeoutMs?: number;
    /** The worker's name, the lease owner (default `host-pid-random`). */
    name?: string;
    /** Aborting it stops the worker, as `stop()` does. */
    signal?: AbortSignal;
    /**
     * Stop gracefully on SIGTERM and SIGINT (a second signal skips the wait for handlers);
     * default true. The listeners are removed once stopped; the worker never exits the process.
     */
    handleSignals?: boolean;
    /** Told about background failures (default: a `console.warn` line). */
    onError?: (error: unknown, context: WorkerErrorContext) => void;
}
/** A worker's counters. */
export interface WorkerStats {
    /** Jobs claimed. */
    claimed: number;
    /** Jobs reported succeeded. */
    succeeded: number;
    /** Failed attempts reported (to retry, or dead). */
    failed: number;
    /** Jobs that ended cancelled after their cancellation was asked for. */
    cancelled: number;
    /** Jobs snoozed by their handler. */
    snoozed: number;
    /** Jobs put back at shutdown for another worker. */
    released: number;
    /** Jobs whose lease was lost (outcome not reported). */
    lost: number;
    /** Reports that could not be delivered (their leases run out and the jobs are retried). */
    errors: number;
    /** Handlers running now. */
    running: number;
}
/** A running worker; `client.work()` makes one. */
export declare class Worker {
    #private;
    /** The worker's name (the lease owner of its jobs). */
    readonly name: string;
    /** Resolves with the final stats once the worker has stopped and reported everything. */
    readonly closed: Promise<WorkerStats>;
    /** Starts working at once; use `client.work()`. */
    constructor(client: Floodgate, options: WorkOptions);
    /** A snapshot of the counters. */
    get stats(): WorkerStats;
    /** Stops gracefully (see {@link WorkOptions.shutdownTimeoutMs}); resolves as `closed` does. */
    stop(): Promise<WorkerStats>;
}
