//! A RegistryMirror's continuous compliance, the pure part: which in-sync
//! tags a mirror holds after a sync, which of their source digests are
//! judged now, and how the judgements show in the mirror's status and
//! events.
//!
//! A mirror that applies verification (its `spec.verify` or the operator's
//! floor) has each in-sync tag's source digest judged again at the
//! compliance interval with the promotion's own [`super::judge`] and
//! [`super::check`], one ledger ([`super::Ledger`]) per mirror keyed by
//! digest (tags naming one digest share its judgement: compliance leaves out
//! the one check that depends on a tag's name, immutability). The mirror's
//! own schedule (when it was last checked, under which configuration epoch,
//! whether a Secret changed) sits in the same ledger under [`SCHEDULE`].
//!
//! A digest copied in this process's sync was verified just before, so it
//! is judged compliant without a request until the next interval. Nothing
//! here copies or moves a tag; the status is written from the ledger and
//! never read back.

use std::collections::{BTreeMap, BTreeSet};

use super::judge::{NONCOMPLIANT_REASONS, Standing};
use crate::api::conditions::{COMPLIANT, ConditionUpdate, remove_condition, set_condition};
use crate::api::{Clock, RegistryMirrorStatus, TagCompliance, reasons};
use crate::mirror::plan::{Decision, TagState};

/// The ledger key of the mirror-wide schedule (digests are `sha256:…`).
pub const SCHEDULE: &str = "schedule";
/// Entries in `status.noncompliantTags`.
pub const MAX_LISTED: usize = 10;
/// Tags named in a condition message or an event.
const NAMED_IN_MESSAGE: usize = 3;

/// Tags in sync at every one of `targets` targets after a sync, with the
/// source digest each names.
pub fn in_sync_tags(decisions: &[Decision], targets: usize) -> BTreeMap<String, String> {
    let mut seen: BTreeMap<&str, (usize, Option<&str>)> = BTreeMap::new();
    for decision in decisions {
        let entry = seen.entry(decision.tag.as_str()).or_insert((0, None));
        if decision.state == TagState::InSync
            && let Some(digest) = &decision.digest
        {
            entry.0 += 1;
            entry.1 = Some(digest);
        } else {
            entry.0 = usize::MAX / 2; // another state at some target
        }
    }
    seen.into_iter()
        .filter(|(_, (count, _))| *count == targets && targets > 0)
        .filter_map(|(tag, (_, digest))| Some((tag.to_string(), digest?.to_string())))
        .collect()
}

/// Which digests a compliance pass judges and how.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChecksPlan {
    /// Verified by this process's sync and never judged: compliant now,
    /// without a request.
    pub fresh: Vec<String>,
    /// Judged now: one scan read each, signatures only when not cached.
    pub now: Vec<String>,
}

/// What to judge of the digests of `in_sync`: every one when the mirror is
/// `due`, else only those not judged yet (`judged`); one never judged that
/// this process's sync verified (`verified`) is fresh.
pub fn plan_checks(
    in_sync: &BTreeMap<String, String>,
    due: bool,
    judged: &BTreeSet<String>,
    verified: &BTreeSet<String>,
) -> ChecksPlan {
    let digests: BTreeSet<&String> = in_sync.values().collect();
    let mut plan = ChecksPlan::default();
    for digest in digests {
        let known = judged.contains(digest);
        if !known && verified.contains(digest) {
            plan.fresh.push(digest.clone());
        } else if due || !known {
            plan.now.push(digest.clone());
        }
    }
    plan
}

/// The in-sync tags that stand violated, by tag, given each digest's
/// standing (a digest not judged yet counts as passing).
pub fn noncompliant(
    in_sync: &BTreeMap<String, String>,
    standings: &BTreeMap<String, Standing>,
) -> BTreeMap<String, (String, Standing)> {
    in_sync
        .iter()
        .filter_map(|(tag, digest)| {
            let standing = standings.get(digest)?;
            matches!(standing, Standing::Violated { .. })
                .then(|| (tag.clone(), (digest.clone(), standing.clone())))
        })
        .collect()
}

/// The reason that takes precedence among `found`'s.
fn worst<'a>(found: impl Iterator<Item = &'a Standing>) -> &'static str {
    let reasons: BTreeSet<&str> = found.map(Standing::reason).collect();
    NONCOMPLIANT_REASONS
        .iter()
        .copied()
        .find(|r| reasons.contains(r))
        .unwrap_or(reasons::VULNERABILITIES_FOUND)
}

