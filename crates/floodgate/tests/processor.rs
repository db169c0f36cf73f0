//! The in-memory processor: concurrent submissions, backpressure at exact capacity, error and
//! panic isolation, typed params, per-method protection, shutdown under load.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use floodgate::Limiter;
use floodgate::breaker::CircuitBreaker;
use floodgate::processor::{
    HandlerError, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, MethodOptions, Notification,
    Processor, ProcessorError, Request,
};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

fn req(id: u64, method: &str, params: Value) -> Request {
    Request {
        id: json!(id),
        method: method.into(),
        params,
    }
}

fn echo_processor(workers: usize, capacity: usize) -> Processor {
    let p = Processor::builder()
        .workers(workers)
        .queue_capacity(capacity)
        .build()
        .unwrap();
    p.register("double", |params: Value| async move {
        let n = params
            .as_i64()
            .ok_or_else(|| HandlerError::invalid_params("expected an integer"))?;
        tokio::task::yield_now().await;
        Ok(json!(n * 2))
    });
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_tasks_submit_concurrently_and_get_their_own_answers() {
    let p = echo_processor(4, 64);
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let p = p.clone();
            tokio::spawn(async move {
                for i in 0..100u64 {
                    let n = t * 1_000 + i;
                    let r = p.submit(req(n, "double", json!(n))).await.unwrap();
                    assert_eq!(r.id, json!(n));
                    assert_eq!(r.into_result().unwrap(), json!(n * 2));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = p.stats();
    assert_eq!((s.processed, s.failed), (3_200, 0));
    assert_eq!(s.per_worker.iter().sum::<u64>(), 3_200);
    assert!(
        s.per_worker.iter().all(|n| *n > 0),
        "every worker took work: {:?}",
        s.per_worker
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_at_exactly_the_capacity() {
    let p = Processor::builder()
        .workers(2)
        .queue_capacity(5)
        .build()
        .unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicU32::new(0));
    let (g, s) = (gate.clone(), started.clone());
    p.register("wait", move |_| {
        let (g, s) = (g.clone(), s.clone());
        async move {
            s.fetch_add(1, SeqCst);
            let _ = g.acquire().await.unwrap();
            Ok(Value::Null)
        }
    });
    // Two messages occupy the two workers...
    let mut pending = vec![
        p.try_submit(req(0, "wait", Value::Null)).unwrap(),
        p.try_submit(req(1, "wait", Value::Null)).unwrap(),
    ];
    while started.load(SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    // ...then exactly five fit in the queue, and the sixth is refused at once.
    for i in 0..5 {
        pending.push(p.try_submit(req(10 + i, "wait", Value::Null)).unwrap());
    }
    assert_eq!(
        p.try_submit(req(99, "wait", Value::Null)).unwrap_err(),
        ProcessorError::QueueFull { capacity: 5 }
    );
    assert_eq!(
        p.try_notify(Notification {
            method: "wait".into(),
            params: Value::Null
        })
        .unwrap_err(),
        ProcessorError::QueueFull { capacity: 5 }
    );
    assert_eq!(p.stats().queued, 5);
    gate.add_permits(100);
    for r in pending {
        r.await.unwrap().into_result().unwrap();
    }
    assert_eq!(p.stats().rejected, 2);
}

#[tokio::test]
async fn unknown_methods_bad_params_failures_and_panics_are_answered_and_isolated() {
    let p = echo_processor(1, 16);
    p.register("boom", |_| async { panic!("handler bug") });
    p.register("fail", |_| async {
        Err(HandlerError::new(42, "business rule").with_data(json!({"field": "x"})))
    });
    let missing = p
        .submit(req(1, "nope", Value::Null))
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(missing.code, METHOD_NOT_FOUND);
    let bad = p
        .submit(req(2, "double", json!("seven")))
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(bad.code, INVALID_PARAMS);
    let panicked = p
        .submit(req(3, "boom", Value::Null))
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(panicked.code, INTERNAL_ERROR);
    assert!(panicked.message.contains("handler bug"));
    let failed = p
        .submit(req(4, "fail", Value::Null))
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(
        (failed.code, failed.data),
        (42, Some(json!({"field": "x"})))
    );
    // The single worker survived all of that.
    assert_eq!(
        p.submit(req(5, "double", json!(4)))
            .await
            .unwrap()
            .into_result()
            .unwrap(),
        json!(8)
    );
    let s = p.stats();
    assert_eq!((s.processed, s.failed, s.panicked), (5, 4, 1));
}

/// Regression: a handler that panics before returning its future once ended the worker task
/// (the submitter saw `Cancelled`, and with one worker later messages hung).
#[tokio::test]
async fn a_handler_panicking_before_its_future_is_isolated_too() {
    let p = echo_processor(1, 16);
    p.register::<_, std::future::Ready<Result<Value, HandlerError>>>("early", |_| {
        panic!("panicked while building the future")
    });
    let panicked = p
        .submit(req(1, "early", Value::Null))
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(panicked.code, INTERNAL_ERROR);
    assert!(panicked.message.contains("building the future"));
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        p.submit(req(2, "double", json!(4))),
    )
    .await
    .expect("the single worker survived");
    assert_eq!(next.unwrap().into_result().unwrap(), json!(8));
    assert_eq!(p.stats().panicked, 1);
}

#[tokio::test]
async fn responses_are_json_rpc_shaped() {
    let p = echo_processor(1, 4);
    let r = p.submit(req(7, "double", json!(21))).await.unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"jsonrpc": "2.0", "id": 7, "result": 42})
    );
    let r = p.submit(req(8, "nope", Value::Null)).await.unwrap();
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        json!({"jsonrpc": "2.0", "id": 8, "error": {"code": -32601, "message": "method not found: nope"}})
    );
}

#[tokio::test]
async fn typed_handlers_check_their_params() {
    #[derive(serde::Deserialize)]
    struct Add {
        a: i64,
        b: i64,
    }
    let p = Processor::builder().workers(1).build().unwrap();
    p.register_typed("add", |x: Add| async move { Ok(x.a + x.b) });
    assert_eq!(
        p.submit(req(1, "add", json!({"a": 1, "b": 2})))
            .await
            .unwrap()
            .into_result()
            .unwrap(),
        json!(3)
    );
    let e = p
        .submit(req(2, "add", json!({"a": 1})))
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(e.code, INVALID_PARAMS);
    assert!(e.message.contains("missing field `b`"), "{}", e.message);
}

#[tokio::test(start_paused = true)]
async fn methods_run_under_their_own_limiter_breaker_and_timeout() {
    let p = Processor::builder().workers(4).build().unwrap();
    let limiter = Limiter::new(1);
    let breaker = CircuitBreaker::builder()
        .consecutive_failures(2)
        .build()
        .unwrap();
    let busy = Arc::new(AtomicU32::new(0));
    let max_busy = Arc::new(AtomicU32::new(0));
    let (b, m) = (busy.clone(), max_busy.clone());
    p.register_with(
        "one-at-a-time",
        MethodOptions::new().limiter(limiter.clone()),
        move |_| {
            let (b, m) = (b.clone(), m.clone());
            async move {
                let now = b.fetch_add(1, SeqCst) + 1;
                m.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                b.fetch_sub(1, SeqCst);
                Ok(Value::Null)
            }
        },
    );
    p.register_with(
        "slow",
        MethodOptions::new().timeout(Duration::from_millis(50)),
        |_| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok(Value::Null)
        },
    );
    p.register_with(
        "flaky",
        MethodOptions::new().breaker(breaker.clone()),
        |_| async { Err(HandlerError::new(1, "down")) },
    );
    let calls: Vec<_> = (0..4)
        .map(|i| p.try_submit(req(i, "one-at-a-time", Value::Null)).unwrap())
        .collect();
    for c in calls {
        c.await.unwrap().into_result().unwrap();
    }
    assert_eq!(max_busy.load(SeqCst), 1);
    let e = p
        .submit(req(9, "slow", Value::Null))
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert!(e.message.contains("timed out"), "{}", e.message);
    for i in 0..2 {
        assert_eq!(
            p.submit(req(i, "flaky", Value::Null))
                .await
                .unwrap()
                .into_result()
                .unwrap_err()
                .code,
            1
        );
    }
    let open = p
        .submit(req(3, "flaky", Value::Null))
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(open.code, INTERNAL_ERROR);
    assert!(open.message.contains("is open"), "{}", open.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_finishes_queued_work_and_rejects_what_comes_after() {
    let p = Processor::builder()
        .workers(2)
        .queue_capacity(100)
        .build()
        .unwrap();
    let done = Arc::new(AtomicU32::new(0));
    let d = done.clone();
    p.register("work", move |_| {
        let d = d.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            d.fetch_add(1, SeqCst);
            Ok(Value::Null)
        }
    });
    let accepted: Vec<_> = (0..50)
        .map(|i| p.try_submit(req(i, "work", Value::Null)).unwrap())
        .collect();
    // Submitters racing with the shutdown.
    let racers: Vec<_> = (0..8)
        .map(|t| {
            let p = p.clone();
            tokio::spawn(async move {
                let mut outcomes = (0, 0);
                for i in 0..50 {
                    match p.submit(req(t * 100 + i, "work", Value::Null)).await {
                        Ok(r) => {
                            r.into_result().unwrap();
                            outcomes.0 += 1;
                        }
                        Err(ProcessorError::ShuttingDown) => outcomes.1 += 1,
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let report = p.shutdown(Duration::from_secs(10)).await;
    assert!(report.drained);
    assert_eq!(report.cancelled, 0);
    for a in accepted {
        a.await.unwrap().into_result().unwrap();
    }
    let mut answered = 50;
    for r in racers {
        let (ok, refused) = r.await.unwrap();
        assert_eq!(ok + refused, 50);
        answered += ok;
    }
    assert_eq!(
        done.load(SeqCst),
        answered,
        "everything accepted was processed"
    );
    assert_eq!(
        p.submit(req(1, "work", Value::Null)).await.unwrap_err(),
        ProcessorError::ShuttingDown
    );
    assert_eq!(
        p.try_notify(Notification {
            method: "work".into(),
            params: Value::Null
        })
        .unwrap_err(),
        ProcessorError::ShuttingDown
    );
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_deadline_cancels_what_is_left() {
    let p = Processor::builder()
        .workers(1)
        .queue_capacity(10)
        .build()
        .unwrap();
    p.register("stuck", |_| async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Value::Null)
    });
    let pending: Vec<_> = (0..4)
        .map(|i| p.try_submit(req(i, "stuck", Value::Null)).unwrap())
        .collect();
    tokio::task::yield_now().await;
    let report = p.shutdown(Duration::from_secs(1)).await;
    assert!(!report.drained);
    assert_eq!(report.cancelled, 4, "one running, three queued");
    for r in pending {
        assert_eq!(r.await.unwrap_err(), ProcessorError::Cancelled);
    }
}
