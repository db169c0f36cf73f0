//! GCRA rate limiters: bursts, waits, `check_n`, keyed isolation and bounds, the Tower layer
//! and a property test of the conformance bound. Time is paused.

use std::sync::Arc;
use std::time::Duration;

use floodgate::rate::layer::RateLimitLayer;
use floodgate::rate::{KeyedRateLimiter, NotUntil, Quota, RateClock, RateError, RateLimiter};
use floodgate::retry::RetryDecision;
use proptest::prelude::*;
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A limiter on tokio's (paused) clock.
fn direct(quota: Quota) -> RateLimiter {
    RateLimiter::new(quota).with_clock(RateClock::Tokio)
}

/// A keyed limiter on tokio's (paused) clock.
fn keyed<K: std::hash::Hash + Eq + Clone>(quota: Quota, max_keys: usize) -> KeyedRateLimiter<K> {
    KeyedRateLimiter::new(quota, max_keys)
        .unwrap()
        .with_clock(RateClock::Tokio)
}

#[tokio::test(start_paused = true)]
async fn a_burst_then_one_cell_per_interval() {
    let l = direct(Quota::per_second(10).unwrap().burst(3).unwrap());
    for _ in 0..3 {
        l.check().unwrap();
    }
    assert_eq!(l.check(), Err(NotUntil::Wait(ms(100))));
    sleep(ms(40)).await;
    assert_eq!(l.check(), Err(NotUntil::Wait(ms(60))));
    sleep(ms(60)).await;
    l.check().unwrap();
    assert!(l.check().is_err());
}

#[tokio::test(start_paused = true)]
async fn over_time_the_rate_holds() {
    let l = direct(Quota::per_second(50).unwrap().burst(5).unwrap());
    let start = Instant::now();
    let mut taken = 0;
    while start.elapsed() < Duration::from_secs(10) {
        if l.check().is_ok() {
            taken += 1;
        }
        sleep(ms(1)).await;
    }
    assert!((500..=506).contains(&taken), "took {taken}");
}

#[tokio::test(start_paused = true)]
async fn check_n_takes_several_cells_and_refuses_more_than_the_burst() {
    let l = direct(Quota::per_second(10).unwrap().burst(5).unwrap());
    l.check_n(4).unwrap();
    assert_eq!(l.check_n(2), Err(NotUntil::Wait(ms(100))));
    l.check_n(1).unwrap();
    assert_eq!(l.check_n(6), Err(NotUntil::Never { burst: 5 }));
    assert_eq!(
        RetryDecision::from(&l.check_n(6).unwrap_err()),
        RetryDecision::DoNotRetry
    );
    assert_eq!(
        RetryDecision::from(&l.check().unwrap_err()),
        RetryDecision::RetryAfter(ms(100))
    );
}

#[tokio::test(start_paused = true)]
async fn until_ready_waits_exactly_as_long_as_needed() {
    let l = direct(Quota::per_second(4).unwrap());
    let start = Instant::now();
    for _ in 0..8 {
        l.until_ready().await;
    }
    // 4 at once, then one every 250 ms.
    assert_eq!(start.elapsed(), ms(1_000));
}

#[test]
fn invalid_quotas_are_errors() {
    assert_eq!(
        Quota::per_second(0),
        Err(RateError::InvalidQuota("rate must be at least 1"))
    );
    assert!(Quota::per_second(1).unwrap().burst(0).is_err());
    assert!(KeyedRateLimiter::<u32>::new(Quota::per_second(1).unwrap(), 0).is_err());
}

#[tokio::test(start_paused = true)]
async fn keys_have_their_own_buckets() {
    let l = keyed(Quota::per_second(2).unwrap(), 100);
    l.check(&"a").unwrap();
    l.check(&"a").unwrap();
    assert!(l.check(&"a").is_err());
    l.check(&"b").unwrap();
    sleep(ms(500)).await;
    l.check(&"a").unwrap();
    assert_eq!(l.len(), 2);
    sleep(Duration::from_secs(2)).await;
    l.forget_idle();
    assert!(l.is_empty(), "full buckets are forgotten");
}

#[tokio::test(start_paused = true)]
async fn the_key_set_stays_bounded_under_churn() {
    let l = keyed(Quota::per_second(1).unwrap(), 1_000);
    for k in 0..100_000u32 {
        let _ = l.check(&k);
    }
    assert!(l.len() <= 1_008, "{} keys kept", l.len());
    // The most recent keys are still limited.
    assert!(l.check(&99_999).is_err());
}

#[tokio::test(start_paused = true)]
async fn the_layer_rejects_with_a_retry_after_or_waits() {
    let limiter = Arc::new(direct(Quota::per_second(2).unwrap().burst(1).unwrap()));
    let svc = RateLimitLayer::reject(limiter.clone()).layer(service_fn(|x: u8| async move {
        Ok::<_, tower::BoxError>(x)
    }));
    svc.clone().oneshot(1).await.unwrap();
    let err = svc.clone().oneshot(2).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<NotUntil>(),
        Some(&NotUntil::Wait(ms(500)))
    );

    let limiter = Arc::new(direct(Quota::per_second(2).unwrap().burst(1).unwrap()));
    let svc = RateLimitLayer::wait(limiter).layer(service_fn(|x: u8| async move {
        Ok::<_, tower::BoxError>(x)
    }));
    let start = Instant::now();
    for i in 0..3 {
        assert_eq!(svc.clone().oneshot(i).await.unwrap(), i);
    }
    assert_eq!(start.elapsed(), ms(1_000));
}

