//! Behaviour of the `Limiter`: ordering, bounds, timeouts, cancellation, leases, resizing,
//! close/drain, stats and metrics. Time is paused and advanced by hand.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use floodgate::{
    DrainTimeout, Limiter, LimiterError, Priority, Rejected, TryAcquireError, limiter::MAX_QUEUE,
};
use support::{poll_once, settle};

fn prio(p: u8) -> Priority {
    Priority::new(p).unwrap()
}

/// Spawns a waiter that records `tag` in `order` when it gets a permit, then holds it for
/// `hold`.
fn spawn_waiter(
    limiter: &Limiter,
    priority: Priority,
    tag: u32,
    order: &Arc<Mutex<Vec<u32>>>,
    hold: Duration,
) -> tokio::task::JoinHandle<Result<(), Rejected>> {
    let limiter = limiter.clone();
    let order = order.clone();
    tokio::spawn(async move {
        let _p = limiter.acquire_owned_with(priority).await?;
        order.lock().unwrap().push(tag);
        tokio::time::sleep(hold).await;
        Ok(())
    })
}

#[tokio::test(start_paused = true)]
async fn permits_are_counted_and_returned() {
    let l = Limiter::new(3);
    let a = l.acquire().await.unwrap();
    let b = l.try_acquire().unwrap();
    assert_eq!((l.active(), l.available()), (2, 1));
    drop(a);
    drop(b);
    assert_eq!((l.active(), l.available()), (0, 3));
    assert_eq!(l.stats().acquired, 2);
}

#[tokio::test(start_paused = true)]
async fn serves_higher_priority_first_and_fifo_within_a_level() {
    let l = Limiter::new(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = l.acquire().await.unwrap();
    let mut tasks = Vec::new();
    for (tag, p) in [(1, 1), (2, 5), (3, 10), (4, 5), (5, 10), (6, 1)] {
        tasks.push(spawn_waiter(
            &l,
            prio(p),
            tag,
            &order,
            Duration::from_millis(1),
        ));
        settle().await;
    }
    assert_eq!(l.queued(), 6);
    drop(held);
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![3, 5, 2, 4, 1, 6]);
}

