//! What the dashboard's overview shows, and the chart series behind it: throughput from the
//! difference of two samples of the queue counts (no query of its own), enqueue-to-start
//! latency from the newest finished jobs (`Store::recent_waits`, the newest rows of an index).

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use floodgate::limiter::LimiterStats;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::model::QueueView;

/// How far back the charts go.
pub const SERIES_SPAN: Duration = Duration::from_secs(15 * 60);

/// One point of a chart per this long.
pub const POINT_EVERY: Duration = Duration::from_secs(5);

/// The dashboard's overview: every queue, the charts, limiters and breakers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    /// When it was computed.
    pub at: DateTime<Utc>,
    /// What the caller's token allows: `admin` (act) or `read` (look).
    pub access: String,
    /// Every queue's counts.
    pub queues: Vec<QueueView>,
    /// The last 15 minutes, oldest first.
    pub series: Vec<Point>,
    /// Limiters: requests in flight, each webhook destination's deliveries, and the named
    /// `[limiters]` (`limit:NAME`).
    pub limiters: Vec<LimiterView>,
    /// Webhook destinations' breakers, and the named `[breakers]` (`breaker:NAME`).
    pub breakers: Vec<BreakerView>,
    /// Protective mode (no server component uses it yet: always null).
    pub protective: Option<Protective>,
    /// How long computing this overview took, in milliseconds.
    pub compute_ms: f64,
}

/// One point of the charts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Point {
    /// Seconds since the Unix epoch.
    pub t: f64,
    /// Jobs succeeded per second over the point's interval.
    pub completed: f64,
    /// Jobs gone dead per second over the interval.
    pub failed: f64,
    /// Median wait from due to start of the jobs that succeeded in the interval (ms).
    pub p50_ms: Option<f64>,
    /// 99th percentile of that wait (ms).
    pub p99_ms: Option<f64>,
}

/// A limiter's gauges.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LimiterView {
    /// Its name.
    pub name: String,
    /// Permits held.
    pub active: usize,
    /// Callers waiting.
    pub queued: usize,
    /// The limit.
    pub limit: usize,
}

impl From<LimiterStats> for LimiterView {
    fn from(s: LimiterStats) -> Self {
        LimiterView {
            name: s.name,
            active: s.active,
            queued: s.queued,
            limit: s.limit,
        }
    }
}

/// A breaker's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BreakerView {
    /// Its name (a destination, or `breaker:NAME`).
    pub name: String,
    /// `closed`, `open`, `half_open`, `forced_open` or `disabled`.
    pub state: String,
    /// Seconds in that state.
    pub since_seconds: f64,
}

/// Protective mode's limit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Protective {
    /// The limit now.
    pub limit: usize,
    /// The limit with no breaker open.
    pub base: usize,
    /// Breakers open.
    pub open: usize,
}

/// Totals of one sample, for rates.
#[derive(Debug, Clone, Copy)]
pub(super) struct Totals {
    pub(super) at: SystemTime,
    pub(super) succeeded: u64,
    pub(super) dead: u64,
}

impl Totals {
    pub(super) fn of(queues: &[QueueView], at: SystemTime) -> Totals {
        Totals {
            at,
            succeeded: queues.iter().map(|q| q.counts.succeeded).sum(),
            dead: queues.iter().map(|q| q.counts.dead).sum(),
        }
    }
}

/// The chart series: a point per [`POINT_EVERY`] for [`SERIES_SPAN`].
#[derive(Debug, Default)]
pub(super) struct Series {
    points: VecDeque<Point>,
    /// The totals the current point's interval started from.
    start: Option<Totals>,
}

impl Series {
    /// Whether a point is due at `now`.
    pub(super) fn due(&self, now: SystemTime) -> bool {
        self.start
            .is_none_or(|s| now.duration_since(s.at).unwrap_or_default() >= POINT_EVERY)
    }

    /// When the current interval started (the `since` of its latency sample).
    pub(super) fn interval_start(&self) -> Option<SystemTime> {
        self.start.map(|s| s.at)
    }

    /// Closes the current interval at `now` with its latency sample; the first call only
    /// starts one. Deletions (retention) never make a rate negative.
    pub(super) fn close(&mut self, now: Totals, waits: &mut [Duration]) {
        if let Some(start) = self.start {
            let secs = now
                .at
                .duration_since(start.at)
                .unwrap_or_default()
                .as_secs_f64()
                .max(0.001);
            let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
            waits.sort_unstable();
            let pick = |p: f64| {
                (!waits.is_empty()).then(|| {
                    let i = ((p * waits.len() as f64).ceil() as usize).clamp(1, waits.len()) - 1;
                    waits[i].as_secs_f64() * 1000.0
                })
            };
            self.points.push_back(Point {
                t: now
                    .at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64(),
                completed: rate(start.succeeded, now.succeeded),
                failed: rate(start.dead, now.dead),
                p50_ms: pick(0.5),
                p99_ms: pick(0.99),
            });
            let max = (SERIES_SPAN.as_secs() / POINT_EVERY.as_secs()) as usize;
            while self.points.len() > max {
                self.points.pop_front();
            }
        }
        self.start = Some(now);
    }

    /// The points, oldest first.
    pub(super) fn points(&self) -> Vec<Point> {
        self.points.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(secs: u64, succeeded: u64, dead: u64) -> Totals {
        Totals {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            succeeded,
            dead,
        }
    }

    #[test]
    fn rates_and_percentiles_per_interval() {
        let mut s = Series::default();
        assert!(s.due(SystemTime::now()));
        s.close(totals(100, 1_000, 10), &mut []);
        assert!(
            s.points().is_empty(),
            "the first sample only starts an interval"
        );
        let mut waits: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        s.close(totals(105, 1_500, 20), &mut waits);
        let p = s.points()[0];
        assert_eq!((p.t, p.completed, p.failed), (105.0, 100.0, 2.0));
        assert_eq!((p.p50_ms, p.p99_ms), (Some(50.0), Some(99.0)));
        // Retention deleted rows: no negative rate; no finished job: no latency.
        s.close(totals(110, 200, 0), &mut []);
        let p = s.points()[1];
        assert_eq!((p.completed, p.failed, p.p50_ms), (0.0, 0.0, None));
    }

    #[test]
    fn the_series_keeps_fifteen_minutes() {
        let mut s = Series::default();
        for i in 0..1_000 {
            s.close(totals(i * 5, i, 0), &mut []);
        }
        assert_eq!(s.points().len(), 180);
        assert_eq!(s.points()[179].t, 999.0 * 5.0);
    }
}
