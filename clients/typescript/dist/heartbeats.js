/**
 * The heartbeat loop: one timer for the whole worker, one request per interval
 * (`POST /v1/jobs/heartbeat`) extending the lease of every job whose handler runs, however
 * many. Its answer aborts the handlers of jobs whose cancellation was asked for, and of jobs
 * whose lease was lost.
 *
 * @module
 */
import { MAX_BATCH } from "./completions.js";
/** Extends the leases of a worker's running jobs every `intervalMs`. */
export class Heartbeats {
    #host;
    #intervalMs;
    #abort = new AbortController();
    #timer;
    #beat = Promise.resolve();
    #stopped = false;
    /** A loop for `host`, not started. */
    constructor(host, intervalMs) {
        this.#host = host;
        this.#intervalMs = intervalMs;
    }
    /** Starts the timer. */
    start() {
        this.#schedule();
    }
    /** Stops the timer and aborts a heartbeat in flight; resolves once it has settled. */
    async stop() {
        this.#stopped = true;
        clearTimeout(this.#timer);
        this.#abort.abort();
        await this.#beat;
    }
    #schedule() {
        if (this.#stopped)
            return;
        this.#timer = setTimeout(() => {
            this.#beat = this.#tick().finally(() => this.#schedule());
        }, this.#intervalMs);
    }
    async #tick() {
        const running = [...this.#host.running()].filter((h) => h.phase === "running" && !h.abandoned);
        for (let i = 0; i < running.length && !this.#stopped; i += MAX_BATCH) {
            const chunk = running.slice(i, i + MAX_BATCH);
            const byId = new Map(chunk.map((h) => [h.job.id, h]));
            try {
                const answer = await this.#host.client.heartbeatMany(this.#host.name, chunk.map((h) => ({ id: h.job.id, lease_token: h.job.lease_token })), { leaseTtl: this.#host.leaseTtl, signal: this.#abort.signal });
                for (const id of answer.cancel_requested) {
                    const held = byId.get(id);
                    if (held !== undefined)
                        this.#host.cancelRequested(held);
                }
                for (const id of answer.lease_lost) {
                    const held = byId.get(id);
                    // A job whose handler ended meanwhile may have been completed by now: its report's
                    // answer, not this one, says what became of it.
                    if (held !== undefined && held.phase === "running")
                        this.#host.leaseLost(held);
                }
            }
            catch (error) {
                if (!this.#stopped)
                    this.#host.failed(error);
            }
        }
    }
}