#[tokio::test(start_paused = true)]
async fn try_acquire_never_jumps_the_queue() {
    let l = Limiter::new(1);
    let held = l.acquire().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let waiter = spawn_waiter(&l, Priority::LOWEST, 1, &order, Duration::from_secs(1));
    settle().await;
    drop(held);
    // The freed permit went straight to the queued waiter.
    assert_eq!(l.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    waiter.await.unwrap().unwrap();
    assert!(l.try_acquire().is_ok());
    assert_eq!(l.stats().rejected.would_block, 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_at_once() {
    let l = Limiter::builder()
        .max_concurrency(1)
        .max_queue(2)
        .build()
        .unwrap();
    let _held = l.acquire().await.unwrap();
    let mut a = Box::pin(l.acquire());
    let mut b = Box::pin(l.acquire());
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    let mut c = Box::pin(l.acquire());
    match poll_once(c.as_mut()) {
        std::task::Poll::Ready(Err(Rejected::QueueFull { capacity: 2 })) => {}
        other => panic!("expected QueueFull, got {other:?}"),
    }
    drop(a);
    // A slot in the queue opened up.
    let mut d = Box::pin(l.acquire());
    assert!(poll_once(d.as_mut()).is_pending());
    assert_eq!(l.stats().rejected.queue_full, 1);
}

#[tokio::test(start_paused = true)]
async fn a_zero_queue_means_nobody_waits() {
    let l = Limiter::builder()
        .max_concurrency(1)
        .max_queue(0)
        .build()
        .unwrap();
    let _held = l.acquire().await.unwrap();
    assert_eq!(
        l.acquire().await.unwrap_err(),
        Rejected::QueueFull { capacity: 0 }
    );
}

#[tokio::test(start_paused = true)]
async fn acquire_times_out_and_leaves_the_queue() {
    let l = Limiter::builder()
        .max_concurrency(1)
        .acquire_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let held = l.acquire().await.unwrap();
    let start = tokio::time::Instant::now();
    match l.acquire().await {
        Err(Rejected::Timeout { waited }) => assert_eq!(waited, Duration::from_millis(100)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(l.queued(), 0);
    assert_eq!(l.stats().rejected.timeout, 1);
    drop(held);
    assert_eq!(l.available(), 1);
    // A permit that is free is taken at once, whatever the timeout.
    assert!(l.acquire().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn close_rejects_queued_and_new_acquires_but_keeps_held_permits() {
    let l = Limiter::new(1);
    let held = l.acquire_owned().await.unwrap();
    let waiter = {
        let l = l.clone();
        tokio::spawn(async move { l.acquire().await.map(|_| ()) })
    };
    settle().await;
    l.close();
    assert_eq!(waiter.await.unwrap(), Err(Rejected::Closed));
    assert_eq!(l.acquire().await.unwrap_err(), Rejected::Closed);
    assert_eq!(l.try_acquire().unwrap_err(), TryAcquireError::Closed);
    assert!(l.is_closed());
    assert_eq!(l.active(), 1);
    drop(held);
    assert_eq!((l.active(), l.available()), (0, 1));
    assert_eq!(l.stats().rejected.closed, 3);
}

#[tokio::test(start_paused = true)]
async fn dropping_a_waiting_acquire_removes_it() {
    let l = Limiter::new(1);
    let held = l.acquire().await.unwrap();
    let mut waiting = Box::pin(l.acquire());
    assert!(poll_once(waiting.as_mut()).is_pending());
    assert_eq!(l.queued(), 1);
    drop(waiting);
    assert_eq!(l.queued(), 0);
    drop(held);
    assert_eq!(l.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_permit_granted_to_a_dropped_waiter_passes_to_the_next() {
    let l = Limiter::new(1);
    let held = l.acquire().await.unwrap();
    let mut first = Box::pin(l.acquire());
    let mut second = Box::pin(l.acquire());
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    drop(held); // granted to `first`, which never looks at it again
    assert_eq!(l.available(), 0);
    drop(first);
    let permit = match poll_once(second.as_mut()) {
        std::task::Poll::Ready(Ok(p)) => p,
        other => panic!("the second waiter should hold the permit, got {other:?}"),
    };
    drop(permit);
    drop(second);
    assert_eq!((l.available(), l.active(), l.queued()), (1, 0, 0));
    // The grant that never reached `first` is not counted as acquired.
    assert_eq!(l.stats().acquired, 2);
}

#[tokio::test(start_paused = true)]
async fn a_permit_granted_to_the_last_dropped_waiter_returns_to_the_pool() {
    let l = Limiter::new(1);
    let held = l.acquire().await.unwrap();
    let mut only = Box::pin(l.acquire());
    assert!(poll_once(only.as_mut()).is_pending());
    drop(held);
    drop(only);
    assert_eq!((l.available(), l.active()), (1, 0));
    assert!(l.try_acquire().is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_holder_releases_its_permit() {
    let l = Limiter::new(2);
    let task = {
        let l = l.clone();
        tokio::spawn(async move {
            let _p = l.acquire_owned().await.unwrap();
            panic!("handler blew up");
        })
    };
    assert!(task.await.unwrap_err().is_panic());
    assert_eq!((l.available(), l.active()), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn an_aborted_holder_releases_its_permit() {
    let l = Limiter::new(1);
    let task = {
        let l = l.clone();
        tokio::spawn(async move {
            let _p = l.acquire_owned().await.unwrap();
            std::future::pending::<()>().await;
        })
    };
    settle().await;
    assert_eq!(l.available(), 0);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(l.available(), 1);
}

/// A constant stream of priority-10 work keeps at least two waiters queued; a priority-1
/// waiter must still be served.
async fn low_priority_wait(aging: Option<Duration>) -> Option<Duration> {
    let mut b = Limiter::builder().max_concurrency(1);
    if let Some(a) = aging {
        b = b.aging(a);
    }
    let l = b.build().unwrap();
    let hold = Duration::from_millis(5);
    let stop = tokio_util_like_flag();
    let producer = {
        let l = l.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if l.queued() < 3 {
                    let l = l.clone();
                    tokio::spawn(async move {
                        if let Ok(_p) = l.acquire_with(Priority::HIGHEST).await {
                            tokio::time::sleep(hold).await;
                        }
                    });
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let start = tokio::time::Instant::now();
    let served = tokio::time::timeout(Duration::from_secs(10), l.acquire_with(Priority::LOWEST))
        .await
        .ok()
        .map(|p| {
            drop(p);
            start.elapsed()
        });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    producer.await.unwrap();
    l.close();
    served
}

fn tokio_util_like_flag() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test(start_paused = true)]
async fn without_aging_low_priority_starves_under_constant_high_priority_load() {
    assert_eq!(low_priority_wait(None).await, None);
}

#[tokio::test(start_paused = true)]
async fn aging_serves_low_priority_within_a_bounded_time() {
    let aging = Duration::from_millis(50);
    let waited = low_priority_wait(Some(aging)).await.expect("served");
    eprintln!("low priority served after {waited:?}");
    // Nine levels to climb, then it is the oldest at the top level; plus one hold time.
    assert!(
        waited <= aging * 9 + Duration::from_millis(10),
        "waited {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_held_past_its_ttl_is_reclaimed_once() {
    let l = Limiter::new(1);
    let permit = l.acquire_leased(Duration::from_secs(10)).await.unwrap();
    assert!(!permit.is_expired());
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(l.available(), 0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(permit.is_expired());
    assert_eq!((l.available(), l.active()), (1, 0));
    assert_eq!(l.stats().expired, 1);
    // The slot is someone else's now; dropping the expired permit must not free it again.
    let other = l.try_acquire().unwrap();
    drop(permit);
    assert_eq!(l.available(), 0);
    drop(other);
    assert_eq!(l.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lease_returned_in_time_does_not_expire() {
    let l = Limiter::new(1);
    let permit = l.acquire_leased(Duration::from_secs(10)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(permit);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!((l.available(), l.stats().expired), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_serves_the_next_waiter() {
    let l = Limiter::new(1);
    let _stuck = l.acquire_leased(Duration::from_secs(1)).await.unwrap();
    let start = tokio::time::Instant::now();
    let _p = l.acquire().await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn growing_the_limit_wakes_waiters_at_once() {
    let l = Limiter::new(1);
    let _held = l.acquire().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let waiters: Vec<_> = (0..3)
        .map(|i| spawn_waiter(&l, Priority::DEFAULT, i, &order, Duration::from_secs(60)))
        .collect();
    settle().await;
    assert_eq!(l.queued(), 3);
    l.set_limit(3).unwrap();
    settle().await;
    assert_eq!(order.lock().unwrap().len(), 2);
    assert_eq!((l.queued(), l.active(), l.available()), (1, 3, 0));
    l.set_limit(10).unwrap();
    settle().await;
    assert_eq!((l.queued(), l.active(), l.available()), (0, 4, 6));
    drop(waiters);
}

#[tokio::test(start_paused = true)]
async fn shrinking_takes_effect_as_permits_come_back() {
    let l = Limiter::new(4);
    let held: Vec<_> = (0..4).map(|_| l.try_acquire().unwrap()).collect();
    l.set_limit(2).unwrap();
    assert_eq!((l.limit(), l.active(), l.available()), (2, 4, 0));
    let mut held = held.into_iter();
    drop(held.next());
    assert_eq!((l.active(), l.available()), (3, 0));
    drop(held.next());
    assert_eq!((l.active(), l.available()), (2, 0));
    drop(held.next());
    assert_eq!((l.active(), l.available()), (1, 1));
    drop(held.next());
    assert_eq!((l.active(), l.available()), (0, 2));
    // Free permits are taken off at once.
    l.set_limit(1).unwrap();
    assert_eq!(l.available(), 1);
    // Growing repays a debt before adding permits.
    let a = l.try_acquire().unwrap();
    l.set_limit(3).unwrap();
    let b = l.try_acquire().unwrap();
    let c = l.try_acquire().unwrap();
    l.set_limit(1).unwrap(); // debt of 2
    l.set_limit(2).unwrap(); // debt of 1
    drop(a);
    assert_eq!(l.available(), 0);
    drop(b);
    assert_eq!(l.available(), 1);
    drop(c);
    assert_eq!(l.available(), 2);
}

#[tokio::test(start_paused = true)]
async fn shrinking_holds_back_waiters_until_the_debt_is_paid() {
    let l = Limiter::new(2);
    let a = l.acquire().await.unwrap();
    let b = l.acquire().await.unwrap();
    let mut waiter = Box::pin(l.acquire());
    assert!(poll_once(waiter.as_mut()).is_pending());
    l.set_limit(1).unwrap();
    drop(a); // pays the debt
    assert!(poll_once(waiter.as_mut()).is_pending());
    drop(b); // now the waiter is served
    assert!(poll_once(waiter.as_mut()).is_ready());
}

#[tokio::test(start_paused = true)]
async fn drain_waits_for_permits_and_reports_stragglers() {
    let l = Limiter::new(3);
    let quick = l.acquire_owned().await.unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(quick);
    });
    let start = tokio::time::Instant::now();
    assert_eq!(l.drain(Duration::from_secs(5)).await, Ok(()));
    assert_eq!(start.elapsed(), Duration::from_secs(1));

    let l = Limiter::new(3);
    let _stuck = l.acquire().await.unwrap();
    let _stuck2 = l.acquire().await.unwrap();
    assert_eq!(
        l.drain(Duration::from_secs(2)).await,
        Err(DrainTimeout { still_held: 2 })
    );
    assert_eq!(l.acquire().await.unwrap_err(), Rejected::Closed);
}

#[tokio::test(start_paused = true)]
async fn stats_report_peak_waits_and_rejections() {
    let l = Limiter::builder()
        .name("llm")
        .max_concurrency(2)
        .max_queue(1)
        .build()
        .unwrap();
    let a = l.acquire_owned().await.unwrap();
    let _b = l.acquire().await.unwrap();
    let waiter = {
        let l = l.clone();
        tokio::spawn(async move { l.acquire().await.map(|_| ()) })
    };
    settle().await;
    assert_eq!(
        l.acquire().await.unwrap_err(),
        Rejected::QueueFull { capacity: 1 }
    );
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(a);
    waiter.await.unwrap().unwrap();
    let s = l.stats();
    assert_eq!(s.name, "llm");
    assert_eq!((s.limit, s.active, s.queued, s.peak_active), (2, 1, 0, 2));
    assert_eq!(s.acquired, 3);
    assert_eq!(s.rejected.queue_full, 1);
    assert_eq!(s.rejected.total(), 1);
    // One of three acquires waited ~30 ms: p50 is zero, p99 falls in the 32.768 ms bucket.
    assert_eq!(s.wait_p50, Duration::ZERO);
    assert_eq!(s.wait_p99, Duration::from_micros(32_768));
    assert!(!s.closed);
}

#[test]
fn builder_rejects_unusable_settings() {
    assert_eq!(
        Limiter::builder().max_concurrency(0).build().unwrap_err(),
        LimiterError::ZeroLimit
    );
    assert!(matches!(
        Limiter::builder()
            .max_concurrency(usize::MAX)
            .build()
            .unwrap_err(),
        LimiterError::LimitTooLarge { .. }
    ));
    assert!(matches!(
        Limiter::builder()
            .max_queue(MAX_QUEUE + 1)
            .build()
            .unwrap_err(),
        LimiterError::QueueTooLarge { .. }
    ));
    assert_eq!(
        Limiter::builder()
            .aging(Duration::ZERO)
            .build()
            .unwrap_err(),
        LimiterError::ZeroDuration { setting: "aging" }
    );
    assert_eq!(
        Limiter::builder()
            .acquire_timeout(Duration::ZERO)
            .build()
            .unwrap_err(),
        LimiterError::ZeroDuration {
            setting: "acquire_timeout"
        }
    );
    assert_eq!(Limiter::new(1).set_limit(0), Err(LimiterError::ZeroLimit));
    assert!(Priority::new(0).is_err());
    assert!(Priority::new(11).is_err());
    assert_eq!(Priority::new(7).unwrap().get(), 7);
    assert_eq!(
        LimiterError::ZeroLimit.to_string(),
        "max_concurrency must be at least 1"
    );
}

#[test]
fn metrics_are_labelled_with_the_limiter_name() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let l = metrics::with_local_recorder(&recorder, || {
        Limiter::builder()
            .name("llm")
            .max_concurrency(2)
            .build()
            .unwrap()
    });
    let _a = l.try_acquire().unwrap();
    let _b = l.try_acquire().unwrap();
    let _ = l.try_acquire();
    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str, label: Option<(&str, &str)>| {
        snapshot
            .iter()
            .find(|(key, ..)| {
                let key = key.key();
                key.name() == name
                    && key
                        .labels()
                        .any(|l| l.key() == "limiter" && l.value() == "llm")
                    && label
                        .is_none_or(|(k, v)| key.labels().any(|l| l.key() == k && l.value() == v))
            })
            .map(|(_, _, _, v)| v)
    };
    assert_eq!(
        value("floodgate_limiter_active", None),
        Some(&DebugValue::Gauge(2.0.into()))
    );
    assert_eq!(
        value("floodgate_limiter_limit", None),
        Some(&DebugValue::Gauge(2.0.into()))
    );
    assert_eq!(
        value("floodgate_limiter_acquired_total", None),
        Some(&DebugValue::Counter(2))
    );
    assert_eq!(
        value(
            "floodgate_limiter_rejected_total",
            Some(("reason", "would_block"))
        ),
        Some(&DebugValue::Counter(1))
    );
}

/// Regression: a resize racing `active()`/`drain()` once made a closed limiter with two held
/// permits read `active() == 0` and `drain` return `Ok` (issue 12, case 1).
#[test]
fn active_and_drain_stay_exact_while_the_limit_is_resized() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let l = Limiter::new(10);
    let _a = l.try_acquire().unwrap();
    let _b = l.try_acquire().unwrap();
    l.close();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let resizer = {
        let (l, stop) = (l.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                l.set_limit(5).unwrap();
                l.set_limit(10).unwrap();
            }
        })
    };
    for _ in 0..200_000 {
        assert_eq!(l.active(), 2, "active() misread while resizing");
    }
    for _ in 0..2_000 {
        let drained = rt.block_on(l.drain(Duration::ZERO));
        assert_eq!(drained, Err(DrainTimeout { still_held: 2 }));
        assert_eq!(l.stats().active, 2);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    resizer.join().unwrap();
}
