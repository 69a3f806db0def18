//! The per-mirror ledger: what a mirror last knew of each selected tag (its
//! digest at the source and at each target), where the rotating re-check
//! stands, when every tag was last read again, which tags' copies keep
//! failing and when each is tried again, and the verification verdicts of
//! the images (under the policy they were made with).
//!
//! The ledger is what makes an idle sync cheap: a tag whose digest the ledger
//! knows is not asked for again until the rotating re-check reaches it or the
//! next full resync. The operator keeps one per mirror in memory (rebuilt at
//! start and every `fullResyncInterval`); `image-promoter mirror --state`
//! keeps it in a file between runs ([`super::state`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::plan::{CopyHistory, Problem};
use crate::api::VerificationEvidence;
use crate::verify::SignatureChecks;

/// How many known tags each sync reads again (source and every target), in
/// a rotating order, so a change behind the ledger's back is found within
/// `tags / RECHECKS_PER_SYNC` intervals without a full resync.
pub const RECHECKS_PER_SYNC: usize = 4;

/// One tag at the source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceRecord {
    /// The digest it named when last read.
    pub digest: String,
    /// When it was pushed (seconds since the epoch), where the registry says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<i64>,
}

/// What a mirror knows between syncs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    /// Selected tags at the source, by tag.
    pub source: BTreeMap<String, SourceRecord>,
    /// Tags once selected that the source no longer lists; reported while a
    /// target still holds them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub deleted_at_source: BTreeSet<String>,
    /// Each target's tags (target name → tag → digest), as last read or written.
    pub targets: BTreeMap<String, BTreeMap<String, String>>,
    /// Position of the rotating re-check in the sorted selected tags.
    #[serde(default)]
    pub recheck_cursor: u64,
    /// When every selected tag was last read again (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_resync: Option<i64>,
    /// Tags whose last copies failed, by tag.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub copy_failures: BTreeMap<String, CopyFailures>,
    /// Verification verdicts of the source's images.
    #[serde(default, skip_serializing_if = "Verdicts::is_empty")]
    pub verdicts: Verdicts,
}

/// A tag whose copies failed, one after another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyFailures {
    /// The source digest whose copies failed; another digest starts afresh.
    pub digest: String,
    /// Failed copies in a row.
    pub count: u32,
    /// When the tag may be tried again (seconds since the epoch).
    pub next_try: i64,
    /// The last failure.
    pub problem: Problem,
}

/// What verification decided about the source's images, under one policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdicts {
    /// Fingerprint of the effective policy the verdicts were made under
    /// (`spec.verify`, the floor, the keys): another policy forgets them.
    pub policy: String,
    /// Image digest → tag → verdict (a tag, because ECR's tag immutability
    /// can depend on the tag's name).
    pub images: BTreeMap<String, BTreeMap<String, Verdict>>,
    /// Image digest → what its passed verification rested on, for the
    /// receipts of its copies and the compliance check that follows. Kept
    /// in the process only: a state file (`mirror --state`) does not hold it.
    #[serde(skip)]
    pub evidence: BTreeMap<String, Evidence>,
}

/// What an image's passed verification rested on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The scan and the signature verified, as a receipt names them.
    pub verification: VerificationEvidence,
    /// The signature checks made, under the mirror's keys: a compliance
    /// check of the digest with the same keys need not read them again.
    pub signatures: SignatureChecks,
}

impl Verdicts {
    fn is_empty(&self) -> bool {
        self.images.is_empty()
    }

    /// The verdict for `tag` at `digest` under the policy `fingerprint`.
    pub fn get(&self, fingerprint: &str, digest: &str, tag: &str) -> Option<&Verdict> {
        if self.policy != fingerprint {
            return None;
        }
        self.images.get(digest)?.get(tag)
    }

    /// Remembers `verdict` for `tag` at `digest` under `fingerprint`,
    /// forgetting what another policy decided.
    pub fn record(&mut self, fingerprint: &str, digest: &str, tag: &str, verdict: Verdict) {
        if self.policy != fingerprint {
            *self = Self {
                policy: fingerprint.to_string(),
                ..Self::default()
            };
        }
        self.images
            .entry(digest.to_string())
            .or_default()
            .insert(tag.to_string(), verdict);
    }
}

