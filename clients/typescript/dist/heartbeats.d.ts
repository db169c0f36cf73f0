/**
 * The heartbeat loop: one timer for the whole worker, one request per interval
 * (`POST /v1/jobs/heartbeat`) extending the lease of every job whose handler runs, however
 * many. Its answer aborts the handlers of jobs whose cancellation was asked for, and of jobs
 * whose lease was lost.
 *
 * @module
 */
import type { Floodgate } from "./client.js";
import type { Held } from "./held.js";
/** What the loop needs from its worker. */
export interface HeartbeatHost {
    /** The client. */
    readonly client: Floodgate;
    /** The worker's name (the lease owner). */
    readonly name: string;
    /** The lease length each heartbeat asks for, in seconds. */
    readonly leaseTtl: number;
    /** The jobs whose handlers run now. */
    running(): Iterable<Held>;
    /** The server asked to cancel this job. */
    cancelRequested(held: Held): void;
    /** This job's lease is lost. */
    leaseLost(held: Held): void;
    /** A heartbeat request failed (the next interval tries again). */
    failed(error: unknown): void;
}
/** Extends the leases of a worker's running jobs every `intervalMs`. */
export declare class Heartbeats {
    #private;
    /** A loop for `host`, not started. */
    constructor(host: HeartbeatHost, intervalMs: number);
    /** Starts the timer. */
    start(): void;
    /** Stops the timer and aborts a heartbeat in flight; resolves once it has settled. */
    stop(): Promise<void>;
}
