//! Retry: backoff and jitter, classification, Retry-After, budgets, deadlines, cancellation
//! and the Tower layer. Time is paused.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use floodgate::retry::layer::RetryLayer;
use floodgate::retry::{
    AttemptError, ExponentialBackoff, Jitter, Retry, RetryBudget, RetryDecision, RetryError,
    RetryPolicy,
};
use tokio::time::{Instant, sleep};
use tower::{Layer, ServiceExt, service_fn};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn exact(base_ms: u64, attempts: u32) -> ExponentialBackoff {
    ExponentialBackoff::new(ms(base_ms))
        .max_attempts(attempts)
        .cap(Duration::from_secs(60))
        .jitter(Jitter::None)
}

/// Runs `op` that fails `failures` times, recording when each attempt started.
async fn attempts_at(
    retry: &Retry<ExponentialBackoff>,
    failures: u32,
) -> (Result<u32, RetryError<&'static str>>, Vec<Duration>) {
    let start = Instant::now();
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let n = AtomicU32::new(0);
    let r = retry
        .run(|| {
            starts.lock().unwrap().push(start.elapsed());
            let i = n.fetch_add(1, SeqCst);
            async move { if i < failures { Err("flaky") } else { Ok(i) } }
        })
        .await;
    let s = starts.lock().unwrap().clone();
    (r, s)
}

#[tokio::test(start_paused = true)]
async fn backs_off_exponentially_then_succeeds() {
    let (r, starts) = attempts_at(&Retry::new(exact(100, 5)), 3).await;
    assert_eq!(r.unwrap(), 3);
    assert_eq!(starts, vec![ms(0), ms(100), ms(300), ms(700)]);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let (r, starts) = attempts_at(&Retry::new(exact(10, 3)), 10).await;
    assert_eq!(starts.len(), 3);
    let e = r.unwrap_err();
    assert_eq!(
        e,
        RetryError::Exhausted {
            attempts: 3,
            last: AttemptError::Failed("flaky")
        }
    );
    assert_eq!(e.to_string(), "gave up after 3 attempts: flaky");
}

#[tokio::test(start_paused = true)]
async fn max_elapsed_bounds_the_retrying() {
    let policy = exact(100, 100).max_elapsed(ms(350));
    let (r, starts) = attempts_at(&Retry::new(policy), 100).await;
    assert!(
        matches!(r, Err(RetryError::Exhausted { attempts: 4, .. })),
        "{r:?}"
    );
    assert_eq!(starts, vec![ms(0), ms(100), ms(300), ms(700)]);
}

