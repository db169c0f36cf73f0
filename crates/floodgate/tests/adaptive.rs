//! Adaptive limits: the reference's pathologies, and a simulated downstream whose latency is
//! flat up to a capacity C and grows linearly beyond it. Deterministic: paused time, a
//! current-thread runtime and a seeded RNG.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use floodgate::Limiter;
use floodgate::adaptive::{
    AdaptiveLimiter, Aimd, Gradient2, LimitAlgorithm, Sample, SampleOutcome, Vegas,
};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::time::sleep;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A sample of a call that started `started_ms` after a fixed origin.
fn sample_at(
    started_ms: u64,
    latency: Duration,
    in_flight: usize,
    outcome: SampleOutcome,
) -> Sample {
    static ORIGIN: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(tokio::time::Instant::now);
    Sample {
        started: origin + ms(started_ms),
        latency,
        in_flight,
        outcome,
    }
}

fn algorithms() -> Vec<(&'static str, Box<dyn LimitAlgorithm>)> {
    vec![
        (
            "aimd",
            Box::new(Aimd::default().limits(50, 1, 500).timeout(ms(100))),
        ),
        ("vegas", Box::new(Vegas::default().limits(50, 1, 500))),
        (
            "gradient2",
            Box::new(Gradient2::default().limits(50, 1, 500)),
        ),
    ]
}

#[test]
fn calls_that_all_time_out_at_one_latency_never_raise_the_limit() {
    for (name, mut algo) in algorithms() {
        // One call starts every millisecond and every call times out after 100 ms.
        let start = algo.limit();
        let mut previous = start;
        for i in 0..10_000 {
            let in_flight = algo.limit();
            algo.update(sample_at(i, ms(100), in_flight, SampleOutcome::Dropped));
            assert!(
                algo.limit() <= previous,
                "{name}: the limit rose on a timeout"
            );
            previous = algo.limit();
        }
        assert!(
            algo.limit() <= 2,
            "{name} should sink to its minimum, is {}",
            algo.limit()
        );
    }
}

#[test]
fn drops_lower_the_limit_and_ignored_samples_change_nothing() {
    for (name, mut algo) in algorithms() {
        // Warm up at a healthy latency.
        for i in 0..50 {
            let l = algo.limit();
            algo.update(sample_at(i, ms(10), l, SampleOutcome::Success));
        }
        let before = algo.limit();
        for i in 0..100 {
            let l = algo.limit();
            algo.update(sample_at(100 + i, ms(1), l, SampleOutcome::Ignored));
        }
        assert_eq!(
            algo.limit(),
            before,
            "{name}: ignored samples (cancellations) moved the limit"
        );
        algo.update(sample_at(300, ms(10), before, SampleOutcome::Dropped));
        assert!(algo.limit() < before, "{name}: a drop must lower the limit");
    }
}

#[test]
fn aimd_counts_slow_calls_as_drops() {
    let mut a = Aimd::default().limits(100, 1, 200).timeout(ms(50));
    a.update(sample_at(0, ms(60), 100, SampleOutcome::Success));
    assert_eq!(a.limit(), 90);
    // A call that was in flight when the limit was cut does not cut it again.
    a.update(sample_at(10, ms(60), 100, SampleOutcome::Success));
    assert_eq!(a.limit(), 90);
    // One round trip of successes adds one.
    for i in 0..91 {
        a.update(sample_at(100 + i, ms(10), 90, SampleOutcome::Success));
    }
    assert_eq!(a.limit(), 91);
    let before = a.limit();
    for i in 0..500 {
        a.update(sample_at(300 + i, ms(10), 10, SampleOutcome::Success)); // barely used: no growth
    }
    assert_eq!(a.limit(), before);
}

/// The simulated dependency: `base` latency up to `capacity` calls in flight, then linear.
struct Downstream {
    in_flight: AtomicUsize,
    capacity: AtomicUsize,
    base: Duration,
}

impl Downstream {
    fn latency(&self, in_flight: usize, rng: &mut SmallRng) -> Duration {
        let c = self.capacity.load(SeqCst) as f64;
        let load = (in_flight as f64 / c).max(1.0);
        self.base.mul_f64(load * rng.random_range(0.98..1.02))
    }
}

