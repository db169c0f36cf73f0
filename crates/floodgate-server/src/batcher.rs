//! Group commit for single-job writes: enqueues that arrive together are written in one
//! `enqueue_many`, and HTTP workers' completions in one `complete_many` (one statement, one
//! transaction, one fsync each), and each request is answered only after that commit. A 202
//! still means the job is durably stored and a 200 that the success is; the group is what
//! pays for the fsync of SQLite's `synchronous = FULL`.
//!
//! # Implementation
//!
//! One task owns the receiving end of a channel. It waits for the first request, takes every
//! other request already waiting (up to [`MAX_GROUP`]), writes them, and answers each through
//! its oneshot. There is no timer: under light load a lone request is written at once; under
//! load requests queue while the previous batch commits, so batches grow exactly when commits
//! are the bottleneck. Jobs are checked one by one before they join a batch, so a bad job is
//! refused alone and cannot fail its neighbours.

use floodgate_queue::{AnyStore, Completion, Enqueued, NewJob, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

/// The most jobs written in one group.
pub const MAX_GROUP: usize = 1_000;

type Request = (NewJob, oneshot::Sender<Result<Enqueued, String>>);

/// The sending side of the group-commit task.
#[derive(Debug, Clone)]
pub(crate) struct Enqueuer {
    tx: mpsc::Sender<Request>,
}

impl Enqueuer {
    /// Starts the task on the current runtime; it ends when every sender is dropped.
    pub(crate) fn start(store: AnyStore) -> Self {
        let (tx, rx) = mpsc::channel(16 * MAX_GROUP);
        tokio::spawn(run(store, rx));
        Enqueuer { tx }
    }

    /// Enqueues `job` with the next group; answers after its commit.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the job: once handed over it is written with its
    /// group (like a request whose client hung up after sending it).
    pub(crate) async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Corrupt("the enqueue batcher stopped".to_owned());
        self.tx.send((job, reply)).await.map_err(|_| gone())?;
        match answer.await {
            Ok(Ok(enqueued)) => Ok(enqueued),
            Ok(Err(message)) => Err(StoreError::Corrupt(message)),
            Err(_) => Err(gone()),
        }
    }
}

async fn run(store: AnyStore, mut rx: mpsc::Receiver<Request>) {
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    let mut replies = Vec::with_capacity(MAX_GROUP);
    while let Some((job, reply)) = rx.recv().await {
        jobs.push(job);
        replies.push(reply);
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok((job, reply)) => {
                    jobs.push(job);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("floodgate_server_enqueue_group_size").record(jobs.len() as f64);
        match store.enqueue_many(std::mem::take(&mut jobs)).await {
            Ok(out) => {
                for (reply, enqueued) in replies.drain(..).zip(out) {
                    let _ = reply.send(Ok(enqueued));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group enqueue failed");
                let message = e.to_string();
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

type CompleteRequest = (Completion, oneshot::Sender<Result<bool, String>>);

/// The sending side of the completion group-commit task.
#[derive(Debug, Clone)]
pub(crate) struct Completer {
    tx: mpsc::Sender<CompleteRequest>,
}

impl Completer {
    /// Starts the task on the current runtime; it ends when every sender is dropped.
    pub(crate) fn start(store: AnyStore) -> Self {
        let (tx, rx) = mpsc::channel(16 * MAX_GROUP);
        tokio::spawn(run_completions(store, rx));
        Completer { tx }
    }

    /// Completes the job with the next group, fenced by its lease as `complete` is:
    /// [`StoreError::LeaseLost`] when the lease no longer holds it (nothing written).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the completion: it is written with its group.
    pub(crate) async fn complete(&self, completion: Completion) -> Result<(), StoreError> {
        let id = completion.lease.id;
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Corrupt("the completion batcher stopped".to_owned());
        self.tx
            .send((completion, reply))
            .await
            .map_err(|_| gone())?;
        match answer.await {
            Ok(Ok(false)) => Ok(()),
            Ok(Ok(true)) => Err(StoreError::LeaseLost { id }),
            Ok(Err(message)) => Err(StoreError::Corrupt(message)),
            Err(_) => Err(gone()),
        }
    }
}

async fn run_completions(store: AnyStore, mut rx: mpsc::Receiver<CompleteRequest>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    let mut replies = Vec::with_capacity(MAX_GROUP);
    while let Some((completion, reply)) = rx.recv().await {
        group.push(completion);
        replies.push(reply);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok((completion, reply)) => {
                    group.push(completion);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let ids: Vec<_> = group.iter().map(|c| c.lease.id).collect();
        match store.complete_many(std::mem::take(&mut group)).await {
            Ok(lost) => {
                for (reply, id) in replies.drain(..).zip(ids) {
                    let _ = reply.send(Ok(lost.contains(&id)));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "group completion failed");
                let message = e.to_string();
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}
