//! The bounded breaker registry: eviction, idle expiry, allowlists, overrides, health and
//! protective mode end to end.

use std::time::Duration;

use floodgate::Limiter;
use floodgate::breaker::{
    BreakerConfig, BreakerRegistry, Health, OpenWait, ProtectiveMode, RegistryError, RegistryEvent,
    State, TripPolicy, UnknownNames,
};

fn names(r: &BreakerRegistry) -> Vec<String> {
    r.health().breakers.into_iter().map(|b| b.name).collect()
}

fn quick_trip() -> BreakerConfig {
    BreakerConfig {
        trip: TripPolicy::ConsecutiveFailures(1),
        open_wait: OpenWait::fixed(Duration::from_secs(10)),
        half_open_probes: 1,
        ..BreakerConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn evicts_the_least_recently_used_breaker_when_full() {
    let r = BreakerRegistry::builder().max_breakers(3).build().unwrap();
    for n in ["a", "b", "c"] {
        r.get(n).unwrap();
    }
    r.get("a").unwrap(); // a is now the most recently used
    r.get("d").unwrap();
    assert_eq!(names(&r), vec!["a", "c", "d"]);
    assert_eq!(r.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn never_evicts_an_open_breaker() {
    let r = BreakerRegistry::builder().max_breakers(2).build().unwrap();
    r.get("sick").unwrap().force_open();
    r.get("fine").unwrap();
    r.get("new").unwrap(); // evicts `fine`, although `sick` is older
    assert_eq!(names(&r), vec!["new", "sick"]);
    r.get("new").unwrap().force_open();
    assert_eq!(
        r.get("another").unwrap_err(),
        RegistryError::Full { max: 2 }
    );
}

#[tokio::test(start_paused = true)]
async fn drops_breakers_idle_past_the_ttl() {
    let r = BreakerRegistry::builder()
        .idle_ttl(Some(Duration::from_secs(60)))
        .build()
        .unwrap();
    r.get("old").unwrap();
    r.get("open").unwrap().force_open();
    tokio::time::sleep(Duration::from_secs(61)).await;
    r.get("fresh").unwrap();
    assert_eq!(names(&r), vec!["fresh", "open"]);
}

#[tokio::test(start_paused = true)]
async fn an_allowlist_maps_unknown_names_to_a_catch_all_or_rejects_them() {
    let r = BreakerRegistry::builder()
        .allowlist(["payments"], UnknownNames::CatchAll("unknown".into()))
        .build()
        .unwrap();
    assert_eq!(r.get("payments").unwrap().name(), "payments");
    assert_eq!(r.get("tenant-123.example").unwrap().name(), "unknown");
    assert_eq!(r.get("tenant-456.example").unwrap().name(), "unknown");
    assert_eq!(r.len(), 2);

    let strict = BreakerRegistry::builder()
        .allowlist(["payments"], UnknownNames::Reject)
        .build()
        .unwrap();
    let e = strict.get("evil").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no circuit breaker is configured for \"evil\"; add it to the allowlist"
    );
}

#[tokio::test(start_paused = true)]
async fn per_name_overrides_apply() {
    let r = BreakerRegistry::builder()
        .config_for("fragile", quick_trip())
        .build()
        .unwrap();
    assert_eq!(
        r.get("fragile").unwrap().config().trip,
        TripPolicy::ConsecutiveFailures(1)
    );
    assert_eq!(r.get("other").unwrap().config(), &BreakerConfig::default());
    let bad = BreakerConfig {
        half_open_probes: 0,
        ..BreakerConfig::default()
    };
    assert!(matches!(
        BreakerRegistry::builder().config_for("x", bad).build(),
        Err(RegistryError::Config { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn health_reports_status_and_recommendations() {
    let r = BreakerRegistry::builder()
        .default_config(quick_trip())
        .build()
        .unwrap();
    r.get("search").unwrap();
    r.get("ledger").unwrap();
    r.get("payments").unwrap();
    assert_eq!(r.health().status, Health::Healthy);
    let payments = r.get("payments").unwrap();
    let _ = payments
        .call(|| async { Err::<(), _>("connection refused") })
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let h = r.health();
    assert_eq!(h.status, Health::Degraded);
    assert_eq!(h.open, 1);
    assert_eq!(
        h.recommendations,
        vec![
            "payments has been open for 5 s (0 re-opens in a row); last error: connection refused; check the dependency"
        ]
    );
    r.get("ledger").unwrap().force_open();
    assert_eq!(r.health().status, Health::Critical, "two of three open");
}

#[tokio::test(start_paused = true)]
async fn protective_mode_shrinks_the_limiter_and_restores_it_step_by_step() {
    let workers = Limiter::new(100);
    let r = BreakerRegistry::builder()
        .default_config(quick_trip())
        .protective_mode(ProtectiveMode::new(workers.clone(), 2, 0.2))
        .build()
        .unwrap();
    let mut events = r.subscribe();
    let a = r.get("a").unwrap();
    let b = r.get("b").unwrap();
    let c = r.get("c").unwrap();
    let fail = || async { Err::<(), _>("down") };
    let _ = a.call(fail).await;
    assert_eq!(workers.limit(), 60);
    let _ = b.call(fail).await;
    assert_eq!(workers.limit(), 20);
    let _ = c.call(fail).await;
    assert_eq!(workers.limit(), 20, "never below the configured fraction");
    assert_eq!(r.health().status, Health::Critical);
    assert_eq!(r.health().protective_limit, Some((20, 100)));

    tokio::time::sleep(Duration::from_secs(10)).await;
    a.call(|| async { Ok::<_, &str>(()) }).await.unwrap(); // probe succeeds: closes
    assert_eq!(a.state(), State::Closed);
    assert_eq!(workers.limit(), 20, "still two open");
    b.call(|| async { Ok::<_, &str>(()) }).await.unwrap();
    assert_eq!(workers.limit(), 60);
    c.reset();
    assert_eq!(workers.limit(), 100);

    let mut limits = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let RegistryEvent::LimitChanged { limit, .. } = e {
            limits.push(limit);
        }
    }
    assert_eq!(limits, vec![60, 20, 60, 100]);
}
