/**
 * Batched completions: successes are queued and sent together (`POST /v1/jobs/complete`, up to
 * 1,000 per request), one request at a time. The first success waits for the current turn of
 * the event loop to end (so the handlers finishing together share a request); while a request
 * is in flight the next ones gather and go as soon as it returns. This is what lets a worker
 * finish thousands of jobs a second with one or two requests in flight.
 *
 * @module
 */
/** The most jobs one completion request names (the server's limit). */
export declare const MAX_BATCH = 1000;
/** Sends one batch; must not throw (it handles and reports its own failures). */
export type SendBatch<T> = (items: T[]) => Promise<void>;
/** Gathers items and sends them in batches, one request in flight at a time. */
export declare class Batcher<T> {
    #private;
    /** A batcher calling `send` per batch and `onProgress` after each. */
    constructor(send: SendBatch<T>, onProgress: () => void);
    /** Items queued or in flight. */
    get backlog(): number;
    /** Queues an item; it is sent at the end of this turn, or when the request in flight returns. */
    add(item: T): void;
    /** Resolves once nothing is queued or in flight. */
    idle(): Promise<void>;
}
