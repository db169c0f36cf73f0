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
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { FloodgateError } from "./errors.js";
import { cancelReason, hold, returned, threw, stoppedReason } from "./held.js";
import { Heartbeats } from "./heartbeats.js";
import { Reporter } from "./reporter.js";
import { backoffMs, sleep } from "./retry.js";
/** Handlers aborted at shutdown get this long to settle before their jobs are released anyway. */
const ABORT_GRACE_MS = 1_000;
/** Completions queued past this make the claim loop wait for the server to catch up. */
const MAX_BACKLOG = 2_000;
/** A running worker; `client.work()` makes one. */
export class Worker {
    /** The worker's name (the lease owner of its jobs). */
    name;
    /** Resolves with the final stats once the worker has stopped and reported everything. */
    closed;
    #client;
    #queue;
    #handlers;
    #kinds;
    #concurrency;
    #leaseTtl;
    #wait;
    #shutdownTimeoutMs;
    #onError;
    #held = new Map();
    #stats = { claimed: 0, succeeded: 0, failed: 0, cancelled: 0, snoozed: 0, released: 0, lost: 0, errors: 0 };
    #claimAbort = new AbortController();
    #heartbeats;
    #reporter;
    #waiters = [];
    #stopping = false;
    #forced = false;
    /** Starts working at once; use `client.work()`. */
    constructor(client, options) {
        this.#client = client;
        this.#queue = options.queue ?? "default";
        this.#handlers = { ...options.handlers };
        this.#kinds = [...(options.kinds ?? Object.keys(this.#handlers))];
        this.#concurrency = options.concurrency ?? 10;
        this.#leaseTtl = options.leaseTtl ?? 30;
        this.#wait = options.wait ?? 20;
        this.#shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000;
        this.name = options.name ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`.slice(0, 255);
        validate(this.#kinds, this.#handlers, this.#concurrency, this.#leaseTtl, this.#wait, this.#shutdownTimeoutMs, this.#queue, this.name);
        const onError = options.onError ?? ((error, context) => console.warn(`floodgate worker ${this.name}: ${context.during}${context.jobId === undefined ? "" : ` (job ${context.jobId})`} failed: ${String(error)}`));
        // A throwing callback must not break the worker's loops.
        this.#onError = (error, context) => {
            try {
                onError(error, context);
            }
            catch {
                // ignored: the callback's own failure has nowhere better to go
            }
        };
        const intervalMs = options.heartbeatIntervalMs ?? (this.#leaseTtl * 1000) / 3;
        if (!(intervalMs > 0 && intervalMs < this.#leaseTtl * 1000)) {
            throw new RangeError(`work(): heartbeatIntervalMs must be > 0 and shorter than the lease (${this.#leaseTtl} s), not ${intervalMs}`);
        }
        this.#heartbeats = new Heartbeats({
            client,
            name: this.name,
            leaseTtl: this.#leaseTtl,
            running: () => this.#held.values(),
            cancelRequested: (held) => {
                if (!held.controller.signal.aborted)
                    held.controller.abort(cancelReason(held.job.id));
            },
            leaseLost: (held) => this.#reporter.lost(held),
            failed: (error) => this.#onError(error, { during: "heartbeat" }),
        }, intervalMs);
        this.#reporter = new Reporter(client, this.#stats, (error, context) => this.#onError(error, context), () => this.#notify());
        this.closed = this.#run(options);
    }
    /** A snapshot of the counters. */
    get stats() {
        return { ...this.#stats, running: this.#held.size };
    }
    /** Stops gracefully (see {@link WorkOptions.shutdownTimeoutMs}); resolves as `closed` does. */
    stop() {
        this.#beginStop();
        return this.closed;
    }
    async #run(options) {
        const onSignal = () => (this.#stopping ? this.#force() : this.#beginStop());
        const onAbort = () => this.#beginStop();
        const handleSignals = options.handleSignals ?? true;
        if (handleSignals) {
            process.on("SIGTERM", onSignal);
            process.on("SIGINT", onSignal);
        }
        options.signal?.addEventListener("abort", onAbort, { once: true });
        if (options.signal?.aborted)
            this.#beginStop();
        this.#heartbeats.start();
        try {
            await this.#claimLoop();
            await this.#shutdown();
        }
        catch (error) {
            this.#onError(error, { during: "claim" });
        }
        finally {
            await this.#heartbeats.stop();
            await this.#reporter.settled();
            if (handleSignals) {
                process.off("SIGTERM", onSignal);
                process.off("SIGINT", onSignal);
            }
            options.signal?.removeEventListener("abort", onAbort);
        }
        return this.stats;
    }
    #beginStop() {
        if (this.#stopping)
            return;
        this.#stopping = true;
        this.#claimAbort.abort(stoppedReason());
        this.#notify();
    }
    #force() {
        this.#forced = true;
        this.#notify();
    }
    /** Wakes whoever waits for a slot, a stop or a report. */
    #notify() {
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const w of waiters)
            w();
    }
    #changed() {
        return new Promise((resolve) => this.#waiters.push(resolve));
    }
    async #claimLoop() {
        let failures = 0;
        while (!this.#stopping) {
            const free = this.#concurrency - this.#held.size;
            if (free <= 0 || this.#reporter.backlog >= MAX_BACKLOG) {
                await this.#changed();
                // Handlers settling in this same turn free their slots too: claim for all of them.
                await new Promise((resolve) => setImmediate(resolve));
                continue;
            }
            let claimed;
            try {
                claimed = await this.#client.claim(this.#queue, {
                    worker: this.name,
                    limit: Math.min(free, 1_000),
                    wait: this.#wait,
                    kinds: this.#kinds,
                    leaseTtl: this.#leaseTtl,
                    signal: this.#claimAbort.signal,
                });
                failures = 0;
            }
            catch (error) {
                if (this.#stopping)
                    return;
                this.#onError(error, { during: "claim" });
                const retryAfter = error instanceof FloodgateError ? error.retryAfter : undefined;
                await this.#pause(retryAfter === undefined ? 100 + backoffMs(failures++, 200, 10_000) : retryAfter * 1000);
                continue;
            }
            for (const job of claimed.jobs)
                this.#start(job);
            if (claimed.jobs.length === 0 && claimed.retryAfter !== undefined)
                await this.#pause(claimed.retryAfter * 1000);
        }
    }
    /** Sleeps `ms` unless the worker stops first. */
    async #pause(ms) {
        await sleep(ms, this.#claimAbort.signal).catch(() => { });
    }
    #start(job) {
        const held = hold(job);
        this.#held.set(job.id, held);
        this.#stats.claimed++;
        void this.#execute(held);
    }
    async #execute(held) {
        const { job } = held;
        let outcome;
        try {
            const handler = this.#handlers[job.kind];
            if (handler === undefined)
                throw new Error(`no handler for kind ${JSON.stringify(job.kind)} in worker ${this.name}`);
            outcome = returned(await handler(job, this.#context(held)));
        }
        catch (error) {
            outcome = threw(error);
        }
        held.phase = "reporting";
        if (this.#held.get(job.id) === held)
            this.#held.delete(job.id);
        this.#notify();
        if (held.abandoned)
            return;
        if (held.releasing && outcome.type !== "complete") {
            this.#reporter.release(held);
            return;
        }
        this.#reporter.report(held, outcome);
    }
    #context(held) {
        const { job, controller } = held;
        return {
            signal: controller.signal,
            worker: this.name,
            heartbeat: async () => {
                if (!controller.signal.aborted && held.phase === "running") {
                    try {
                        const answer = await this.#client.heartbeat(job.id, job.lease_token, { leaseTtl: this.#leaseTtl, worker: this.name });
                        if (answer.cancel_requested && !controller.signal.aborted)
                            controller.abort(cancelReason(job.id));
                    }
                    catch (error) {
                        if (error instanceof FloodgateError && error.code === "LEASE_LOST")
                            this.#reporter.lost(held);
                        else
                            throw error;
                    }
                }
                if (controller.signal.aborted)
                    throw controller.signal.reason;
            },
        };
    }
    /** Lets handlers finish within the timeout, then aborts and releases the rest. */
    async #shutdown() {
        await this.#waitForHandlers(this.#shutdownTimeoutMs);
        if (this.#held.size > 0) {
            for (const held of this.#held.values()) {
                held.releasing = true;
                if (!held.controller.signal.aborted)
                    held.controller.abort(stoppedReason(held.job.id));
            }
            await this.#waitForHandlers(Math.min(ABORT_GRACE_MS, this.#shutdownTimeoutMs));
            for (const held of [...this.#held.values()]) {
                this.#held.delete(held.job.id);
                // A lost job is not ours to release; the others are put back for another worker now.
                if (held.abandoned)
                    continue;
                held.abandoned = true;
                this.#reporter.release(held);
            }
        }
        await this.#reporter.settled();
    }
    /** Resolves when no handler runs, after `ms`, or at once on a forced stop. */
    async #waitForHandlers(ms) {
        const deadline = Date.now() + ms;
        while (this.#held.size > 0 && !this.#forced) {
            const left = deadline - Date.now();
            if (left <= 0)
                return;
            let timer;
            await Promise.race([this.#changed(), new Promise((resolve) => (timer = setTimeout(resolve, left)))]);
            clearTimeout(timer);
        }
    }
}
function validate(kinds, handlers, concurrency, leaseTtl, wait, shutdownTimeoutMs, queue, name) {
    if (kinds.length === 0)
        throw new TypeError("work(): give at least one handler");
    for (const kind of kinds) {
        if (typeof handlers[kind] !== "function")
            throw new TypeError(`work(): kind ${JSON.stringify(kind)} has no handler`);
    }
    if (!Number.isInteger(concurrency) || concurrency < 1)
        throw new RangeError(`work(): concurrency must be a whole number >= 1, not ${concurrency}`);
    if (!Number.isInteger(leaseTtl) || leaseTtl < 1 || leaseTtl > 3600)
        throw new RangeError(`work(): leaseTtl must be whole seconds in 1..=3600, not ${leaseTtl}`);
    if (!Number.isInteger(wait) || wait < 0 || wait > 30)
        throw new RangeError(`work(): wait must be whole seconds in 0..=30, not ${wait}`);
    if (!(shutdownTimeoutMs >= 0))
        throw new RangeError(`work(): shutdownTimeoutMs must be >= 0, not ${shutdownTimeoutMs}`);
    if (queue === "")
        throw new TypeError("work(): queue must not be empty");
    if (name === "")
        throw new TypeError("work(): name must not be empty");
}
