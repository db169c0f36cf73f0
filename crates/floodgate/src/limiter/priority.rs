//! Acquire priorities.

use super::error::InvalidPriority;

/// How urgent an acquire is: `1` (lowest) to `10` (highest).
///
/// Waiters are served highest priority first and first-come first-served within one priority.
/// With [aging](super::LimiterBuilder::aging) a waiter gains one level per aging interval, so
/// low priorities are never starved.
///
/// ```
/// use floodgate::Priority;
/// assert_eq!(Priority::new(10)?, Priority::HIGHEST);
/// assert!(Priority::new(11).is_err());
/// # Ok::<(), floodgate::InvalidPriority>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// Priority 1.
    pub const LOWEST: Priority = Priority(1);
    /// Priority 5, used by `acquire()`.
    pub const DEFAULT: Priority = Priority(5);
    /// Priority 10.
    pub const HIGHEST: Priority = Priority(10);

    /// A priority from `1..=10`.
    pub const fn new(level: u8) -> Result<Priority, InvalidPriority> {
        if level >= 1 && level <= 10 {
            Ok(Priority(level))
        } else {
            Err(InvalidPriority(level))
        }
    }

    /// The level, `1..=10`.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Zero-based index of the wait list.
    pub(crate) fn index(self) -> usize {
        usize::from(self.0 - 1)
    }
}

impl Default for Priority {
    fn default() -> Self {
        Priority::DEFAULT
    }
}

impl TryFrom<u8> for Priority {
    type Error = InvalidPriority;

    fn try_from(level: u8) -> Result<Self, Self::Error> {
        Priority::new(level)
    }
}
