//! The synchronisation types the engines are built on, switched to `loom`'s models under
//! `--cfg floodgate_loom` so that the loom tests explore every interleaving of the real code.

#[cfg(floodgate_loom)]
pub(crate) use loom::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicU64, AtomicUsize},
};
#[cfg(not(floodgate_loom))]
pub(crate) use std::sync::{
    Arc, Mutex, MutexGuard,
    atomic::{AtomicU64, AtomicUsize},
};

/// Locks `mutex`, ignoring poisoning: no engine panics while it holds a lock, and a panic in a
/// caller's code never runs under one, so the protected state is always consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
