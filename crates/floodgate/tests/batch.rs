//! The batch runners: order, fail-fast, settled reports, limits, streams and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use floodgate::batch::{self, ItemError};
use floodgate::{Limiter, Rejected};
use proptest::prelude::*;

/// Counts live futures; `peak` is the most alive at once.
#[derive(Default)]
struct Live {
    now: AtomicUsize,
    peak: AtomicUsize,
}

struct Alive(Arc<Live>);

impl Alive {
    fn new(live: &Arc<Live>) -> Self {
        let n = live.now.fetch_add(1, SeqCst) + 1;
        live.peak.fetch_max(n, SeqCst);
        Alive(live.clone())
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn results_come_back_in_input_order_whatever_the_finishing_order() {
    let out = batch::run_all(0..50u64, 7, |i| async move {
        tokio::time::sleep(Duration::from_millis((50 - i) * 3 % 17)).await;
        Ok::<_, String>(i * i)
    })
    .await
    .unwrap();
    assert_eq!(out, (0..50).map(|i| i * i).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn run_all_stops_at_the_first_error_and_cancels_the_rest() {
    let started = Arc::new(AtomicUsize::new(0));
    let live = Arc::new(Live::default());
    let err = batch::run_all(0..100u64, 4, |i| {
        let started = started.clone();
        let alive = Alive::new(&live);
        async move {
            let _alive = alive;
            started.fetch_add(1, SeqCst);
            tokio::time::sleep(Duration::from_millis(if i == 5 { 1 } else { 10 })).await;
            if i == 5 { Err("boom") } else { Ok(i) }
        }
    })
    .await
    .unwrap_err();
    assert_eq!(err.index, 5);
    assert_eq!(err.error, ItemError::Failed("boom"));
    assert_eq!(err.to_string(), "item 5 failed: boom");
    // Items 0..4 finished at 10 ms, 4..8 started; 5 failed at 11 ms: nothing after 8 started.
    assert_eq!(started.load(SeqCst), 8);
    assert_eq!(live.now.load(SeqCst), 0, "in-flight items were dropped");
}

#[tokio::test(start_paused = true)]
async fn settled_reports_every_failure_with_its_index() {
    let settled = batch::run_all_settled(0..100usize, 8, |i| async move {
        if i % 9 == 4 {
            Err(format!("bad {i}"))
        } else {
            Ok(i)
        }
    })
    .await;
    assert_eq!(settled.len(), 100);
    assert_eq!(settled.failed(), 11);
    assert_eq!(settled.results()[3], Ok(3));
    assert_eq!(
        settled.results()[4],
        Err(ItemError::Failed("bad 4".to_owned()))
    );
    let err = settled.into_result().unwrap_err();
    assert_eq!(err.total(), 100);
    assert_eq!(
        err.failures().iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![4, 13, 22, 31, 40, 49, 58, 67, 76, 85, 94]
    );
    assert_eq!(
        err.to_string(),
        "11 of 100 items failed: index 4: bad 4; index 13: bad 13; index 22: bad 22; \
         index 31: bad 31; index 40: bad 40; index 49: bad 49; index 58: bad 58; \
         index 67: bad 67; index 76: bad 76; index 85: bad 85; and 1 more"
    );
}

#[tokio::test(start_paused = true)]
async fn settled_without_failures_gives_the_values() {
    let settled =
        batch::run_all_settled(vec!["a", "bb"], 1, |s| async move { Ok::<_, ()>(s.len()) }).await;
    assert_eq!(settled.into_result().unwrap(), vec![1, 2]);
    let empty =
        batch::run_all_settled(Vec::<u8>::new(), 3, |x| async move { Ok::<_, ()>(x) }).await;
    assert!(empty.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_shared_limiter_bounds_the_batch_and_other_work_together() {
    let limiter = Limiter::new(3);
    let outside = limiter.acquire().await.unwrap(); // other work holds one permit
    let live = Arc::new(Live::default());
    let out = batch::run_all(0..30u32, &limiter, |i| {
        let alive = Alive::new(&live);
        async move {
            let _alive = alive;
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok::<_, ()>(i)
        }
    })
    .await
    .unwrap();
    assert_eq!(out.len(), 30);
    assert!(live.peak.load(SeqCst) <= 3);
    assert_eq!(limiter.stats().peak_active, 3);
    drop(outside);
    assert_eq!(limiter.available(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_closed_limiter_refuses_items_with_a_rejection() {
    let limiter = Limiter::new(2);
    limiter.close();
    let settled = batch::run_all_settled(0..3, &limiter, |i| async move { Ok::<_, ()>(i) }).await;
    assert_eq!(settled.failed(), 3);
    assert_eq!(
        settled.results()[0],
        Err(ItemError::Rejected(Rejected::Closed))
    );
    let err = batch::run_all(0..3, &limiter, |i| async move { Ok::<_, String>(i) })
        .await
        .unwrap_err();
    assert_eq!(err.index, 0);
    assert_eq!(err.to_string(), "item 0 failed: not run: limiter is closed");
}

#[tokio::test(start_paused = true)]
async fn streams_are_pulled_only_when_a_slot_is_free() {
    let (tx, rx) = tokio::sync::mpsc::channel::<u32>(1);
    let producer = tokio::spawn(async move {
        for i in 0..20 {
            tx.send(i).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let items =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    let live = Arc::new(Live::default());
    let out = batch::run_all_stream(items, 2, |i| {
        let alive = Alive::new(&live);
        async move {
            let _alive = alive;
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, ()>(i * 2)
        }
    })
    .await
    .unwrap();
    producer.await.unwrap();
    assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(live.peak.load(SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn a_slow_stream_does_not_stall_running_items() {
    // The stream yields one item, then waits long; the running item must still complete.
    let done = Arc::new(AtomicUsize::new(0));
    let items = futures_util::stream::unfold(0u32, |n| async move {
        if n == 1 {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        (n < 2).then_some((n, n + 1))
    });
    let d = done.clone();
    let run = tokio::spawn(batch::run_all_settled_stream(items, 4, move |i| {
        let d = d.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            d.fetch_add(1, SeqCst);
            Ok::<_, ()>(i)
        }
    }));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(done.load(SeqCst), 1);
    let settled = run.await.unwrap();
    assert_eq!(settled.into_result().unwrap(), vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_batch_leaves_nothing_running() {
    let live = Arc::new(Live::default());
    let l2 = live.clone();
    let run = tokio::spawn(async move {
        batch::run_all(0..1000, 5, |i| {
            let alive = Alive::new(&l2);
            async move {
                let _alive = alive;
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, ()>(i)
            }
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(live.now.load(SeqCst), 5);
    run.abort();
    let _ = run.await;
    assert_eq!(live.now.load(SeqCst), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn order_and_failures_survive_any_timing(
        delays in prop::collection::vec((0u64..20, any::<bool>()), 0..60),
        limit in 1usize..8,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        let (settled, live_peak) = rt.block_on(async {
            let live = Arc::new(Live::default());
            let s = batch::run_all_settled(delays.clone().into_iter().enumerate(), limit, |(i, (d, fail))| {
                let alive = Alive::new(&live);
                async move {
                    let _alive = alive;
                    tokio::time::sleep(Duration::from_millis(d)).await;
                    if fail { Err(i) } else { Ok(i) }
                }
            }).await;
            (s, live.peak.load(SeqCst))
        });
        prop_assert!(live_peak <= limit);
        prop_assert_eq!(settled.len(), delays.len());
        for (i, r) in settled.results().iter().enumerate() {
            if delays[i].1 {
                prop_assert_eq!(r, &Err(ItemError::Failed(i)));
            } else {
                prop_assert_eq!(r, &Ok(i));
            }
        }
        let first_failure = delays.iter().position(|(_, f)| *f);
        let fail_fast = rt.block_on(batch::run_all(delays.clone(), limit, |(d, fail)| async move {
            tokio::time::sleep(Duration::from_millis(d)).await;
            if fail { Err(d) } else { Ok(d) }
        }));
        match first_failure {
            None => prop_assert_eq!(fail_fast.unwrap(), delays.iter().map(|(d, _)| *d).collect::<Vec<_>>()),
            Some(_) => {
                let e = fail_fast.unwrap_err();
                prop_assert!(delays[e.index].1, "the reported index is a failing item");
            }
        }
    }
}
