//! Circuit breaker transitions, classification, timeouts, fallback, manual control, events.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use floodgate::breaker::{BreakerError, CircuitBreaker, OpenWait, Outcome, State};
use tokio::time::sleep;

async fn ok(b: &CircuitBreaker) -> Result<(), BreakerError<&'static str>> {
    b.call(|| async { Ok(()) }).await
}

async fn fail(b: &CircuitBreaker) -> Result<(), BreakerError<&'static str>> {
    b.call(|| async { Err("connection refused") }).await
}

fn rate_breaker(min_calls: u64, wait: OpenWait, probes: u32) -> CircuitBreaker {
    CircuitBreaker::builder()
        .name("dep")
        .count_window(10)
        .failure_rate(0.5, min_calls)
        .open_wait(wait)
        .half_open_probes(probes)
        .build()
        .unwrap()
}

const TEN_S: Duration = Duration::from_secs(10);

#[tokio::test(start_paused = true)]
async fn opens_when_the_failure_rate_reaches_the_threshold_after_minimum_calls() {
    let b = rate_breaker(4, OpenWait::fixed(TEN_S), 1);
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    assert_eq!(b.state(), State::Closed, "3 calls are below minimum_calls");
    ok(&b).await.unwrap();
    assert_eq!(
        b.state(),
        State::Open,
        "3 of 4 failed: the 4th call reaches minimum_calls"
    );
}

