//! When a failed delivery is tried again: a schedule of delays spread over about a day (the
//! attempt after the first waits the first delay, and so on), each randomised by ±`jitter` so
//! that a destination coming back is not hit by every retry at once. After the last delay the
//! job goes dead.
//!
//! ```
//! use std::time::Duration;
//! use floodgate::retry::RetryPolicy;
//! use floodgate_server::delivery::schedule::RetrySchedule;
//!
//! let schedule = RetrySchedule::default().jitter(0.0);
//! assert_eq!(schedule.attempts(), 7); // the first, then one per delay
//! assert_eq!(schedule.next_delay(1, Duration::ZERO, None), Some(Duration::from_secs(5)));
//! assert_eq!(schedule.next_delay(6, Duration::ZERO, None), Some(Duration::from_secs(10 * 3600)));
//! assert_eq!(schedule.next_delay(7, Duration::ZERO, None), None); // dead
//! ```

use std::time::Duration;

use floodgate::retry::RetryPolicy;
use rand::RngExt;

/// Delays between delivery attempts, with jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
}

impl Default for RetrySchedule {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h (about 18 hours in all), ±10 %.
    fn default() -> Self {
        let m = 60;
        RetrySchedule {
            delays: [5, 5 * m, 30 * m, 2 * 3600, 5 * 3600, 10 * 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.1,
        }
    }
}

impl RetrySchedule {
    /// The delays after the first, second, ... failed attempt.
    pub fn new(delays: Vec<Duration>) -> Self {
        RetrySchedule {
            delays,
            jitter: 0.1,
        }
    }

    /// Randomises each delay by up to ±`fraction` (0.0..1.0; clamped).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 0.99);
        self
    }

    /// Attempts in all: the first and one per delay.
    pub fn attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }
}

impl RetryPolicy for RetrySchedule {
    fn next_delay(&self, attempts: u32, _: Duration, _: Option<Duration>) -> Option<Duration> {
        let base = *self.delays.get((attempts as usize).checked_sub(1)?)?;
        if self.jitter == 0.0 {
            return Some(base);
        }
        let spread = rand::rng().random_range(-self.jitter..=self.jitter);
        Some(base.mul_f64(1.0 + spread))
    }

    fn max_delay(&self) -> Duration {
        self.delays
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
            .mul_f64(1.0 + self.jitter)
    }

    fn uses_elapsed(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_its_fraction() {
        let s = RetrySchedule::new(vec![Duration::from_secs(100)]).jitter(0.2);
        for _ in 0..1_000 {
            let d = s.next_delay(1, Duration::ZERO, None).unwrap();
            assert!((80.0..=120.0).contains(&d.as_secs_f64()), "{d:?}");
        }
        assert_eq!(s.next_delay(0, Duration::ZERO, None), None);
        assert_eq!(s.next_delay(2, Duration::ZERO, None), None);
        assert_eq!(s.max_delay(), Duration::from_secs(120));
    }
}
