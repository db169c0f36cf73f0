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
export const MAX_BATCH = 1_000;
/** Gathers items and sends them in batches, one request in flight at a time. */
export class Batcher {
    #send;
    #onProgress;
    #queue = [];
    #inFlight = 0;
    #scheduled = false;
    #idle = [];
    /** A batcher calling `send` per batch and `onProgress` after each. */
    constructor(send, onProgress) {
        this.#send = send;
        this.#onProgress = onProgress;
    }
    /** Items queued or in flight. */
    get backlog() {
        return this.#queue.length + this.#inFlight;
    }
    /** Queues an item; it is sent at the end of this turn, or when the request in flight returns. */
    add(item) {
        this.#queue.push(item);
        if (this.#inFlight === 0 && !this.#scheduled) {
            this.#scheduled = true;
            setImmediate(() => {
                this.#scheduled = false;
                void this.#flush();
            });
        }
    }
    /** Resolves once nothing is queued or in flight. */
    idle() {
        if (this.backlog === 0 && !this.#scheduled)
            return Promise.resolve();
        return new Promise((resolve) => this.#idle.push(resolve));
    }
    async #flush() {
        while (this.#inFlight === 0 && this.#queue.length > 0) {
            const batch = this.#queue.splice(0, MAX_BATCH);
            this.#inFlight = batch.length;
            try {
                await this.#send(batch);
            }
            catch {
                // `send` reports its own failures; nothing is left to do for this batch here.
            }
            finally {
                this.#inFlight = 0;
                this.#onProgress();
            }
        }
        if (this.backlog === 0 && !this.#scheduled) {
            const waiters = this.#idle;
            this.#idle = [];
            for (const w of waiters)
                w();
        }
    }
}
