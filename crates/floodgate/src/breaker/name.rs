//! [`BreakerName`]: a breaker's name as an open error carries it.

use std::fmt;
use std::ops::Deref;

use smol_str::SmolStr;

/// A breaker's name, as [`BreakerError::Open`](super::BreakerError::Open) carries it: a short
/// name (up to 23 bytes) is copied inline and a longer one shared, so building the error on
/// every rejected call neither allocates nor touches a reference count for the usual names.
/// Reads as a `str`.
///
/// ```
/// use floodgate::breaker::BreakerName;
/// let name = BreakerName::from("payments");
/// assert_eq!(&*name, "payments");
/// assert_eq!(name.to_string(), "payments");
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BreakerName(SmolStr);

impl From<&str> for BreakerName {
    fn from(name: &str) -> Self {
        BreakerName(SmolStr::new(name))
    }
}

impl Deref for BreakerName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for BreakerName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for BreakerName {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for BreakerName {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl fmt::Display for BreakerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BreakerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
