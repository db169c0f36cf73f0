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

import type { Floodgate } from "./client.js";
import { FloodgateError } from "./errors.js";
import { cancelReason, hold, returned, threw, stoppedReason, type Held, type Outcome } from "./held.js";
import { Heartbeats } from "./heartbeats.js";
import { Reporter } from "./reporter.js";
import { backoffMs, sleep } from "./retry.js";
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

/** Handlers aborted at shutdown get this long to settle before their jobs are released anyway. */
const ABORT_GRACE_MS = 1_000;

/** Completions queued past this make the claim loop wait for the server to catch up. */
const MAX_BACKLOG = 2_000;

/** A running worker; `client.work()` makes one. */
export class Worker {
  /** The worker's name (the lease owner of its jobs). */
  readonly name: string;
  /** Resolves with the final stats once the worker has stopped and reported everything. */
  readonly closed: Promise<WorkerStats>;

  readonly #client: Floodgate;
  readonly #queue: string;
  readonly #handlers: Record<string, Handler>;
  readonly #kinds: string[];
  readonly #concurrency: number;
  readonly #leaseTtl: number;
  readonly #wait: number;
  readonly #shutdownTimeoutMs: number;
  readonly #onError: (error: unknown, context: WorkerErrorContext) => void;
  readonly #held = new Map<number, Held>();
  readonly #stats: Omit<WorkerStats, "running"> = { claimed: 0, succeeded: 0, failed: 0, cancelled: 0, snoozed: 0, released: 0, lost: 0, errors: 0 };
  readonly #claimAbort = new AbortController();
  readonly #heartbeats: Heartbeats;
  readonly #reporter: Reporter;
  #waiters: (() => void)[] = [];
  #stopping = false;
  #forced = false;

