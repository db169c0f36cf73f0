//! A million items through the batch runners: never more than `limit` futures alive, and the
//! heap grows by the output, not by the input. Its own test binary, because it installs a
//! counting global allocator.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use floodgate::{Limiter, batch};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

#[test]
fn a_million_items_keep_at_most_limit_futures_and_little_memory() {
    const ITEMS: usize = 1_000_000;
    const LIMIT: usize = 16;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let limiter = Limiter::new(LIMIT);
    let before = HEAP.current_usage();
    HEAP.reset_peak_usage();
    let out = rt.block_on(batch::run_all(0..ITEMS, &limiter, |i| {
        let n = live.fetch_add(1, SeqCst) + 1;
        peak.fetch_max(n, SeqCst);
        let live = live.clone();
        async move {
            tokio::task::yield_now().await;
            live.fetch_sub(1, SeqCst);
            Ok::<_, ()>(i as u8)
        }
    }));
    let extra = HEAP.peak_usage().saturating_sub(before);
    let out = out.unwrap();
    assert_eq!(out.len(), ITEMS);
    assert!(out.iter().enumerate().all(|(i, v)| *v == i as u8));
    assert!(
        peak.load(SeqCst) <= LIMIT,
        "peak live futures {}",
        peak.load(SeqCst)
    );
    // The output is 1 MB of `u8` (2 MB of `Option<u8>` slots while running, growing by
    // doubling); a runner that collected the futures up front would need hundreds of MB.
    println!("peak extra heap: {} KiB", extra / 1024);
    assert!(extra < 12 * 1024 * 1024, "peak extra heap {extra} bytes");
}
