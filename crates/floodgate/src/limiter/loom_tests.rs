//! Loom models of the engine's acquire / release / cancel / close / resize interleavings.
//!
//! Run with `RUSTFLAGS="--cfg floodgate_loom" cargo test -p floodgate --release --lib loom`.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use loom::future::block_on;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;

use super::engine::{AcquireFuture, Config, Engine, Fast};
use super::error::Rejected;
use crate::sync::Arc;

fn engine(limit: usize) -> Arc<Engine> {
    Arc::new(Engine::new(
        limit,
        Config {
            name: "loom".to_owned(),
            max_queue: usize::MAX,
            aging: None,
            acquire_timeout: None,
        },
    ))
}

fn acquire(e: &Engine, level: usize) -> Result<(), Rejected> {
    block_on(AcquireFuture::new(e, level))
}

/// Every permit is back and nobody is queued.
fn assert_idle(e: &Engine, limit: usize) {
    assert_eq!(e.queued(), 0);
    assert_eq!(e.active(), 0);
    assert_eq!(e.available(), limit);
}

#[test]
fn loom_contended_acquires_never_exceed_the_limit() {
    loom::model(|| {
        let e = engine(1);
        let holders = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..2)
            .map(|level| {
                let e = e.clone();
                let holders = holders.clone();
                thread::spawn(move || {
                    acquire(&e, level).unwrap();
                    assert_eq!(holders.fetch_add(1, SeqCst), 0, "two holders of one permit");
                    holders.fetch_sub(1, SeqCst);
                    e.release();
                })
            })
            .collect();
        acquire(&e, 0).unwrap();
        assert_eq!(holders.fetch_add(1, SeqCst), 0, "two holders of one permit");
        holders.fetch_sub(1, SeqCst);
        e.release();
        for w in workers {
            w.join().unwrap();
        }
        assert_idle(&e, 1);
    });
}

#[test]
fn loom_a_cancelled_waiter_racing_a_release_loses_no_permit() {
    loom::model(|| {
        let e = engine(1);
        assert_eq!(e.try_fast(), Fast::Acquired);
        let releaser = {
            let e = e.clone();
            thread::spawn(move || e.release())
        };
        {
            // Queue (or take the permit at once), then give up.
            let mut fut = pin!(AcquireFuture::new(&e, 3));
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                r.unwrap();
                e.release();
            }
        }
        releaser.join().unwrap();
        assert_idle(&e, 1);
    });
}

#[test]
fn loom_a_granted_waiter_that_is_dropped_hands_the_permit_on() {
    loom::model(|| {
        let e = engine(1);
        assert_eq!(e.try_fast(), Fast::Acquired);
        let second = {
            let e = e.clone();
            thread::spawn(move || {
                acquire(&e, 0).unwrap();
                e.release();
            })
        };
        {
            let mut fut = pin!(AcquireFuture::new(&e, 9));
            let mut cx = Context::from_waker(Waker::noop());
            let first = fut.as_mut().poll(&mut cx);
            assert!(first.is_pending());
            e.release(); // probably granted to `fut`, which is dropped without looking
        }
        second.join().unwrap();
        assert_idle(&e, 1);
    });
}

#[test]
fn loom_close_racing_acquires_wakes_everyone() {
    loom::model(|| {
        let e = engine(1);
        assert_eq!(e.try_fast(), Fast::Acquired);
        let waiter = {
            let e = e.clone();
            thread::spawn(move || match acquire(&e, 0) {
                Ok(()) => e.release(),
                Err(r) => assert_eq!(r, Rejected::Closed),
            })
        };
        let closer = {
            let e = e.clone();
            thread::spawn(move || e.close())
        };
        e.release();
        waiter.join().unwrap();
        closer.join().unwrap();
        assert!(e.is_closed());
        assert_idle(&e, 1);
        assert_eq!(e.try_fast(), Fast::Closed);
    });
}

#[test]
fn loom_resizing_racing_releases_keeps_the_count() {
    loom::model(|| {
        let e = engine(2);
        assert_eq!(e.try_fast(), Fast::Acquired);
        assert_eq!(e.try_fast(), Fast::Acquired);
        let waiter = {
            let e = e.clone();
            thread::spawn(move || {
                acquire(&e, 0).unwrap();
                e.release();
            })
        };
        let releaser = {
            let e = e.clone();
            thread::spawn(move || e.release())
        };
        e.set_limit(1);
        e.release();
        waiter.join().unwrap();
        releaser.join().unwrap();
        assert_idle(&e, 1);
    });
}

/// Regression (issue 12, case 1): a shrink once stored the new limit before taking the free
/// permits, so a concurrent `active()` (and `drain`, which reads it) saw held permits as free.
#[test]
fn loom_active_is_exact_while_a_closed_limiter_is_resized() {
    loom::model(|| {
        let e = engine(4);
        assert_eq!(e.try_fast(), Fast::Acquired);
        assert_eq!(e.try_fast(), Fast::Acquired);
        e.close();
        let resizer = {
            let e = e.clone();
            thread::spawn(move || {
                e.set_limit(1);
                e.set_limit(4);
            })
        };
        assert_eq!(e.active(), 2);
        assert_eq!(e.active(), 2);
        resizer.join().unwrap();
        assert_eq!(e.active(), 2);
        e.release();
        e.release();
        assert_eq!(e.active(), 0);
    });
}

/// `active()` never reads below the permits really held while a release and a shrink race.
#[test]
fn loom_active_never_undercounts_during_release_and_shrink() {
    loom::model(|| {
        let e = engine(3);
        for _ in 0..3 {
            assert_eq!(e.try_fast(), Fast::Acquired);
        }
        let releaser = {
            let e = e.clone();
            thread::spawn(move || e.release())
        };
        let resizer = {
            let e = e.clone();
            thread::spawn(move || e.set_limit(1))
        };
        // Two are held by this thread throughout; the third may or may not be back.
        let seen = e.active();
        assert!((2..=3).contains(&seen), "active() read {seen}");
        releaser.join().unwrap();
        resizer.join().unwrap();
        assert_eq!(e.active(), 2);
        e.release();
        e.release();
        assert_idle(&e, 1);
    });
}
