//! Processor throughput at 1, 2 and 4 workers: the library with a no-op handler, and the two
//! dispatch designs stripped to the dispatch — one shared bounded queue (what the library
//! uses) and per-worker bounded queues with least-loaded dispatch — with no-op messages and
//! with one slow message in 16.
//!
//! `cargo bench -p floodgate --bench processor`

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use floodgate::processor::{Processor, Request};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

const MESSAGES: u64 = 2_000;

/// The library's design stripped to the dispatch: one shared bounded MPMC queue.
struct Shared {
    tx: async_channel::Sender<(u64, oneshot::Sender<u64>)>,
}

impl Shared {
    fn start(workers: usize, capacity: usize, slow_every: u64) -> Arc<Self> {
        let (tx, rx) = async_channel::bounded::<(u64, oneshot::Sender<u64>)>(capacity);
        for _ in 0..workers {
            let rx = rx.clone();
            tokio::spawn(async move {
                while let Ok((n, reply)) = rx.recv().await {
                    work(n, slow_every).await;
                    let _ = reply.send(n);
                }
            });
        }
        Arc::new(Shared { tx })
    }

    async fn submit(&self, n: u64) -> u64 {
        let (tx, rx) = oneshot::channel();
        self.tx.send((n, tx)).await.unwrap();
        rx.await.unwrap()
    }
}

/// One in `slow_every` messages takes 1 ms (0: none do).
async fn work(n: u64, slow_every: u64) {
    if slow_every > 0 && n.is_multiple_of(slow_every) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Per-worker queues stripped to the dispatch, with the same work.
struct PerWorkerBare {
    queues: Vec<mpsc::Sender<(u64, oneshot::Sender<u64>)>>,
    capacity: usize,
}

impl PerWorkerBare {
    fn start(workers: usize, capacity: usize, slow_every: u64) -> Arc<Self> {
        let per = capacity.div_ceil(workers);
        let queues = (0..workers)
            .map(|_| {
                let (tx, mut rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(per);
                tokio::spawn(async move {
                    while let Some((n, reply)) = rx.recv().await {
                        work(n, slow_every).await;
                        let _ = reply.send(n);
                    }
                });
                tx
            })
            .collect();
        Arc::new(PerWorkerBare {
            queues,
            capacity: per,
        })
    }

    async fn submit(&self, n: u64) -> u64 {
        let (tx, rx) = oneshot::channel();
        let q = self
            .queues
            .iter()
            .min_by_key(|q| self.capacity - q.capacity())
            .expect("at least one worker");
        q.send((n, tx)).await.unwrap();
        rx.await.unwrap()
    }
}

/// Dispatch alone (no JSON, no handler table): shared queue against per-worker queues, with
/// no-op messages and with one slow message in 16.
fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (label, slow_every) in [("noop", 0u64), ("one_in_16_takes_1ms", 16)] {
        let mut g = c.benchmark_group(format!("processor/dispatch_{label}"));
        g.throughput(Throughput::Elements(MESSAGES));
        g.measurement_time(Duration::from_secs(3));
        for workers in [1usize, 2, 4] {
            let shared = rt.block_on(async { Shared::start(workers, 1_024, slow_every) });
            g.bench_function(format!("shared_queue/{workers}_workers"), |b| {
                b.iter_custom(|iters| {
                    run(&rt, iters, |n| {
                        let s = shared.clone();
                        async move { s.submit(n).await }
                    })
                })
            });
            let per = rt.block_on(async { PerWorkerBare::start(workers, 1_024, slow_every) });
            g.bench_function(format!("per_worker_queues/{workers}_workers"), |b| {
                b.iter_custom(|iters| {
                    run(&rt, iters, |n| {
                        let p = per.clone();
                        async move { p.submit(n).await }
                    })
                })
            });
        }
        g.finish();
    }
}

/// Submits `MESSAGES` messages concurrently `iters` times; the total time.
fn run<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, submit: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let pending: Vec<_> = (0..MESSAGES).map(|n| tokio::spawn(submit(n))).collect();
            for t in pending {
                t.await.unwrap();
            }
        }
        start.elapsed()
    })
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("processor/library_noop_requests");
    g.throughput(Throughput::Elements(MESSAGES));
    g.measurement_time(Duration::from_secs(3));
    for workers in [1usize, 2, 4] {
        let processor = rt.block_on(async {
            let p = Processor::builder()
                .workers(workers)
                .queue_capacity(1_024)
                .build()
                .unwrap();
            p.register("noop", |params| async move { Ok(params) });
            p
        });
        g.bench_function(format!("library/{workers}_workers"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let pending: Vec<_> = (0..MESSAGES)
                            .map(|i| {
                                let p = processor.clone();
                                tokio::spawn(async move {
                                    p.submit(Request {
                                        id: json!(i),
                                        method: "noop".into(),
                                        params: Value::Null,
                                    })
                                    .await
                                    .unwrap()
                                })
                            })
                            .collect();
                        for t in pending {
                            t.await.unwrap();
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, throughput, dispatch);
criterion_main!(benches);
