//! The Redis-backed limiters against the real Redis at `REDIS_URL` (skipped, with a printed
//! reason, when it is not there, unless `FLOODGATE_REQUIRE_SERVICES=1`). Each test uses a key
//! prefix of its own and deletes its keys afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use floodgate::rate::redis::{FailurePolicy, GlobalLimiter, RedisRateLimiter, RedisSettings};
use floodgate::rate::{NotUntil, Quota, RateError};

fn prefix(test: &str) -> String {
    format!(
        "fgtest:{}:{}:{}:",
        test,
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Deletes every key under `prefix`.
async fn cleanup(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn two_nodes_share_one_budget_exactly() {
    let Some(url) = floodgate_testing::redis_url().await else {
        return;
    };
    let p = prefix("share");
    let quota = Quota::per_minute(10).unwrap();
    let a = RedisRateLimiter::new(RedisSettings::new(&url).prefix(&p), quota).unwrap();
    let b = RedisRateLimiter::new(RedisSettings::new(&url).prefix(&p), quota).unwrap();
    let mut allowed = 0;
    for i in 0..30 {
        let node = if i % 2 == 0 { &a } else { &b };
        match node.check("tenant-1").await {
            Ok(()) => allowed += 1,
            Err(RateError::Limited(NotUntil::Wait(w))) => assert!(w <= Duration::from_secs(6)),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(allowed, 10, "a burst of 10 shared by both nodes");
    // Another key has its own budget; more than the burst at once never passes.
    a.check("tenant-2").await.unwrap();
    assert!(matches!(
        a.check_n("tenant-2", 11).await,
        Err(RateError::Limited(NotUntil::Never { burst: 10 }))
    ));
    cleanup(&url, &p).await;
}

#[tokio::test]
async fn idle_rate_keys_expire() {
    let Some(url) = floodgate_testing::redis_url().await else {
        return;
    };
    let p = prefix("expire");
    let l = RedisRateLimiter::new(
        RedisSettings::new(&url).prefix(&p),
        Quota::per_second(20).unwrap().burst(1).unwrap(),
    )
    .unwrap();
    l.check("k").await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{p}rate:k"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 60,
        "the key lives only until its bucket is full again: {ttl} ms"
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(format!("{p}rate:k"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_limit_holds_across_two_nodes_of_fifty_tasks() {
    let Some(url) = floodgate_testing::redis_url().await else {
        return;
    };
    let p = prefix("global");
    let nodes: Vec<GlobalLimiter> = (0..2)
        .map(|_| {
            GlobalLimiter::new(
                RedisSettings::new(&url).prefix(&p),
                "workers",
                5,
                Duration::from_secs(5),
            )
            .unwrap()
        })
        .collect();
    let holders = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for node in &nodes {
        for _ in 0..50 {
            let (node, holders, peak) = (node.clone(), holders.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let permit = node
                    .acquire(Duration::from_secs(30))
                    .await
                    .unwrap()
                    .expect("a permit in time");
                let now = holders.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                holders.fetch_sub(1, SeqCst);
                drop(permit);
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        peak.load(SeqCst) <= 5,
        "peak {} holders over a global limit of 5",
        peak.load(SeqCst)
    );
    assert!(
        peak.load(SeqCst) >= 2,
        "the limit was shared, not serialised"
    );
    tokio::time::sleep(Duration::from_millis(100)).await; // releases are sent in the background
    assert_eq!(nodes[0].held().await.unwrap(), 0);
    cleanup(&url, &p).await;
}

#[tokio::test]
async fn a_crashed_holders_permit_returns_after_its_ttl() {
    let Some(url) = floodgate_testing::redis_url().await else {
        return;
    };
    let p = prefix("crash");
    let ttl = Duration::from_millis(600);
    // The "crashed node": its own runtime, dropped with the permit still held.
    let crashed_url = url.clone();
    let crashed_prefix = p.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let permit = rt.block_on(async {
            let l = GlobalLimiter::new(
                RedisSettings::new(&crashed_url).prefix(&crashed_prefix),
                "one",
                1,
                ttl,
            )
            .unwrap();
            l.try_acquire().await.unwrap().expect("free")
        });
        std::mem::forget(permit); // no release: the process died
        drop(rt); // and its lease renewals with it
    })
    .join()
    .unwrap();
    let survivor = GlobalLimiter::new(RedisSettings::new(&url).prefix(&p), "one", 1, ttl).unwrap();
    assert!(
        survivor.try_acquire().await.unwrap().is_none(),
        "still leased"
    );
    let start = Instant::now();
    let permit = survivor
        .acquire(Duration::from_secs(5))
        .await
        .unwrap()
        .expect("the lease came back");
    assert!(start.elapsed() <= ttl + Duration::from_millis(300));
    // A held permit is renewed past its TTL.
    tokio::time::sleep(ttl * 2).await;
    assert!(!permit.is_lost());
    assert!(survivor.try_acquire().await.unwrap().is_none());
    drop(permit);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(survivor.try_acquire().await.unwrap().is_some());
    cleanup(&url, &p).await;
}

fn settings(url: &str, policy: FailurePolicy) -> RedisSettings {
    RedisSettings::new(url)
        .failure_policy(policy)
        .connect_timeout(Duration::from_millis(200))
        .command_timeout(Duration::from_millis(200))
}

#[tokio::test]
async fn failure_policies_when_redis_is_unreachable() {
    // Nothing listens on port 1.
    let url = "redis://127.0.0.1:1";
    let quota = Quota::per_second(1).unwrap();
    let open = RedisRateLimiter::new(settings(url, FailurePolicy::Open), quota).unwrap();
    let closed = RedisRateLimiter::new(settings(url, FailurePolicy::Closed), quota).unwrap();
    for _ in 0..3 {
        open.check("k").await.unwrap();
    }
    assert!(!open.is_healthy());
    let e = closed.check("k").await.unwrap_err();
    assert!(matches!(e, RateError::Unavailable { .. }), "{e}");
    assert!(e.to_string().starts_with("rate limit service unavailable"));
    let global = GlobalLimiter::new(
        settings(url, FailurePolicy::Open),
        "g",
        1,
        Duration::from_secs(1),
    )
    .unwrap();
    assert!(global.try_acquire().await.unwrap().unwrap().is_unguarded());
    let global = GlobalLimiter::new(
        settings(url, FailurePolicy::Closed),
        "g",
        1,
        Duration::from_secs(1),
    )
    .unwrap();
    assert!(matches!(
        global.try_acquire().await,
        Err(RateError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn failure_policies_when_a_command_times_out() {
    // A server that accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let url = format!("redis://{addr}");
    let quota = Quota::per_second(1).unwrap();
    let closed = RedisRateLimiter::new(settings(&url, FailurePolicy::Closed), quota).unwrap();
    let start = Instant::now();
    assert!(matches!(
        closed.check("k").await,
        Err(RateError::Unavailable { .. })
    ));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "bounded by the timeouts: {:?}",
        start.elapsed()
    );
    let open = RedisRateLimiter::new(settings(&url, FailurePolicy::Open), quota).unwrap();
    open.check("k").await.unwrap();
    silent.abort();
}