#[test]
fn jitter_kinds_stay_in_their_ranges() {
    let base = ExponentialBackoff::new(ms(100))
        .cap(Duration::from_secs(10))
        .max_attempts(10);
    for _ in 0..500 {
        // attempt 3: nominal 400 ms
        let full = base
            .clone()
            .jitter(Jitter::Full)
            .next_delay(3, Duration::ZERO, None)
            .unwrap();
        assert!(full <= ms(400));
        let equal = base
            .clone()
            .jitter(Jitter::Equal)
            .next_delay(3, Duration::ZERO, None)
            .unwrap();
        assert!(equal >= ms(200) && equal <= ms(400));
        let prop = base
            .clone()
            .jitter(Jitter::Proportional(0.25))
            .next_delay(3, Duration::ZERO, None)
            .unwrap();
        assert!(prop >= ms(300) && prop <= ms(500));
        let decor = base
            .clone()
            .jitter(Jitter::Decorrelated)
            .next_delay(3, Duration::ZERO, Some(ms(400)))
            .unwrap();
        assert!(decor >= ms(100) && decor <= ms(1200));
    }
    let capped = base
        .clone()
        .jitter(Jitter::None)
        .cap(ms(250))
        .next_delay(5, Duration::ZERO, None)
        .unwrap();
    assert_eq!(capped, ms(250));
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let calls = AtomicU32::new(0);
    let e = Retry::new(exact(10, 5))
        .run_classified(
            || {
                calls.fetch_add(1, SeqCst);
                async { Err::<(), u16>(403) }
            },
            |s| RetryDecision::from_http_status(*s, None),
        )
        .await
        .unwrap_err();
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(
        e,
        RetryError::Permanent {
            attempts: 1,
            last: AttemptError::Failed(403)
        }
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_a_floor_for_the_next_delay_and_the_cap_still_holds() {
    let start = Instant::now();
    let n = AtomicU32::new(0);
    let starts = std::sync::Mutex::new(Vec::new());
    let policy = exact(10, 5).cap(Duration::from_secs(3));
    let r = Retry::new(policy)
        .run_classified(
            || {
                starts.lock().unwrap().push(start.elapsed());
                let i = n.fetch_add(1, SeqCst);
                async move { if i < 2 { Err(i) } else { Ok(()) } }
            },
            |i: &u32| {
                // First: the server says 2 s. Second: it says 60 s, more than the 3 s cap.
                RetryDecision::RetryAfter(Duration::from_secs(if *i == 0 { 2 } else { 60 }))
            },
        )
        .await;
    r.unwrap();
    let s = starts.into_inner().unwrap();
    assert_eq!(s, vec![ms(0), ms(2_000), ms(5_000)]);

    // Allowed to exceed the cap when the policy says so.
    let start = Instant::now();
    let n = AtomicU32::new(0);
    Retry::new(
        exact(10, 5)
            .cap(Duration::from_secs(3))
            .retry_after_exceeds_cap(true),
    )
    .run_classified(
        || {
            let i = n.fetch_add(1, SeqCst);
            async move { if i < 1 { Err(()) } else { Ok(()) } }
        },
        |_| RetryDecision::RetryAfter(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_stops_retries_and_says_so() {
    let budget = RetryBudget::new(0.1, 0);
    let retry = Retry::new(exact(1, 10)).budget(budget.clone());
    let calls = Arc::new(AtomicU32::new(0));
    // 100 callers against a dead dependency: without a budget, 1,000 calls.
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let retry = retry.clone();
            let calls = calls.clone();
            tokio::spawn(async move {
                retry
                    .run(|| {
                        calls.fetch_add(1, SeqCst);
                        async { Err::<(), _>("down") }
                    })
                    .await
            })
        })
        .collect();
    let mut budget_errors = 0;
    for t in tasks {
        if let Err(RetryError::BudgetExhausted { .. }) = t.await.unwrap() {
            budget_errors += 1;
        }
    }
    let total = calls.load(SeqCst);
    assert!(
        total <= 100 + 10,
        "retries must stay within 10% of 100 calls, got {total} calls"
    );
    assert!(budget_errors >= 90);
    assert!(budget.rejected() >= 90);
    let e = RetryError::<&str>::BudgetExhausted {
        attempts: 1,
        last: AttemptError::Failed("down"),
    };
    assert_eq!(
        e.to_string(),
        "not retried, retry budget exhausted, after 1 attempts: down"
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_floor_allows_a_trickle_per_second() {
    let budget = RetryBudget::new(0.0, 2);
    assert!(budget.withdraw());
    assert!(budget.withdraw());
    assert!(!budget.withdraw());
    sleep(Duration::from_millis(500)).await;
    assert!(budget.withdraw(), "half a second earns one retry");
    assert!(!budget.withdraw());
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_times_out_and_is_retried() {
    let n = AtomicU32::new(0);
    let v = Retry::new(exact(10, 3))
        .attempt_timeout(ms(100))
        .run(|| {
            let i = n.fetch_add(1, SeqCst);
            async move {
                if i == 0 {
                    sleep(Duration::from_secs(10)).await;
                }
                Ok::<_, ()>(i)
            }
        })
        .await
        .unwrap();
    assert_eq!(v, 1);
    let e = Retry::new(exact(10, 2))
        .attempt_timeout(ms(100))
        .run(|| async {
            sleep(Duration::from_secs(10)).await;
            Ok::<_, ()>(())
        })
        .await
        .unwrap_err();
    assert_eq!(
        e,
        RetryError::Exhausted {
            attempts: 2,
            last: AttemptError::TimedOut(ms(100))
        }
    );
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cancels_the_attempt_in_flight() {
    let start = Instant::now();
    let e = Retry::new(exact(10, 10))
        .deadline(ms(250))
        .run(|| async {
            sleep(Duration::from_secs(1)).await;
            Ok::<_, ()>(())
        })
        .await
        .unwrap_err();
    assert_eq!(
        e,
        RetryError::DeadlineExceeded {
            attempts: 1,
            last: None
        }
    );
    assert_eq!(start.elapsed(), ms(250));
    // A delay that would pass the deadline is not slept.
    let start = Instant::now();
    let e = Retry::new(exact(1_000, 10))
        .deadline(ms(500))
        .run(|| async { Err::<(), _>("no") })
        .await
        .unwrap_err();
    assert_eq!(
        e,
        RetryError::DeadlineExceeded {
            attempts: 1,
            last: Some(AttemptError::Failed("no"))
        }
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_caller_stops_further_attempts() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let task = tokio::spawn(async move {
        Retry::new(exact(100, 10))
            .run(|| {
                c.fetch_add(1, SeqCst);
                async { Err::<(), _>("no") }
            })
            .await
    });
    sleep(ms(150)).await; // attempts at 0 and 100 ms
    task.abort();
    let _ = task.await;
    sleep(Duration::from_secs(10)).await;
    assert_eq!(calls.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_layer_retries_cloned_requests() {
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let inner = service_fn(move |req: String| {
        let i = c.fetch_add(1, SeqCst);
        async move {
            if i < 2 {
                Err(503u16)
            } else {
                Ok(format!("{req}:{i}"))
            }
        }
    });
    let svc = RetryLayer::new(Retry::new(exact(10, 5)), |s: &u16| {
        RetryDecision::from_http_status(*s, None)
    })
    .layer(inner);
    assert_eq!(
        svc.clone().oneshot("hello".to_owned()).await.unwrap(),
        "hello:2"
    );
    let gone = service_fn(|_: String| async { Err::<String, _>(404u16) });
    let svc = RetryLayer::new(Retry::new(exact(10, 5)), |s: &u16| {
        RetryDecision::from_http_status(*s, None)
    })
    .layer(gone);
    assert!(matches!(
        svc.oneshot("x".into()).await,
        Err(RetryError::Permanent { attempts: 1, .. })
    ));
}
