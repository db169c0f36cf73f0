//! The claim loop: claims what the global and per-kind limits leave room for, grouped by
//! kind (and for unlimited kinds a bounded number more, see [`prefetch`](super::prefetch)),
//! and starts one task per job.

use super::executing::{Run, execute, finish_store};
use super::held::{give_back_excess, return_buffered, start_buffered};
use super::prefetch::Estimate;
use super::*;
use crate::wakeup::Wakeup;

/// Whether `kinds` are claimed ahead: claiming ahead is on and none of them has a per-kind or
/// cluster-wide limit. (For all of a worker's kinds: whether finishing jobs hand their permit
/// to the buffer, see `Shared::handoff`.)
pub(super) fn claimed_ahead<S>(config: &Config<S>, kinds: &[Arc<Kind>]) -> bool {
    config.claim_ahead > 0 && kinds.iter().all(|k| !k.limited())
}

/// Kinds grouped for claiming: each limited kind alone, the unlimited ones together; highest
/// kind priority first.
fn claim_groups(kinds: &[Arc<Kind>]) -> Vec<Vec<Arc<Kind>>> {
    let mut groups: Vec<Vec<Arc<Kind>>> = Vec::new();
    let unlimited: Vec<Arc<Kind>> = kinds.iter().filter(|k| !k.limited()).cloned().collect();
    groups.extend(
        kinds
            .iter()
            .filter(|k| k.limited())
            .map(|k| vec![k.clone()]),
    );
    if !unlimited.is_empty() {
        groups.push(unlimited);
    }
    let priority = |g: &Vec<Arc<Kind>>| g.iter().map(|k| k.options.priority).max().unwrap_or(0);
    groups.sort_by_key(|g| std::cmp::Reverse(priority(g)));
    groups
}

/// The groups paused in the store, re-read at most once per poll interval.
struct PausedGroups {
    names: Vec<String>,
    read_at: Option<Instant>,
}

impl PausedGroups {
    /// The groups a claim leaves alone: the builder's `skip_groups` and the paused ones.
    async fn skipped<S: Store + Clone>(&mut self, config: &Config<S>) -> Vec<String> {
        if self
            .read_at
            .is_none_or(|t| t.elapsed() >= config.poll_interval)
        {
            match config.store.paused_groups().await {
                Ok(groups) => self.names = groups.into_iter().map(|g| g.name).collect(),
                // Claim with what was read last; the next round reads again.
                Err(e) => tracing::warn!(worker = %config.id, error = %e, "paused groups not read"),
            }
            self.read_at = Some(Instant::now());
        }
        let mut skip = config.skip_groups.as_ref().map(|f| f()).unwrap_or_default();
        skip.extend(self.names.iter().cloned());
        skip.truncate(crate::store::MAX_SKIP_GROUPS);
        skip
    }
}

pub(super) async fn dispatch<S: Store + Clone>(config: Arc<Config<S>>, shared: Arc<Shared>) {
    let groups = claim_groups(&config.kinds);
    let mut paused = PausedGroups {
        names: Vec::new(),
        read_at: None,
    };
    let mut estimate = Estimate::new(config.claim_ahead as usize);
    let mut wakeups = match config.store.listen().await {
        Ok(w) => Some(w.poll_interval(config.poll_interval)),
        Err(e) => {
            shared.emit(WorkerEvent::StoreError {
                error: format!("listen: {e}; polling only"),
            });
            None
        }
    };
    shared.ready.send_replace(true);
    let mut tick = tokio::time::interval(config.poll_interval);
    // Whether jobs may have been enqueued since the last round (the first round looks).
    let mut fresh = true;
    loop {
        if claim_round(&config, &shared, &groups, &mut paused, &mut estimate, fresh)
            .await
            .is_err()
        {
            // The store is unreachable: back off one poll interval before trying again.
            tokio::select! {
                _ = shared.stop_claiming.cancelled() => break,
                _ = tokio::time::sleep(config.poll_interval) => continue,
            }
        }
        fresh = tokio::select! {
            biased;
            _ = shared.stop_claiming.cancelled() => break,
            _ = shared.freed.notified() => {
                // Jobs started together tend to end together: let the others that are ending
                // free their permits too, so one claim takes them all.
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
                false
            }
            enqueued = async {
                match &mut wakeups {
                    Some(w) => matches!(w.next().await, Wakeup::Enqueued { .. }),
                    None => { tick.tick().await; false }
                }
            } => enqueued,
        };
    }
    return_buffered(&config, &shared).await;
}

