//! Group commit for single-job enqueues: requests that arrive together are written in one
//! `enqueue_many` (one statement, one transaction, one fsync), and each is answered only after
//! that commit. A 202 still means the job is durably stored; the batch is what pays for the
//! fsync of SQLite's `synchronous = FULL`.
//!
//! # Implementation
//!
//! One task owns the receiving end of a channel. It waits for the first request, takes every
//! other request already waiting (up to [`MAX_GROUP`]), writes them, and answers each through
//! its oneshot. There is no timer: under light load a lone request is written at once; under
//! load requests queue while the previous batch commits, so batches grow exactly when commits
//! are the bottleneck. Jobs are checked one by one before they join a batch, so a bad job is
//! refused alone and cannot fail its neighbours.

use floodgate_queue::{AnyStore, Enqueued, NewJob, Store, StoreError};
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
