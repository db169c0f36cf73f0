//! 10,000 tasks with random priorities, timeouts and cancellations against a limit of 8.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use floodgate::{Limiter, Priority};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

#[derive(Default)]
struct Tally {
    holders: AtomicUsize,
    max_holders: AtomicUsize,
    acquired: AtomicUsize,
    rejected: AtomicUsize,
    timed_out: AtomicUsize,
}

const LIMIT: usize = 8;

/// Counts a holder for as long as it lives.
struct Holding<'a>(&'a Tally);

impl<'a> Holding<'a> {
    fn new(tally: &'a Tally) -> Self {
        let now = tally.holders.fetch_add(1, SeqCst) + 1;
        tally.max_holders.fetch_max(now, SeqCst);
        assert!(now <= LIMIT, "{now} holders with a limit of {LIMIT}");
        Holding(tally)
    }
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.holders.fetch_sub(1, SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_priorities_timeouts_and_cancellations_never_exceed_the_limit() {
    const TASKS: usize = 10_000;
    let limiter = Limiter::builder()
        .name("stress")
        .max_concurrency(LIMIT)
        .max_queue(4_000)
        .acquire_timeout(Duration::from_millis(150))
        .aging(Duration::from_millis(2))
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let mut tasks = Vec::with_capacity(TASKS);
    for i in 0..TASKS {
        let priority = Priority::new(rng.random_range(1..=10)).unwrap();
        let own_timeout = Duration::from_micros(rng.random_range(50..400_000));
        let hold = Duration::from_micros(rng.random_range(0..300));
        let leased = rng.random_bool(0.1);
        let limiter = limiter.clone();
        let tally = tally.clone();
        let task = tokio::spawn(async move {
            let acquire = async {
                if leased {
                    limiter
                        .acquire_leased_with(priority, Duration::from_secs(60))
                        .await
                } else {
                    limiter.acquire_owned_with(priority).await
                }
            };
            let result = tokio::time::timeout(own_timeout, acquire).await;
            match result {
                Ok(Ok(_permit)) => {
                    // Declared after `permit`, so dropped (even by an abort) before it.
                    let _holding = Holding::new(&tally);
                    tally.acquired.fetch_add(1, SeqCst);
                    if hold > Duration::from_micros(150) {
                        tokio::time::sleep(hold).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
                Ok(Err(_rejected)) => {
                    tally.rejected.fetch_add(1, SeqCst);
                }
                Err(_elapsed) => {
                    tally.timed_out.fetch_add(1, SeqCst);
                }
            }
        });
        tasks.push(task);
        if i % 7 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Cancel a random tenth of the tasks wherever they are.
    for (i, task) in tasks.iter().enumerate() {
        if i % 10 == 3 {
            task.abort();
        }
    }
    let mut aborted = 0;
    for task in tasks {
        match task.await {
            Ok(()) => {}
            Err(e) if e.is_cancelled() => aborted += 1,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    let s = limiter.stats();
    eprintln!(
        "acquired {} timed out {} rejected {} aborted {aborted}; stats {s:?}",
        tally.acquired.load(SeqCst),
        tally.timed_out.load(SeqCst),
        tally.rejected.load(SeqCst)
    );
    assert_eq!((s.active, s.queued, s.available), (0, 0, LIMIT));
    assert!(tally.max_holders.load(SeqCst) <= LIMIT);
    assert!(s.peak_active <= LIMIT);
    let acquired = tally.acquired.load(SeqCst);
    // Aborted tasks may have been holding or granted a permit: those count as acquired too.
    assert!(s.acquired as usize >= acquired && s.acquired as usize <= acquired + aborted);
    assert_eq!(
        s.rejected.total() as usize,
        tally.rejected.load(SeqCst),
        "every rejection seen by a task is counted once"
    );
    assert!(acquired > 0 && tally.timed_out.load(SeqCst) + tally.rejected.load(SeqCst) > 0);
    // Still usable at full capacity.
    let all: Vec<_> = (0..LIMIT).map(|_| limiter.try_acquire().unwrap()).collect();
    assert!(limiter.try_acquire().is_err());
    drop(all);
}
