//! The Limiter beside tokio's Semaphore, and LimiterLayer beside tower's ConcurrencyLimit.
//!
//! `cargo bench -p floodgate --bench limiter`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use floodgate::Limiter;
use floodgate::limiter::layer::LimiterLayer;
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt, service_fn};

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn uncontended(c: &mut Criterion) {
    let rt = current_thread();
    let mut g = c.benchmark_group("limiter/uncontended_acquire_release");
    let sem = Semaphore::new(4);
    g.bench_function("tokio_semaphore", |b| {
        b.to_async(&rt)
            .iter(|| async { drop(black_box(sem.acquire().await.unwrap())) })
    });
    let limiter = Limiter::builder()
        .max_concurrency(4)
        .aging(Duration::from_millis(10))
        .build()
        .unwrap();
    g.bench_function("floodgate_limiter", |b| {
        b.to_async(&rt)
            .iter(|| async { drop(black_box(limiter.acquire().await.unwrap())) })
    });
    g.finish();

    let mut g = c.benchmark_group("limiter/try_acquire_release");
    g.bench_function("tokio_semaphore", |b| {
        b.iter(|| drop(black_box(sem.try_acquire().unwrap())))
    });
    g.bench_function("floodgate_limiter", |b| {
        b.iter(|| drop(black_box(limiter.try_acquire().unwrap())))
    });
    g.finish();
}

/// Runs `TASKS` tasks made by `task(index, ops)` on `rt`, each doing `ops` acquire+release
/// pairs so that all of them together do at least `iters`; the time they take.
fn contended_run<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, task: F) -> Duration
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    const TASKS: usize = 8;
    let ops = (iters as usize).div_ceil(TASKS);
    rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS).map(|i| tokio::spawn(task(i, ops))).collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

/// 8 tasks on a 2-worker runtime, each acquiring and releasing (yielding while it holds the
/// permit); the time per acquire+release across all tasks.
fn contended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for limit in [1usize, 4] {
        let mut g = c.benchmark_group(format!("limiter/contended_8_tasks_limit_{limit}"));
        g.bench_function("tokio_semaphore", |b| {
            b.iter_custom(|iters| {
                let sem = Arc::new(Semaphore::new(limit));
                contended_run(&rt, iters, |_, ops| {
                    let sem = sem.clone();
                    async move {
                        for _ in 0..ops {
                            let p = sem.acquire().await.unwrap();
                            tokio::task::yield_now().await;
                            drop(p);
                        }
                    }
                })
            })
        });
        g.bench_function("floodgate_limiter", |b| {
            b.iter_custom(|iters| {
                let limiter = Limiter::builder()
                    .max_concurrency(limit)
                    .aging(Duration::from_millis(10))
                    .build()
                    .unwrap();
                contended_run(&rt, iters, |i, ops| {
                    let limiter = limiter.clone();
                    let priority = floodgate::Priority::new(1 + (i % 10) as u8).unwrap();
                    async move {
                        for _ in 0..ops {
                            let p = limiter.acquire_with(priority).await.unwrap();
                            tokio::task::yield_now().await;
                            drop(p);
                        }
                    }
                })
            })
        });
        g.finish();
    }
}

/// `ready().await` + `call().await` on a trivial inner service, `iters` times in one task.
fn drive<S>(rt: &tokio::runtime::Runtime, svc: &mut S, iters: u64) -> Duration
where
    S: Service<u64, Response = u64>,
    S::Error: std::fmt::Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            black_box(svc.ready().await.unwrap().call(i).await.unwrap());
        }
        start.elapsed()
    })
}

fn layer(c: &mut Criterion) {
    let rt = current_thread();
    let inner = service_fn(|x: u64| async move { Ok::<_, std::convert::Infallible>(x) });
    let mut g = c.benchmark_group("limiter/layer_ready_call");
    g.bench_function("tower_concurrency_limit", |b| {
        let mut svc = tower::limit::ConcurrencyLimitLayer::new(4).layer(inner);
        b.iter_custom(|iters| drive(&rt, &mut svc, iters))
    });
    g.bench_function("floodgate_limiter_layer", |b| {
        let mut svc = LimiterLayer::new(Limiter::new(4)).layer(inner);
        b.iter_custom(|iters| drive(&rt, &mut svc, iters))
    });
    g.finish();
}

criterion_group!(benches, uncontended, contended, layer);
criterion_main!(benches);