  /** Starts working at once; use `client.work()`. */
  constructor(client: Floodgate, options: WorkOptions) {
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
      } catch {
        // ignored: the callback's own failure has nowhere better to go
      }
    };
    const intervalMs = options.heartbeatIntervalMs ?? (this.#leaseTtl * 1000) / 3;
    if (!(intervalMs > 0 && intervalMs < this.#leaseTtl * 1000)) {
      throw new RangeError(`work(): heartbeatIntervalMs must be > 0 and shorter than the lease (${this.#leaseTtl} s), not ${intervalMs}`);
    }
    this.#heartbeats = new Heartbeats(
      {
        client,
        name: this.name,
        leaseTtl: this.#leaseTtl,
        running: () => this.#held.values(),
        cancelRequested: (held) => {
          if (!held.controller.signal.aborted) held.controller.abort(cancelReason(held.job.id));
        },
        leaseLost: (held) => this.#reporter.lost(held),
        failed: (error) => this.#onError(error, { during: "heartbeat" }),
      },
      intervalMs,
    );
    this.#reporter = new Reporter(client, this.#stats, (error, context) => this.#onError(error, context), () => this.#notify());
    this.closed = this.#run(options);
  }

  /** A snapshot of the counters. */
  get stats(): WorkerStats {
    return { ...this.#stats, running: this.#held.size };
  }

  /** Stops gracefully (see {@link WorkOptions.shutdownTimeoutMs}); resolves as `closed` does. */
  stop(): Promise<WorkerStats> {
    this.#beginStop();
    return this.closed;
  }

  async #run(options: WorkOptions): Promise<WorkerStats> {
    const onSignal = () => (this.#stopping ? this.#force() : this.#beginStop());
    const onAbort = () => this.#beginStop();
    const handleSignals = options.handleSignals ?? true;
    if (handleSignals) {
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    }
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (options.signal?.aborted) this.#beginStop();
    this.#heartbeats.start();
    try {
      await this.#claimLoop();
      await this.#shutdown();
    } catch (error) {
      this.#onError(error, { during: "claim" });
    } finally {
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

  #beginStop(): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#claimAbort.abort(stoppedReason());
    this.#notify();
  }

  #force(): void {
    this.#forced = true;
    this.#notify();
  }

  /** Wakes whoever waits for a slot, a stop or a report. */
  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async #claimLoop(): Promise<void> {
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
      } catch (error) {
        if (this.#stopping) return;
        this.#onError(error, { during: "claim" });
        const retryAfter = error instanceof FloodgateError ? error.retryAfter : undefined;
        await this.#pause(retryAfter === undefined ? 100 + backoffMs(failures++, 200, 10_000) : retryAfter * 1000);
        continue;
      }
      for (const job of claimed.jobs) this.#start(job);
      if (claimed.jobs.length === 0 && claimed.retryAfter !== undefined) await this.#pause(claimed.retryAfter * 1000);
    }
  }

  /** Sleeps `ms` unless the worker stops first. */
  async #pause(ms: number): Promise<void> {
    await sleep(ms, this.#claimAbort.signal).catch(() => {});
  }

  #start(job: ClaimedJob): void {
    const held = hold(job);
    this.#held.set(job.id, held);
    this.#stats.claimed++;
    void this.#execute(held);
  }

  async #execute(held: Held): Promise<void> {
    const { job } = held;
    let outcome: Outcome;
    try {
      const handler = this.#handlers[job.kind];
      if (handler === undefined) throw new Error(`no handler for kind ${JSON.stringify(job.kind)} in worker ${this.name}`);
      outcome = returned(await handler(job, this.#context(held)));
    } catch (error) {
      outcome = threw(error);
    }
    held.phase = "reporting";
    if (this.#held.get(job.id) === held) this.#held.delete(job.id);
    this.#notify();
    if (held.abandoned) return;
    if (held.releasing && outcome.type !== "complete") {
      this.#reporter.release(held);
      return;
    }
    this.#reporter.report(held, outcome);
  }

  #context(held: Held): JobContext {
    const { job, controller } = held;
    return {
      signal: controller.signal,
      worker: this.name,
      heartbeat: async () => {
        if (!controller.signal.aborted && held.phase === "running") {
          try {
            const answer = await this.#client.heartbeat(job.id, job.lease_token, { leaseTtl: this.#leaseTtl, worker: this.name });
            if (answer.cancel_requested && !controller.signal.aborted) controller.abort(cancelReason(job.id));
          } catch (error) {
            if (error instanceof FloodgateError && error.code === "LEASE_LOST") this.#reporter.lost(held);
            else throw error;
          }
        }
        if (controller.signal.aborted) throw controller.signal.reason;
      },
    };
  }

  /** Lets handlers finish within the timeout, then aborts and releases the rest. */
  async #shutdown(): Promise<void> {
    await this.#waitForHandlers(this.#shutdownTimeoutMs);
    if (this.#held.size > 0) {
      for (const held of this.#held.values()) {
        held.releasing = true;
        if (!held.controller.signal.aborted) held.controller.abort(stoppedReason(held.job.id));
      }
      await this.#waitForHandlers(Math.min(ABORT_GRACE_MS, this.#shutdownTimeoutMs));
      for (const held of [...this.#held.values()]) {
        this.#held.delete(held.job.id);
        // A lost job is not ours to release; the others are put back for another worker now.
        if (held.abandoned) continue;
        held.abandoned = true;
        this.#reporter.release(held);
      }
    }
    await this.#reporter.settled();
  }

  /** Resolves when no handler runs, after `ms`, or at once on a forced stop. */
  async #waitForHandlers(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.#held.size > 0 && !this.#forced) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.#changed(), new Promise<void>((resolve) => (timer = setTimeout(resolve, left)))]);
      clearTimeout(timer);
    }
  }
}

function validate(
  kinds: string[],
  handlers: Record<string, Handler>,
  concurrency: number,
  leaseTtl: number,
  wait: number,
  shutdownTimeoutMs: number,
  queue: string,
  name: string,
): void {
  if (kinds.length === 0) throw new TypeError("work(): give at least one handler");
  for (const kind of kinds) {
    if (typeof handlers[kind] !== "function") throw new TypeError(`work(): kind ${JSON.stringify(kind)} has no handler`);
  }
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`work(): concurrency must be a whole number >= 1, not ${concurrency}`);
  if (!Number.isInteger(leaseTtl) || leaseTtl < 1 || leaseTtl > 3600) throw new RangeError(`work(): leaseTtl must be whole seconds in 1..=3600, not ${leaseTtl}`);
  if (!Number.isInteger(wait) || wait < 0 || wait > 30) throw new RangeError(`work(): wait must be whole seconds in 0..=30, not ${wait}`);
  if (!(shutdownTimeoutMs >= 0)) throw new RangeError(`work(): shutdownTimeoutMs must be >= 0, not ${shutdownTimeoutMs}`);
  if (queue === "") throw new TypeError("work(): queue must not be empty");
  if (name === "") throw new TypeError("work(): name must not be empty");
}
