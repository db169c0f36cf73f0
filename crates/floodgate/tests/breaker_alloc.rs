//! The closed-state path of a circuit breaker allocates nothing (its own test binary: it
//! installs a counting global allocator).
//!
//! Allocations are counted on the test's own thread only (`allocation_counter` keeps its
//! counters per thread): the test harness's main thread, which formats and prints results
//! while this test runs, allocates too, and a process-wide counter once failed this test on a
//! loaded machine for that reason alone.

use std::future::ready;

use floodgate::breaker::CircuitBreaker;

#[test]
fn closed_state_calls_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let breaker = CircuitBreaker::new("alloc");
    rt.block_on(async {
        // Warm up: anything lazily initialised happens here.
        let _ = breaker.call(|| ready(Err::<u32, &str>("no"))).await;
        for _ in 0..20 {
            breaker.call(|| ready(Ok::<u32, &str>(1))).await.unwrap();
        }
    });
    // The counter works: a measured allocation is seen (so a zero below is not vacuous).
    let probe = allocation_counter::measure(|| drop(std::hint::black_box(Box::new(7u64))));
    assert_eq!(probe.count_total, 1, "the counting allocator is installed");
    let calls = allocation_counter::measure(|| {
        rt.block_on(async {
            for i in 0..10_000u32 {
                let v = breaker.call(|| ready(Ok::<u32, &str>(i))).await.unwrap();
                assert_eq!(v, i);
            }
        });
    });
    assert_eq!(
        calls.count_total, 0,
        "a closed-state success allocated: {calls:?}"
    );
    assert_eq!(breaker.stats().calls, 10_021);
}