proptest! {
    /// GCRA conformance: over any span of `d`, at most `burst + d / interval` cells are taken,
    /// and a request is refused only when taking it would break that bound.
    #[test]
    fn never_more_than_burst_plus_rate(
        rate in 1u32..50,
        burst in 1u32..10,
        gaps in prop::collection::vec(0u64..200, 1..200),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let quota = Quota::per_second(rate).unwrap().burst(burst).unwrap();
            let l = direct(quota);
            let start = Instant::now();
            let mut taken: Vec<Duration> = Vec::new();
            for gap in gaps {
                sleep(ms(gap)).await;
                if l.check().is_ok() {
                    taken.push(start.elapsed());
                }
            }
            let interval = quota.interval();
            for (i, t0) in taken.iter().enumerate() {
                for (j, t1) in taken.iter().enumerate().skip(i) {
                    let cells = (j - i + 1) as u128;
                    let allowed = u128::from(burst) + (*t1 - *t0).as_nanos() / interval.as_nanos();
                    prop_assert!(cells <= allowed, "{cells} cells in {:?}", *t1 - *t0);
                }
            }
            Ok(())
        })?;
    }
}

/// The default (fast) clock does not follow paused time, yet waiting on it never spins: each
/// waiter reserves its cell and sleeps once, so the paused clock moves by the sum of the waits
/// and no more (a retry loop would advance it far further, one rounded-up sleep per spin).
#[tokio::test(start_paused = true)]
async fn until_ready_on_the_fast_clock_sleeps_once_per_wait_under_paused_time() {
    let l = RateLimiter::new(Quota::per_second(4).unwrap());
    let start = Instant::now();
    for _ in 0..8 {
        l.until_ready().await;
    }
    // Real time barely moves, so the 4 cells after the burst wait 250, 500, 750 and 1,000 ms.
    let elapsed = start.elapsed();
    assert!(
        (ms(2_490)..=ms(2_510)).contains(&elapsed),
        "paused clock moved {elapsed:?}"
    );
    let keyed = KeyedRateLimiter::new(Quota::per_second(4).unwrap(), 10).unwrap();
    let start = Instant::now();
    for _ in 0..8 {
        keyed.until_ready(&"k").await;
    }
    let elapsed = start.elapsed();
    assert!(
        (ms(2_490)..=ms(2_510)).contains(&elapsed),
        "paused clock moved {elapsed:?}"
    );
}

fn poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

/// A cancelled wait gives its cell back; waiters are served in arrival order.
#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_gives_its_cell_back() {
    let l = direct(Quota::per_second(1).unwrap());
    l.check().unwrap();
    {
        let wait = l.until_ready();
        tokio::pin!(wait);
        assert!(poll_once(wait.as_mut()).is_pending()); // reserved the cell due at 1 s
    } // dropped: the cell is given back
    sleep(Duration::from_secs(1)).await;
    l.check().unwrap(); // without the refund this cell would be due at 2 s

    let k = keyed(Quota::per_second(1).unwrap(), 10);
    k.check(&1).unwrap();
    {
        let wait = k.until_ready(&1);
        tokio::pin!(wait);
        assert!(poll_once(wait.as_mut()).is_pending());
    }
    sleep(Duration::from_secs(1)).await;
    k.check(&1).unwrap();

    // A waiting layer service dropped after its reservation gives the cell back too.
    let limiter = Arc::new(direct(Quota::per_second(1).unwrap()));
    limiter.check().unwrap();
    let mut svc = RateLimitLayer::wait(limiter.clone()).layer(service_fn(|x: u8| async move {
        Ok::<_, tower::BoxError>(x)
    }));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(tower::Service::poll_ready(&mut svc, &mut cx).is_pending());
    drop(svc);
    sleep(Duration::from_secs(1)).await;
    limiter.check().unwrap();
}

/// Waiters reserve in arrival order: the first to ask is the first served.
#[tokio::test(start_paused = true)]
async fn waiters_are_served_in_arrival_order() {
    let l = Arc::new(direct(Quota::per_second(10).unwrap().burst(1).unwrap()));
    l.check().unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (l, order) = (l.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            l.until_ready().await;
            order.lock().unwrap().push((i, Instant::now()));
        }));
        tokio::task::yield_now().await; // task i reserves before task i + 1 is spawned
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap();
    let ids: Vec<_> = order.iter().map(|(i, _)| *i).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4]);
}

/// A cancelled wait behind a later reservation gives nothing back: the later waiter keeps its
/// place and the next one queues behind it, so the burst of 1 is never exceeded.
#[tokio::test(start_paused = true)]
async fn a_cancelled_wait_behind_a_later_one_does_not_break_the_burst() {
    let l = Arc::new(direct(Quota::per_second(1).unwrap().burst(1).unwrap()));
    let start = Instant::now();
    l.check().unwrap(); // the cell of second 0
    let a = tokio::spawn({
        let l = l.clone();
        async move { l.until_ready().await }
    });
    tokio::task::yield_now().await; // a reserves the cell due at 1 s
    let b = tokio::spawn({
        let l = l.clone();
        async move {
            l.until_ready().await;
            Instant::now()
        }
    });
    tokio::task::yield_now().await; // b reserves the cell due at 2 s
    a.abort();
    let _ = a.await;
    l.until_ready().await; // c: behind b, due at 3 s
    assert_eq!(start.elapsed(), ms(3_000));
    assert_eq!(b.await.unwrap() - start, ms(2_000));
}
