//! The circuit breaker beside recloser and failsafe, and retry beside backon and tower.
//!
//! `cargo bench -p floodgate --bench resilience`

use std::future::{Future, ready};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use floodgate::breaker::CircuitBreaker;
use floodgate::retry::{ExponentialBackoff, Retry};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Awaits `f()` `iters` times inside one task.
fn drive<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(f().await);
        }
        start.elapsed()
    })
}

fn closed_call(c: &mut Criterion) {
    use failsafe::futures::CircuitBreaker as _;
    let rt = runtime();
    let mut g = c.benchmark_group("breaker/closed_call");
    g.bench_function("bare_call", |b| {
        b.iter_custom(|n| drive(&rt, n, || ready(Ok::<u64, ()>(black_box(1)))))
    });
    let recloser = recloser::AsyncRecloser::from(recloser::Recloser::default());
    g.bench_function("recloser", |b| {
        b.iter_custom(|n| drive(&rt, n, || recloser.call(ready(Ok::<u64, ()>(black_box(1))))))
    });
    let failsafe = failsafe::Config::new().build();
    g.bench_function("failsafe", |b| {
        b.iter_custom(|n| drive(&rt, n, || failsafe.call(ready(Ok::<u64, ()>(black_box(1))))))
    });
    let breaker = CircuitBreaker::new("bench");
    g.bench_function("floodgate", |b| {
        b.iter_custom(|n| {
            drive(&rt, n, || {
                breaker.call(|| ready(Ok::<u64, &str>(black_box(1))))
            })
        })
    });
    g.finish();
}

fn rejected_call(c: &mut Criterion) {
    use failsafe::futures::CircuitBreaker as _;
    let rt = runtime();
    let mut g = c.benchmark_group("breaker/rejected_call");
    let long = Duration::from_secs(3_600);

    let recloser = recloser::AsyncRecloser::from(
        recloser::Recloser::custom()
            .closed_len(1)
            .open_wait(long)
            .build(),
    );
    rt.block_on(async {
        for _ in 0..3 {
            let _ = recloser.call(ready(Err::<(), u8>(1))).await;
        }
    });
    assert!(matches!(
        rt.block_on(recloser.call(ready(Ok::<(), u8>(())))),
        Err(recloser::Error::Rejected)
    ));
    g.bench_function("recloser", |b| {
        b.iter_custom(|n| drive(&rt, n, || recloser.call(ready(Ok::<u64, ()>(1)))))
    });

    let failsafe = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            1,
            failsafe::backoff::constant(long),
        ))
        .build();
    rt.block_on(async {
        let _ = failsafe.call(ready(Err::<(), u8>(1))).await;
    });
    assert!(!failsafe.is_call_permitted());
    g.bench_function("failsafe", |b| {
        b.iter_custom(|n| drive(&rt, n, || failsafe.call(ready(Ok::<u64, ()>(1)))))
    });

    let breaker = CircuitBreaker::builder()
        .name("bench")
        .consecutive_failures(1)
        .open_wait(floodgate::breaker::OpenWait::fixed(long))
        .build()
        .unwrap();
    rt.block_on(async {
        let _ = breaker.call(|| ready(Err::<(), &str>("down"))).await;
    });
    assert!(breaker.state().is_open());
    g.bench_function("floodgate", |b| {
        b.iter_custom(|n| drive(&rt, n, || breaker.call(|| ready(Ok::<u64, &str>(1)))))
    });
    g.finish();
}

/// A tower retry policy for the comparison: never retries (the first attempt succeeds).
#[derive(Clone)]
struct NoRetry;

impl<Req: Clone, Res, E> tower::retry::Policy<Req, Res, E> for NoRetry {
    type Future = std::future::Ready<()>;

    fn retry(&mut self, _req: &mut Req, _result: &mut Result<Res, E>) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

fn retry_first_attempt(c: &mut Criterion) {
    use backon::Retryable as _;
    use tower::{Service, ServiceExt};
    let rt = runtime();
    let mut g = c.benchmark_group("retry/first_attempt_succeeds");
    g.bench_function("backon", |b| {
        b.iter_custom(|n| {
            drive(&rt, n, || {
                (|| ready(Ok::<u64, ()>(black_box(1)))).retry(backon::ExponentialBuilder::default())
            })
        })
    });
    g.bench_function("tower_retry", |b| {
        let mut svc =
            tower::retry::Retry::new(NoRetry, tower::service_fn(|x: u64| ready(Ok::<u64, ()>(x))));
        b.iter_custom(|n| {
            rt.block_on(async {
                let start = Instant::now();
                for i in 0..n {
                    black_box(svc.ready().await.unwrap().call(i).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    let retry = Retry::new(ExponentialBackoff::default());
    g.bench_function("floodgate", |b| {
        b.iter_custom(|n| drive(&rt, n, || retry.run(|| ready(Ok::<u64, ()>(black_box(1))))))
    });
    g.finish();
}

criterion_group!(benches, closed_call, rejected_call, retry_first_attempt);
criterion_main!(benches);
