//! The per-mirror ledger: what a mirror last knew of each selected tag (its
//! digest at the source and at each target), where the rotating re-check
//! stands, and when every tag was last read again.
//!
//! The ledger is what makes an idle sync cheap: a tag whose digest the ledger
//! knows is not asked for again until the rotating re-check reaches it or the
//! next full resync. The operator keeps one per mirror in memory (rebuilt at
//! start and every `fullResyncInterval`); `image-promoter mirror --state`
//! keeps it in a file between runs ([`super::state`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

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
    fn a_full_resync_is_due_at_first_and_after_its_interval() {
        let mut ledger = Ledger::default();
        assert!(ledger.full_resync_due(1000, 86400));
        ledger.last_full_resync = Some(1000);
        assert!(!ledger.full_resync_due(1000 + 86399, 86400));
        assert!(ledger.full_resync_due(1000 + 86400, 86400));
        assert!(ledger.full_resync_due(999, 86400), "a clock that went back");
    }
}
