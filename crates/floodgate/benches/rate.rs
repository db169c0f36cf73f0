//! GCRA rate limiting beside governor: a direct limiter and a keyed one over 1,000 keys.
//!
//! `cargo bench -p floodgate --bench rate`

use std::hint::black_box;
use std::num::NonZeroU32;

use criterion::{Criterion, criterion_group, criterion_main};
use floodgate::rate::{KeyedRateLimiter, Quota, RateLimiter};

const RATE: u32 = 1_000_000;
const BURST: u32 = 1_000_000;

fn direct(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate/direct_check");
    let gov = governor::RateLimiter::direct(
        governor::Quota::per_second(NonZeroU32::new(RATE).unwrap())
            .allow_burst(NonZeroU32::new(BURST).unwrap()),
    );
    g.bench_function("governor", |b| b.iter(|| black_box(gov.check().is_ok())));
    let ours = RateLimiter::new(Quota::per_second(RATE).unwrap().burst(BURST).unwrap());
    g.bench_function("floodgate", |b| b.iter(|| black_box(ours.check().is_ok())));
    g.finish();
}

fn keyed(c: &mut Criterion) {
    let mut g = c.benchmark_group("rate/keyed_check_1000_keys");
    let gov = governor::RateLimiter::keyed(
        governor::Quota::per_second(NonZeroU32::new(RATE).unwrap())
            .allow_burst(NonZeroU32::new(BURST).unwrap()),
    );
    let mut k = 0u32;
    g.bench_function("governor", |b| {
        b.iter(|| {
            k = (k + 1) % 1_000;
            black_box(gov.check_key(&k).is_ok())
        })
    });
    let ours = KeyedRateLimiter::new(
        Quota::per_second(RATE).unwrap().burst(BURST).unwrap(),
        10_000,
    )
    .unwrap();
    let mut k = 0u32;
    g.bench_function("floodgate", |b| {
        b.iter(|| {
            k = (k + 1) % 1_000;
            black_box(ours.check(&k).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, direct, keyed);
criterion_main!(benches);