/// Runs `clients` closed-loop callers for `samples` samples; the capacity changes from `c1`
/// to `c2` halfway. Returns the limit after every sample.
fn simulate(algo: impl LimitAlgorithm, c1: usize, c2: usize, samples: usize) -> Vec<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let adaptive = AdaptiveLimiter::new(Limiter::builder().name("sim"), algo).unwrap();
        let down = Arc::new(Downstream {
            in_flight: AtomicUsize::new(0),
            capacity: AtomicUsize::new(c1),
            base: ms(10),
        });
        let limits = Rc::new(RefCell::new(Vec::with_capacity(samples)));
        let rng = Rc::new(RefCell::new(SmallRng::seed_from_u64(7)));
        let local = tokio::task::LocalSet::new();
        for _ in 0..(c1.max(c2) * 3) {
            let (adaptive, down, limits, rng) =
                (adaptive.clone(), down.clone(), limits.clone(), rng.clone());
            local.spawn_local(async move {
                loop {
                    if limits.borrow().len() >= samples {
                        return;
                    }
                    let permit = adaptive.acquire().await.unwrap();
                    let n = down.in_flight.fetch_add(1, SeqCst) + 1;
                    let latency = down.latency(n, &mut rng.borrow_mut());
                    sleep(latency).await;
                    down.in_flight.fetch_sub(1, SeqCst);
                    permit.success();
                    let mut l = limits.borrow_mut();
                    l.push(adaptive.limit());
                    if l.len() == samples / 2 {
                        down.capacity.store(c2, SeqCst);
                    }
                }
            });
        }
        local.await;
        Rc::try_unwrap(limits).unwrap().into_inner()
    })
}

/// After `settle` samples of each half, every limit is within 25% of that half's capacity.
fn assert_tracks(name: &str, limits: &[usize], c1: usize, c2: usize, settle: usize) {
    let half = limits.len() / 2;
    for (range, c) in [(settle..half, c1), (half + settle..limits.len(), c2)] {
        let (lo, hi) = ((c as f64 * 0.75) as usize, (c as f64 * 1.25) as usize);
        let window = &limits[range.clone()];
        let bad = window.iter().filter(|l| **l < lo || **l > hi).count();
        let (min, max) = (window.iter().min().unwrap(), window.iter().max().unwrap());
        eprintln!("{name}: capacity {c}: limit in {min}..={max} after {settle} samples");
        assert_eq!(
            bad, 0,
            "{name}: capacity {c}, limits in {min}..={max} after {settle} samples"
        );
    }
}

#[test]
fn aimd_converges_on_the_capacity_and_follows_it() {
    let limits = simulate(
        Aimd::default().limits(20, 1, 1_000).timeout(ms(12)),
        100,
        50,
        40_000,
    );
    assert_tracks("aimd", &limits, 100, 50, 8_000);
}

#[test]
fn vegas_converges_on_the_capacity_and_follows_it() {
    let limits = simulate(Vegas::default().limits(20, 1, 1_000), 100, 50, 40_000);
    assert_tracks("vegas", &limits, 100, 50, 8_000);
}

#[test]
fn gradient2_converges_on_the_capacity_and_follows_it() {
    let limits = simulate(
        Gradient2::default().limits(20, 1, 1_000).tolerance(1.1),
        100,
        50,
        40_000,
    );
    assert_tracks("gradient2", &limits, 100, 50, 8_000);
}

#[tokio::test(start_paused = true)]
async fn the_limiter_follows_the_algorithm_and_keeps_its_features() {
    let adaptive = AdaptiveLimiter::new(
        Limiter::builder()
            .name("db")
            .max_queue(1)
            .acquire_timeout(ms(500)),
        Aimd::default().limits(4, 1, 10),
    )
    .unwrap();
    assert_eq!(adaptive.limit(), 4);
    let p = adaptive.acquire().await.unwrap();
    p.dropped();
    assert_eq!(adaptive.limit(), 3, "a drop shrank the limiter");
    // Queue bound and timeout still apply.
    let held: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(adaptive.acquire().await.unwrap());
        }
        v
    };
    let a2 = adaptive.clone();
    let waiter = tokio::spawn(async move { a2.acquire().await.map(|p| p.ignore()) });
    tokio::task::yield_now().await;
    assert!(matches!(
        adaptive.acquire().await,
        Err(floodgate::Rejected::QueueFull { capacity: 1 })
    ));
    assert!(matches!(
        waiter.await.unwrap(),
        Err(floodgate::Rejected::Timeout { .. })
    ));
    for p in held {
        p.ignore();
    }
    assert_eq!(adaptive.limiter().active(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_layer_records_errors_as_drops_and_cancellations_as_nothing() {
    use floodgate::adaptive::layer::AdaptiveLimitLayer;
    use tower::{Layer, ServiceExt, service_fn};

    let adaptive = AdaptiveLimiter::new(
        Limiter::builder().name("api"),
        Aimd::default().limits(10, 1, 10),
    )
    .unwrap();
    let svc =
        AdaptiveLimitLayer::new(adaptive.clone()).layer(service_fn(|fail: bool| async move {
            sleep(ms(10)).await;
            if fail { Err("503") } else { Ok(()) }
        }));
    svc.clone().oneshot(true).await.unwrap_err();
    assert_eq!(adaptive.limit(), 9);
    // A cancelled call (timed out by the caller) is not a drop.
    let _ = tokio::time::timeout(ms(1), svc.clone().oneshot(false)).await;
    sleep(ms(100)).await;
    assert_eq!(adaptive.limit(), 9);
    svc.oneshot(false).await.unwrap();
    assert_eq!(adaptive.limiter().active(), 0);
}
