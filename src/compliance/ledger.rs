//! What the process knows of each published promotion's compliance, by UID:
//! when it was last checked and is next due, under which configuration
//! epoch, whether a referenced Secret changed since, the last judgement, the
//! signature checks cached for a digest and key set, and which expiring
//! ignore entries were already announced.
//!
//! The status is output, not memory: this ledger is rebuilt by checking
//! again after a start and is never read back from `status.conditions`.
//! [`due`] is pure and table-tested; the ledger only holds the records.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::judge::{ExpiringIgnore, Judgement, NONCOMPLIANT_REASONS, Standing};
use crate::verify::SignatureChecks;

/// What the signature checks were made for: the digest and the trusted keys
/// (or keyless identities) of each side. Another key set is another check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SignatureKey {
    /// The digests checked (a platform subset checks each platform manifest).
    pub digest: String,
    /// The object's trusted key ids.
    pub object: Vec<String>,
    /// The floor's trusted key ids.
    pub floor: Vec<String>,
}

/// One promotion's compliance record.
#[derive(Clone, Debug, Default)]
pub struct ComplianceRecord {
    /// The configuration epoch of the last check.
    pub epoch: u64,
    /// When the last check ended.
    pub checked: Option<Instant>,
    /// When the next check is due.
    pub next: Option<Instant>,
    /// A Secret the object references changed since the last check.
    pub poked: bool,
    /// The source digest judged.
    pub digest: Option<String>,
    /// The last judgement.
    pub judgement: Option<Judgement>,
    /// The signature checks of the last check and what they were made for.
    pub signatures: Option<(SignatureKey, SignatureChecks)>,
    /// Expiring ignore entries already announced with an event.
    pub announced: BTreeSet<ExpiringIgnore>,
}

/// Why a check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Never checked by this process.
    FirstCheck,
    /// The configuration (the floor) changed.
    Reconfigured,
    /// A referenced Secret changed.
    SecretChanged,
    /// The interval has passed.
    Interval,
}

/// Whether a published promotion is checked now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Check now.
    Now(Why),
    /// Not before this much time has passed.
    Later(Duration),
}

/// Whether the promotion with `record` is due for a check at `now`, the
/// configuration being at `epoch`.
pub fn due(record: Option<&ComplianceRecord>, epoch: u64, now: Instant) -> Due {
    let Some(record) = record.filter(|r| r.checked.is_some()) else {
        return Due::Now(Why::FirstCheck);
    };
    if record.epoch != epoch {
        return Due::Now(Why::Reconfigured);
    }
    if record.poked {
        return Due::Now(Why::SecretChanged);
    }
    match record.next.and_then(|n| n.checked_duration_since(now)) {
        Some(left) if !left.is_zero() => Due::Later(left),
        _ => Due::Now(Why::Interval),
    }
}

/// The interval jittered by ±10 % (`jitter` in `[0, 1)`), so that objects
/// created together spread out.
pub fn jittered(interval: Duration, jitter: f64) -> Duration {
    interval.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// What changed with a new judgement.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The standing flipped (or was judged for the first time), with the previous one.
    pub flipped: Option<Option<Standing>>,
    /// Expiring entries not announced before.
    pub newly_expiring: Vec<ExpiringIgnore>,
}

/// The records of every published promotion.
#[derive(Default)]
pub struct Ledger {
    records: Mutex<HashMap<String, ComplianceRecord>>,
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ComplianceRecord>> {
        self.records.lock().expect("lock never poisoned")
    }

    /// Whether `uid` is due at `now` (see [`due`]).
    pub fn due(&self, uid: &str, epoch: u64, now: Instant) -> Due {
        due(self.lock().get(uid), epoch, now)
    }

    /// The cached signature checks of `uid`, when they were made for `key`.
    pub fn cached_signatures(&self, uid: &str, key: &SignatureKey) -> Option<SignatureChecks> {
        self.lock()
            .get(uid)
            .and_then(|r| r.signatures.as_ref())
            .filter(|(k, _)| k == key)
            .map(|(_, checks)| checks.clone())
    }

