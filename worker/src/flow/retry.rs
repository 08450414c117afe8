//! A step's retry policy at work: what counts as retryable, and the wait before the next
//! attempt (exponential backoff with jitter, as the plan's `retry` table sets it).
use std::time::Duration;

use barrage_core::plan::RetryPolicy;

/// Why an attempt failed, as a retry policy sees it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Retryable {
    No,
    Status(u16),
    Transport,
    RunError,
}

/// The wait before attempt `attempt + 1`: `backoff` doubled per attempt, capped at
/// `max_backoff`, its `jitter` fraction drawn at random.
pub(super) fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let doubled = policy
        .backoff
        .saturating_mul(1u32 << (attempt - 1).min(16))
        .min(policy.max_backoff);
    doubled.mul_f64(1.0 - policy.jitter * rand::random::<f64>())
}
