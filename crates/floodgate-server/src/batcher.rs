//! Group commit for single-job writes: enqueues that arrive together are written in one
//! `enqueue_many`, and HTTP workers' completions in one `complete_many` (one statement, one
//! transaction, one fsync each), and each request is answered only after that commit. A 202
//! still means the job is durably stored and a 200 that the success is; the group is what
//! pays for the fsync of SQLite's `synchronous = FULL`.
//!
//! # Implementation
//!
//! A `Group` is one task owning the receiving end of a channel. It waits for the first
//! request, takes every other request already waiting (up to [`MAX_GROUP`]), writes them with
//! one call, and answers each through its oneshot. There is no timer: under light load a lone
//! request is written at once; under load requests queue while the previous group commits, so
//! groups grow exactly when commits are the bottleneck. Requests are checked one by one before
//! they join a group, so a bad one is refused alone and cannot fail its neighbours.

use std::future::Future;

use floodgate_queue::{AnyStore, Completion, Enqueued, JobId, NewJob, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// The most requests written in one group.
pub const MAX_GROUP: usize = 1_000;

type Reply<A> = oneshot::Sender<Result<A, GroupError>>;

/// Why a group write failed, as every request in the group sees it: the same outage gets the
/// same answer as any other write (503 `DATABASE_UNAVAILABLE` with `Retry-After`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    /// The database failed or could not be reached.
    #[error("the database failed or could not be reached: {0}")]
    Unavailable(String),
    /// The write failed for another reason (details in the server's log).
    #[error("the group write failed: {0}")]
    Failed(String),
    /// The group-commit task stopped (the server is stopping).
    #[error("the group-commit task stopped")]
    Stopped,
}

impl GroupError {
    fn of(e: &StoreError) -> GroupError {
        match e {
            StoreError::Open { .. } | StoreError::Database(_) => {
                GroupError::Unavailable(e.to_string())
            }
            other => GroupError::Failed(other.to_string()),
        }
    }
}

/// The sending side of one group-commit task: requests `R` answered with `A`.
#[derive(Debug)]
struct Group<R, A> {
    tx: mpsc::Sender<(R, Reply<A>)>,
}

impl<R, A> Clone for Group<R, A> {
    fn clone(&self) -> Self {
        Group {
            tx: self.tx.clone(),
        }
    }
}

impl<R: Send + 'static, A: Send + 'static> Group<R, A> {
    /// Starts the task on the current runtime; `write` writes one group and answers each
    /// request in order. The task ends when every sender is dropped.
    fn start<W, F>(name: &'static str, write: W) -> Self
    where
        W: Fn(Vec<R>) -> F + Send + 'static,
        F: Future<Output = Result<Vec<A>, StoreError>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<(R, Reply<A>)>(16 * MAX_GROUP);
        tokio::spawn(async move {
            let mut requests = Vec::with_capacity(MAX_GROUP);
            let mut replies = Vec::with_capacity(MAX_GROUP);
            while let Some((request, reply)) = rx.recv().await {
                requests.push(request);
                replies.push(reply);
                while requests.len() < MAX_GROUP {
                    let Ok((request, reply)) = rx.try_recv() else {
                        break;
                    };
                    requests.push(request);
                    replies.push(reply);
                }
                metrics::histogram!("floodgate_server_group_size", "group" => name)
                    .record(requests.len() as f64);
                match write(std::mem::take(&mut requests)).await {
                    Ok(answers) => {
                        for (reply, answer) in replies.drain(..).zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Err(e) => {
                        tracing::error!(group = name, error = %e, "group write failed");
                        let error = GroupError::of(&e);
                        for reply in replies.drain(..) {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Group { tx }
    }

    /// Hands `request` to the next group; its answer after that group's commit.
    async fn call(&self, request: R) -> Result<A, GroupError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((request, reply))
            .await
            .map_err(|_| GroupError::Stopped)?;
        answer.await.unwrap_or(Err(GroupError::Stopped))
    }
}

/// Enqueues in groups.
#[derive(Debug, Clone)]
pub(crate) struct Enqueuer(Group<NewJob, Enqueued>);

impl Enqueuer {
    /// Starts the task on the current runtime.
    pub(crate) fn start(store: AnyStore) -> Self {
        Enqueuer(Group::start("enqueue", move |jobs| {
            let store = store.clone();
            async move { store.enqueue_many(jobs).await }
        }))
    }

    /// Enqueues `job` with the next group; answers after its commit.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the job: once handed over it is written with its
    /// group (like a request whose client hung up after sending it).
    pub(crate) async fn enqueue(&self, job: NewJob) -> Result<Enqueued, GroupError> {
        self.0.call(job).await
    }
}

/// Completes in groups, each completion fenced by its own lease.
#[derive(Debug, Clone)]
pub(crate) struct Completer(Group<Completion, bool>);

impl Completer {
    /// Starts the task on the current runtime.
    pub(crate) fn start(store: AnyStore) -> Self {
        Completer(Group::start("complete", move |group: Vec<Completion>| {
            let store = store.clone();
            async move {
                let ids: Vec<JobId> = group.iter().map(|c| c.lease.id).collect();
                let lost = store.complete_many(group).await?;
                Ok(ids.into_iter().map(|id| lost.contains(&id)).collect())
            }
        }))
    }

    /// Completes the job with the next group, fenced by its lease as `complete` is: `false`
    /// when the lease no longer holds it (nothing written).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the completion: it is written with its group.
    pub(crate) async fn complete(&self, completion: Completion) -> Result<bool, GroupError> {
        let lost = self.0.call(completion).await?;
        Ok(!lost)
    }
}
