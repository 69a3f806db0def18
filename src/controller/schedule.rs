//! When an object is worked on, decided without I/O.
//!
//! kube-runtime wakes a reconcile for every watch event of the object, the
//! operator's own status writes included, and for every requeue. Whether the
//! wake-up does any work is decided here, from what the process remembers
//! of the object ([`Handled`], kept in its record) and what the object says
//! now: work is due when the object is new to this process, its spec changed
//! (another generation), a reconcile was requested through the annotation
//! [`crate::api::conditions::RECONCILE_REQUESTED_AT`], the configuration was
//! reloaded, a referenced Secret changed, or the time set after the last run
//! has come. Otherwise the wake-up is only requeued for the time left, so a
//! status write (the operator's own or anybody's) never starts work and a
//! backoff cannot be cut short.
//!
//! After a run, [`after`] sets when the object is next due: at the jittered
//! resync interval when it is done or stalled for a reason that can change
//! outside the cluster, after a backoff when it failed transiently or waits
//! for a scan, and never (until the object, a Secret or the configuration
//! changes) when it is stalled by the object or the configuration alone.

use std::time::{Duration, Instant};

use super::backoff::{Policy, SCAN_PENDING, TRANSIENT, delay, jittered};
use crate::api::reasons;

/// What the process remembers of the last time it worked on an object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Handled {
    /// The generation last worked on.
    pub generation: i64,
    /// The annotation's value last handled.
    pub requested: Option<String>,
    /// The configuration epoch last worked with.
    pub epoch: u64,
    /// When work is next due; `None`: only on a change.
    pub next: Option<Instant>,
    /// A referenced Secret changed since the last run.
    pub poked: bool,
    /// Consecutive transient failures.
    pub failures: u32,
    /// Consecutive runs that waited for a scan.
    pub waits: u32,
}

/// Why a wake-up does work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The process has not worked on the object yet (new, or after a start).
    FirstSeen,
    /// Another generation: the spec changed.
    SpecChanged,
    /// A new value of the reconcile-requested-at annotation.
    Requested,
    /// The configuration file was reloaded.
    Reconfigured,
    /// A Secret the object references changed.
    SecretChanged,
    /// The time set after the last run has come.
    Due,
}

/// Whether a wake-up works now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Work now.
    Now(Why),
    /// Nothing to do before this much time has passed.
    Later(Duration),
    /// Nothing to do until something changes.
    OnChange,
}

/// Whether an object at `generation` with the annotation `requested` is due
/// at `now`, the configuration being at `epoch`.
pub fn due(
    handled: Option<&Handled>,
    generation: i64,
    requested: Option<&str>,
    epoch: u64,
    now: Instant,
) -> Due {
    let Some(handled) = handled else {
        return Due::Now(Why::FirstSeen);
    };
    if handled.generation != generation {
        return Due::Now(Why::SpecChanged);
    }
    if requested.is_some() && requested != handled.requested.as_deref() {
        return Due::Now(Why::Requested);
    }
    if handled.epoch != epoch {
        return Due::Now(Why::Reconfigured);
    }
    if handled.poked {
        return Due::Now(Why::SecretChanged);
    }
    match handled.next {
        None => Due::OnChange,
        Some(next) => match next.checked_duration_since(now) {
            Some(left) if !left.is_zero() => Due::Later(left),
            _ => Due::Now(Why::Due),
        },
    }
}

/// How a run ended, as far as scheduling goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done (promoted, synced): looked at again at the resync interval.
    Done,
    /// A scan is still running.
    WaitForScan,
    /// A transient failure.
    Retry,
    /// Cannot go on; the reason decides whether looking again may help.
    Stalled(String),
    /// Nothing to do until the object changes (a suspended mirror).
    Suspended,
}

/// Reasons only a change of the object or of the configuration can clear:
/// nothing outside the cluster makes them pass, so they are not looked at
/// again on a timer.
pub const WAIT_FOR_CHANGE: &[&str] = &[
    reasons::INVALID_SPEC,
    reasons::INVALID_TAG_FILTER,
    reasons::CREDENTIALS_NOT_ALLOWED,
    reasons::REPOSITORY_NOT_ALLOWED,
];

/// Whether a stall for `reason` can clear without the object or the
/// configuration changing.
pub fn rechecked(reason: &str) -> bool {
    !WAIT_FOR_CHANGE.contains(&reason)
}

