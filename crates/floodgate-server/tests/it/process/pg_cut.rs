//! PostgreSQL cut for 10 s under load, on the real binary: the server reaches its database
//! through a proxy the test cuts. While it is cut, `/health/ready` says not ready and enqueues
//! get `503 DATABASE_UNAVAILABLE` with `Retry-After`; after, the server is ready again by
//! itself, and every job that got a 202 exists and ends succeeded, none left running. The HTTP
//! worker keeps a ledger of the jobs it ran, so a job run twice (at least once, as promised)
//! shows, and is counted.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::PgDatabase;
use crate::support::process::{Server, http, shared_machine, try_http, try_http_full, within};
use crate::support::proxy::Proxy;

/// `url` with its host and port replaced by `127.0.0.1:port`, and the address it named.
fn through(url: &str, port: u16) -> (String, std::net::SocketAddr) {
    use std::net::ToSocketAddrs;
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, host) = match authority.rsplit_once('@') {
        Some((user, host)) => (format!("{user}@"), host),
        None => (String::new(), authority),
    };
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let addr = host
        .to_socket_addrs()
        .expect("resolve PostgreSQL")
        .next()
        .expect("an address");
    (format!("{scheme}://{user}127.0.0.1:{port}{path}"), addr)
}

#[test]
fn a_postgres_cut_loses_nothing_accepted_and_heals_by_itself() {
    let Some(db) = PgDatabase::create("cut") else {
        return;
    };
    let _machine = shared_machine();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_, upstream) = through(&db.url, 0);
    let proxy = Proxy::start(upstream);
    let (via, _) = through(&db.url, proxy.port);
    let server = Server::start(&via, dir.path());
    let port = server.port;

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(Mutex::new(Vec::<i64>::new()));
    let refused = Arc::new(Mutex::new(Vec::<(u16, Value, bool)>::new()));
    let enqueuer = thread::spawn({
        let (stop, accepted, refused) = (stop.clone(), accepted.clone(), refused.clone());
        move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let job = json!({"kind": "k", "payload": n});
                match try_http_full("POST", port, "/v1/jobs", Some(&job)) {
                    Ok((202, _, body)) => {
                        accepted.lock().unwrap().push(body["id"].as_i64().unwrap())
                    }
                    Ok((status, headers, body)) => refused.lock().unwrap().push((
                        status,
                        body["code"].clone(),
                        headers.contains_key("retry-after"),
                    )),
                    Err(e) => refused
                        .lock()
                        .unwrap()
                        .push((0, json!(e.to_string()), false)),
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
    });
    // The worker's ledger: every run of every job (an inbox would keep the first).
    let runs = Arc::new(Mutex::new(Vec::<i64>::new()));
    let drained = Arc::new(AtomicBool::new(false));
    let worker = thread::spawn({
        let (runs, drained) = (runs.clone(), drained.clone());
        move || {
            let claim = json!({"worker": "w", "limit": 20, "wait": 1, "lease_ttl": 5});
            while !drained.load(Ordering::SeqCst) {
                let Ok((200, body)) =
                    try_http("POST", port, "/v1/queues/default/claim", Some(&claim))
                else {
                    thread::sleep(Duration::from_millis(100));
                    continue;
                };
                for job in body["jobs"].as_array().cloned().unwrap_or_default() {
                    let id = job["id"].as_i64().expect("an id");
                    runs.lock().unwrap().push(id);
                    let report = json!({"lease_token": job["lease_token"], "result": {}});
                    // A report lost in the cut: the lease ends, the job runs again.
                    let _ = try_http(
                        "POST",
                        port,
                        &format!("/v1/jobs/{id}/complete"),
                        Some(&report),
                    );
                }
            }
        }
    });
    within(Duration::from_secs(20), || {
        match accepted.lock().unwrap().len() {
            n if n >= 100 => Ok(()),
            n => Err(n),
        }
    });

    proxy.cut();
    let cut_at = Instant::now();
    within(Duration::from_secs(8), || {
        match http("GET", port, "/health/ready", None) {
            (503, _) => Ok(()),
            other => Err(other),
        }
    });
    within(Duration::from_secs(8), || {
        let refused = refused.lock().unwrap();
        match refused
            .iter()
            .find(|(s, code, retry)| *s == 503 && code == "DATABASE_UNAVAILABLE" && *retry)
        {
            Some(_) => Ok(()),
            None => Err(refused.last().cloned()),
        }
    });
    let accepted_in_cut = accepted.lock().unwrap().len();
    while cut_at.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(100));
    }
    proxy.restore();
    let restored_at = Instant::now();
    within(Duration::from_secs(30), || {
        match http("GET", port, "/health/ready", None) {
            (200, _) => Ok(()),
            other => Err(other),
        }
    });
    let ready_after = restored_at.elapsed();
    within(Duration::from_secs(30), || {
        match accepted.lock().unwrap().len() {
            n if n > accepted_in_cut + 50 => Ok(()),
            n => Err(n),
        }
    });
    stop.store(true, Ordering::SeqCst);
    enqueuer.join().expect("the enqueuer");

    let accepted: Vec<i64> = accepted.lock().unwrap().clone();
    let count = |state: &str| {
        let (status, body) = http("GET", port, &format!("/v1/jobs/count?state={state}"), None);
        assert_eq!(status, 200, "{body}");
        body["count"].as_u64().expect("a count")
    };
    within(Duration::from_secs(60), || match count("succeeded") {
        n if n >= accepted.len() as u64 => Ok(()),
        n => Err((n, accepted.len())),
    });
    drained.store(true, Ordering::SeqCst);
    worker.join().expect("the worker");
    for id in &accepted {
        let (status, job) = http("GET", port, &format!("/v1/jobs/{id}"), None);
        assert_eq!(
            (status, &job["state"]),
            (200, &json!("succeeded")),
            "job {id}: {job}"
        );
    }
    assert_eq!(count("running"), 0);
    let runs = runs.lock().unwrap();
    let distinct: HashSet<i64> = runs.iter().copied().collect();
    let refused = refused.lock().unwrap();
    println!(
        "PostgreSQL cut for 10 s: {} jobs accepted ({} before the cut), {} enqueues refused \
         (503 with Retry-After), ready again {ready_after:?} after; {} runs of {} jobs ({} run \
         again after a report lost in the cut)",
        accepted.len(),
        accepted_in_cut,
        refused.len(),
        runs.len(),
        distinct.len(),
        runs.len() - distinct.len(),
    );
    assert!(
        accepted.iter().all(|id| distinct.contains(id)),
        "a job succeeded that the worker never ran"
    );
    // Every refusal was the clear one: 503 DATABASE_UNAVAILABLE with a Retry-After.
    let unclear: Vec<_> = refused
        .iter()
        .filter(|(status, code, retry)| {
            !(*status == 503 && code == "DATABASE_UNAVAILABLE" && *retry)
        })
        .collect();
    assert!(
        unclear.is_empty(),
        "{} unclear refusals: {:?}",
        unclear.len(),
        &unclear[..unclear.len().min(5)]
    );
}
