//! A million distinct keys through a keyed rate limiter: memory stays bounded by `max_keys`
//! (its own test binary: it installs a counting global allocator).

use floodgate::rate::{KeyedRateLimiter, Quota};
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

#[test]
fn a_million_hostile_keys_cost_a_bounded_amount_of_memory() {
    let limiter = KeyedRateLimiter::new(Quota::per_second(10).unwrap(), 10_000).unwrap();
    // Fill to the bound, then measure what another 990,000 keys add.
    for k in 0..10_000u64 {
        let _ = limiter.check(&format!("client-{k}"));
    }
    let filled = HEAP.current_usage();
    HEAP.reset_peak_usage();
    for k in 10_000..1_000_000u64 {
        let _ = limiter.check(&format!("client-{k}"));
    }
    let growth = HEAP.peak_usage().saturating_sub(filled);
    println!(
        "keys kept: {}; heap at the bound {} KiB, growth after 990,000 more keys {} KiB",
        limiter.len(),
        filled / 1024,
        growth / 1024
    );
    assert!(limiter.len() <= 10_016);
    // Longer key strings and the last shard evictions account for a few hundred KiB; an
    // unbounded map would hold ~990,000 more entries (tens of MB).
    assert!(growth < 1024 * 1024, "memory grew by {growth} bytes");
}
