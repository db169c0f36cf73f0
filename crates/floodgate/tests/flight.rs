//! Single-flight: one execution per key among concurrent callers, cancellation of the caller
//! that started it, shared errors and panics, cache hooks, timeouts.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floodgate::flight::{FlightCache, FlightError, SingleFlight};
use tokio::time::sleep;

type Flight = SingleFlight<String, u64, String>;

fn slow_load(
    loads: &Arc<AtomicU32>,
    value: u64,
) -> impl FnOnce() -> Pin<Box<dyn std::future::Future<Output = Result<u64, String>> + Send>> {
    let loads = loads.clone();
    move || {
        Box::pin(async move {
            loads.fetch_add(1, SeqCst);
            sleep(Duration::from_millis(100)).await;
            Ok(value)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_thousand_concurrent_calls_run_the_work_once() {
    let flight = Flight::new("test");
    let loads = Arc::new(AtomicU32::new(0));
    let calls: Vec<_> = (0..1_000)
        .map(|_| {
            let (flight, loads) = (flight.clone(), loads.clone());
            tokio::spawn(async move { flight.run("k".into(), slow_load(&loads, 7)).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap(), Ok(7));
    }
    assert_eq!(loads.load(SeqCst), 1);
    let s = flight.stats();
    assert_eq!(
        (s.calls, s.executions, s.deduplicated, s.in_flight),
        (1_000, 1, 999, 0)
    );
    // The entry is gone: the next call runs the work again.
    flight.run("k".into(), slow_load(&loads, 8)).await.unwrap();
    assert_eq!(loads.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn different_keys_do_not_share() {
    let flight = Flight::new("test");
    let loads = Arc::new(AtomicU32::new(0));
    let (a, b) = tokio::join!(
        flight.run("a".into(), slow_load(&loads, 1)),
        flight.run("b".into(), slow_load(&loads, 2))
    );
    assert_eq!((a, b), (Ok(1), Ok(2)));
    assert_eq!(loads.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_caller_that_started_the_work_loses_nothing() {
    let flight = Flight::new("test");
    let loads = Arc::new(AtomicU32::new(0));
    let leader = {
        let (flight, loads) = (flight.clone(), loads.clone());
        tokio::spawn(async move { flight.run("k".into(), slow_load(&loads, 9)).await })
    };
    sleep(Duration::from_millis(10)).await;
    let waiters: Vec<_> = (0..50)
        .map(|_| {
            let (flight, loads) = (flight.clone(), loads.clone());
            tokio::spawn(async move { flight.run("k".into(), slow_load(&loads, 0)).await })
        })
        .collect();
    sleep(Duration::from_millis(10)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for w in waiters {
        assert_eq!(
            w.await.unwrap(),
            Ok(9),
            "the work went on without its starter"
        );
    }
    assert_eq!(loads.load(SeqCst), 1, "no second leader was started");
}

#[tokio::test(start_paused = true)]
async fn errors_and_panics_are_shared_and_cleared() {
    let flight = Flight::new("test");
    let (a, b) = tokio::join!(
        flight.run("k".into(), || async {
            sleep(Duration::from_millis(5)).await;
            Err::<u64, _>("db down".to_owned())
        }),
        flight.run("k".into(), || async { Ok(1) })
    );
    assert_eq!(a, Err(FlightError::Failed("db down".to_owned())));
    assert_eq!(b, a);
    let (a, b) = tokio::join!(
        flight.run("p".into(), || async {
            sleep(Duration::from_millis(5)).await;
            panic!("loader bug")
        }),
        flight.run("p".into(), || async { Ok(1) })
    );
    assert_eq!(a, Err(FlightError::Panicked("loader bug".to_owned())));
    assert_eq!(b, a);
    assert_eq!(flight.stats().in_flight, 0);
    assert_eq!(flight.run("p".into(), || async { Ok(5) }).await, Ok(5));
}

#[tokio::test(start_paused = true)]
async fn a_caller_timeout_does_not_stop_the_work() {
    let flight = Flight::new("test").with_timeout(Duration::from_millis(30));
    let loads = Arc::new(AtomicU32::new(0));
    let r = flight.run("k".into(), slow_load(&loads, 3)).await;
    assert_eq!(r, Err(FlightError::Timeout(Duration::from_millis(30))));
    assert_eq!(flight.stats().in_flight, 1, "the work is still running");
    sleep(Duration::from_millis(100)).await;
    assert_eq!(flight.stats().in_flight, 0);
}

#[derive(Default)]
struct MapCache {
    map: Mutex<HashMap<String, u64>>,
    ttls: Mutex<Vec<Duration>>,
}

impl FlightCache<String, u64> for MapCache {
    fn get<'a>(
        &'a self,
        key: &'a String,
    ) -> Pin<Box<dyn std::future::Future<Output = Option<u64>> + Send + 'a>> {
        Box::pin(async move { self.map.lock().unwrap().get(key).copied() })
    }

    fn set<'a>(
        &'a self,
        key: &'a String,
        value: &'a u64,
        ttl: Duration,
    ) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            self.map.lock().unwrap().insert(key.clone(), *value);
            self.ttls.lock().unwrap().push(ttl);
        })
    }
}

#[tokio::test(start_paused = true)]
async fn the_cache_is_read_first_and_filled_after_a_success() {
    let cache = Arc::new(MapCache::default());
    let flight = Flight::new("test").with_cache(cache.clone(), Duration::from_secs(60));
    let loads = Arc::new(AtomicU32::new(0));
    assert_eq!(flight.run("k".into(), slow_load(&loads, 4)).await, Ok(4));
    assert_eq!(
        flight.run("k".into(), slow_load(&loads, 5)).await,
        Ok(4),
        "from the cache"
    );
    assert_eq!(loads.load(SeqCst), 1);
    assert_eq!(*cache.ttls.lock().unwrap(), vec![Duration::from_secs(60)]);
    assert_eq!(flight.stats().cache_hits, 1);
}

/// Regression: a panic while *making* the work's future (before it is spawned) left the key's
/// entry behind, so every later call for the key returned `Abandoned` (issue 12, case 2).
#[tokio::test(start_paused = true)]
async fn a_panic_while_starting_the_work_clears_the_key() {
    let flight = Flight::new("test");
    let started = std::panic::AssertUnwindSafe(
        flight.run("k".into(), || -> std::future::Ready<Result<u64, String>> {
            panic!("bad closure")
        }),
    );
    let result = futures_util::FutureExt::catch_unwind(started).await;
    let result = result.expect("the panic is returned as an error, not propagated");
    assert_eq!(result, Err(FlightError::Panicked("bad closure".to_owned())));
    assert_eq!(flight.stats().in_flight, 0, "the entry was left behind");
    assert_eq!(flight.run("k".into(), || async { Ok(7) }).await, Ok(7));
}

/// Regression: calling `run` outside a runtime panicked after inserting the entry, poisoning
/// the key for callers inside a runtime (issue 12, case 2).
#[test]
fn a_call_outside_a_runtime_does_not_poison_the_key() {
    let flight = Flight::new("test");
    let outside = std::thread::spawn({
        let flight = flight.clone();
        move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                futures_util::FutureExt::now_or_never(
                    flight.run("k".into(), || async { Ok::<u64, String>(1) }),
                )
            }))
        }
    })
    .join()
    .unwrap();
    // Like `tokio::spawn`, it panics outside a runtime, saying why, before it holds the key.
    let panic = outside.expect_err("a call outside a runtime panics");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(
        message.contains("must be called inside a Tokio runtime"),
        "{message:?}"
    );
    assert_eq!(flight.stats().in_flight, 0, "the entry was left behind");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(flight.run("k".into(), || async { Ok(7) })),
        Ok(7)
    );
}