    /// Records a check of `uid` of `digest` that ended at `now`: its
    /// judgement, the signature checks it used, and when the next one is
    /// due (after `wait`). What changed, for events.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        uid: &str,
        epoch: u64,
        digest: &str,
        judgement: Judgement,
        signatures: Option<(SignatureKey, SignatureChecks)>,
        now: Instant,
        wait: Duration,
    ) -> Changes {
        let mut records = self.lock();
        let record = records.entry(uid.to_string()).or_default();
        let previous = record.judgement.as_ref().map(|j| j.standing.clone());
        let flipped = match &previous {
            Some(before) if before.reason() == judgement.standing.reason() => None,
            _ => Some(previous),
        };
        let current: BTreeSet<ExpiringIgnore> = judgement.expiring.iter().cloned().collect();
        let newly_expiring = current.difference(&record.announced).cloned().collect();
        record.announced = current;
        record.epoch = epoch;
        record.checked = Some(now);
        record.next = Some(now + wait);
        record.poked = false;
        record.digest = Some(digest.to_string());
        record.judgement = Some(judgement);
        if signatures.is_some() {
            record.signatures = signatures;
        }
        Changes {
            flipped,
            newly_expiring,
        }
    }

    /// Puts the next check of `uid` off by `wait` without a judgement (a
    /// check that could not run).
    pub fn postpone(&self, uid: &str, epoch: u64, now: Instant, wait: Duration) {
        let mut records = self.lock();
        let record = records.entry(uid.to_string()).or_default();
        record.epoch = epoch;
        record.checked.get_or_insert(now);
        record.next = Some(now + wait);
        record.poked = false;
    }

    /// The last standing of `uid`, if it was judged.
    pub fn standing(&self, uid: &str) -> Option<Standing> {
        self.lock()
            .get(uid)
            .and_then(|r| r.judgement.as_ref())
            .map(|j| j.standing.clone())
    }

    /// Whether the ledger holds a record of `uid`.
    pub fn contains(&self, uid: &str) -> bool {
        self.lock().contains_key(uid)
    }

    /// A Secret `uid` references changed: it is checked again now.
    pub fn poke(&self, uid: &str) {
        if let Some(record) = self.lock().get_mut(uid) {
            record.poked = true;
        }
    }

    /// Forgets `uid` (deleted, or no longer published).
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Forgets every object not in `live`.
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    /// How many promotions stand violated, by reason (every reason present,
    /// zero included), and how many ignore entries expire soon.
    pub fn tally(&self) -> (BTreeMap<&'static str, i64>, i64) {
        let mut by_reason: BTreeMap<&'static str, i64> =
            NONCOMPLIANT_REASONS.iter().map(|r| (*r, 0)).collect();
        let mut expiring = 0;
        for judgement in self.lock().values().filter_map(|r| r.judgement.as_ref()) {
            if let Standing::Violated { reason, .. } = judgement.standing {
                *by_reason.entry(reason).or_default() += 1;
            }
            expiring += judgement.expiring.len() as i64;
        }
        (by_reason, expiring)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(standing: Standing, expiring: &[&str]) -> Judgement {
        Judgement {
            standing,
            expiring: expiring
                .iter()
                .map(|id| ExpiringIgnore {
                    id: id.to_string(),
                    expires: "2026-12-20".parse().unwrap(),
                })
                .collect(),
        }
    }

    fn found() -> Standing {
        Standing::Violated {
            reason: "VulnerabilitiesFound",
            message: "CVE-1".into(),
        }
    }

    #[test]
    fn a_check_is_due_first_on_a_change_then_at_the_interval() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let checked = ComplianceRecord {
            epoch: 2,
            checked: Some(now),
            next: Some(now + s(60)),
            ..ComplianceRecord::default()
        };
        let poked = ComplianceRecord {
            poked: true,
            ..checked.clone()
        };
        let postponed_only = ComplianceRecord {
            checked: None,
            ..checked.clone()
        };
        let cases = [
            (None, 2, now, Due::Now(Why::FirstCheck)),
            (Some(&postponed_only), 2, now, Due::Now(Why::FirstCheck)),
            (Some(&checked), 3, now, Due::Now(Why::Reconfigured)),
            (Some(&poked), 2, now, Due::Now(Why::SecretChanged)),
            (Some(&checked), 2, now, Due::Later(s(60))),
            (Some(&checked), 2, now + s(59), Due::Later(s(1))),
            (Some(&checked), 2, now + s(60), Due::Now(Why::Interval)),
            (Some(&checked), 2, now + s(600), Due::Now(Why::Interval)),
        ];
        for (i, (record, epoch, at, expected)) in cases.into_iter().enumerate() {
            assert_eq!(due(record, epoch, at), expected, "case {i}");
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let hour = Duration::from_secs(3600);
        assert_eq!(jittered(hour, 0.0), Duration::from_secs(3240));
        assert_eq!(jittered(hour, 0.5), hour);
        assert!(jittered(hour, 0.999) < Duration::from_secs(3960));
    }

    #[test]
    fn changes_are_reported_once_and_the_signature_cache_holds_for_its_key() {
        let ledger = Ledger::default();
        let now = Instant::now();
        let wait = Duration::from_secs(10);
        let key = SignatureKey {
            digest: "sha256:a".into(),
            object: vec!["sha256:k1".into()],
            floor: vec![],
        };
        let first = ledger.record(
            "u",
            0,
            "sha256:a",
            judged(Standing::Satisfied, &[]),
            Some((key.clone(), SignatureChecks::default())),
            now,
            wait,
        );
        assert_eq!(
            first.flipped,
            Some(None),
            "the first judgement is a transition"
        );
        assert!(ledger.cached_signatures("u", &key).is_some());
        let rotated = SignatureKey {
            object: vec!["sha256:k2".into()],
            ..key.clone()
        };
        assert!(ledger.cached_signatures("u", &rotated).is_none());
        let same = ledger.record(
            "u",
            0,
            "sha256:a",
            judged(Standing::Satisfied, &[]),
            None,
            now,
            wait,
        );
        assert_eq!(same, Changes::default());
        assert!(
            ledger.cached_signatures("u", &key).is_some(),
            "kept without a new check"
        );
        let flipped = ledger.record(
            "u",
            0,
            "sha256:a",
            judged(found(), &["CVE-1"]),
            None,
            now,
            wait,
        );
        assert_eq!(flipped.flipped, Some(Some(Standing::Satisfied)));
        assert_eq!(flipped.newly_expiring.len(), 1);
        let again = ledger.record(
            "u",
            0,
            "sha256:a",
            judged(found(), &["CVE-1"]),
            None,
            now,
            wait,
        );
        assert_eq!(again, Changes::default(), "announced once");
        let (by_reason, expiring) = ledger.tally();
        assert_eq!(by_reason["VulnerabilitiesFound"], 1);
        assert_eq!(by_reason["SignatureInvalid"], 0);
        assert_eq!(expiring, 1);
        ledger.poke("u");
        assert_eq!(ledger.due("u", 0, now), Due::Now(Why::SecretChanged));
        ledger.forget("u");
        assert_eq!(ledger.tally().0["VulnerabilitiesFound"], 0);
    }
}
