//! The memory watch stops claiming above the high-water mark and resumes below the low one.
//! In a test binary of its own, so no other test moves this process's memory meanwhile.

use std::time::Duration;

use floodgate_queue::worker::{KindOptions, MemoryWatch, Outcome, Worker, WorkerEvent};
use floodgate_queue::{JobState, NewJob, SqliteStore, Store};
use serde_json::json;

mod support;

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claiming_pauses_above_the_high_water_mark_and_resumes_below_the_low_one() {
    if !cfg!(target_os = "linux") {
        eprintln!("skipped: resident memory is read from /proc");
        return;
    }
    const MIB: u64 = 1024 * 1024;
    let store = SqliteStore::in_memory().await.unwrap();
    let base = rss();
    let handle = Worker::builder(store.clone())
        .poll_interval(Duration::from_millis(20))
        .memory_watch(MemoryWatch {
            high: base + 200 * MIB,
            low: base + 100 * MIB,
            every: Duration::from_millis(10),
        })
        .handler("k", KindOptions::new(), |_, _| async {
            Ok(Outcome::done())
        })
        .build()
        .unwrap()
        .start();
    let mut events = handle.events();

    // 400 MiB, touched so it is resident.
    let ballast = vec![1u8; 400 * MIB as usize];
    let high = support::next_event(&mut events, |e| match e {
        WorkerEvent::MemoryHigh { rss } => Some(rss),
        _ => None,
    })
    .await;
    assert!(high > base + 200 * MIB);
    // A claim round that passes up for memory comes after any claim in flight when the mark
    // was passed; then rounds after the enqueue pass the job up too.
    let seen = handle.stats().claims_passed_up;
    support::passes_up(&handle, seen + 1).await;
    let id = store
        .enqueue(NewJob::new("k", json!(null)))
        .await
        .unwrap()
        .id;
    let seen = handle.stats().claims_passed_up;
    support::passes_up(&handle, seen + 3).await;
    assert_eq!(
        store.job(id).await.unwrap().unwrap().state,
        JobState::Pending,
        "not claimed"
    );

    assert_eq!(ballast.iter().map(|b| *b as u64).sum::<u64>(), 400 * MIB);
    drop(ballast); // returned to the OS (a large allocation is its own mapping)
    support::next_event(&mut events, |e| match e {
        WorkerEvent::MemoryNormal { .. } => Some(()),
        _ => None,
    })
    .await;
    // Claiming resumed.
    support::eventually(&store, id, JobState::Succeeded).await;
    handle.shutdown(Duration::from_secs(5)).await;
}
