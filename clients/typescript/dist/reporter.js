/**
 * Reports a worker's outcomes to the server: successes through the batched completion route,
 * failures and snoozes one by one, releases at shutdown (a snooze of 0 s: pending again at
 * once, the attempt not spent). A report answered `LEASE_LOST` marks the job lost: its
 * handler's signal aborts and nothing more is sent for it.
 *
 * @module
 */
import { Batcher } from "./completions.js";
import { FloodgateError, isFloodgateError } from "./errors.js";
import { describeError, lostReason } from "./held.js";
/** Sends a worker's reports and counts what became of them. */
export class Reporter {
    #client;
    #stats;
    #onError;
    #batcher;
    #pending = new Set();
    /** A reporter updating `stats`, telling `onError` of failures and `onProgress` of each batch. */
    constructor(client, stats, onError, onProgress) {
        this.#client = client;
        this.#stats = stats;
        this.#onError = onError;
        this.#batcher = new Batcher((items) => this.#completeMany(items), onProgress);
    }
    /** Successes queued or in flight. */
    get backlog() {
        return this.#batcher.backlog;
    }
    /** Reports a settled handler's outcome. */
    report(held, outcome) {
        switch (outcome.type) {
            case "complete":
                this.#batcher.add({ held, result: outcome.result });
                return;
            case "fail":
                this.#track(this.#fail(held, outcome.error, outcome.permanent, outcome.retryIn));
                return;
            case "snooze":
                this.#track(this.#snooze(held, outcome.seconds, "report"));
                return;
        }
    }
    /** Puts a held job back for another worker now, its attempt not spent. */
    release(held) {
        this.#track(this.#snooze(held, 0, "release"));
    }
    /** Marks a job lost: counted once, its signal aborted, nothing more reported. */
    lost(held) {
        if (held.abandoned)
            return;
        held.abandoned = true;
        this.#stats.lost++;
        if (!held.controller.signal.aborted)
            held.controller.abort(lostReason(held.job.id));
    }
    /** Resolves once every report made so far has been answered (or has failed). */
    async settled() {
        while (this.#pending.size > 0 || this.#batcher.backlog > 0) {
            await Promise.all([...this.#pending]);
            await this.#batcher.idle();
        }
    }
    #track(report) {
        this.#pending.add(report);
        void report.finally(() => this.#pending.delete(report));
    }
    async #completeMany(items) {
        try {
            const answer = await this.#client.completeMany(items.map(({ held, result }) => ({ id: held.job.id, lease_token: held.job.lease_token, result })));
            this.#stats.succeeded += answer.succeeded.length;
            const byId = new Map(items.map((s) => [s.held.job.id, s.held]));
            for (const id of answer.lease_lost) {
                const held = byId.get(id);
                if (held !== undefined)
                    this.lost(held);
            }
        }
        catch (error) {
            if (isRequestFault(error)) {
                // One result the server refuses (too large, say) refuses the batch: send each alone,
                // so that only its own job fails.
                await Promise.all(items.map((s) => this.#completeOne(s)));
            }
            else {
                this.#failed(items.length, error, { during: "report" });
            }
        }
    }
    async #completeOne({ held, result }) {
        try {
            await this.#client.complete(held.job.id, held.job.lease_token, result);
            this.#stats.succeeded++;
        }
        catch (error) {
            if (isFloodgateError(error, "LEASE_LOST"))
                this.lost(held);
            else if (isRequestFault(error)) {
                const why = error instanceof FloodgateError ? error.detail : describeError(error);
                await this.#fail(held, `the handler's result could not be recorded: ${why}`, false, undefined);
            }
            else
                this.#failed(1, error, { during: "report", jobId: held.job.id });
        }
    }
    async #fail(held, error, permanent, retryIn) {
        try {
            const answer = await this.#client.fail(held.job.id, held.job.lease_token, { error, permanent, ...(retryIn === undefined ? {} : { retryIn }) });
            if (answer.state === "cancelled")
                this.#stats.cancelled++;
            else
                this.#stats.failed++;
        }
        catch (e) {
            if (isFloodgateError(e, "LEASE_LOST"))
                this.lost(held);
            else
                this.#failed(1, e, { during: "report", jobId: held.job.id });
        }
    }
    async #snooze(held, seconds, during) {
        try {
            const answer = await this.#client.snooze(held.job.id, held.job.lease_token, seconds);
            if (answer.state === "cancelled")
                this.#stats.cancelled++;
            else if (during === "release")
                this.#stats.released++;
            else
                this.#stats.snoozed++;
        }
        catch (e) {
            if (isFloodgateError(e, "LEASE_LOST"))
                this.lost(held);
            else
                this.#failed(1, e, { during, jobId: held.job.id });
        }
    }
    #failed(count, error, context) {
        this.#stats.errors += count;
        this.#onError(error, context);
    }
}
/**
 * Whether a report failed because of what it carried (the server refused it with a 4xx other
 * than a lost lease, or it could not even be encoded): sending it again unchanged is useless.
 */
function isRequestFault(error) {
    if (!(error instanceof FloodgateError))
        return true;
    return error.status >= 400 && error.status < 500 && error.code !== "LEASE_LOST" && !error.transient;
}
