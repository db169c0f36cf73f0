//! A flaky dependency, called through limiter + breaker + retry + timeout + hedge: first as
//! plain async calls, then as a `tower::ServiceBuilder` stack.
//!
//! `cargo run --release -p floodgate --example resilient_client`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use floodgate::Limiter;
use floodgate::breaker::layer::BreakerLayer;
use floodgate::breaker::{BreakerError, CircuitBreaker, OpenWait};
use floodgate::hedge::{Hedge, HedgeDelay, layer::HedgeLayer};
use floodgate::limiter::layer::LimiterLayer;
use floodgate::retry::layer::RetryLayer;
use floodgate::retry::{ExponentialBackoff, Jitter, Retry, RetryBudget, RetryDecision, RetryError};
use tokio::time::Instant;
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// A pretend service: down from 0.3 s to 0.9 s after it starts, else one call in thirteen
/// fails; one call in ten is slow.
#[derive(Clone)]
struct Flaky {
    started: Instant,
    calls: Arc<AtomicU64>,
}

impl Flaky {
    fn new() -> Self {
        Flaky {
            started: Instant::now(),
            calls: Arc::default(),
        }
    }

    async fn get(&self, id: u32) -> Result<String, String> {
        let n = self.calls.fetch_add(1, Relaxed);
        let slow = n % 10 == 7;
        tokio::time::sleep(Duration::from_millis(if slow { 300 } else { 5 })).await;
        let t = self.started.elapsed();
        if t >= Duration::from_millis(300) && t < Duration::from_millis(900) {
            Err("503 service unavailable".to_owned())
        } else if n.is_multiple_of(13) {
            Err("connection reset".to_owned())
        } else {
            Ok(format!("item {id}"))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dep = Flaky::new();
    let limiter = Limiter::builder().name("dep").max_concurrency(4).build()?;
    let breaker = CircuitBreaker::builder()
        .name("dep")
        .count_window(20)
        .failure_rate(0.5, 10)
        .open_wait(OpenWait::fixed(Duration::from_millis(400)))
        .half_open_probes(2)
        .call_timeout(Duration::from_millis(200))
        .build()?;
    let budget = RetryBudget::new(0.2, 5);
    let retry = Retry::new(
        ExponentialBackoff::new(Duration::from_millis(20))
            .max_attempts(3)
            .jitter(Jitter::Full),
    )
    .budget(budget.clone());
    let hedge = Hedge::new(HedgeDelay::Fixed(Duration::from_millis(50))).budget(budget.clone());

    println!("1. plain calls: limiter -> retry -> breaker (with timeout) -> hedge -> dependency");
    let (mut ok, mut open, mut failed) = (0, 0, 0);
    for id in 0..200u32 {
        let _permit = limiter.acquire().await?;
        let result = retry
            .run_classified(
                || breaker.call(|| hedge.run(|| dep.get(id))),
                |e: &BreakerError<String>| match e {
                    BreakerError::Open { .. } => RetryDecision::DoNotRetry, // fail fast while open
                    _ => RetryDecision::Retry,
                },
            )
            .await;
        match result {
            Ok(_) => ok += 1,
            Err(RetryError::Permanent { .. }) => open += 1,
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let b = breaker.stats();
    println!(
        "   {ok} ok, {open} rejected fast by the open breaker, {failed} failed after retries; \
         dependency saw {} calls",
        dep.calls.load(Relaxed)
    );
    println!(
        "   breaker: {} now, {} failures, {} rejected; hedges started {}, won {}; retries refused by budget {}",
        b.state,
        b.failures,
        b.rejected,
        hedge.stats().hedges,
        hedge.stats().hedge_wins,
        budget.rejected()
    );

    println!("\n2. the same as a tower stack");
    let dep2 = Flaky::new();
    let stack_breaker = CircuitBreaker::builder()
        .name("dep-tower")
        .count_window(20)
        .failure_rate(0.5, 10)
        .open_wait(OpenWait::fixed(Duration::from_millis(400)))
        .build()?;
    let svc = ServiceBuilder::new()
        .layer(LimiterLayer::new(Limiter::new(4)))
        .layer(RetryLayer::new(
            Retry::new(ExponentialBackoff::new(Duration::from_millis(20)).max_attempts(3)),
            |e: &BoxError| {
                if e.to_string().contains("is open") {
                    RetryDecision::DoNotRetry
                } else {
                    RetryDecision::Retry
                }
            },
        ))
        .layer(BreakerLayer::new(stack_breaker.clone()))
        .timeout(Duration::from_millis(200))
        .layer(HedgeLayer::new(Hedge::new(HedgeDelay::Fixed(
            Duration::from_millis(50),
        ))))
        .service_fn(move |id: u32| {
            let dep = dep2.clone();
            async move { dep.get(id).await.map_err(BoxError::from) }
        });
    let (mut ok, mut err) = (0, 0);
    for id in 0..200u32 {
        match svc.clone().oneshot(id).await {
            Ok(_) => ok += 1,
            Err(_) => err += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = stack_breaker.stats();
    println!(
        "   {ok} ok, {err} errors; breaker {} with {} failures and {} rejected calls",
        s.state, s.failures, s.rejected
    );
    Ok(())
}