/// Claims and starts jobs while there is room and the claims come back full.
async fn claim_round<S: Store + Clone>(
    config: &Arc<Config<S>>,
    shared: &Arc<Shared>,
    groups: &[Vec<Arc<Kind>>],
    paused: &mut PausedGroups,
    estimate: &mut Estimate,
    fresh: bool,
) -> Result<(), StoreError> {
    loop {
        let mut full = false;
        let skip_groups = paused.skipped(config).await;
        for group in groups {
            if shared.stop_claiming.is_cancelled() {
                return Ok(());
            }
            if shared.memory_high.load(Ordering::Relaxed) {
                shared.counters.passed_up();
                return Ok(());
            }
            let ahead_allowed = claimed_ahead(config, group);
            if ahead_allowed {
                start_buffered(config, shared);
                estimate.observe_starts(shared.counters.started());
            }
            let global_free = config.limiter.available();
            let eligible: Vec<&Arc<Kind>> = group.iter().filter(|k| !k.blocked()).collect();
            if eligible.is_empty() {
                // (A claim naming no kind would take every kind.)
                continue;
            }
            let kind_free = eligible.iter().map(|k| k.free()).min().unwrap_or(0);
            let mut limit = global_free.min(kind_free);
            let mut hold = false;
            // A kind probing a half-open breaker gets what can start now, not more.
            if ahead_allowed && !eligible.iter().any(|k| k.probing()) {
                let (limit_all, duration) = (config.limiter.limit(), shared.job_duration());
                let ahead = estimate.ahead(limit_all, duration);
                let start_trip = shared.start_round_trip.average();
                shared.confirm_ahead.store(
                    estimate.ahead_within(start_trip, limit_all, duration),
                    Ordering::Relaxed,
                );
                // Held jobs beyond what will start soon go back, for any worker to take.
                let excess = shared.prefetched.len().saturating_sub(ahead);
                give_back_excess(config, shared, excess, estimate.hold_limit()).await?;
                // Top the buffer up once it is down to half of what should be at hand.
                let buffered = shared.prefetched.len();
                if limit > 0 || buffered * 2 <= ahead {
                    limit = (limit + ahead).saturating_sub(buffered);
                }
                // Newly enqueued jobs may beat every held one: hold the best of them too, so
                // it starts at the next free permit (within `ahead`: past it, what is held goes
                // back and the next claim takes the best there is).
                if fresh && limit == 0 && buffered > 0 && buffered < ahead {
                    limit = 1;
                }
                // Jobs beyond the free permits, or behind held ones, are held.
                hold = buffered > 0 || limit > global_free;
            }
            let limit = limit.min(config.claim_batch as usize) as u32;
            if limit == 0 {
                shared.counters.passed_up();
                continue;
            }
            let claim = Claim {
                worker_id: config.id.to_string(),
                queues: config.queues.clone(),
                kinds: eligible.iter().map(|k| k.name.clone()).collect(),
                limit,
                lease_ttl: config.lease_ttl,
                cluster_limit: match eligible.as_slice() {
                    [one] => one.options.cluster_max,
                    _ => None,
                },
                skip_groups: skip_groups.clone(),
                hold,
            };
            let began = Instant::now();
            let jobs = match config.store.claim(&claim).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(worker = %config.id, error = %e, "claim failed");
                    shared.emit(WorkerEvent::StoreError {
                        error: format!("claim: {e}"),
                    });
                    return Err(e);
                }
            };
            shared.counters.claimed(jobs.len());
            full |= jobs.len() == limit as usize;
            if ahead_allowed {
                estimate.observe_claim(began.elapsed());
            }
            if hold {
                shared.prefetched.push(jobs);
                start_buffered(config, shared);
            } else {
                for job in jobs {
                    start_job(config, shared, job, None);
                }
            }
        }
        if !full {
            return Ok(());
        }
    }
}

/// Starts `job` with `global` (a permit of the global limiter already taken) or else one
/// taken now; a job that cannot start (no permit, a half-open breaker out of probes) is put
/// back without spending its attempt.
pub(super) fn start_job<S: Store + Clone>(
    config: &Arc<Config<S>>,
    shared: &Arc<Shared>,
    job: Job,
    global: Option<floodgate::OwnedPermit>,
) {
    let lease = job.lease().expect("a claimed job is leased");
    let kind = config
        .kinds
        .iter()
        .find(|k| k.name == job.kind)
        .expect("only registered kinds are claimed")
        .clone();
    let global = global.map_or_else(|| config.limiter.try_acquire_owned(), Ok);
    let local = kind.limiter.as_ref().map(Limiter::try_acquire_owned);
    let breaker = kind.options.breaker.as_ref().map(|b| b.try_acquire());
    let refused = match (&global, &local, &breaker) {
        (Err(_), ..) | (_, Some(Err(_)), _) => Some(Duration::from_millis(50)),
        // (A half-open breaker out of probes says "now": wait a little before the next try.)
        (_, _, Some(Err(e))) => Some(
            e.retry_after()
                .unwrap_or(Duration::from_secs(1))
                .max(Duration::from_millis(50)),
        ),
        _ => None,
    };
    if let Some(delay) = refused {
        // Claimed but not startable now (a half-open breaker out of probes): give it back
        // without spending the attempt.
        let store = config.store.clone();
        let shared2 = shared.clone();
        shared.jobs.spawn(async move {
            let until = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            finish_store(
                &shared2,
                &job,
                store.snooze(lease, until).await.map(|()| JobState::Pending),
                || WorkerEvent::Snoozed {
                    id: job.id,
                    kind: job.kind.clone(),
                    until,
                },
            );
        });
        return;
    }
    let breaker = breaker.map(|b| b.expect("checked above"));
    let permits = (
        global.expect("checked above"),
        local.map(|l| l.expect("checked above")),
    );
    let stop = shared.hard_stop.child_token();
    lock(&shared.running).insert(
        job.id,
        Running {
            lease,
            began: None,
            kind: job.kind.as_str().into(),
            stop: stop.clone(),
            lost: false,
            finishing: false,
        },
    );
    let config = config.clone();
    let shared = shared.clone();
    let spawned = Instant::now();
    shared.clone().jobs.spawn(async move {
        let run = Run {
            kind,
            job,
            lease,
            stop,
            breaker,
            permits,
            spawned,
        };
        execute(&config, &shared, run).await;
        lock(&shared.running).remove(&lease.id);
        if shared.stop_claiming.is_cancelled() {
            shared
                .finished_while_stopping
                .fetch_add(1, Ordering::Relaxed);
        }
    });
}
