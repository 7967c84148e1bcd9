//! The one retry policy of idempotent reads: target reads ([`HttpClient`]) and token requests
//! ([`TokenCache`]) both go through [`ReadRetry`].
//!
//! `Transient` and `RateLimited` errors are retried up to `read_retry.max_attempts` attempts
//! in all, with exponential backoff and jitter between `initial_backoff` and `max_backoff`,
//! waiting at least the target's `Retry-After` when it sent one; a `Retry-After` longer than
//! `max_backoff` ends the retries instead (the caller sees the error at once). Other errors
//! are never retried.
//!
//! [`HttpClient`]: super::http::HttpClient
//! [`TokenCache`]: super::token::TokenCache

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::ConnectorError;
use crate::config::ReadRetryConfig;

/// The read retry policy of one target.
#[derive(Debug, Clone, Copy)]
pub struct ReadRetry {
    config: ReadRetryConfig,
}

impl ReadRetry {
    /// The policy of a target's `read_retry` settings.
    pub fn new(config: ReadRetryConfig) -> Self {
        Self { config }
    }

    /// The settings the policy follows.
    pub fn config(&self) -> ReadRetryConfig {
        self.config
    }

    /// Runs `read` and repeats it while the policy allows. Each retry is logged at WARN with
    /// the target, `what` was read and the delay.
    pub async fn run<T, F, Fut>(
        &self,
        target: &str,
        what: &str,
        read: F,
    ) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let max_backoff = self.config.max_backoff.get();
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.initial_backoff.get())
            .with_max_delay(max_backoff)
            .with_max_times(
                usize::try_from(self.config.max_attempts.saturating_sub(1)).unwrap_or(0),
            )
            .with_jitter();
        read.retry(backoff)
            .when(ConnectorError::is_retryable)
            .adjust(|err, delay| honour_retry_after(err, delay, max_backoff))
            .notify(|err, delay| {
                tracing::warn!(
                    target = %target,
                    what = what,
                    error = %err,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "Retrying a read."
                );
            })
            .await
    }
}

/// The wait before the next attempt: the backoff's `delay`, at least the `Retry-After` of a
/// rate-limited answer, or no further attempt when that `Retry-After` exceeds `max_backoff`.
fn honour_retry_after(
    err: &ConnectorError,
    delay: Option<Duration>,
    max_backoff: Duration,
) -> Option<Duration> {
    let retry_after = match err {
        ConnectorError::RateLimited { retry_after, .. } => *retry_after,
        _ => None,
    };
    match (delay, retry_after) {
        (Some(_), Some(wait)) if wait > max_backoff => None,
        (Some(delay), Some(wait)) => Some(delay.max(wait)),
        (delay, _) => delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(retry_after: Option<u64>) -> ConnectorError {
        ConnectorError::RateLimited {
            target: "t".into(),
            retry_after: retry_after.map(Duration::from_secs),
            message: "slow down".into(),
        }
    }

    #[test]
    fn retry_after_stretches_the_delay_or_ends_the_retries() {
        let max = Duration::from_secs(60);
        let backoff = Some(Duration::from_secs(2));
        assert_eq!(honour_retry_after(&limited(None), backoff, max), backoff);
        assert_eq!(
            honour_retry_after(&limited(Some(10)), backoff, max),
            Some(Duration::from_secs(10))
        );
        assert_eq!(honour_retry_after(&limited(Some(1)), backoff, max), backoff);
        assert_eq!(honour_retry_after(&limited(Some(61)), backoff, max), None);
        assert_eq!(honour_retry_after(&limited(Some(10)), None, max), None);
    }
}
