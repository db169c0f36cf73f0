//! Hedging: a slow first attempt is overtaken, losers are cancelled, hedges are bounded and
//! paid for by the budget and limiter, and percentile delays follow observed latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use floodgate::Limiter;
use floodgate::hedge::{Hedge, HedgeDelay, layer::HedgeLayer};
use floodgate::retry::RetryBudget;
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Attempt `i` takes `latencies[i]` and reports whether it was dropped before finishing.
fn op(
    latencies: Vec<u64>,
    started: Arc<AtomicU32>,
    finished: Arc<AtomicU32>,
) -> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, &'static str>> + Send>>
{
    move || {
        let i = started.fetch_add(1, SeqCst);
        let d = latencies.get(i as usize).copied().unwrap_or(1);
        let finished = finished.clone();
        Box::pin(async move {
            sleep(ms(d)).await;
            finished.fetch_add(1, SeqCst);
            Ok(i)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_hedge_overtakes_a_slow_attempt_and_the_loser_is_cancelled() {
    let hedge = Hedge::new(HedgeDelay::Fixed(ms(50))).max_hedges(2);
    let (started, finished) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let start = Instant::now();
    let v = hedge
        .run(op(
            vec![1_000, 20, 1_000],
            started.clone(),
            finished.clone(),
        ))
        .await
        .unwrap();
    assert_eq!(v, 1);
    assert_eq!(start.elapsed(), ms(70));
    assert_eq!(started.load(SeqCst), 2, "the second hedge was never needed");
    sleep(Duration::from_secs(5)).await;
    assert_eq!(
        finished.load(SeqCst),
        1,
        "the slow first attempt was dropped"
    );
    let s = hedge.stats();
    assert_eq!((s.calls, s.hedges, s.hedge_wins), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_fast_answer_starts_no_hedge() {
    let hedge = Hedge::new(HedgeDelay::Fixed(ms(50))).max_hedges(3);
    let started = Arc::new(AtomicU32::new(0));
    hedge
        .run(op(vec![10], started.clone(), Arc::default()))
        .await
        .unwrap();
    assert_eq!(started.load(SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn at_most_max_hedges_are_started() {
    let hedge = Hedge::new(HedgeDelay::Fixed(ms(10))).max_hedges(2);
    let started = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let v = hedge
        .run(op(vec![500, 500, 500, 1], started.clone(), Arc::default()))
        .await
        .unwrap();
    assert_eq!(v, 0, "the first attempt answers first of the three");
    assert_eq!(started.load(SeqCst), 3);
    assert_eq!(start.elapsed(), ms(500));
}

#[tokio::test(start_paused = true)]
async fn failures_start_the_next_hedge_at_once_and_the_last_error_is_returned() {
    let hedge = Hedge::new(HedgeDelay::Fixed(Duration::from_secs(10))).max_hedges(1);
    let n = AtomicU32::new(0);
    let start = Instant::now();
    let r: Result<(), &str> = hedge
        .run(|| {
            let i = n.fetch_add(1, SeqCst);
            async move { Err(if i == 0 { "first" } else { "second" }) }
        })
        .await;
    assert_eq!(r, Err("second"));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn hedges_draw_on_the_budget_and_the_limiter() {
    let budget = RetryBudget::new(0.0, 0);
    let hedge = Hedge::new(HedgeDelay::Fixed(ms(10)))
        .max_hedges(1)
        .budget(budget.clone());
    let started = Arc::new(AtomicU32::new(0));
    hedge
        .run(op(vec![100], started.clone(), Arc::default()))
        .await
        .unwrap();
    assert_eq!(started.load(SeqCst), 1, "no budget, no hedge");
    assert_eq!(hedge.stats().refused, 1);

    let limiter = Limiter::new(1);
    let hedge = Hedge::new(HedgeDelay::Fixed(ms(10))).limiter(limiter.clone());
    let seen_active = Arc::new(AtomicU32::new(0));
    let (l, s) = (limiter.clone(), seen_active.clone());
    let n = AtomicU32::new(0);
    hedge
        .run(|| {
            let i = n.fetch_add(1, SeqCst);
            let (l, s) = (l.clone(), s.clone());
            async move {
                if i == 1 {
                    s.store(l.active() as u32, SeqCst);
                    return Ok::<_, ()>(i);
                }
                sleep(ms(100)).await;
                Ok(i)
            }
        })
        .await
        .unwrap();
    assert_eq!(
        seen_active.load(SeqCst),
        1,
        "the hedge held a permit while it ran"
    );
    assert_eq!(limiter.active(), 0);
    let _held = limiter.acquire().await.unwrap();
    let started = Arc::new(AtomicU32::new(0));
    hedge
        .run(op(vec![100], started.clone(), Arc::default()))
        .await
        .unwrap();
    assert_eq!(started.load(SeqCst), 1, "no free permit, no hedge");
}

#[tokio::test(start_paused = true)]
async fn a_percentile_delay_follows_observed_latency() {
    let hedge = Hedge::new(HedgeDelay::Percentile {
        quantile: 0.9,
        min_samples: 20,
        until_then: ms(500),
    });
    assert_eq!(hedge.delay(), ms(500));
    for _ in 0..20 {
        hedge
            .run(op(vec![30], Arc::default(), Arc::default()))
            .await
            .unwrap();
    }
    // 30 ms falls in the 32.768 ms bucket.
    assert_eq!(hedge.delay(), Duration::from_micros(32_768));
}

#[tokio::test(start_paused = true)]
async fn the_layer_hedges_cloned_requests() {
    let n = Arc::new(AtomicU32::new(0));
    let c = n.clone();
    let inner = service_fn(move |x: u32| {
        let i = c.fetch_add(1, SeqCst);
        async move {
            sleep(ms(if i == 0 { 1_000 } else { 5 })).await;
            Ok::<_, std::io::Error>(x + i)
        }
    });
    let svc = HedgeLayer::new(Hedge::new(HedgeDelay::Fixed(ms(20)))).layer(inner);
    let start = Instant::now();
    assert_eq!(svc.oneshot(10).await.unwrap(), 11);
    assert_eq!(start.elapsed(), ms(25));
}
