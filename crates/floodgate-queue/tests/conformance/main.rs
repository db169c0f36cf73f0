//! One conformance suite, run against every backend and against `AnyStore` holding each: each
//! case is a generic function over `Store` (or `OutboxStore`), and `support::backends!` (the
//! queue test layer, `tests/support/`) makes one test per case and store. Each test gets
//! a fresh store: a temporary SQLite file, or a PostgreSQL schema of its own (dropped after).
//! PostgreSQL cases skip with a printed reason when the server is unreachable, unless
//! `FLOODGATE_REQUIRE_SERVICES=1`.
#![allow(unreachable_pub)]

mod cases;
#[path = "../support/mod.rs"]
mod support;

use cases::*;

support::backends!(
    all: [
    // enqueue
    enqueue_stores_the_job_with_defaults,
    enqueue_many_returns_ids_in_input_order,
    bad_input_is_rejected_and_nothing_is_written,
    duplicate_idempotency_key_returns_the_existing_job,
    idempotency_key_holds_under_50_concurrent_enqueues,
    // claim
    claim_takes_highest_priority_then_oldest_run_at_then_id,
    claim_leaves_future_other_queue_and_other_kind_jobs,
    claim_leases_the_job,
    claim_skips_the_named_groups_and_takes_them_later,
    ordering_key_lets_only_the_oldest_unfinished_job_run,
    ordering_key_holds_through_retry_rescue_and_snooze,
    // held jobs (claimed ahead)
    held_jobs_are_reported_pending_until_they_start,
    a_cancelled_held_job_ends_at_once_and_never_starts,
    a_released_held_job_goes_back_in_its_place,
    a_held_job_is_rescued_with_its_attempt_unspent,
    // leases and completion
    a_stale_lease_token_cannot_finish_the_job,
    heartbeat_extends_held_leases_and_reports_lost_and_cancelled,
    complete_many_reports_lost_leases_and_completes_the_rest,
    failed_attempts_retry_then_go_dead,
    a_future_retry_is_not_claimed_early,
    dead_skips_the_remaining_attempts,
    snooze_gives_the_attempt_back,
    record_attempt_appends_under_the_lease,
    rescue_returns_expired_leases_and_records_the_takeover,
    // operations
    retry_dead_requeues_dead_jobs,
    cancel_finishes_waiting_jobs_and_flags_running_ones,
    paused_queues_are_not_claimed,
    paused_groups_are_recorded_until_resumed,
    queue_stats_count_every_state,
    queue_activity_counts_the_unfinished_and_the_recently_finished,
    retention_deletes_old_finished_jobs_in_batches,
    list_pages_by_keyset,
    list_and_count_filter_by_error_and_payload,
    failures_are_grouped_by_kind_and_error,
    recent_waits_measure_due_to_start,
    listen_wakes_on_enqueue,
    // concurrency
    eight_claimers_drain_20000_jobs_exactly_once,
    // leader roles
    leader_acquire_takes_a_free_role_and_renews_it,
    leader_release_frees_the_role_for_its_holder_only,
    an_expired_role_can_be_taken_by_another,
    leader_acquire_refuses_empty_names,
    ],
    outbox: [
    enqueue_in_exists_only_if_the_transaction_commits,
    // inbox
    inbox_record_is_true_once_per_consumer_and_key,
    an_inbox_record_rolled_back_is_not_kept,
    a_concurrent_inbox_record_waits_and_sees_a_duplicate,
    inbox_record_refuses_empty_names,
    inbox_delete_older_than_forgets_old_keys_in_batches,
    ],
);