/// A verification verdict that stands until the image or the policy changes
/// (or the next full resync, for a refusal: a signature may be pushed later).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Every check passed.
    Passed,
    /// A check failed: the first failure's reason, every failure in the message.
    Refused(Problem),
}

/// How long a tag whose copies failed `count` times in a row waits before it
/// is tried again, in seconds: none after the first failure (the next sync),
/// then 1, 3, 7 … intervals (2^(count-1) - 1), at most `cap` (the full
/// resync interval), so it is tried at least once per full resync.
pub fn retry_delay(count: u32, interval: i64, cap: i64) -> i64 {
    let intervals = 1i64
        .checked_shl(count.saturating_sub(1).min(62))
        .unwrap_or(i64::MAX)
        - 1;
    intervals.saturating_mul(interval).min(cap.max(0))
}

impl Ledger {
    /// Whether a full resync is due at `now` after `every` seconds.
    pub fn full_resync_due(&self, now: i64, every: i64) -> bool {
        self.last_full_resync
            .is_none_or(|last| now.saturating_sub(last) >= every || now < last)
    }

    /// The digest the ledger has for `tag` at target `target`.
    pub fn at_target(&self, target: &str, tag: &str) -> Option<&str> {
        self.targets.get(target)?.get(tag).map(String::as_str)
    }

    /// How the copies of `tag` at `digest` went so far, at `now`.
    pub fn copy_history(&self, tag: &str, digest: &str, now: i64) -> CopyHistory {
        match self.copy_failures.get(tag) {
            Some(failures) if failures.digest == digest => {
                if now >= failures.next_try {
                    CopyHistory::Retry(failures.problem.clone())
                } else {
                    CopyHistory::BackingOff(failures.problem.clone())
                }
            }
            _ => CopyHistory::Fresh,
        }
    }

    /// Records that copying `tag` at `digest` failed at `now`, for a mirror
    /// synced every `interval` seconds with a full resync every `cap`. The
    /// next try is due half an interval early, so a jittered sync a little
    /// before the exact time still takes it.
    pub fn copy_failed(
        &mut self,
        tag: &str,
        digest: &str,
        problem: Problem,
        now: i64,
        (interval, cap): (i64, i64),
    ) {
        let count = match self.copy_failures.get(tag) {
            Some(failures) if failures.digest == digest => failures.count.saturating_add(1),
            _ => 1,
        };
        let delay = retry_delay(count, interval, cap);
        let next_try = if delay == 0 {
            now
        } else {
            now + delay - interval / 2
        };
        self.copy_failures.insert(
            tag.to_string(),
            CopyFailures {
                digest: digest.to_string(),
                count,
                next_try,
                problem,
            },
        );
    }

    /// Records that `tag` was copied: its failures are forgotten.
    pub fn copy_succeeded(&mut self, tag: &str) {
        self.copy_failures.remove(tag);
    }

    /// Records that `tag` names `digest` at target `target`.
    pub fn record_target(&mut self, target: &str, tag: &str, digest: &str) {
        self.targets
            .entry(target.to_string())
            .or_default()
            .insert(tag.to_string(), digest.to_string());
    }
}

