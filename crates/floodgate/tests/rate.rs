//! GCRA rate limiters: bursts, waits, `check_n`, keyed isolation and bounds, the Tower layer
//! and a property test of the conformance bound. Time is paused.

use std::sync::Arc;
use std::time::Duration;

use floodgate::rate::layer::RateLimitLayer;
use floodgate::rate::{KeyedRateLimiter, NotUntil, Quota, RateError, RateLimiter};
use floodgate::retry::RetryDecision;
use proptest::prelude::*;
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(start_paused = true)]
async fn a_burst_then_one_cell_per_interval() {
    let l = RateLimiter::new(Quota::per_second(10).unwrap().burst(3).unwrap());
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
    let l = RateLimiter::new(Quota::per_second(50).unwrap().burst(5).unwrap());
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
    let l = RateLimiter::new(Quota::per_second(10).unwrap().burst(5).unwrap());
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
    let l = RateLimiter::per_second(4).unwrap();
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
    let l = KeyedRateLimiter::new(Quota::per_second(2).unwrap(), 100).unwrap();
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
    let l = KeyedRateLimiter::new(Quota::per_second(1).unwrap(), 1_000).unwrap();
    for k in 0..100_000u32 {
        let _ = l.check(&k);
    }
    assert!(l.len() <= 1_008, "{} keys kept", l.len());
    // The most recent keys are still limited.
    assert!(l.check(&99_999).is_err());
}

#[tokio::test(start_paused = true)]
async fn the_layer_rejects_with_a_retry_after_or_waits() {
    let limiter = Arc::new(RateLimiter::new(
        Quota::per_second(2).unwrap().burst(1).unwrap(),
    ));
    let svc = RateLimitLayer::reject(limiter.clone()).layer(service_fn(|x: u8| async move {
        Ok::<_, tower::BoxError>(x)
    }));
    svc.clone().oneshot(1).await.unwrap();
    let err = svc.clone().oneshot(2).await.unwrap_err();
    assert_eq!(
        err.downcast_ref::<NotUntil>(),
        Some(&NotUntil::Wait(ms(500)))
    );

    let limiter = Arc::new(RateLimiter::new(
        Quota::per_second(2).unwrap().burst(1).unwrap(),
    ));
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
            let l = RateLimiter::new(quota);
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
