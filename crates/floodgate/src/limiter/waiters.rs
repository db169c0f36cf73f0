//! The limiter's wait queue: one FIFO list per priority level, threaded through a slab.
//!
//! Every waiter is a slab entry that belongs to its acquire future from the moment it is queued
//! until the future collects the outcome (or is dropped). While it waits the entry is linked into
//! the list of its level, so a cancelled waiter is unlinked in O(1) and the next waiter to serve
//! is found by looking at no more than ten list heads. A served (granted or closed) entry is
//! unlinked but stays in the slab, so its key can't be reused before its future has seen it.

use std::task::Waker;
use std::time::Duration;

use slab::Slab;
use tokio::time::Instant;

/// Number of priority levels (priorities 1..=10).
pub(crate) const LEVELS: usize = 10;

/// What has happened to a queued waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaiterState {
    /// Linked into a list, waiting for a permit.
    Waiting,
    /// A permit was handed to this waiter; it now counts as held.
    Granted,
    /// The limiter was closed while this waiter was queued.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) state: WaiterState,
    pub(crate) waker: Option<Waker>,
    pub(crate) enqueued_at: Instant,
    level: usize,
    seq: u64,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Priority-ordered FIFO lists of waiters.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    nodes: Slab<Node>,
    heads: [Option<usize>; LEVELS],
    tails: [Option<usize>; LEVELS],
    /// Bit `l` is set while level `l` has waiters.
    occupied: u16,
    /// Waiters currently linked (state `Waiting`).
    waiting: usize,
    next_seq: u64,
}

impl WaitList {
    /// Number of waiters still waiting for a permit.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
    }

    /// Queues a waiter at `level` (0-based) behind the others of that level; returns its key.
    pub(crate) fn push(&mut self, level: usize, now: Instant, waker: Waker) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        let tail = self.tails[level];
        let key = self.nodes.insert(Node {
            state: WaiterState::Waiting,
            waker: Some(waker),
            enqueued_at: now,
            level,
            seq,
            prev: tail,
            next: None,
        });
        match tail {
            Some(t) => self.nodes[t].next = Some(key),
            None => self.heads[level] = Some(key),
        }
        self.tails[level] = Some(key);
        self.occupied |= 1 << level;
        self.waiting += 1;
        key
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> &mut Node {
        &mut self.nodes[key]
    }

    /// Unlinks a waiting entry and marks it `state`; returns its waker.
    pub(crate) fn serve(&mut self, key: usize, state: WaiterState) -> Option<Waker> {
        self.unlink(key);
        let node = &mut self.nodes[key];
        node.state = state;
        node.waker.take()
    }

    /// Removes an entry from the slab, unlinking it first if it is still waiting.
    pub(crate) fn remove(&mut self, key: usize) -> Node {
        if self.nodes[key].state == WaiterState::Waiting {
            self.unlink(key);
        }
        self.nodes.remove(key)
    }

    fn unlink(&mut self, key: usize) {
        let (level, prev, next) = {
            let n = &self.nodes[key];
            debug_assert_eq!(n.state, WaiterState::Waiting);
            (n.level, n.prev, n.next)
        };
        match prev {
            Some(p) => self.nodes[p].next = next,
            None => self.heads[level] = next,
        }
        match next {
            Some(n) => self.nodes[n].prev = prev,
            None => self.tails[level] = prev,
        }
        if self.heads[level].is_none() {
            self.occupied &= !(1 << level);
        }
        let n = &mut self.nodes[key];
        n.prev = None;
        n.next = None;
        self.waiting -= 1;
    }

    /// The waiter to serve next: the highest effective priority, oldest first among equals.
    ///
    /// Without aging the effective priority is the level. With aging, a waiter gains one level
    /// for every `aging` it has waited; the head of each list is the oldest of its level and so
    /// the best of it, which is why looking at the heads suffices.
    pub(crate) fn next(
        &self,
        aging: Option<Duration>,
        now: impl FnOnce() -> Instant,
    ) -> Option<usize> {
        if self.occupied == 0 {
            return None;
        }
        let top = 15 - self.occupied.leading_zeros() as usize;
        let Some(aging) = aging else {
            return self.heads[top];
        };
        if self.occupied.count_ones() == 1 {
            return self.heads[top];
        }
        let now = now();
        let step = aging.as_nanos().max(1);
        let mut best: Option<(u128, u64, usize)> = None;
        for level in (0..=top).rev() {
            let Some(key) = self.heads[level] else {
                continue;
            };
            let node = &self.nodes[key];
            let waited = now.saturating_duration_since(node.enqueued_at).as_nanos();
            let effective = level as u128 + waited / step;
            let better = match best {
                None => true,
                Some((e, seq, _)) => effective > e || (effective == e && node.seq < seq),
            };
            if better {
                best = Some((effective, node.seq, key));
            }
        }
        best.map(|(_, _, key)| key)
    }

    /// Unlinks every waiting entry, marking it `state`; returns their wakers.
    pub(crate) fn serve_all(&mut self, state: WaiterState) -> Vec<Waker> {
        let mut wakers = Vec::with_capacity(self.waiting);
        for level in 0..LEVELS {
            while let Some(key) = self.heads[level] {
                if let Some(w) = self.serve(key, state) {
                    wakers.push(w);
                }
            }
        }
        wakers
    }
}

#[cfg(all(test, not(floodgate_loom)))]
mod tests {
    use super::*;
    use std::task::Waker;

    fn list_order(list: &mut WaitList, aging: Option<Duration>, now: Instant) -> Vec<usize> {
        let mut out = Vec::new();
        while let Some(k) = list.next(aging, || now) {
            list.serve(k, WaiterState::Granted);
            out.push(k);
        }
        out
    }

    #[test]
    fn serves_higher_levels_first_then_fifo() {
        let now = Instant::now();
        let mut l = WaitList::default();
        let a = l.push(0, now, Waker::noop().clone());
        let b = l.push(9, now, Waker::noop().clone());
        let c = l.push(0, now, Waker::noop().clone());
        let d = l.push(9, now, Waker::noop().clone());
        let e = l.push(4, now, Waker::noop().clone());
        assert_eq!(list_order(&mut l, None, now), vec![b, d, e, a, c]);
        assert_eq!(l.waiting(), 0);
    }

    #[test]
    fn unlinking_from_the_middle_keeps_the_rest_in_order() {
        let now = Instant::now();
        let mut l = WaitList::default();
        let keys: Vec<_> = (0..5)
            .map(|_| l.push(3, now, Waker::noop().clone()))
            .collect();
        l.remove(keys[2]);
        l.remove(keys[0]);
        l.remove(keys[4]);
        assert_eq!(l.waiting(), 2);
        assert_eq!(list_order(&mut l, None, now), vec![keys[1], keys[3]]);
    }

    #[test]
    fn aging_promotes_old_low_priority_waiters() {
        let t0 = Instant::now();
        let mut l = WaitList::default();
        let low = l.push(0, t0, Waker::noop().clone());
        let high = l.push(9, t0 + Duration::from_secs(9), Waker::noop().clone());
        // At t0 + 9s the low waiter has aged 9 levels: effective 9 == high's 9; it is older.
        let now = t0 + Duration::from_secs(9);
        assert_eq!(l.next(Some(Duration::from_secs(1)), || now), Some(low));
        // One second earlier it had not caught up yet.
        let earlier = t0 + Duration::from_secs(8);
        assert_eq!(l.next(Some(Duration::from_secs(1)), || earlier), Some(high));
    }
}