/// The next `count` tags of `sorted` from `cursor` on, wrapping around, and
/// the cursor after them: the known tags this sync reads again.
pub fn rotating_sample(sorted: &[&str], cursor: u64, count: usize) -> (BTreeSet<String>, u64) {
    if sorted.is_empty() || count == 0 {
        return (BTreeSet::new(), 0);
    }
    let len = sorted.len() as u64;
    let start = cursor % len;
    let take = (count as u64).min(len);
    let sample = (0..take)
        .map(|i| sorted[((start + i) % len) as usize].to_string())
        .collect();
    (sample, (start + take) % len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rotating_sample_walks_every_tag_in_turn() {
        let tags = ["a", "b", "c", "d", "e"];
        let cases: &[(u64, usize, &[&str], u64)] = &[
            (0, 2, &["a", "b"], 2),
            (2, 2, &["c", "d"], 4),
            (4, 2, &["a", "e"], 1),
            (9, 2, &["a", "e"], 1),
            (0, 9, &["a", "b", "c", "d", "e"], 0),
            (3, 0, &[], 0),
        ];
        for (cursor, count, expected, next) in cases {
            let (sample, after) = rotating_sample(&tags, *cursor, *count);
            let sample: Vec<&str> = sample.iter().map(String::as_str).collect();
            assert_eq!(
                (sample.as_slice(), after),
                (*expected, *next),
                "{cursor} {count}"
            );
        }
        assert_eq!(rotating_sample(&[], 7, 4), (BTreeSet::new(), 0));
    }

    #[test]
    fn a_failing_tag_backs_off_by_intervals_up_to_the_full_resync() {
        let (interval, cap) = (600, 86_400);
        let cases = [
            (1, 0),
            (2, 600),
            (3, 1_800),
            (4, 4_200),
            (8, 76_200),
            (9, 86_400),
            (40, 86_400),
            (u32::MAX, 86_400),
        ];
        for (count, delay) in cases {
            assert_eq!(retry_delay(count, interval, cap), delay, "{count}");
        }
    }

    #[test]
    fn copy_failures_count_per_digest_and_clear_on_success() {
        let problem = Problem {
            reason: "BlobUnknown".into(),
            message: "m".into(),
        };
        let timing = (600, 86_400);
        let mut ledger = Ledger::default();
        assert_eq!(ledger.copy_history("t", "d1", 0), CopyHistory::Fresh);
        ledger.copy_failed("t", "d1", problem.clone(), 1_000, timing);
        let retry = CopyHistory::Retry(problem.clone());
        assert_eq!(
            ledger.copy_history("t", "d1", 1_000),
            retry,
            "the first failure is tried again at the next sync"
        );
        ledger.copy_failed("t", "d1", problem.clone(), 1_600, timing);
        assert_eq!(ledger.copy_failures["t"].count, 2);
        let backing_off = CopyHistory::BackingOff(problem.clone());
        assert_eq!(ledger.copy_history("t", "d1", 1_800), backing_off);
        assert_eq!(
            ledger.copy_history("t", "d1", 1_600 + 540),
            retry,
            "a jittered sync a little early still retries"
        );
        assert_eq!(
            ledger.copy_history("t", "d2", 1_800),
            CopyHistory::Fresh,
            "a new digest starts afresh"
        );
        ledger.copy_failed("t", "d2", problem, 1_800, timing);
        assert_eq!(ledger.copy_failures["t"].count, 1);
        ledger.copy_succeeded("t");
        assert_eq!(ledger.copy_history("t", "d2", 1_800), CopyHistory::Fresh);
    }

    #[test]
    fn verdicts_stand_under_their_policy_only() {
        let mut verdicts = Verdicts::default();
        assert_eq!(verdicts.get("p1", "d", "t"), None);
        verdicts.record("p1", "d", "t", Verdict::Passed);
        assert_eq!(verdicts.get("p1", "d", "t"), Some(&Verdict::Passed));
        assert_eq!(verdicts.get("p1", "d", "other"), None);
        assert_eq!(verdicts.get("p2", "d", "t"), None);
        verdicts.record("p2", "e", "t", Verdict::Passed);
        assert_eq!(verdicts.get("p2", "d", "t"), None, "another policy forgets");
        assert_eq!(verdicts.images.len(), 1);
    }

    #[test]
    fn a_full_resync_is_due_at_first_and_after_its_interval() {
        let mut ledger = Ledger::default();
        assert!(ledger.full_resync_due(1000, 86400));
        ledger.last_full_resync = Some(1000);
        assert!(!ledger.full_resync_due(1000 + 86399, 86400));
        assert!(ledger.full_resync_due(1000 + 86400, 86400));
        assert!(ledger.full_resync_due(999, 86400), "a clock that went back");
    }
}