fn message_of(standing: &Standing) -> String {
    match standing {
        Standing::Satisfied => String::new(),
        Standing::Violated { message, .. } => message.clone(),
    }
}

/// "tag (Reason: message); …" for the first few tags, and how many more.
fn named(tags: &BTreeMap<String, (String, Standing)>) -> String {
    let mut text: Vec<String> = tags
        .iter()
        .take(NAMED_IN_MESSAGE)
        .map(|(tag, (_, s))| format!("{tag} ({}: {})", s.reason(), message_of(s)))
        .collect();
    if tags.len() > NAMED_IN_MESSAGE {
        text.push(format!("and {} more", tags.len() - NAMED_IN_MESSAGE));
    }
    text.join("; ")
}

/// Puts the mirror's compliance on `status`: `tags.noncompliant`,
/// `noncompliantTags` and the `Compliant` condition (False with the reason
/// that takes precedence, naming the first tags; True when every in-sync
/// tag passes). A mirror that does not apply verification (`applies`), or
/// has no tag in sync, shows none of it.
pub fn project(
    status: &mut RegistryMirrorStatus,
    applies: bool,
    in_sync: &BTreeMap<String, String>,
    standings: &BTreeMap<String, Standing>,
    clock: &impl Clock,
) {
    let generation = status.observed_generation;
    let found = noncompliant(in_sync, standings);
    if let Some(tags) = &mut status.tags {
        tags.noncompliant = if applies {
            i32::try_from(found.len()).unwrap_or(i32::MAX)
        } else {
            0
        };
    }
    if !applies || in_sync.is_empty() {
        status.noncompliant_tags.clear();
        remove_condition(&mut status.conditions, COMPLIANT);
        return;
    }
    status.noncompliant_tags = found
        .iter()
        .take(MAX_LISTED)
        .map(|(tag, (digest, standing))| TagCompliance {
            tag: tag.clone(),
            digest: digest.clone(),
            reason: standing.reason().to_string(),
            message: Some(message_of(standing)),
        })
        .collect();
    let update = if found.is_empty() {
        ConditionUpdate::new(COMPLIANT, true, reasons::POLICY_SATISFIED).message(format!(
            "every in-sync tag ({}) still passes the effective policy",
            in_sync.len()
        ))
    } else {
        ConditionUpdate::new(
            COMPLIANT,
            false,
            worst(found.values().map(|(_, standing)| standing)),
        )
        .message(format!(
            "{} of {} in-sync tags no longer pass the effective policy (they stay where they \
             are): {}",
            found.len(),
            in_sync.len(),
            named(&found)
        ))
    };
    set_condition(&mut status.conditions, update.generation(generation), clock);
}

/// An event a compliance pass publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// Warning (a tag newly noncompliant) or Normal (every tag passes again).
    pub warning: bool,
    /// The event's reason: a noncompliant reason, or PolicySatisfied.
    pub reason: &'static str,
    /// What changed.
    pub note: String,
}

