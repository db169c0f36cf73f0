//! Property tests: the limiter serves waiters in the order a simple model predicts
//! (effective priority = priority + waited / aging, oldest first among equals).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use floodgate::{Limiter, Priority};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Waiter {
    priority: u8,
    /// Milliseconds after the previous waiter that this one arrives.
    gap_ms: u64,
}

fn waiters() -> impl Strategy<Value = Vec<Waiter>> {
    prop::collection::vec(
        (1u8..=10, 0u64..4).prop_map(|(priority, gap_ms)| Waiter { priority, gap_ms }),
        1..24,
    )
}

/// The order the model serves `waiters` in, when the held permit is released at `release_ms`
/// and every served waiter holds its permit for `hold_ms`.
fn model(waiters: &[Waiter], aging_ms: Option<u64>, release_ms: u64, hold_ms: u64) -> Vec<usize> {
    let mut arrival = Vec::new();
    let mut t = 0;
    for w in waiters {
        t += w.gap_ms;
        arrival.push(t);
    }
    let mut left: Vec<usize> = (0..waiters.len()).collect();
    let mut order = Vec::new();
    let mut now = release_ms;
    while !left.is_empty() {
        let effective = |i: usize| {
            let aged = aging_ms.map_or(0, |a| (now - arrival[i]) / a);
            u64::from(waiters[i].priority) + aged
        };
        // Oldest first among equals: `left` is in arrival order, so take the first maximum.
        let best = *left
            .iter()
            .rev()
            .max_by_key(|&&i| effective(i))
            .expect("non-empty");
        let best = left
            .iter()
            .copied()
            .find(|&i| effective(i) == effective(best))
            .expect("present");
        left.retain(|&i| i != best);
        order.push(best);
        now += hold_ms;
    }
    order
}

fn run(waiters: &[Waiter], aging_ms: Option<u64>, hold_ms: u64) -> Vec<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let mut b = Limiter::builder().max_concurrency(1);
        if let Some(a) = aging_ms {
            b = b.aging(Duration::from_millis(a));
        }
        let limiter = b.build().unwrap();
        let held = limiter.acquire_owned().await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, w) in waiters.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(w.gap_ms)).await;
            let limiter = limiter.clone();
            let order = order.clone();
            let priority = Priority::new(w.priority).unwrap();
            tasks.push(tokio::spawn(async move {
                let _p = limiter.acquire_with(priority).await.unwrap();
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            }));
            support::settle().await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn strict_priorities_then_fifo(ws in waiters(), hold_ms in 0u64..3) {
        let release = ws.iter().map(|w| w.gap_ms).sum::<u64>() + 1;
        prop_assert_eq!(run(&ws, None, hold_ms), model(&ws, None, release, hold_ms));
    }

    #[test]
    fn aging_order_matches_the_model(ws in waiters(), aging_ms in 1u64..6, hold_ms in 1u64..4) {
        let release = ws.iter().map(|w| w.gap_ms).sum::<u64>() + 1;
        prop_assert_eq!(run(&ws, Some(aging_ms), hold_ms), model(&ws, Some(aging_ms), release, hold_ms));
    }
}