/// The record after a run that ended with `outcome`: what it handled, and
/// when it is next due (`resync` is the period of done and re-checked
/// objects, `jitter` in `[0, 1)`). Returns the new record and the requeue
/// delay (`None`: on change only).
pub fn after(
    previous: Option<&Handled>,
    handled: (i64, Option<String>, u64),
    outcome: &Outcome,
    resync: Duration,
    now: Instant,
    jitter: f64,
) -> (Handled, Option<Duration>) {
    let (generation, requested, epoch) = handled;
    let before = previous.cloned().unwrap_or_default();
    let same_generation = previous.is_some() && before.generation == generation;
    let (failures, waits) = if same_generation {
        (before.failures, before.waits)
    } else {
        (0, 0)
    };
    let grow = |policy: Policy, attempt: u32| delay(policy, attempt, jitter);
    let (wait, failures, waits) = match outcome {
        Outcome::Done => (Some(jittered(resync, jitter)), 0, 0),
        Outcome::Retry => (
            Some(grow(TRANSIENT, failures)),
            failures.saturating_add(1),
            0,
        ),
        Outcome::WaitForScan => (Some(grow(SCAN_PENDING, waits)), 0, waits.saturating_add(1)),
        Outcome::Stalled(reason) if rechecked(reason) => (Some(jittered(resync, jitter)), 0, 0),
        Outcome::Stalled(_) | Outcome::Suspended => (None, 0, 0),
    };
    let record = Handled {
        generation,
        requested,
        epoch,
        next: wait.map(|w| now + w),
        poked: false,
        failures,
        waits,
    };
    (record, wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handled(next: Option<Instant>) -> Handled {
        Handled {
            generation: 3,
            requested: Some("a".into()),
            epoch: 1,
            next,
            ..Handled::default()
        }
    }

    #[test]
    fn a_wake_up_works_only_when_something_is_due() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let later = handled(Some(now + s(60)));
        let poked = Handled {
            poked: true,
            ..later.clone()
        };
        // (record, generation, annotation, epoch, at, expected)
        let cases = [
            (None, 3, None, 1, now, Due::Now(Why::FirstSeen)),
            (
                Some(&later),
                4,
                Some("a"),
                1,
                now,
                Due::Now(Why::SpecChanged),
            ),
            (Some(&later), 3, Some("b"), 1, now, Due::Now(Why::Requested)),
            (Some(&later), 3, Some("a"), 1, now, Due::Later(s(60))),
            (Some(&later), 3, None, 1, now, Due::Later(s(60))),
            (
                Some(&later),
                3,
                Some("a"),
                2,
                now,
                Due::Now(Why::Reconfigured),
            ),
            (
                Some(&poked),
                3,
                Some("a"),
                1,
                now,
                Due::Now(Why::SecretChanged),
            ),
            (Some(&later), 3, Some("a"), 1, now + s(59), Due::Later(s(1))),
            (
                Some(&later),
                3,
                Some("a"),
                1,
                now + s(60),
                Due::Now(Why::Due),
            ),
            (
                Some(&later),
                3,
                Some("a"),
                1,
                now + s(90),
                Due::Now(Why::Due),
            ),
        ];
        for (i, (record, generation, annotation, epoch, at, expected)) in
            cases.into_iter().enumerate()
        {
            assert_eq!(
                due(record, generation, annotation, epoch, at),
                expected,
                "case {i}"
            );
        }
        let never = handled(None);
        assert_eq!(due(Some(&never), 3, Some("a"), 1, now), Due::OnChange);
        assert_eq!(
            due(Some(&never), 3, Some("c"), 1, now),
            Due::Now(Why::Requested),
            "a request bypasses a stall"
        );
    }

    #[test]
    fn after_a_run_the_next_time_follows_how_it_ended() {
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let run = |previous: Option<&Handled>, outcome: Outcome| {
            after(previous, (3, None, 1), &outcome, hour, now, 0.5)
        };
        let (record, wait) = run(None, Outcome::Done);
        assert_eq!(wait, Some(hour));
        assert_eq!(record.next, Some(now + hour));
        let (first, wait) = run(None, Outcome::Retry);
        assert_eq!(wait, Some(Duration::from_secs(5)));
        let (second, wait) = run(Some(&first), Outcome::Retry);
        assert_eq!(wait, Some(Duration::from_secs(10)));
        assert_eq!(second.failures, 2);
        let (_, wait) = run(Some(&second), Outcome::WaitForScan);
        assert_eq!(wait, Some(Duration::from_secs(30)), "scans count apart");
        let (done, _) = run(Some(&second), Outcome::Done);
        assert_eq!(done.failures, 0, "success clears the count");
        let (other, wait) = after(Some(&second), (4, None, 1), &Outcome::Retry, hour, now, 0.5);
        assert_eq!(
            (other.failures, wait),
            (1, Some(Duration::from_secs(5))),
            "a new generation starts over"
        );
        for (reason, expected) in [
            (reasons::TAG_MUTABLE, Some(hour)),
            (reasons::SIGNATURE_MISSING, Some(hour)),
            (reasons::VULNERABILITIES_FOUND, Some(hour)),
            (reasons::REPOSITORY_NOT_FOUND, Some(hour)),
            (reasons::ACCESS_DENIED, Some(hour)),
            (reasons::TAG_CONFLICT, Some(hour)),
            (reasons::CREDENTIALS_NOT_FOUND, Some(hour)),
            (reasons::INVALID_SPEC, None),
            (reasons::CREDENTIALS_NOT_ALLOWED, None),
            (reasons::REPOSITORY_NOT_ALLOWED, None),
        ] {
            let (record, wait) = run(None, Outcome::Stalled(reason.into()));
            assert_eq!(wait, expected, "{reason}");
            assert_eq!(record.next.is_some(), expected.is_some(), "{reason}");
        }
    }
}
