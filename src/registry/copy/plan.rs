//! What each target needs, decided before anything is written: pure code.
//!
//! Write-once tags: a target tag that already points at another digest is a
//! conflict unless the tag is declared floating; a conflicting target gets
//! nothing written at all. A target whose tags all point at the pinned digest is
//! already done.

use crate::registry::digest::Digest;
use std::collections::BTreeMap;

/// A tag's state in a target, as observed by a manifest HEAD.
pub type ObservedTags = BTreeMap<String, Option<Digest>>;

/// One tag that would have to move to a different digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagConflict {
    pub tag: String,
    pub existing: Digest,
    pub wanted: Digest,
}

/// What to do for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPlan {
    /// Every tag already points at the digest: nothing to write.
    UpToDate,
    /// Write the image (blobs and manifests as needed), then these tags.
    Write { tags: Vec<String> },
    /// Write-once tags would move: write nothing.
    Conflict(Vec<TagConflict>),
}

/// Decides one target from its observed tags.
pub fn plan_target(
    wanted: &Digest,
    tags: &[String],
    floating: &[String],
    observed: &ObservedTags,
) -> TargetPlan {
    let mut conflicts = Vec::new();
    let mut to_write = Vec::new();
    for tag in tags {
        match observed.get(tag).cloned().flatten() {
            Some(existing) if &existing == wanted => {}
            Some(existing) if !floating.contains(tag) => conflicts.push(TagConflict {
                tag: tag.clone(),
                existing,
                wanted: wanted.clone(),
            }),
            _ => to_write.push(tag.clone()),
        }
    }
    if !conflicts.is_empty() {
        TargetPlan::Conflict(conflicts)
    } else if to_write.is_empty() && !tags.is_empty() {
        TargetPlan::UpToDate
    } else {
        TargetPlan::Write { tags: to_write }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    fn observed(entries: &[(&str, Option<u8>)]) -> ObservedTags {
        entries
            .iter()
            .map(|(tag, digest)| (tag.to_string(), digest.map(d)))
            .collect()
    }

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    /// name, tags, floating tags, observed, expected plan
    type Case = (
        &'static str,
        Vec<String>,
        Vec<String>,
        ObservedTags,
        TargetPlan,
    );

    #[test]
    fn decides_each_target() {
        let cases: Vec<Case> = vec![
            (
                "new tags are written",
                tags(&["1.2.3", "latest"]),
                tags(&["latest"]),
                observed(&[("1.2.3", None), ("latest", None)]),
                TargetPlan::Write {
                    tags: tags(&["1.2.3", "latest"]),
                },
            ),
            (
                "all present: up to date",
                tags(&["1.2.3"]),
                vec![],
                observed(&[("1.2.3", Some(1))]),
                TargetPlan::UpToDate,
            ),
            (
                "a floating tag moves",
                tags(&["1.2.3", "latest"]),
                tags(&["latest"]),
                observed(&[("1.2.3", Some(1)), ("latest", Some(9))]),
                TargetPlan::Write {
                    tags: tags(&["latest"]),
                },
            ),
            (
                "a write-once tag on another digest is a conflict",
                tags(&["1.2.3", "latest"]),
                tags(&["latest"]),
                observed(&[("1.2.3", Some(7)), ("latest", None)]),
                TargetPlan::Conflict(vec![TagConflict {
                    tag: "1.2.3".into(),
                    existing: d(7),
                    wanted: d(1),
                }]),
            ),
            (
                "no tags: digest only",
                vec![],
                vec![],
                observed(&[]),
                TargetPlan::Write { tags: vec![] },
            ),
        ];
        for (name, wanted_tags, floating, seen, expected) in cases {
            assert_eq!(
                plan_target(&d(1), &wanted_tags, &floating, &seen),
                expected,
                "{name}"
            );
        }
    }
}
