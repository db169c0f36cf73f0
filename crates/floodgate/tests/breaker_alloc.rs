//! The closed-state path of a circuit breaker allocates nothing (its own test binary: it
//! installs a counting global allocator).

use std::future::ready;

use floodgate::breaker::CircuitBreaker;
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

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
        let before = HEAP.current_usage();
        HEAP.reset_peak_usage();
        for i in 0..10_000u32 {
            let v = breaker.call(|| ready(Ok::<u32, &str>(i))).await.unwrap();
            assert_eq!(v, i);
        }
        assert_eq!(
            HEAP.peak_usage(),
            before,
            "a closed-state success allocated"
        );
        assert_eq!(HEAP.current_usage(), before);
    });
    assert_eq!(breaker.stats().calls, 10_021);
}
