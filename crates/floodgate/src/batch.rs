//! Run an async function over many items under a concurrency limit, results in input order.
//!
//! * [`run_all`] stops at the first error (fail-fast) and returns it with its index.
//! * [`run_all_settled`] runs every item and returns every result, plus a [`BatchError`]
//!   listing the failures.
//!
//! Both take any `IntoIterator` (`*_stream` variants take a [`Stream`]) and a limit that is
//! either a number or a [`Limiter`] shared with other work. They pull the next item only when
//! a slot is free, so no more than `limit` futures are ever alive and the input is never
//! collected up front; they run the futures inside the calling task, so nothing is left
//! running when they return (or when their own future is dropped).
//!
//! ```
//! use floodgate::batch;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let settled = batch::run_all_settled(0..6, 3, |n| async move {
//!     if n % 4 == 1 { Err(format!("{n} is unlucky")) } else { Ok(n * 10) }
//! })
//! .await;
//! assert_eq!(settled.failed(), 2);
//! let err = settled.into_result().unwrap_err();
//! assert_eq!(err.to_string(), "2 of 6 items failed: index 1: 1 is unlucky; index 5: 5 is unlucky");
//! # }
//! ```

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;

use futures_util::stream::{FuturesUnordered, Stream, StreamExt};

use crate::limiter::{Limiter, Rejected};

/// How many items may run at once: a fixed number or a shared [`Limiter`].
#[derive(Debug, Clone, Copy)]
pub enum Concurrency<'a> {
    /// At most this many at once (`0` is taken as `1`).
    Fixed(usize),
    /// Each item holds a permit of this limiter while it runs, and no more items are started
    /// than the limiter's current limit.
    Limiter(&'a Limiter),
}

impl From<usize> for Concurrency<'_> {
    fn from(n: usize) -> Self {
        Concurrency::Fixed(n)
    }
}

impl<'a> From<&'a Limiter> for Concurrency<'a> {
    fn from(limiter: &'a Limiter) -> Self {
        Concurrency::Limiter(limiter)
    }
}

impl Concurrency<'_> {
    fn cap(&self) -> usize {
        match self {
            Concurrency::Fixed(n) => (*n).max(1),
            Concurrency::Limiter(l) => l.limit(),
        }
    }
}

/// Why one item has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError<E> {
    /// The item's function returned this error.
    #[error("{0}")]
    Failed(E),
    /// The limiter refused the item a permit (closed, queue full or timed out).
    #[error("not run: {0}")]
    Rejected(Rejected),
}

/// The first failure of [`run_all`], with the index of its item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item {index} failed: {error}")]
pub struct IndexedError<E> {
    /// Index of the item in the input.
    pub index: usize,
    /// What went wrong.
    pub error: ItemError<E>,
}

/// Runs `f` over `items` with at most `concurrency` at once; stops at the first error.
///
/// On success the values are in input order. On the first error no new item is started, the
/// items still in flight are **cancelled** (their futures are dropped), and the error is
/// returned with its index.
///
/// # Cancel safety
///
/// Dropping the returned future drops every item future it is running; nothing keeps
/// running in the background.
pub async fn run_all<'a, I, F, Fut, T, E>(
    items: I,
    concurrency: impl Into<Concurrency<'a>>,
    f: F,
) -> Result<Vec<T>, IndexedError<E>>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    run_all_stream(futures_util::stream::iter(items), concurrency, f).await
}

/// [`run_all`] over a [`Stream`] of items.
///
/// # Cancel safety
///
/// As [`run_all`]; the stream is dropped with the future.
pub async fn run_all_stream<'a, S, F, Fut, T, E>(
    items: S,
    concurrency: impl Into<Concurrency<'a>>,
    f: F,
) -> Result<Vec<T>, IndexedError<E>>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut values: Vec<Option<T>> = Vec::new();
    let mut failure = None;
    drive(items, concurrency.into(), f, |index, result| match result {
        Ok(v) => {
            store(&mut values, index, v);
            true
        }
        Err(error) => {
            failure = Some(IndexedError { index, error });
            false
        }
    })
    .await;
    match failure {
        Some(e) => Err(e),
        None => Ok(values
            .into_iter()
            .map(|v| v.expect("every item finished"))
            .collect()),
    }
}

/// Runs `f` over every item with at most `concurrency` at once and returns every result in
/// input order.
///
/// # Cancel safety
///
/// As [`run_all`].
pub async fn run_all_settled<'a, I, F, Fut, T, E>(
    items: I,
    concurrency: impl Into<Concurrency<'a>>,
    f: F,
) -> Settled<T, E>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    run_all_settled_stream(futures_util::stream::iter(items), concurrency, f).await
}

