//! Counters, the latency histogram, the `metrics` handles and the [`ProcessorStats`] and
//! [`ShutdownReport`] snapshots.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::histogram::LogHistogram;

/// Counters and gauges of a [`Processor`](super::Processor).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessorStats {
    /// Messages waiting in the shared queue.
    pub queued: usize,
    /// The queue's capacity.
    pub capacity: usize,
    /// Messages each worker has processed (shows how evenly load spreads).
    pub per_worker: Vec<u64>,
    /// Messages processed.
    pub processed: u64,
    /// Of those, answered with an error (including panics and timeouts).
    pub failed: u64,
    /// Of those, handler panics.
    pub panicked: u64,
    /// Submissions refused (queue full or shutting down).
    pub rejected: u64,
    /// Median time from submission to the end of the handler.
    pub latency_p50: Duration,
    /// 99th percentile of the same.
    pub latency_p99: Duration,
}

/// What [`Processor::shutdown`](super::Processor::shutdown) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether queued and running messages all finished before the deadline.
    pub drained: bool,
    /// Messages cancelled at the deadline (still queued or running).
    pub cancelled: usize,
}

/// Lock-free counters behind [`ProcessorStats`], with the `metrics` handles they feed.
pub(crate) struct Counters {
    processed: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    rejected: AtomicU64,
    latency: LogHistogram,
    metrics: Metrics,
}

/// `floodgate_processor_*{processor="name"}` handles.
struct Metrics {
    processed: metrics::Counter,
    failed: metrics::Counter,
    panicked: metrics::Counter,
    rejected: metrics::Counter,
    queued: metrics::Gauge,
    latency: metrics::Histogram,
}

impl Counters {
    pub(crate) fn new(name: &str) -> Self {
        let l = || name.to_owned();
        Counters {
            processed: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            latency: LogHistogram::default(),
            metrics: Metrics {
                processed: metrics::counter!("floodgate_processor_processed_total", "processor" => l()),
                failed: metrics::counter!("floodgate_processor_failed_total", "processor" => l()),
                panicked: metrics::counter!("floodgate_processor_panicked_total", "processor" => l()),
                rejected: metrics::counter!("floodgate_processor_rejected_total", "processor" => l()),
                queued: metrics::gauge!("floodgate_processor_queued", "processor" => l()),
                latency: metrics::histogram!("floodgate_processor_latency_seconds", "processor" => l()),
            },
        }
    }

    /// A submission refused.
    pub(crate) fn count_rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
        self.metrics.rejected.increment(1);
    }

    /// A handler panic.
    pub(crate) fn count_panicked(&self) {
        self.panicked.fetch_add(1, Relaxed);
        self.metrics.panicked.increment(1);
    }

    /// A message processed `latency` after it was submitted, with `queued` messages left.
    pub(crate) fn count_processed(&self, latency: Duration, queued: usize) {
        self.processed.fetch_add(1, Relaxed);
        self.latency.record(latency);
        self.metrics.processed.increment(1);
        self.metrics.latency.record(latency.as_secs_f64());
        self.metrics.queued.set(queued as f64);
    }

    /// A message answered with an error.
    pub(crate) fn count_failed(&self) {
        self.failed.fetch_add(1, Relaxed);
        self.metrics.failed.increment(1);
    }

    /// A snapshot, with the queue and per-worker figures the engine knows.
    pub(crate) fn snapshot(
        &self,
        queued: usize,
        capacity: usize,
        per_worker: Vec<u64>,
    ) -> ProcessorStats {
        ProcessorStats {
            queued,
            capacity,
            per_worker,
            processed: self.processed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            panicked: self.panicked.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            latency_p50: self.latency.quantile(0.5, 0).unwrap_or_default(),
            latency_p99: self.latency.quantile(0.99, 0).unwrap_or_default(),
        }
    }
}
