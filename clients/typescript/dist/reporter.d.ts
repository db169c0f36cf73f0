/**
 * Reports a worker's outcomes to the server: successes through the batched completion route,
 * failures and snoozes one by one, releases at shutdown (a snooze of 0 s: pending again at
 * once, the attempt not spent). A report answered `LEASE_LOST` marks the job lost: its
 * handler's signal aborts and nothing more is sent for it.
 *
 * @module
 */
import type { Floodgate } from "./client.js";
import { type Held, type Outcome } from "./held.js";
import type { WorkerErrorContext, WorkerStats } from "./worker.js";
/** Sends a worker's reports and counts what became of them. */
export declare class Reporter {
    #private;
    /** A reporter updating `stats`, telling `onError` of failures and `onProgress` of each batch. */
    constructor(client: Floodgate, stats: Omit<WorkerStats, "running">, onError: (error: unknown, context: WorkerErrorContext) => void, onProgress: () => void);
    /** Successes queued or in flight. */
    get backlog(): number;
    /** Reports a settled handler's outcome. */
    report(held: Held, outcome: Outcome): void;
    /** Puts a held job back for another worker now, its attempt not spent. */
    release(held: Held): void;
    /** Marks a job lost: counted once, its signal aborted, nothing more reported. */
    lost(held: Held): void;
    /** Resolves once every report made so far has been answered (or has failed). */
    settled(): Promise<void>;
}