#[tokio::test(start_paused = true)]
async fn a_success_never_opens_and_the_rate_must_reach_the_threshold() {
    let b = rate_breaker(4, OpenWait::fixed(TEN_S), 1);
    for _ in 0..3 {
        ok(&b).await.unwrap();
    }
    fail(&b).await.unwrap_err(); // 1 of 4 = 25%
    assert_eq!(b.state(), State::Closed);
    fail(&b).await.unwrap_err(); // 2 of 5 = 40%
    assert_eq!(b.state(), State::Closed);
    fail(&b).await.unwrap_err(); // 3 of 6 = 50%
    assert_eq!(b.state(), State::Open);
    let s = b.stats();
    assert_eq!((s.calls, s.failures), (6, 3));
    assert_eq!(s.last_failure.as_deref(), Some("connection refused"));
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_rejects_without_running_the_call() {
    let b = rate_breaker(2, OpenWait::fixed(TEN_S), 1);
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    let ran = AtomicUsize::new(0);
    sleep(Duration::from_secs(3)).await;
    let err = b
        .call(|| async {
            ran.fetch_add(1, SeqCst);
            Ok::<_, &str>(())
        })
        .await
        .unwrap_err();
    assert_eq!(ran.load(SeqCst), 0);
    match &err {
        BreakerError::Open { name, until } => {
            assert_eq!(&**name, "dep");
            assert_eq!(
                *until,
                Some(tokio::time::Instant::now() + Duration::from_secs(7))
            );
        }
        other => panic!("expected Open, got {other:?}"),
    }
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.to_string(), "circuit breaker dep is open; retry in 7s");
    assert_eq!(b.stats().rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn after_the_wait_half_open_probes_close_it() {
    let b = rate_breaker(2, OpenWait::fixed(TEN_S), 2);
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    sleep(TEN_S).await;
    ok(&b).await.unwrap();
    assert_eq!(b.state(), State::HalfOpen);
    ok(&b).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    // The window was reset: one failure does not re-open it.
    fail(&b).await.unwrap_err();
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_longer_and_a_close_resets_the_wait() {
    let wait = OpenWait {
        base: Duration::from_secs(10),
        factor: 2.0,
        cap: Duration::from_secs(25),
        jitter: 0.0,
    };
    let b = rate_breaker(2, wait, 1);
    let mut events = b.subscribe();
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    let opened = events.recv().await.unwrap();
    assert_eq!(
        (opened.from, opened.to, opened.open_for),
        (State::Closed, State::Open, Some(Duration::from_secs(10)))
    );

    for expected in [20u64, 25, 25] {
        sleep(b.stats().retry_after.unwrap()).await;
        fail(&b).await.unwrap_err(); // the probe fails
        let half = events.recv().await.unwrap();
        assert_eq!((half.from, half.to), (State::Open, State::HalfOpen));
        let reopened = events.recv().await.unwrap();
        assert_eq!(reopened.to, State::Open);
        assert_eq!(
            reopened.open_for,
            Some(Duration::from_secs(expected)),
            "capped growth"
        );
    }
    assert_eq!(b.stats().reopens, 3);
    sleep(Duration::from_secs(25)).await;
    ok(&b).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.stats().reopens, 0);
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    assert_eq!(
        b.stats().retry_after,
        Some(Duration::from_secs(10)),
        "back to the base wait"
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_the_open_wait() {
    let wait = OpenWait {
        base: Duration::from_secs(100),
        factor: 1.0,
        cap: Duration::from_secs(100),
        jitter: 0.2,
    };
    let mut waits = std::collections::HashSet::new();
    for _ in 0..20 {
        let b = rate_breaker(1, wait, 1);
        fail(&b).await.unwrap_err();
        let d = b.stats().retry_after.unwrap();
        assert!(
            d >= Duration::from_secs(80) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        waits.insert(d);
    }
    assert!(waits.len() > 10, "jitter should vary the wait");
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_the_probe_count_under_concurrency() {
    let b = rate_breaker(1, OpenWait::fixed(TEN_S), 3);
    fail(&b).await.unwrap_err();
    sleep(TEN_S).await;
    let admitted = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let b = b.clone();
            let admitted = admitted.clone();
            tokio::spawn(async move {
                b.call(|| async {
                    admitted.fetch_add(1, SeqCst);
                    sleep(Duration::from_secs(1)).await;
                    Ok::<_, &str>(())
                })
                .await
            })
        })
        .collect();
    let mut rejected = 0;
    for t in tasks {
        if t.await.unwrap().is_err() {
            rejected += 1;
        }
    }
    assert_eq!(admitted.load(SeqCst), 3);
    assert_eq!(rejected, 47);
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_breaker() {
    let b = CircuitBreaker::builder()
        .count_window(10)
        .failure_rate(0.5, 4)
        .slow_calls(Duration::from_millis(500), 0.5)
        .build()
        .unwrap();
    for _ in 0..4 {
        b.call(|| async {
            sleep(Duration::from_millis(600)).await;
            Ok::<_, &str>(())
        })
        .await
        .unwrap();
    }
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.stats().slow, 4);
}

#[tokio::test(start_paused = true)]
async fn consecutive_failures_mode_counts_runs() {
    let b = CircuitBreaker::builder()
        .consecutive_failures(3)
        .build()
        .unwrap();
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    ok(&b).await.unwrap(); // breaks the run
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    assert_eq!(b.state(), State::Closed);
    fail(&b).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        b.stats().last_failure.as_deref(),
        Some("connection refused")
    );
}

#[tokio::test(start_paused = true)]
async fn ignored_outcomes_do_not_count_and_permanent_ones_do() {
    let b = rate_breaker(2, OpenWait::fixed(TEN_S), 1);
    for _ in 0..10 {
        let _ = b
            .call_classified(
                || async { Ok::<u16, &str>(429) },
                |r| Outcome::from_http_status(*r.as_ref().unwrap()),
            )
            .await;
    }
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.stats().ignored, 10);
    assert_eq!(b.stats().calls, 0);
    for _ in 0..2 {
        let _ = b
            .call_classified(
                || async { Ok::<u16, &str>(401) },
                |r| Outcome::from_http_status(*r.as_ref().unwrap()),
            )
            .await;
    }
    assert_eq!(
        b.state(),
        State::Open,
        "permanent outcomes count as failures"
    );
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_call_is_a_failure() {
    let b = CircuitBreaker::builder()
        .consecutive_failures(1)
        .call_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = b
        .call(|| async {
            sleep(Duration::from_secs(5)).await;
            Ok::<_, &str>(())
        })
        .await
        .unwrap_err();
    assert_eq!(err, BreakerError::Timeout(Duration::from_secs(2)));
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        b.stats().last_failure.as_deref(),
        Some("timed out after 2s")
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_call_counts_as_ignored_and_frees_its_probe_slot() {
    let b = rate_breaker(1, OpenWait::fixed(TEN_S), 1);
    fail(&b).await.unwrap_err();
    sleep(TEN_S).await;
    let probe = b.call(|| async {
        sleep(Duration::from_secs(60)).await;
        Ok::<_, &str>(())
    });
    let cancelled = tokio::time::timeout(Duration::from_secs(1), probe).await;
    assert!(cancelled.is_err());
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.stats().ignored, 1);
    ok(&b).await.unwrap(); // the freed slot admits a new probe
    assert_eq!(b.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_stale_outcome_from_before_a_transition_changes_nothing() {
    let b = rate_breaker(1, OpenWait::fixed(TEN_S), 1);
    let slow = {
        let b = b.clone();
        tokio::spawn(async move {
            b.call(|| async {
                sleep(Duration::from_secs(30)).await;
                Err::<(), _>("late failure")
            })
            .await
        })
    };
    sleep(Duration::from_secs(1)).await;
    fail(&b).await.unwrap_err(); // opens
    sleep(TEN_S).await;
    ok(&b).await.unwrap(); // probe closes
    assert_eq!(b.state(), State::Closed);
    slow.await.unwrap().unwrap_err(); // admitted two epochs ago
    assert_eq!(b.state(), State::Closed, "a stale failure must not re-open");
}

#[tokio::test(start_paused = true)]
async fn fallback_runs_when_open_or_failed() {
    let b = rate_breaker(1, OpenWait::fixed(TEN_S), 1);
    let v = b
        .call_with_fallback(
            || async { Err::<u32, _>("down") },
            |e| async move {
                assert!(matches!(e, BreakerError::Inner("down")));
                Ok(1)
            },
        )
        .await
        .unwrap();
    assert_eq!(v, 1);
    let v = b
        .call_with_fallback(
            || async { Ok::<u32, &str>(99) },
            |e| async move {
                assert!(e.is_open());
                Ok(2)
            },
        )
        .await
        .unwrap();
    assert_eq!(v, 2);
}

#[tokio::test(start_paused = true)]
async fn manual_control_forces_and_resets() {
    let b = rate_breaker(1, OpenWait::fixed(TEN_S), 1);
    b.force_open();
    assert_eq!(b.state(), State::ForcedOpen);
    sleep(Duration::from_secs(3600)).await;
    let err = ok(&b).await.unwrap_err();
    assert!(matches!(err, BreakerError::Open { until: None, .. }));
    b.disable();
    for _ in 0..5 {
        fail(&b).await.unwrap_err();
    }
    assert_eq!(b.state(), State::Disabled, "a disabled breaker never trips");
    b.reset();
    assert_eq!(b.state(), State::Closed);
    ok(&b).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let b = CircuitBreaker::builder()
        .time_window(Duration::from_secs(10), 10)
        .failure_rate(0.5, 4)
        .build()
        .unwrap();
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    sleep(Duration::from_secs(11)).await; // those failures leave the window
    ok(&b).await.unwrap();
    fail(&b).await.unwrap_err();
    assert_eq!(
        b.state(),
        State::Closed,
        "2 calls in the window, below minimum"
    );
    fail(&b).await.unwrap_err();
    fail(&b).await.unwrap_err();
    assert_eq!(b.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn permits_report_outcomes_for_middleware() {
    let b = CircuitBreaker::builder()
        .consecutive_failures(2)
        .build()
        .unwrap();
    let p = b.try_acquire().unwrap();
    p.record(Outcome::Failure, Some(&"boom"));
    drop(b.try_acquire().unwrap()); // unreported: ignored
    b.try_acquire().unwrap().record(Outcome::Failure, None);
    assert_eq!(b.state(), State::Open);
    assert!(b.try_acquire().unwrap_err().is_open());
    assert_eq!(b.stats().ignored, 1);
}

#[test]
fn invalid_settings_are_reported() {
    let e = CircuitBreaker::builder()
        .failure_rate(1.5, 10)
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "failure_rate_threshold must be in (0, 1], got 1.5"
    );
    assert!(CircuitBreaker::builder().count_window(0).build().is_err());
    assert!(
        CircuitBreaker::builder()
            .half_open_probes(0)
            .build()
            .is_err()
    );
    let bad_wait = OpenWait {
        factor: 0.5,
        ..OpenWait::default()
    };
    assert!(
        CircuitBreaker::builder()
            .open_wait(bad_wait)
            .build()
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn the_layer_fails_fast_while_open_and_classifies_responses() {
    use floodgate::breaker::layer::BreakerLayer;
    use tower::{Layer, ServiceExt, service_fn};

    let b = CircuitBreaker::builder()
        .consecutive_failures(2)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let inner = service_fn(move |status: u16| {
        c.fetch_add(1, SeqCst);
        async move { Ok::<u16, std::io::Error>(status) }
    });
    let svc = BreakerLayer::new(b.clone())
        .classify(|r: &Result<u16, std::io::Error>| match r {
            Ok(s) => Outcome::from_http_status(*s),
            Err(e) => Outcome::from_io_error(e),
        })
        .layer(inner);
    assert_eq!(svc.clone().oneshot(429).await.unwrap(), 429);
    assert_eq!(b.stats().ignored, 1);
    svc.clone().oneshot(503).await.unwrap();
    svc.clone().oneshot(500).await.unwrap();
    assert_eq!(b.state(), State::Open);
    let err = svc.clone().oneshot(200).await.unwrap_err();
    let open = err
        .downcast_ref::<BreakerError<std::convert::Infallible>>()
        .expect("a breaker error");
    assert!(open.is_open());
    assert_eq!(
        calls.load(SeqCst),
        3,
        "the open breaker kept the call from the service"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slot_freed_by_an_ignored_probe_is_reusable_after_rejections() {
    let b = rate_breaker(1, OpenWait::fixed(TEN_S), 1);
    fail(&b).await.unwrap_err();
    sleep(TEN_S).await;
    let probe = b.try_acquire().unwrap();
    // Rejected while the only probe runs: must not use up the slot for later.
    for _ in 0..3 {
        assert!(b.try_acquire().unwrap_err().is_open());
    }
    probe.record(Outcome::Ignored, None);
    let again = b.try_acquire().expect("the freed probe slot");
    again.record(Outcome::Success, None);
    assert_eq!(b.state(), State::Closed);
}

/// Regression: a storm of transitions with a 1 µs open wait once left the breaker half-open
/// for good: a stale ignored probe gave back a slot on the next half-open epoch's counter (or
/// wrapped it), so no probe was ever admitted again (issue 12, case 5).
#[test]
fn a_transition_storm_never_leaves_the_breaker_stuck_half_open() {
    let b = CircuitBreaker::builder()
        .name("storm")
        .consecutive_failures(1)
        .open_wait(OpenWait::fixed(Duration::from_micros(1)))
        .half_open_probes(1)
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                while std::time::Instant::now() < deadline {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if let Ok(permit) = b.try_acquire() {
                        match x % 3 {
                            0 => permit.record(Outcome::Failure, None),
                            1 => permit.record(Outcome::Success, None),
                            _ => drop(permit),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Alone now: successes must close it within a few calls (the open wait is 1 µs).
    for _ in 0..1_000 {
        if b.state() == State::Closed {
            return;
        }
        std::thread::sleep(Duration::from_micros(10));
        if let Ok(permit) = b.try_acquire() {
            permit.record(Outcome::Success, None);
        }
    }
    panic!("stuck in {:?}: {:?}", b.state(), b.stats());
}

/// Rejections while the open wait is far from over read no clock (a timer marks the period);
/// the wait still ends on the nanosecond.
#[tokio::test(start_paused = true)]
async fn the_open_wait_ends_exactly_on_time_though_rejections_skip_the_clock() {
    let b = rate_breaker(1, OpenWait::fixed(TEN_S), 1);
    fail(&b).await.unwrap_err();
    let opened = tokio::time::Instant::now();
    for _ in 0..1_000 {
        assert!(ok(&b).await.unwrap_err().is_open());
    }
    // `advance`, not `sleep`: timers round up to the millisecond.
    tokio::time::advance(TEN_S - Duration::from_micros(1)).await;
    let err = ok(&b).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_micros(1)));
    tokio::time::advance(Duration::from_micros(1)).await;
    assert_eq!(tokio::time::Instant::now(), opened + TEN_S);
    ok(&b).await.unwrap();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.stats().rejected, 1_001);
}

/// A breaker opened on a runtime that is no longer driven (its timer never fires) still lets
/// a call through within a bounded number of calls once the wait has passed: every 64th
/// rejection reads the clock.
#[test]
fn a_breaker_opened_on_an_idle_runtime_still_half_opens_after_its_wait() {
    let b = rate_breaker(1, OpenWait::fixed(Duration::from_millis(20)), 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async { fail(&b).await.unwrap_err() });
    assert_eq!(b.state(), State::Open);
    for _ in 0..10 {
        assert!(b.try_acquire().is_err()); // rejections 0..=9, within the wait
    }
    std::thread::sleep(Duration::from_millis(40));
    let rejected = (0..1_000).take_while(|_| b.try_acquire().is_err()).count();
    // Rejections 10..=63 skip the clock (the mark is never cleared); the 64th reads it.
    assert_eq!(rejected, 54, "{rejected} calls rejected after the wait");
    drop(rt);
}
