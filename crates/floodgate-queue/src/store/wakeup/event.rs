//! [`Wakeup`]: why a worker should look for jobs now. The backends' listeners produce them;
//! [`Wakeups`](super::Wakeups) streams them.

/// Why a worker should look for jobs now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// Jobs were enqueued in this queue.
    Enqueued {
        /// The queue.
        queue: String,
    },
    /// The polling interval passed, or notifications may have been missed: look in every
    /// queue.
    Poll,
}
