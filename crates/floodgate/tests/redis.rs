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
    // Gone once its TTL runs out (Redis expires it; polled, 5 s at most).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(format!("{p}rate:k"))
            .query_async(&mut conn)
            .await
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
    // Releases are sent in the background: wait for the count to come down (10 s at most).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held = nodes[0].held().await.unwrap().0;
        if held == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{held} permits still held"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

// ---- two real processes ------------------------------------------------------------------

const CHILD_ENV: &str = "FLOODGATE_REDIS_GLOBAL_CHILD";

/// Counts a holder in Redis and keeps the highest count seen.
const ENTER: &str = "local v = redis.call('INCR', KEYS[1]) \
    local m = tonumber(redis.call('GET', KEYS[2]) or '0') \
    if v > m then redis.call('SET', KEYS[2], v) end return v";

/// In child mode (set by the test below), runs 50 tasks that each hold a global permit for a
/// moment while counting holders in Redis, then exits. Otherwise checks the limit within this
/// process, so the entry point is an honest test on its own.
#[test]
fn global_limit_child_entry() {
    let child_prefix = std::env::var(CHILD_ENV).ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let Some(url) = floodgate_testing::redis_url().await else {
            return;
        };
        let own = child_prefix.is_none();
        let p = child_prefix.unwrap_or_else(|| prefix("child-self"));
        let limiter = GlobalLimiter::new(
            RedisSettings::new(&url).prefix(&p),
            "workers",
            5,
            Duration::from_secs(5),
        )
        .unwrap();
        let tasks = if own { 10 } else { 50 };
        let enter = Arc::new(redis::Script::new(ENTER));
        let client = redis::Client::open(url.as_str()).unwrap();
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let (limiter, enter, mut conn, p) =
                    (limiter.clone(), enter.clone(), conn.clone(), p.clone());
                tokio::spawn(async move {
                    let permit = limiter
                        .acquire(Duration::from_secs(60))
                        .await
                        .unwrap()
                        .expect("a permit in time");
                    let _: i64 = enter
                        .key(format!("{p}holders"))
                        .key(format!("{p}max"))
                        .invoke_async(&mut conn)
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    let _: i64 = redis::cmd("DECR")
                        .arg(format!("{p}holders"))
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    let _: i64 = redis::cmd("INCR")
                        .arg(format!("{p}done"))
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    drop(permit);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        if own {
            let mut conn = conn.clone();
            let max: i64 = redis::cmd("GET")
                .arg(format!("{p}max"))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(max <= 5);
            cleanup(&url, &p).await;
        }
    });
    if std::env::var(CHILD_ENV).is_ok() {
        std::process::exit(0);
    }
}

#[test]
fn two_processes_of_fifty_tasks_never_exceed_the_global_limit() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(url) = rt.block_on(floodgate_testing::redis_url()) else {
        return;
    };
    let p = prefix("two-processes");
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "global_limit_child_entry", "--test-threads=1"])
                .env(CHILD_ENV, &p)
                .env("REDIS_URL", &url)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child process failed");
    }
    rt.block_on(async {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let max: i64 = redis::cmd("GET")
            .arg(format!("{p}max"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let done: i64 = redis::cmd("GET")
            .arg(format!("{p}done"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            done, 100,
            "every task of both processes got a permit and finished"
        );
        assert!(
            max <= 5,
            "{max} holders at once across two processes with a global limit of 5"
        );
        assert!(max >= 2, "the permits were shared");
        cleanup(&url, &p).await;
    });
}
