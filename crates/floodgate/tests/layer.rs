//! The Tower layers: permits taken in `poll_ready` and held until the response completes,
//! load shedding, rejections as errors, and per-request priorities.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use floodgate::limiter::layer::{LimiterLayer, PriorityLimiterLayer};
use floodgate::{Limiter, Priority, Rejected};
use support::{poll_once, settle};
use tower::{BoxError, Layer, Service, ServiceExt, service_fn};

fn sleepy(
    ms: u64,
) -> impl Service<
    u32,
    Response = u32,
    Error = BoxError,
    Future = impl std::future::Future<Output = Result<u32, BoxError>> + Send,
> + Clone
+ Send {
    service_fn(move |x: u32| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, BoxError>(x)
    })
}

fn rejection(e: BoxError) -> Rejected {
    *e.downcast::<Rejected>().expect("a Rejected error")
}

#[tokio::test(start_paused = true)]
async fn the_permit_is_held_until_the_response_completes() {
    let limiter = Limiter::new(2);
    let mut svc = LimiterLayer::new(limiter.clone()).layer(sleepy(10));
    svc.ready().await.unwrap();
    assert_eq!(limiter.active(), 1, "taken in poll_ready");
    let response = svc.call(7);
    assert_eq!(limiter.active(), 1);
    assert_eq!(response.await.unwrap(), 7);
    assert_eq!(limiter.active(), 0);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_limit_but_not_the_permit() {
    let limiter = Limiter::new(3);
    let svc = LimiterLayer::new(limiter.clone()).layer(sleepy(10));
    let peak = Arc::new(Mutex::new(0));
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let svc = svc.clone();
            let limiter = limiter.clone();
            let peak = peak.clone();
            tokio::spawn(async move {
                let mut svc = svc;
                let ready = svc.ready().await.unwrap();
                {
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(limiter.active());
                }
                ready.call(i).await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*peak.lock().unwrap(), 3);
    assert_eq!(limiter.stats().acquired, 12);
    assert_eq!(limiter.available(), 3);
}

#[tokio::test(start_paused = true)]
async fn rejections_surface_from_poll_ready() {
    let limiter = Limiter::builder()
        .max_concurrency(1)
        .max_queue(0)
        .build()
        .unwrap();
    let mut a = LimiterLayer::new(limiter.clone()).layer(sleepy(10));
    let mut b = a.clone();
    a.ready().await.unwrap();
    let err = b.ready().await.map(|_| ()).unwrap_err();
    assert_eq!(rejection(err), Rejected::QueueFull { capacity: 0 });
    limiter.close();
    let mut c = LimiterLayer::new(limiter.clone()).layer(sleepy(10));
    assert_eq!(
        rejection(c.ready().await.map(|_| ()).unwrap_err()),
        Rejected::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_poll_ready_is_served_when_a_permit_frees_up() {
    let limiter = Limiter::new(1);
    let mut a = LimiterLayer::new(limiter.clone()).layer(sleepy(10));
    let mut b = a.clone();
    a.ready().await.unwrap();
    let response = a.call(1);
    let mut b_ready = Box::pin(async move {
        b.ready().await.unwrap();
        b
    });
    assert!(poll_once(b_ready.as_mut()).is_pending());
    assert_eq!(limiter.queued(), 1);
    assert_eq!(response.await.unwrap(), 1);
    let mut b = b_ready.await;
    assert_eq!(b.call(2).await.unwrap(), 2);
}

#[tokio::test(start_paused = true)]
async fn shed_mode_fails_at_once_instead_of_waiting() {
    let limiter = Limiter::new(1);
    let mut a = LimiterLayer::shed(limiter.clone()).layer(sleepy(10));
    let mut b = a.clone();
    let first = a.ready().await.unwrap().call(1);
    let second = b.ready().await.unwrap().call(2);
    assert_eq!(
        rejection(second.await.unwrap_err()),
        Rejected::QueueFull { capacity: 0 }
    );
    assert_eq!(first.await.unwrap(), 1);
    assert_eq!(b.ready().await.unwrap().call(3).await.unwrap(), 3);
    assert_eq!(limiter.stats().rejected.queue_full, 1);
}

#[tokio::test(start_paused = true)]
async fn the_priority_layer_serves_urgent_requests_first() {
    let limiter = Limiter::new(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let inner = service_fn(move |x: u32| {
        let o = o.clone();
        async move {
            o.lock().unwrap().push(x);
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, BoxError>(x)
        }
    });
    // The request's value is its priority.
    let svc = PriorityLimiterLayer::new(limiter.clone(), |x: &u32| {
        Priority::new(*x as u8).unwrap_or(Priority::LOWEST)
    })
    .layer(inner);
    let held = limiter.acquire().await.unwrap();
    let tasks: Vec<_> = [2u32, 9, 5, 10, 1]
        .into_iter()
        .map(|p| {
            // Always ready: the wait happens in the (boxed, `Send`) response future.
            let response = svc.clone().call(p);
            tokio::spawn(response)
        })
        .collect();
    settle().await;
    assert_eq!(limiter.queued(), 5);
    drop(held);
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![10, 9, 5, 2, 1]);
}
