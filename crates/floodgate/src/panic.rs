//! Turning a caught panic's payload into a message.

use std::any::Any;

/// The message of a panic payload (from `catch_unwind` or a panicked task's `JoinError`):
/// the `&str` or `String` given to `panic!`, or `"non-string panic payload"` for anything else.
///
/// ```
/// use floodgate::isolate::panic_message;
///
/// let payload = std::panic::catch_unwind(|| panic!("disk {} on fire", 3)).unwrap_err();
/// assert_eq!(panic_message(&*payload), "disk 3 on fire");
/// ```
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
