/**
 * A job a worker holds while its handler runs, the abort reasons its signal may carry, and
 * what a handler's ending means for the report.
 *
 * @module
 */
import { FloodgateError } from "./errors.js";
import type { ClaimedJob } from "./types.js";
/** A claimed job whose handler runs (or ran) in this worker. */
export interface Held {
    /** The job as claimed. */
    readonly job: ClaimedJob;
    /** Aborts the handler's signal. */
    readonly controller: AbortController;
    /** `running` until the handler settles. */
    phase: "running" | "reporting";
    /** Lost, or released at shutdown: whatever the handler ends with is not reported. */
    abandoned: boolean;
    /** Shutdown aborted the handler: a success is still reported, anything else releases the job. */
    releasing: boolean;
}
/** What to tell the server once a handler has settled. */
export type Outcome = {
    type: "complete";
    result: unknown;
} | {
    type: "fail";
    error: string;
    permanent: boolean;
    retryIn: number | undefined;
} | {
    type: "snooze";
    seconds: number;
};
/** A new held job. */
export declare function hold(job: ClaimedJob): Held;
/** The outcome of a handler that returned `value`. */
export declare function returned(value: unknown): Outcome;
/** The outcome of a handler that threw `error`. */
export declare function threw(error: unknown): Outcome;
/** An error as the job's `last_error`: `Name: message` (plain `Error`s by message alone). */
export declare function describeError(error: unknown): string;
/** The reason a handler's signal aborts when the server asks for the job's cancellation. */
export declare function cancelReason(id: number): FloodgateError;
/** The reason a handler's signal aborts when the job's lease is lost. */
export declare function lostReason(id: number): FloodgateError;
/**
 * The reason a handler's signal aborts when the worker stops before the handler ended (and the
 * reason its claim in flight is aborted, without a job).
 */
export declare function stoppedReason(id?: number): FloodgateError;