/// [`run_all_settled`] over a [`Stream`] of items.
///
/// # Cancel safety
///
/// As [`run_all`]; the stream is dropped with the future.
pub async fn run_all_settled_stream<'a, S, F, Fut, T, E>(
    items: S,
    concurrency: impl Into<Concurrency<'a>>,
    f: F,
) -> Settled<T, E>
where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut results = Vec::new();
    let mut failed = 0;
    drive(items, concurrency.into(), f, |index, result| {
        failed += usize::from(result.is_err());
        store(&mut results, index, result);
        true
    })
    .await;
    Settled {
        results: results
            .into_iter()
            .map(|r| r.expect("every item finished"))
            .collect(),
        failed,
    }
}

fn store<V>(slots: &mut Vec<Option<V>>, index: usize, value: V) {
    if slots.len() <= index {
        slots.resize_with(index + 1, || None);
    }
    slots[index] = Some(value);
}

/// The engine of all four runners: pulls items only while a slot is free, runs them in a
/// `FuturesUnordered` inside this task, and hands each result to `on_done` with its index.
/// `on_done` returning `false` stops the run (remaining futures are dropped).
async fn drive<S, F, Fut, T, E>(
    items: S,
    concurrency: Concurrency<'_>,
    mut f: F,
    mut on_done: impl FnMut(usize, Result<T, ItemError<E>>) -> bool,
) where
    S: Stream,
    F: FnMut(S::Item) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let limiter = match concurrency {
        Concurrency::Limiter(l) => Some(l),
        Concurrency::Fixed(_) => None,
    };
    let mut items = pin!(items);
    let mut running = FuturesUnordered::new();
    let mut next_index = 0usize;
    let mut exhausted = false;
    poll_fn(|cx| {
        loop {
            while !exhausted && running.len() < concurrency.cap() {
                match items.as_mut().poll_next(cx) {
                    Poll::Ready(Some(item)) => {
                        let index = next_index;
                        next_index += 1;
                        let work = f(item);
                        running.push(async move {
                            let _permit = match limiter {
                                Some(l) => match l.acquire().await {
                                    Ok(p) => Some(p),
                                    Err(r) => return (index, Err(ItemError::Rejected(r))),
                                },
                                None => None,
                            };
                            (index, work.await.map_err(ItemError::Failed))
                        });
                    }
                    Poll::Ready(None) => exhausted = true,
                    Poll::Pending => break,
                }
            }
            match running.poll_next_unpin(cx) {
                Poll::Ready(Some((index, result))) => {
                    if !on_done(index, result) {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(None) if exhausted => return Poll::Ready(()),
                // Nothing running and the stream has registered our waker.
                Poll::Ready(None) => return Poll::Pending,
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
}

/// Every item's result from [`run_all_settled`], in input order.
#[derive(Debug)]
pub struct Settled<T, E> {
    results: Vec<Result<T, ItemError<E>>>,
    failed: usize,
}

impl<T, E> Settled<T, E> {
    /// Every item's result, in input order.
    pub fn results(&self) -> &[Result<T, ItemError<E>>] {
        &self.results
    }

    /// Takes the results out.
    pub fn into_results(self) -> Vec<Result<T, ItemError<E>>> {
        self.results
    }

    /// How many items failed.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// How many items ran (or were refused).
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether there were no items.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// All values in order if every item succeeded; otherwise a [`BatchError`] with every
    /// failure and its index.
    pub fn into_result(self) -> Result<Vec<T>, BatchError<E>> {
        if self.failed == 0 {
            return Ok(self.results.into_iter().filter_map(Result::ok).collect());
        }
        let total = self.results.len();
        let failures = self
            .results
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.err().map(|e| (i, e)))
            .collect();
        Err(BatchError { total, failures })
    }
}

/// The failures of a settled batch, each with its item's index.
///
/// Displays as `3 of 100 items failed: index 4: ...; index 17: ...`, listing at most
/// [`BatchError::DISPLAYED`] failures followed by a count of the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError<E> {
    total: usize,
    failures: Vec<(usize, ItemError<E>)>,
}

impl<E> BatchError<E> {
    /// How many failures `Display` lists before summarising the rest.
    pub const DISPLAYED: usize = 10;

    /// The failures, by ascending index.
    pub fn failures(&self) -> &[(usize, ItemError<E>)] {
        &self.failures
    }

    /// How many items the batch had.
    pub fn total(&self) -> usize {
        self.total
    }
}

impl<E: fmt::Display> fmt::Display for BatchError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} items failed: ",
            self.failures.len(),
            self.total
        )?;
        for (n, (index, error)) in self.failures.iter().take(Self::DISPLAYED).enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "index {index}: {error}")?;
        }
        if self.failures.len() > Self::DISPLAYED {
            write!(f, "; and {} more", self.failures.len() - Self::DISPLAYED)?;
        }
        Ok(())
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for BatchError<E> {}
