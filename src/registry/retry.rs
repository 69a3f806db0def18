//! When to try a request again, and how long to wait first: pure decisions.
//!
//! Transient answers (408, 429, 5xx, resets and timeouts) are retried with jittered
//! exponential backoff; a registry's `Retry-After` (seconds or an HTTP date) is
//! honoured, capped so a hostile value cannot park the engine.

use std::time::{Duration, SystemTime};

/// How often content whose bytes do not match their digest or size is read
/// from a source (a flaky cache or proxy may send right bytes next time)
/// before the mismatch is final: manifests and blobs alike.
pub const CONTENT_READS: u32 = 3;

/// How often and how patiently to retry.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub max_attempts: u32,
    /// Delay before the second attempt; doubled each time.
    pub base_delay: Duration,
    /// Upper bound of any delay, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// True for HTTP statuses worth retrying.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Parses `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempt counts from 1), with
    /// `jitter` in [0, 1) spreading retries of many clients apart.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.max_delay);
        }
        let exponent = attempt.saturating_sub(1).min(16);
        let backoff = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        // "Equal jitter": half fixed, half random.
        backoff / 2 + backoff.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// True while another attempt is allowed after `attempt` attempts.
    pub fn allows_another(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 201, 202, 400, 401, 403, 404, 409, 416] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, None, 0.0), Duration::from_millis(100));
        assert_eq!(policy.delay(1, None, 1.0), Duration::from_millis(200));
        assert_eq!(policy.delay(3, None, 0.0), Duration::from_millis(400));
        assert_eq!(policy.delay(30, None, 1.0), Duration::from_secs(30));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(2)), 0.5),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(86_400)), 0.5),
            Duration::from_secs(30)
        );
        assert!(policy.allows_another(5));
        assert!(!policy.allows_another(6));
    }
}
