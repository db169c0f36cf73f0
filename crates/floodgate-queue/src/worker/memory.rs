//! Resident memory, for the worker's memory watch.

/// The process's resident set size in bytes, where the platform says (Linux: `/proc`).
pub(crate) fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// High- and low-water marks: above `high` claiming stops, below `low` it resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryWatch {
    /// Stop claiming above this many resident bytes.
    pub high: u64,
    /// Resume below this many.
    pub low: u64,
    /// How often to sample.
    pub every: std::time::Duration,
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        if cfg!(target_os = "linux") {
            assert!(super::resident_bytes().unwrap() > 1024 * 1024);
        }
    }
}
