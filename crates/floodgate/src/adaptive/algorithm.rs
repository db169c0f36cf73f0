//! [`LimitAlgorithm`]s: AIMD, Vegas and Gradient2.

use std::time::Duration;

use tokio::time::Instant;

/// How a call under an adaptive limit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleOutcome {
    /// The call completed; its latency is meaningful.
    Success,
    /// The call was dropped: it timed out or the dependency shed it (e.g. 503, 429). A sign of
    /// overload: the limit goes down.
    Dropped,
    /// Says nothing about the dependency (e.g. the caller cancelled): not used.
    Ignored,
}

/// One completed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When the call started.
    pub started: Instant,
    /// How long the call took.
    pub latency: Duration,
    /// Calls in flight (this one included) when it started.
    pub in_flight: usize,
    /// How it ended.
    pub outcome: SampleOutcome,
}

/// Moves a concurrency limit from samples of completed calls.
pub trait LimitAlgorithm: Send + 'static {
    /// The current limit.
    fn limit(&self) -> usize;
    /// Takes one sample into account and returns the new limit.
    fn update(&mut self, sample: Sample) -> usize;
}

/// A limit kept as a real number (so steps of 1/limit add up) within `min..=max`.
#[derive(Debug, Clone, Copy)]
struct Range {
    limit: f64,
    min: usize,
    max: usize,
}

impl Range {
    fn new(initial: usize, min: usize, max: usize) -> Self {
        let min = min.max(1);
        let max = max.max(min);
        Range {
            limit: (initial.clamp(min, max)) as f64,
            min,
            max,
        }
    }

    fn set(&mut self, limit: f64) -> usize {
        self.limit = limit.clamp(self.min as f64, self.max as f64);
        self.get()
    }

    fn get(&self) -> usize {
        self.limit as usize
    }
}

/// At most one cut per round trip: a drop of a call that was already in flight when the
/// limit was last cut is old news (the cut already answered it). Returns whether to cut now.
fn cut_due(last_cut: &mut Option<Instant>, s: &Sample) -> bool {
    if last_cut.is_some_and(|t| s.started < t) {
        return false;
    }
    *last_cut = Some(s.started + s.latency);
    true
}

/// Additive increase, multiplicative decrease (as TCP Reno).
///
/// The limit grows by one per round trip (1/limit per successful sample) while it is at
/// least half used, and is multiplied by `backoff` (0.9) on a drop or a call slower than
/// `timeout`, at most once per round trip.
#[derive(Debug, Clone)]
pub struct Aimd {
    range: Range,
    backoff: f64,
    timeout: Duration,
    last_cut: Option<Instant>,
}

impl Default for Aimd {
    /// Initial 20, min 1, max 200, backoff 0.9, timeout 5 s.
    fn default() -> Self {
        Aimd {
            range: Range::new(20, 1, 200),
            backoff: 0.9,
            timeout: Duration::from_secs(5),
            last_cut: None,
        }
    }
}

impl Aimd {
    /// Bounds of the limit and its starting value (clamped into them).
    pub fn limits(mut self, initial: usize, min: usize, max: usize) -> Self {
        self.range = Range::new(initial, min, max);
        self
    }

    /// Calls at least this slow count as drops.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The factor applied on a drop, in `[0.5, 1)`.
    pub fn backoff(mut self, backoff: f64) -> Self {
        self.backoff = backoff.clamp(0.5, 0.99);
        self
    }
}

impl LimitAlgorithm for Aimd {
    fn limit(&self) -> usize {
        self.range.get()
    }

    fn update(&mut self, s: Sample) -> usize {
        let dropped = match s.outcome {
            SampleOutcome::Ignored => return self.limit(),
            SampleOutcome::Dropped => true,
            SampleOutcome::Success => s.latency >= self.timeout,
        };
        let l = self.range.limit;
        if dropped {
            if cut_due(&mut self.last_cut, &s) {
                return self.range.set(l * self.backoff);
            }
        } else if s.in_flight as f64 * 2.0 >= l {
            return self.range.set(l + 1.0 / l);
        }
        self.limit()
    }
}

fn log10_root(limit: f64) -> f64 {
    limit.log10().max(1.0)
}

/// TCP Vegas: estimates the queue at the dependency from how much slower calls are than the
/// fastest seen (`queue = limit * (1 - rtt_noload / rtt)`), and keeps it between `alpha`
/// (3·log10 limit) and `beta` (6·log10 limit).
///
/// Drops lower the limit and never feed the no-load estimate, so calls that all time out at
/// the same latency can't look like an idle dependency (a pathology of the reference). The
/// no-load estimate only ever falls: the reference's periodic reset re-learns it from loaded
/// calls and lets the limit creep up; call [`Vegas::forget_baseline`] after the dependency has
/// become slower for good (e.g. a new deployment).
#[derive(Debug, Clone)]
pub struct Vegas {
    range: Range,
    smoothing: f64,
    rtt_noload: Option<Duration>,
    last_cut: Option<Instant>,
}

