//! Requeue delays, pure and table-tested: consecutive transient failures
//! and consecutive "scan still running" answers grow an object's delay
//! ([`delay`]); done objects come back at a jittered period ([`jittered`]).
//! The counts themselves live in each object's record
//! ([`super::schedule::Handled`]), which also holds the delay against
//! early wake-ups (kube's scheduler keeps the earliest requeue, so any watch
//! event, the object's own status write included, would cut it short).

use std::time::Duration;

/// How a delay grows: `base` doubling per attempt up to `max`, ±10 % jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The first delay.
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
}

/// Transient failures: 5 s doubling to 5 min.
pub const TRANSIENT: Policy = Policy {
    base: Duration::from_secs(5),
    max: Duration::from_secs(300),
};

/// A scan still running: 30 s doubling to 5 min.
pub const SCAN_PENDING: Policy = Policy {
    base: Duration::from_secs(30),
    max: Duration::from_secs(300),
};

/// The delay before attempt `attempt` (0 for the first retry) with `jitter`
/// in `[0, 1)` (0.5 is no jitter): `base · 2^attempt`, at most `max`, then
/// scaled by 0.9 to 1.1.
pub fn delay(policy: Policy, attempt: u32, jitter: f64) -> Duration {
    let doubled = policy
        .base
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(policy.max)
        .min(policy.max);
    jittered(doubled, jitter)
}

/// `period` scaled by 0.9 to 1.1 according to `jitter` in `[0, 1)`.
pub fn jittered(period: Duration, jitter: f64) -> Duration {
    period.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_base_to_the_cap() {
        let s = Duration::from_secs;
        let cases = [
            (TRANSIENT, 0, s(5)),
            (TRANSIENT, 1, s(10)),
            (TRANSIENT, 2, s(20)),
            (TRANSIENT, 5, s(160)),
            (TRANSIENT, 6, s(300)),
            (TRANSIENT, 40, s(300)),
            (TRANSIENT, u32::MAX, s(300)),
            (SCAN_PENDING, 0, s(30)),
            (SCAN_PENDING, 1, s(60)),
            (SCAN_PENDING, 3, s(240)),
            (SCAN_PENDING, 4, s(300)),
        ];
        for (policy, attempt, expected) in cases {
            assert_eq!(
                delay(policy, attempt, 0.5),
                expected,
                "{policy:?} #{attempt}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let cases = [(0.0, 4500), (0.5, 5000), (0.999_999, 5500), (7.0, 5500)];
        for (jitter, millis) in cases {
            let got = delay(TRANSIENT, 0, jitter).as_millis();
            assert!(got.abs_diff(millis) <= 1, "{jitter}: {got}");
        }
    }
}
