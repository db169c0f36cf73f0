//! Errors of the processor.

/// Why a message was not accepted or not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorError {
    /// The queue holds `capacity` messages; shed load or retry later.
    #[error("processor queue is full ({capacity} messages)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The processor is shutting down and accepts nothing new.
    #[error("processor is shutting down")]
    ShuttingDown,
    /// The message was accepted but cancelled by shutdown before it ran.
    #[error("cancelled by shutdown before it ran")]
    Cancelled,
}

/// Invalid processor settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessorConfigError {
    /// Zero workers or zero capacity.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
}
