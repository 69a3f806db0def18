//! Per-object requeue delays. kube-runtime keeps no failure count per object
//! (its `error_policy` is never told about successes), so the controller
//! counts here: consecutive transient failures and consecutive "scan still
//! running" answers, by object UID, cleared when the object succeeds or is
//! stalled. The delays themselves are pure ([`delay`]) and table-tested.
//!
//! A delay is also a hold: kube's scheduler keeps the earliest requeue, so
//! any watch event, the object's own status write included, would cut a
//! backoff short and turn it into a retry loop. Until its hold ends, an
//! object whose generation has not changed is only requeued for the time
//! left ([`Backoffs::held`], pure in [`remaining`]); a spec change lifts it,
//! while a changed Secret or configuration waits for the hold to end (at most
//! five minutes).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// No attempt before `until`, unless the spec changed (another generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hold {
    pub until: Instant,
    pub generation: i64,
}

/// What is left of `hold` at `now` for an object at `generation`; None when
/// it may be reconciled now.
pub fn remaining(hold: Option<Hold>, generation: i64, now: Instant) -> Option<Duration> {
    let hold = hold.filter(|h| h.generation == generation)?;
    hold.until
        .checked_duration_since(now)
        .filter(|d| !d.is_zero())
}

#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    failures: u32,
    waits: u32,
    hold: Option<Hold>,
}

/// Consecutive failures and waits per object UID.
#[derive(Debug, Default)]
pub struct Backoffs {
    counts: Mutex<HashMap<String, Counts>>,
}

impl Backoffs {
    /// A transient failure of `uid` at `generation`: the delay before its
    /// next attempt, held until then.
    pub fn failed(&self, uid: &str, generation: i64) -> Duration {
        let mut counts = self.counts.lock().expect("lock never poisoned");
        let entry = counts.entry(uid.to_string()).or_default();
        let attempt = entry.failures;
        entry.failures = entry.failures.saturating_add(1);
        let wait = delay(TRANSIENT, attempt, fastrand::f64());
        entry.hold = Some(Hold {
            until: Instant::now() + wait,
            generation,
        });
        wait
    }

    /// `uid` at `generation` waits for a scan: the delay before it looks
    /// again, held until then.
    pub fn waiting(&self, uid: &str, generation: i64) -> Duration {
        let mut counts = self.counts.lock().expect("lock never poisoned");
        let entry = counts.entry(uid.to_string()).or_default();
        let attempt = entry.waits;
        entry.waits = entry.waits.saturating_add(1);
        entry.failures = 0;
        let wait = delay(SCAN_PENDING, attempt, fastrand::f64());
        entry.hold = Some(Hold {
            until: Instant::now() + wait,
            generation,
        });
        wait
    }

    /// How long `uid` at `generation` must still wait; None when it may be
    /// reconciled now.
    pub fn held(&self, uid: &str, generation: i64, now: Instant) -> Option<Duration> {
        let counts = self.counts.lock().expect("lock never poisoned");
        remaining(counts.get(uid).and_then(|c| c.hold), generation, now)
    }

    /// `uid` succeeded, stalled or is gone: its counts start over.
    pub fn reset(&self, uid: &str) {
        self.counts.lock().expect("lock never poisoned").remove(uid);
    }

    /// How many objects have counts (for tests and metrics).
    pub fn len(&self) -> usize {
        self.counts.lock().expect("lock never poisoned").len()
    }

    /// Whether no object has counts.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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

    #[test]
    fn counts_grow_per_object_and_reset_on_success() {
        let backoffs = Backoffs::default();
        let first = backoffs.failed("a", 1);
        let second = backoffs.failed("a", 1);
        assert!(first <= Duration::from_millis(5500), "{first:?}");
        assert!(second >= Duration::from_secs(9), "{second:?}");
        assert!(
            backoffs.failed("b", 1) <= Duration::from_millis(5500),
            "per object"
        );
        backoffs.reset("a");
        assert!(
            backoffs.failed("a", 1) <= Duration::from_millis(5500),
            "reset"
        );
        assert!(backoffs.waiting("c", 1) >= Duration::from_secs(27));
        assert!(backoffs.waiting("c", 1) >= Duration::from_secs(54));
        assert_eq!(backoffs.len(), 3);
    }

    #[test]
    fn a_hold_lasts_until_its_time_unless_the_spec_changed() {
        let now = Instant::now();
        let hold = Some(Hold {
            until: now + Duration::from_secs(5),
            generation: 3,
        });
        let cases = [
            (hold, 3, now, Some(Duration::from_secs(5))),
            (
                hold,
                3,
                now + Duration::from_secs(2),
                Some(Duration::from_secs(3)),
            ),
            (hold, 3, now + Duration::from_secs(5), None),
            (hold, 3, now + Duration::from_secs(9), None),
            (hold, 4, now, None),
            (None, 3, now, None),
        ];
        for (hold, generation, at, expected) in cases {
            assert_eq!(
                remaining(hold, generation, at),
                expected,
                "{hold:?} {generation}"
            );
        }
        let backoffs = Backoffs::default();
        let wait = backoffs.failed("x", 7);
        let left = backoffs.held("x", 7, Instant::now()).unwrap();
        assert!(left <= wait && left > wait / 2, "{left:?} of {wait:?}");
        assert_eq!(
            backoffs.held("x", 8, Instant::now()),
            None,
            "a new generation"
        );
        backoffs.reset("x");
        assert_eq!(backoffs.held("x", 7, Instant::now()), None, "reset");
    }
}