impl Default for Vegas {
    /// Initial 20, min 1, max 1000, smoothing 1.0.
    fn default() -> Self {
        Vegas {
            range: Range::new(20, 1, 1_000),
            smoothing: 1.0,
            rtt_noload: None,
            last_cut: None,
        }
    }
}

impl Vegas {
    /// Bounds of the limit and its starting value.
    pub fn limits(mut self, initial: usize, min: usize, max: usize) -> Self {
        self.range = Range::new(initial, min, max);
        self
    }

    /// Weight of each new estimate, in `(0, 1]`.
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing.clamp(0.01, 1.0);
        self
    }

    /// Forgets the no-load latency; the next sample sets it again.
    pub fn forget_baseline(&mut self) {
        self.rtt_noload = None;
    }
}

impl LimitAlgorithm for Vegas {
    fn limit(&self) -> usize {
        self.range.get()
    }

    fn update(&mut self, s: Sample) -> usize {
        let l = self.range.limit;
        match s.outcome {
            SampleOutcome::Ignored => {}
            SampleOutcome::Dropped => {
                if cut_due(&mut self.last_cut, &s) {
                    return self.range.set(l - log10_root(l));
                }
            }
            SampleOutcome::Success => {
                let noload = match self.rtt_noload {
                    Some(n) if n <= s.latency => n,
                    _ => {
                        self.rtt_noload = Some(s.latency);
                        s.latency
                    }
                };
                if (s.in_flight as f64) * 2.0 >= l {
                    let rtt = s.latency.as_secs_f64().max(f64::MIN_POSITIVE);
                    let queue = (l * (1.0 - noload.as_secs_f64() / rtt)).ceil();
                    let unit = log10_root(l);
                    let (alpha, beta) = (3.0 * unit, 6.0 * unit);
                    let target = if queue <= unit {
                        l + beta
                    } else if queue < alpha {
                        l + unit
                    } else if queue > beta {
                        l - unit
                    } else {
                        l
                    };
                    // Vegas adjusts once per round trip: each sample moves 1/limit of the way.
                    return self.range.set(l + (target - l) * self.smoothing / l);
                }
            }
        }
        self.limit()
    }
}

/// Gradient2 (after Netflix): compares the short-term latency with a long-term baseline;
/// `gradient = clamp(tolerance * baseline / latency, 0.5, 1)` shrinks the limit as latency
/// rises, and a small headroom (`queue`) lets it grow while latency stays at the baseline.
///
/// The baseline is an exponential average that follows latency down at once but up only
/// slowly, and only while latency stays within 5% of it (so sustained overload can't become
/// the new normal); a drop halves the limit, at most once per round trip.
#[derive(Debug, Clone)]
pub struct Gradient2 {
    range: Range,
    smoothing: f64,
    tolerance: f64,
    queue: f64,
    window: f64,
    baseline: Option<f64>,
    last_cut: Option<Instant>,
}

impl Default for Gradient2 {
    /// Initial 20, min 1, max 200, smoothing 0.2, tolerance 1.5, queue 4, window 600 samples.
    fn default() -> Self {
        Gradient2 {
            range: Range::new(20, 1, 200),
            smoothing: 0.2,
            tolerance: 1.5,
            queue: 4.0,
            window: 600.0,
            baseline: None,
            last_cut: None,
        }
    }
}

impl Gradient2 {
    /// Bounds of the limit and its starting value.
    pub fn limits(mut self, initial: usize, min: usize, max: usize) -> Self {
        self.range = Range::new(initial, min, max);
        self
    }

    /// How much slower than the baseline calls may get before the limit shrinks (`>= 1`).
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = tolerance.max(1.0);
        self
    }

    /// Weight of each new estimate, in `(0, 1]`.
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing.clamp(0.01, 1.0);
        self
    }
}

impl LimitAlgorithm for Gradient2 {
    fn limit(&self) -> usize {
        self.range.get()
    }

    fn update(&mut self, s: Sample) -> usize {
        let l = self.range.limit;
        match s.outcome {
            SampleOutcome::Ignored => {}
            SampleOutcome::Dropped => {
                if cut_due(&mut self.last_cut, &s) {
                    return self.range.set(l * 0.5);
                }
            }
            SampleOutcome::Success => {
                let rtt = s.latency.as_secs_f64().max(1e-9);
                let baseline = *self.baseline.get_or_insert(rtt);
                let gradient = (self.tolerance * baseline / rtt).clamp(0.5, 1.0);
                // Down at once; up slowly, and only while latency is close to the baseline.
                self.baseline = Some(if rtt < baseline {
                    rtt
                } else if rtt <= baseline * 1.05 {
                    baseline + (rtt - baseline) / self.window
                } else {
                    baseline
                });
                if (s.in_flight as f64) * 2.0 >= l {
                    let target = l * gradient + self.queue;
                    // `smoothing` of the way per round trip: 1/limit of that per sample.
                    return self.range.set(l + (target - l) * self.smoothing / l);
                }
            }
        }
        self.limit()
    }
}
