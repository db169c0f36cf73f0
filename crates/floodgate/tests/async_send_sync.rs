//! The public futures and types can cross threads (`tokio::spawn` needs `Send`).

use floodgate::{Limiter, OwnedPermit, Permit, Priority, batch};

fn is_send<T: Send>(_: &T) {}
fn is_send_sync<T: Send + Sync>() {}

#[test]
fn limiter_types_and_futures_are_send() {
    is_send_sync::<Limiter>();
    is_send_sync::<OwnedPermit>();
    is_send_sync::<Permit<'static>>();
    let l = Limiter::new(1);
    is_send(&l.acquire());
    is_send(&l.acquire_with(Priority::HIGHEST));
    is_send(&l.acquire_owned());
    is_send(&l.acquire_leased(std::time::Duration::from_secs(1)));
    is_send(&l.drain(std::time::Duration::from_secs(1)));
    is_send(&batch::run_all(0..3, &l, |i| async move { Ok::<_, ()>(i) }));
    is_send(&batch::run_all_settled(0..3, 2, |i| async move {
        Ok::<_, ()>(i)
    }));
}

#[test]
fn resilience_futures_are_send() {
    use std::time::Duration;

    use floodgate::breaker::{BreakerRegistry, CircuitBreaker};
    use floodgate::flight::SingleFlight;
    use floodgate::hedge::{Hedge, HedgeDelay};
    use floodgate::retry::{ExponentialBackoff, Retry};

    is_send_sync::<CircuitBreaker>();
    is_send_sync::<BreakerRegistry>();
    is_send_sync::<floodgate::rate::RateLimiter>();
    is_send_sync::<floodgate::rate::KeyedRateLimiter<String>>();
    is_send_sync::<floodgate::shutdown::Shutdown>();
    is_send_sync::<floodgate::adaptive::AdaptiveLimiter>();
    let b = CircuitBreaker::new("x");
    is_send(&b.call(|| async { Ok::<_, String>(1) }));
    let r = Retry::new(ExponentialBackoff::new(Duration::from_millis(1)));
    is_send(&r.run(|| async { Ok::<_, String>(1) }));
    let h = Hedge::new(HedgeDelay::Fixed(Duration::from_millis(1)));
    is_send(&h.run(|| async { Ok::<_, String>(1) }));
    let f: SingleFlight<String, u32, String> = SingleFlight::new("f");
    is_send(&f.run("k".into(), || async { Ok(1) }));
    let l = floodgate::rate::RateLimiter::per_second(1).unwrap();
    is_send(&l.until_ready());
}

#[tokio::test]
async fn processor_futures_are_send() {
    use floodgate::processor::{Processor, Request};
    let p = Processor::builder().workers(1).build().unwrap();
    is_send(&p.submit(Request {
        id: serde_json::json!(1),
        method: "m".into(),
        params: serde_json::Value::Null,
    }));
    is_send(&p.shutdown(std::time::Duration::from_secs(1)));
}
