//! A tour of the `Limiter` in under two seconds: priorities with aging, a bounded queue, timeouts,
//! resizing at run time, leases, the batch runner and a drain.
//!
//! `cargo run --release -p floodgate --example tour`

use std::time::Duration;

use floodgate::{Limiter, Priority, Rejected, batch};
use tokio::time::{Instant, sleep};

/// A pretend model API: each call takes 40-100 ms.
async fn call_model(prompt: u32) -> Result<String, String> {
    sleep(Duration::from_millis(40 + u64::from(prompt % 7) * 10)).await;
    Ok(format!("answer to prompt {prompt}"))
}

fn show(limiter: &Limiter, what: &str) {
    let s = limiter.stats();
    println!(
        "  [{what:<22}] limit {:>2}  active {:>2}  queued {:>2}  acquired {:>3}  rejected {:>2}  p99 wait {:>6.1?}",
        s.limit,
        s.active,
        s.queued,
        s.acquired,
        s.rejected.total(),
        s.wait_p99
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let llm = Limiter::builder()
        .name("llm")
        .max_concurrency(4)
        .max_queue(24)
        .acquire_timeout(Duration::from_secs(2))
        .aging(Duration::from_millis(100))
        .build()?;

    println!("1. 30 requests, priorities 1..=10, on a limit of 4 with a queue of 24");
    let mut tasks = Vec::new();
    for i in 0..30u32 {
        let llm = llm.clone();
        let priority = Priority::new((i % 10 + 1) as u8)?;
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            match llm.acquire_with(priority).await {
                Ok(_permit) => call_model(i).await.map(|_| (priority.get(), t.elapsed())),
                Err(rejected) => Err(rejected.to_string()),
            }
        }));
    }
    sleep(Duration::from_millis(20)).await;
    show(&llm, "all 30 submitted");
    let mut by_priority: Vec<(u8, Duration)> = Vec::new();
    let mut shed = 0;
    for t in tasks {
        match t.await? {
            Ok(served) => by_priority.push(served),
            Err(_) => shed += 1,
        }
    }
    by_priority.sort();
    let avg = |lo: u8, hi: u8| {
        let w: Vec<_> = by_priority
            .iter()
            .filter(|(p, _)| (lo..=hi).contains(p))
            .map(|(_, d)| *d)
            .collect();
        w.iter().sum::<Duration>() / w.len().max(1) as u32
    };
    println!(
        "  {shed} shed at once by the queue bound; mean wait incl. call: priorities 8-10 {:.0?}, 1-3 {:.0?}",
        avg(8, 10),
        avg(1, 3)
    );
    show(&llm, "after the burst");

    println!("\n2. the dependency recovers: grow the limit to 8 while work is queued");
    let burst: Vec<_> = (0..16u32)
        .map(|i| {
            let llm = llm.clone();
            tokio::spawn(async move {
                let _p = llm.acquire().await?;
                call_model(i).await.map_err(|_| Rejected::Closed)?;
                Ok::<_, Rejected>(())
            })
        })
        .collect();
    sleep(Duration::from_millis(10)).await;
    show(&llm, "before set_limit(8)");
    llm.set_limit(8)?;
    show(&llm, "after set_limit(8)");
    for t in burst {
        t.await??;
    }

    println!("\n3. a holder that hangs: its lease runs out and the slot comes back");
    let stuck = llm.acquire_leased(Duration::from_millis(300)).await?;
    show(&llm, "lease taken");
    sleep(Duration::from_millis(350)).await;
    println!(
        "  lease expired: {}  (expired count {})",
        stuck.is_expired(),
        llm.stats().expired
    );
    drop(stuck);

    println!("\n4. the batch runner: 40 prompts through the same limiter, results in order");
    let t = Instant::now();
    let answers = batch::run_all(0..40u32, &llm, call_model).await?;
    println!(
        "  {} answers in {:.0?}; first: {:?}; last: {:?}",
        answers.len(),
        t.elapsed(),
        answers[0],
        answers[39]
    );
    show(&llm, "after the batch");

    println!("\n5. shutdown: close and drain");
    let last = {
        let permit = llm.acquire_owned().await?;
        tokio::spawn(async move {
            sleep(Duration::from_millis(150)).await;
            drop(permit);
        })
    };
    let t = Instant::now();
    llm.drain(Duration::from_secs(1)).await?;
    last.await?;
    println!(
        "  drained in {:.0?}; a new acquire now gets: {}",
        t.elapsed(),
        llm.acquire().await.unwrap_err()
    );
    show(&llm, "closed");
    println!("\ntour finished in {:.1?}", started.elapsed());
    Ok(())
}
