//! Single-instance roles: at most one node runs a role (a projector, the maintenance tasks)
//! at a time, and another takes over when it dies.
//!
//! * [`Singleton::lease`]: an expiring row renewed by its holder every third of its TTL.
//!   Works on SQLite and PostgreSQL, and behind transaction-pooling proxies. A holder that
//!   cannot renew steps down when its local copy of the lease runs out — measured from before
//!   it sent the renewal, so always before the row expires in the database and another node can
//!   take it: there are never two leaders at once (given clocks that run at the same rate).
//! * [`Singleton::advisory`] (PostgreSQL): `pg_try_advisory_lock` on a dedicated connection
//!   held for as long as the role runs; when that connection dies the server releases the lock
//!   at once and another node takes it at its next try. The holder learns of the loss at its
//!   next check (every `retry` interval), so for that long both may believe they lead: use the
//!   lease where that matters. **Session advisory locks do not survive transaction-pooling
//!   proxies** (PgBouncer in transaction mode hands the session to others): connect directly.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), floodgate_queue::StoreError> {
//! use std::time::Duration;
//! use floodgate_queue::{Singleton, SqliteStore};
//!
//! let store = SqliteStore::in_memory().await?;
//! let role = Singleton::lease(store, "projector", "node-1", Duration::from_secs(10));
//! role.wait_until_leader().await;
//! assert!(role.is_leader());
//! role.stop().await; // releases the row: another node takes over at once
//! # Ok(()) }
//! ```

#[cfg(feature = "postgres")]
mod advisory;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::Store;

/// A role this node may hold. Cheap to clone; the role is given up when [`stop`](Self::stop)
/// is called or the runtime that holds it ends.
#[derive(Debug, Clone)]
pub struct Singleton {
    inner: Arc<Inner>,
}

/// A role's shared state, between its handle and the task that competes for it (here for the
/// lease, in `leader/advisory.rs` for the advisory lock).
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) name: String,
    holder: String,
    leader: watch::Sender<bool>,
    /// How many `lead` terms are running: the role is released only once they have ended.
    terms: watch::Sender<usize>,
    pub(crate) stop: CancellationToken,
    tasks: TaskTracker,
}

