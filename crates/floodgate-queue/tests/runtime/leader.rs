//! Single-instance roles: takeover when the holder dies, never two lease holders at once, the
//! advisory lock following its connection, and a projector that runs on one node at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use floodgate_queue::{AnyStore, Singleton, Store};

/// A candidate on a runtime of its own, so that it can die without giving anything back.
struct Candidate {
    role: Singleton,
    kill: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Candidate {
    fn start<S, F>(make_store: F, holder: &str, ttl: Duration) -> Candidate
    where
        S: Store + Clone,
        F: FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = S> + Send>>
            + Send
            + 'static,
    {
        let (role_tx, role_rx) = std::sync::mpsc::channel();
        let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
        let holder = holder.to_owned();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let store = make_store().await;
                role_tx
                    .send(Singleton::lease(store, "projector", &holder, ttl))
                    .unwrap();
                // Run until killed; then the runtime is dropped mid-term, releasing nothing.
                let _ = tokio::task::spawn_blocking(move || kill_rx.recv()).await;
            });
        });
        Candidate {
            role: role_rx.recv().unwrap(),
            kill: Some(kill_tx),
            thread: Some(thread),
        }
    }

    fn kill(&mut self) {
        drop(self.kill.take());
        self.thread.take().unwrap().join().unwrap();
    }

    fn alive(&self) -> bool {
        self.kill.is_some()
    }
}