/// The event of a pass that turned the noncompliant tags from `before`
/// into `after`: a Warning naming the tags newly noncompliant (or with
/// another reason), a Normal one when none is left; nothing otherwise.
pub fn transition(
    before: &BTreeMap<String, (String, Standing)>,
    after: &BTreeMap<String, (String, Standing)>,
) -> Option<Transition> {
    let newly: BTreeMap<String, (String, Standing)> = after
        .iter()
        .filter(|(tag, (_, standing))| {
            before
                .get(*tag)
                .is_none_or(|(_, was)| was.reason() != standing.reason())
        })
        .map(|(tag, entry)| (tag.clone(), entry.clone()))
        .collect();
    if !newly.is_empty() {
        return Some(Transition {
            warning: true,
            reason: worst(newly.values().map(|(_, standing)| standing)),
            note: format!(
                "{} in-sync {} no longer {} the effective policy: {}",
                newly.len(),
                if newly.len() == 1 { "tag" } else { "tags" },
                if newly.len() == 1 { "passes" } else { "pass" },
                named(&newly)
            ),
        });
    }
    (after.is_empty() && !before.is_empty()).then(|| Transition {
        warning: false,
        reason: reasons::POLICY_SATISFIED,
        note: "every in-sync tag passes the effective policy again".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::find_condition;
    use crate::api::{SystemClock, TagCounts};
    use crate::mirror::plan::Problem;

    fn decision(tag: &str, target: usize, digest: &str, state: TagState) -> Decision {
        Decision {
            tag: tag.into(),
            target,
            target_name: format!("t{target}"),
            digest: Some(digest.into()),
            state,
        }
    }

    fn found(reason: &'static str, message: &str) -> Standing {
        Standing::Violated {
            reason,
            message: message.into(),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_tag_is_in_sync_only_when_every_target_holds_it() {
        let failed = TagState::Failed(Problem {
            reason: "RegistryUnavailable".into(),
            message: "m".into(),
        });
        let decisions = vec![
            decision("1.0", 0, "sha256:a", TagState::InSync),
            decision("1.0", 1, "sha256:a", TagState::InSync),
            decision("1.1", 0, "sha256:b", TagState::InSync),
            decision("1.1", 1, "sha256:b", failed),
            decision("1.2", 0, "sha256:c", TagState::Copy),
            decision("1.2", 1, "sha256:c", TagState::InSync),
            decision("old", 0, "sha256:d", TagState::DeletedAtSource),
            decision("old", 1, "sha256:d", TagState::DeletedAtSource),
        ];
        assert_eq!(
            in_sync_tags(&decisions, 2),
            map(&[("1.0", "sha256:a")]),
            "only 1.0"
        );
        assert!(in_sync_tags(&decisions, 0).is_empty());
    }

    #[test]
    fn a_due_pass_judges_every_digest_and_a_fresh_copy_costs_nothing() {
        let in_sync = map(&[
            ("1.0", "sha256:a"),
            ("1.0-alias", "sha256:a"),
            ("1.1", "sha256:b"),
            ("1.2", "sha256:c"),
        ]);
        // (case, due, judged, verified, fresh, now)
        type Case<'a> = (
            &'a str,
            bool,
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: [Case<'_>; 5] = [
            (
                "first pass after a start",
                true,
                &[],
                &[],
                &[],
                &["sha256:a", "sha256:b", "sha256:c"],
            ),
            (
                "first pass, one digest copied by this sync",
                true,
                &[],
                &["sha256:c"],
                &["sha256:c"],
                &["sha256:a", "sha256:b"],
            ),
            (
                "not due, every digest judged",
                false,
                &["sha256:a", "sha256:b", "sha256:c"],
                &[],
                &[],
                &[],
            ),
            (
                "not due, a digest in sync that was not judged",
                false,
                &["sha256:a", "sha256:b"],
                &[],
                &[],
                &["sha256:c"],
            ),
            (
                "due: judged again even when verified by the sync",
                true,
                &["sha256:a", "sha256:b", "sha256:c"],
                &["sha256:c"],
                &[],
                &["sha256:a", "sha256:b", "sha256:c"],
            ),
        ];
        for (case, due, judged, verified, fresh, now) in cases {
            let plan = plan_checks(&in_sync, due, &set(judged), &set(verified));
            assert_eq!(plan.fresh, Vec::from_iter(set(fresh)), "{case}");
            assert_eq!(plan.now, Vec::from_iter(set(now)), "{case}");
        }
    }

    fn status() -> RegistryMirrorStatus {
        RegistryMirrorStatus {
            observed_generation: Some(4),
            tags: Some(TagCounts {
                selected: 3,
                in_sync: 3,
                ..TagCounts::default()
            }),
            ..RegistryMirrorStatus::default()
        }
    }

    #[test]
    fn the_status_counts_lists_and_names_the_worst_reason() {
        let in_sync = map(&[
            ("1.0", "sha256:a"),
            ("1.1", "sha256:b"),
            ("2.0", "sha256:c"),
        ]);
        let standings: BTreeMap<String, Standing> = [
            (
                "sha256:a".to_string(),
                found("VulnerabilitiesFound", "CVE-2026-1 (CRITICAL)"),
            ),
            (
                "sha256:b".to_string(),
                found("SignatureInvalid", "key sha256:k"),
            ),
            ("sha256:c".to_string(), Standing::Satisfied),
        ]
        .into();
        let mut status = status();
        project(&mut status, true, &in_sync, &standings, &SystemClock);
        assert_eq!(status.tags.as_ref().unwrap().noncompliant, 2);
        assert_eq!(status.tags.as_ref().unwrap().in_sync, 3, "still in sync");
        let listed: Vec<(&str, &str)> = status
            .noncompliant_tags
            .iter()
            .map(|t| (t.tag.as_str(), t.reason.as_str()))
            .collect();
        assert_eq!(
            listed,
            vec![("1.0", "VulnerabilitiesFound"), ("1.1", "SignatureInvalid")]
        );
        let condition = find_condition(&status.conditions, COMPLIANT).unwrap();
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("False", "SignatureInvalid"),
            "a revoked key takes precedence"
        );
        assert!(
            condition.message.contains("2 of 3"),
            "{}",
            condition.message
        );
        assert!(
            condition.message.contains("CVE-2026-1"),
            "{}",
            condition.message
        );
        assert_eq!(condition.observed_generation, Some(4));

        let clean: BTreeMap<String, Standing> = in_sync
            .values()
            .map(|d| (d.clone(), Standing::Satisfied))
            .collect();
        project(&mut status, true, &in_sync, &clean, &SystemClock);
        assert_eq!(status.tags.as_ref().unwrap().noncompliant, 0);
        assert!(status.noncompliant_tags.is_empty());
        let condition = find_condition(&status.conditions, COMPLIANT).unwrap();
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_str()),
            ("True", "PolicySatisfied")
        );

        project(&mut status, false, &in_sync, &standings, &SystemClock);
        assert!(find_condition(&status.conditions, COMPLIANT).is_none());
        assert_eq!(status.tags.as_ref().unwrap().noncompliant, 0);
        assert!(status.noncompliant_tags.is_empty());
    }

    #[test]
    fn at_most_ten_tags_are_listed_and_three_named() {
        let in_sync: BTreeMap<String, String> = (0..25)
            .map(|i| (format!("1.{i:02}"), format!("sha256:{i:02}")))
            .collect();
        let standings: BTreeMap<String, Standing> = in_sync
            .values()
            .map(|d| (d.clone(), found("VulnerabilitiesFound", "CVE-1")))
            .collect();
        let mut status = status();
        project(&mut status, true, &in_sync, &standings, &SystemClock);
        assert_eq!(status.tags.as_ref().unwrap().noncompliant, 25);
        assert_eq!(status.noncompliant_tags.len(), MAX_LISTED);
        let message = &find_condition(&status.conditions, COMPLIANT)
            .unwrap()
            .message;
        assert!(message.contains("and 22 more"), "{message}");
    }

    #[test]
    fn events_come_on_transitions_only() {
        let entry = |reason, digest: &str| (digest.to_string(), found(reason, "CVE-9"));
        let none = BTreeMap::new();
        let one: BTreeMap<String, (String, Standing)> =
            [("1.0".to_string(), entry("VulnerabilitiesFound", "sha256:a"))].into();
        let expired: BTreeMap<String, (String, Standing)> =
            [("1.0".to_string(), entry("IgnoreExpired", "sha256:a"))].into();
        let two: BTreeMap<String, (String, Standing)> = [
            ("1.0".to_string(), entry("VulnerabilitiesFound", "sha256:a")),
            ("1.1".to_string(), entry("VulnerabilitiesFound", "sha256:b")),
        ]
        .into();
        let warned = transition(&none, &one).unwrap();
        assert!(warned.warning);
        assert_eq!(warned.reason, "VulnerabilitiesFound");
        assert!(
            warned.note.contains("1.0 (VulnerabilitiesFound: CVE-9)"),
            "{}",
            warned.note
        );
        assert_eq!(transition(&one, &one), None, "no change, no event");
        assert_eq!(transition(&none, &none), None);
        let another = transition(&one, &expired).unwrap();
        assert_eq!(another.reason, "IgnoreExpired");
        let more = transition(&one, &two).unwrap();
        assert!(more.note.starts_with("1 in-sync tag"), "{}", more.note);
        assert!(more.note.contains("1.1"), "{}", more.note);
        assert_eq!(transition(&two, &one), None, "fewer is not a recovery yet");
        let recovered = transition(&one, &none).unwrap();
        assert!(!recovered.warning);
        assert_eq!(recovered.reason, "PolicySatisfied");
    }
}