impl Singleton {
    fn new(name: &str, holder: &str) -> Self {
        Singleton {
            inner: Arc::new(Inner {
                name: name.to_owned(),
                holder: holder.to_owned(),
                leader: watch::channel(false).0,
                terms: watch::channel(0).0,
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Competes for role `name` as `holder` with an expiring lease row of `ttl` in `store`,
    /// renewed every `ttl / 3`. Spawns on the current Tokio runtime.
    pub fn lease<S: Store + Clone>(store: S, name: &str, holder: &str, ttl: Duration) -> Self {
        let role = Singleton::new(name, holder);
        let inner = role.inner.clone();
        role.inner.tasks.spawn(run_lease(store, inner, ttl));
        role.inner.tasks.close();
        role
    }

    /// Competes for role `name` with a PostgreSQL session advisory lock held on a connection
    /// of its own (taken from `pool` and detached from it), trying every `retry` while another
    /// node holds it and checking the connection as often while holding it.
    #[cfg(feature = "postgres")]
    pub fn advisory(pool: &sqlx::PgPool, name: &str, holder: &str, retry: Duration) -> Self {
        let role = Singleton::new(name, holder);
        let inner = role.inner.clone();
        role.inner
            .tasks
            .spawn(advisory::run(pool.clone(), inner, retry));
        role.inner.tasks.close();
        role
    }

    /// The role's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether this node holds the role now.
    pub fn is_leader(&self) -> bool {
        *self.inner.leader.borrow()
    }

    /// Leadership changes (`true` on taking the role, `false` on losing it).
    pub fn changes(&self) -> watch::Receiver<bool> {
        self.inner.leader.subscribe()
    }

    /// Resolves once this node holds the role.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops waiting.
    pub async fn wait_until_leader(&self) {
        let mut rx = self.changes();
        let _ = rx.wait_for(|leader| *leader).await;
    }

    /// Runs `role` whenever this node leads, until [`stop`](Self::stop): it gets a token that
    /// is cancelled when leadership is lost or the role stops — it must then return promptly
    /// (it is awaited, not dropped, so it never stops half-way through a step) — and runs
    /// again on the next term. On [`stop`](Self::stop) the role is released only after `role`
    /// has returned (or when the lease would run out anyway), so the next leader never
    /// overlaps it.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe while a term runs: dropping the future drops `role`'s future at
    /// whatever point it was awaiting, and the term still counts as running, so a later
    /// [`stop`](Self::stop) waits until the lease would have run out (30 s for
    /// [`advisory`](Self::advisory)) before releasing the role. Between terms it only stops
    /// waiting. To end it, call [`stop`](Self::stop): `lead` then returns once `role` has.
    pub async fn lead<F, Fut>(&self, mut role: F)
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut rx = self.changes();
        loop {
            tokio::select! {
                _ = self.inner.stop.cancelled() => return,
                r = rx.wait_for(|leader| *leader) => if r.is_err() { return },
            }
            let term = self.inner.stop.child_token();
            let watcher = {
                let term = term.clone();
                let mut rx = self.changes();
                async move {
                    let _ = rx.wait_for(|leader| !*leader).await;
                    term.cancel();
                }
            };
            self.inner.terms.send_modify(|n| *n += 1);
            let work = role(term.clone());
            tokio::pin!(work);
            tokio::select! {
                _ = &mut work => {}
                // Leadership lost: the token is cancelled; let the role wind down (it must
                // return promptly) rather than drop it mid-step.
                _ = watcher => work.await,
            }
            term.cancel();
            self.inner.terms.send_modify(|n| *n -= 1);
            if self.inner.stop.is_cancelled() {
                return;
            }
            let _ = rx.wait_for(|leader| !*leader).await;
        }
    }

    /// Gives the role up (releasing it at once for another node) and stops competing.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe once polled: the first poll tells the role's task to stop, and that task
    /// goes on to release the role (after the running `lead` term returned) whether or not
    /// this future is awaited further; dropping it only stops waiting. Call it again to wait.
    /// A future dropped before it was ever polled does nothing.
    pub async fn stop(&self) {
        self.inner.stop.cancel();
        self.inner.tasks.wait().await;
    }
}

/// Waits (up to `bound`) until no `lead` term runs.
pub(crate) async fn terms_ended(inner: &Inner, bound: Duration) {
    let mut terms = inner.terms.subscribe();
    let _ = tokio::time::timeout(bound, terms.wait_for(|n| *n == 0)).await;
}

/// Records whether this node holds the role (logged and exported when it changes).
pub(crate) fn set(inner: &Inner, leader: bool) {
    let changed = inner
        .leader
        .send_if_modified(|l| std::mem::replace(l, leader) != leader);
    if changed {
        if leader {
            tracing::info!(role = %inner.name, holder = %inner.holder, "took the role");
        } else {
            tracing::warn!(role = %inner.name, holder = %inner.holder, "lost the role");
        }
        metrics::gauge!("floodgate_leader", "role" => inner.name.clone()).set(if leader {
            1.0
        } else {
            0.0
        });
    }
}

/// Gives the role up locally once the lease this node last secured has run out (checked both
/// after a renewal attempt and on waking, so it never acts past its lease).
fn step_down_if_expired(inner: &Inner, valid_until: &mut Option<Instant>) {
    if valid_until.is_some_and(|until| Instant::now() >= until) {
        *valid_until = None;
        set(inner, false);
    }
}

async fn run_lease<S: Store>(store: S, inner: Arc<Inner>, ttl: Duration) {
    let renew_every = ttl / 3;
    // Until when this node may act as leader without another successful renewal.
    let mut valid_until: Option<Instant> = None;
    loop {
        let sent = Instant::now();
        let step_down = valid_until.unwrap_or(sent + ttl);
        let attempt = store.leader_acquire(&inner.name, &inner.holder, ttl);
        let outcome = tokio::select! {
            _ = inner.stop.cancelled() => break,
            r = attempt => Some(r),
            _ = tokio::time::sleep_until(step_down), if valid_until.is_some() => None,
        };
        match outcome {
            Some(Ok(true)) => {
                valid_until = Some(sent + ttl);
                set(&inner, true);
            }
            Some(Ok(false)) => {
                valid_until = None;
                set(&inner, false);
            }
            Some(Err(e)) => {
                tracing::warn!(role = %inner.name, error = %e, "could not renew the role");
            }
            None => {}
        }
        step_down_if_expired(&inner, &mut valid_until);
        let next = Instant::now() + renew_every;
        let wake = valid_until.map_or(next, |until| until.min(next));
        tokio::select! {
            _ = inner.stop.cancelled() => break,
            _ = tokio::time::sleep_until(wake) => {}
        }
        step_down_if_expired(&inner, &mut valid_until);
    }
    if let Some(until) = valid_until {
        set(&inner, false);
        // Release only once the role's work has stopped (while the lease still covers it).
        terms_ended(&inner, until.saturating_duration_since(Instant::now())).await;
        let _ = store.leader_release(&inner.name, &inner.holder).await;
    }
}