/// Three candidates; the leader dies; another takes over; never two live leaders at once.
async fn takeover_without_overlap<S, F>(make_store: F)
where
    S: Store + Clone,
    F: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = S> + Send>>
        + Clone
        + Send
        + 'static,
{
    let ttl = Duration::from_millis(300);
    let mut candidates: Vec<Candidate> = (0..3)
        .map(|i| Candidate::start(make_store.clone(), &format!("node-{i}"), ttl))
        .collect();
    let leaders = |cs: &[Candidate]| -> Vec<usize> {
        cs.iter()
            .enumerate()
            .filter(|(_, c)| c.alive() && c.role.is_leader())
            .map(|(i, _)| i)
            .collect()
    };
    let watch = |cs: &[Candidate], for_: Duration| {
        let deadline = std::time::Instant::now() + for_;
        let mut seen = None;
        while std::time::Instant::now() < deadline {
            let now = leaders(cs);
            assert!(now.len() <= 1, "two leaders at once: {now:?}");
            if let Some(&l) = now.first() {
                seen = Some(l);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        seen
    };
    let first = tokio::task::block_in_place(|| watch(&candidates, Duration::from_secs(1)))
        .expect("someone leads within a second");
    candidates[first].kill();
    let second = tokio::task::block_in_place(|| watch(&candidates, Duration::from_secs(2)))
        .expect("another node takes over within two seconds");
    assert_ne!(first, second);
    assert_eq!(leaders(&candidates), [second]);
    for c in candidates.iter_mut().filter(|c| c.alive()) {
        c.kill();
    }
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lease_fails_over_and_never_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roles.db");
    // Create the schema once, then each candidate opens the file like a process of its own.
    floodgate_queue::SqliteStore::open(&path)
        .await
        .unwrap()
        .close()
        .await;
    takeover_without_overlap(move || {
        let path = path.clone();
        Box::pin(async move { floodgate_queue::SqliteStore::open(path).await.unwrap() })
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lease_fails_over_and_never_overlaps() {
    let Some(schema) = floodgate_testing::postgres_schema("lease_failover").await else {
        return;
    };
    let options = schema.connect_options();
    let name = schema.name().to_owned();
    takeover_without_overlap(move || {
        let (options, name) = (options.clone(), name.clone());
        Box::pin(async move {
            floodgate_queue::PgStore::builder_with(options)
                .schema(name)
                .max_connections(2)
                .connect()
                .await
                .unwrap()
        })
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advisory_lock_follows_its_connection() {
    let Some(schema) = floodgate_testing::postgres_schema("advisory_role").await else {
        return;
    };
    let retry = Duration::from_millis(50);
    // A role name of this test's own, so parallel tests do not compete for it.
    let role_name = format!("projector-{}", schema.name());

    // Node A on a runtime of its own, so it can die with its connection.
    let (role_tx, role_rx) = std::sync::mpsc::channel();
    let (kill_tx, kill_rx) = std::sync::mpsc::channel::<()>();
    let options = schema.connect_options();
    let name = role_name.clone();
    let node_a = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy_with(options);
            role_tx
                .send(Singleton::advisory(&pool, &name, "node-a", retry))
                .unwrap();
            let _ = tokio::task::spawn_blocking(move || kill_rx.recv()).await;
        });
    });
    let a = role_rx.recv().unwrap();
    tokio::time::timeout(Duration::from_secs(10), a.wait_until_leader())
        .await
        .unwrap();
    let b = Singleton::advisory(schema.pool(), &role_name, "node-b", retry);
    // Six of B's tries (its attempts signal nothing when they fail).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.is_leader() && !b.is_leader(), "the lock has one holder");

    // Node A dies (runtime and connection gone): the server frees the lock, B takes it.
    drop(kill_tx);
    node_a.join().unwrap();
    tokio::time::timeout(Duration::from_secs(10), b.wait_until_leader())
        .await
        .expect("the other node takes over");

    // B's connection is killed under it: B notices it lost the role (and competes again).
    let mut changes = b.changes();
    let killed: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.objid = hashtext($1)::oid AND l.granted",
    )
    .bind(format!("floodgate:role:{role_name}"))
    .fetch_one(schema.pool())
    .await
    .unwrap();
    assert_eq!(killed, 1);
    tokio::time::timeout(Duration::from_secs(10), changes.wait_for(|leader| !*leader))
        .await
        .expect("the holder notices its connection is gone")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), b.wait_until_leader())
        .await
        .expect("and takes the free lock again");
    b.stop().await;
}

crate::support::backends!(
    the_projector_runs_as_a_singleton,
    a_holder_that_cannot_renew_steps_down
);

/// Seed 003's projector: it runs on one node at a time and moves when that node goes.
async fn the_projector_runs_as_a_singleton<S: Store + Clone>(store: &S) {
    let active = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let terms = Arc::new(AtomicUsize::new(0));
    let nodes: Vec<Singleton> = (0..2)
        .map(|i| {
            Singleton::lease(
                store.clone(),
                "projector",
                &format!("node-{i}"),
                Duration::from_millis(300),
            )
        })
        .collect();
    for node in &nodes {
        let (node, active, most, terms) =
            (node.clone(), active.clone(), most.clone(), terms.clone());
        tokio::spawn(async move {
            node.lead(|term| {
                let (active, most, terms) = (active.clone(), most.clone(), terms.clone());
                async move {
                    terms.fetch_add(1, Ordering::SeqCst);
                    let n = active.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    term.cancelled().await; // project events until leadership ends
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            })
            .await;
        });
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while terms.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leader = nodes.iter().position(Singleton::is_leader).unwrap();
    nodes[leader].stop().await; // releases the row: the other takes over at its next renewal
    while terms.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the projector moved"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "never two projectors at once"
    );
    assert!(nodes[1 - leader].is_leader());
    nodes[1 - leader].stop().await;
}

/// A holder that cannot renew (its database is gone) steps down by itself when its lease runs
/// out, before anyone else could take the role.
async fn a_holder_that_cannot_renew_steps_down<S: Store + Clone + Into<AnyStore>>(store: &S) {
    let ttl = Duration::from_millis(300);
    let role = Singleton::lease(store.clone(), "projector", "node-1", ttl);
    role.wait_until_leader().await;
    // Closing any clone closes the shared pools: every renewal fails from now on.
    store.clone().into().close().await;
    let lost_at = tokio::time::Instant::now();
    let mut changes = role.changes();
    tokio::time::timeout(Duration::from_secs(5), changes.wait_for(|leader| !*leader))
        .await
        .expect("steps down")
        .unwrap();
    assert!(
        lost_at.elapsed() <= ttl + Duration::from_millis(50),
        "{:?}",
        lost_at.elapsed()
    );
    role.stop().await;
}
