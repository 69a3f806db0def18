//! Kubernetes Events (`events.k8s.io/v1`) on transitions only, decided pure
//! from the previous and the new status and published with the process's one
//! [`super::recorder::EventRecorder`]. What tells events about one object
//! apart (the target) goes into `action`.
//!
//! Both kinds share one rule for their `Ready` condition
//! ([`ready_transition`]): when Ready turns False, or stays False with
//! another reason, a Warning whose reason is the condition's own reason
//! (`SourceNotFound`, `CredentialsNotFound`, `TagsDrifted`, …); when it turns
//! True, a Normal event (the recovery). Reasons that only say work is under
//! way ([`progress_reason`]: `Backfilling`, `Progressing`, `ScanPending`) are
//! Normal. Nothing is published while Ready keeps its status and reason, so a
//! failure that lasts raises one event, not one per reconcile. Promotions add
//! their own step events ([`transitions`]: verification, each target).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::conditions::{self, find_condition};
use crate::api::{ImagePromotionStatus, TargetState, reasons};

/// The `action` of the events about the Ready condition, for both kinds.
pub const READY_ACTION: &str = "Reconcile";

/// One event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Normal or Warning.
    pub warning: bool,
    /// A condition's reason (`SourceNotFound`, `TagsDrifted`, `InSync`, …) or a
    /// step's (`Verified`, `VerificationFailed`, `Promoted`, `TagConflict`, `ScanPending`).
    pub reason: String,
    /// What was done (`Verify`, `Promote/<target>`, `CheckDrift`).
    pub action: String,
    /// For people.
    pub note: String,
}

/// Whether a Ready=False `reason` only says that work is under way (a
/// Normal event), not that something failed (a Warning).
pub fn progress_reason(reason: &str) -> bool {
    [
        reasons::BACKFILLING,
        reasons::PROGRESSING,
        reasons::SCAN_PENDING,
    ]
    .contains(&reason)
}

/// The event a change of the Ready condition from `previous` to `new`
/// deserves, for either kind: a Warning with the condition's reason when it
/// turns False or stays False with another reason, a Normal one when it turns
/// True (or False for a [`progress_reason`]); none while status and reason
/// stay, nor when Ready is Unknown or absent.
pub fn ready_transition(previous: &[Condition], new: &[Condition]) -> Option<Notice> {
    let after = find_condition(new, conditions::READY)?;
    let before = find_condition(previous, conditions::READY);
    if before.is_some_and(|b| b.status == after.status && b.reason == after.reason) {
        return None;
    }
    let warning = match after.status.as_str() {
        "True" => false,
        "False" => !progress_reason(&after.reason),
        _ => return None,
    };
    Some(Notice {
        warning,
        reason: after.reason.clone(),
        action: READY_ACTION.into(),
        note: after.message.clone(),
    })
}

/// The events the step from `previous` to `new` deserves.
pub fn transitions(previous: &ImagePromotionStatus, new: &ImagePromotionStatus) -> Vec<Notice> {
    let mut notices = Vec::new();
    let condition = |status: &ImagePromotionStatus, type_| {
        find_condition(&status.conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
    };
    let notice = |warning, reason: &str, action: &str, note: String| Notice {
        warning,
        reason: reason.to_string(),
        action: action.to_string(),
        note,
    };
    let (old_verified, new_verified) = (
        condition(previous, conditions::VERIFIED),
        condition(new, conditions::VERIFIED),
    );
    if new_verified != old_verified
        && let Some(c) = find_condition(&new.conditions, conditions::VERIFIED)
    {
        match c.status.as_str() {
            "True" => notices.push(notice(false, "Verified", "Verify", c.message.clone())),
            "False" => notices.push(notice(
                true,
                "VerificationFailed",
                "Verify",
                format!("{}: {}", c.reason, c.message),
            )),
            _ if c.reason == reasons::SCAN_PENDING => {
                notices.push(notice(false, "ScanPending", "Verify", c.message.clone()))
            }
            _ => {}
        }
    }
    for target in &new.targets {
        let before = previous
            .targets
            .iter()
            .find(|t| t.name == target.name)
            .map(|t| t.state);
        if before == Some(target.state) {
            continue;
        }
        let action = format!("Promote/{}", target.name);
        match target.state {
            TargetState::Promoted => notices.push(notice(
                false,
                "Promoted",
                &action,
                format!(
                    "{}: {} tagged {}",
                    target.name,
                    target.digest.as_deref().unwrap_or_default(),
                    target.tags.join(", ")
                ),
            )),
            TargetState::Conflict => notices.push(notice(
                true,
                "TagConflict",
                &action,
                target.message.clone().unwrap_or_default(),
            )),
            _ => {}
        }
    }
    // Ready's own event, unless a step event above already says the same
    // (a target's TagConflict, each target's Promoted).
    if let Some(ready) = ready_transition(&previous.conditions, &new.conditions)
        && !notices.iter().any(|n| n.reason == ready.reason)
    {
        notices.push(ready);
    }
    let unchecked = |status: &ImagePromotionStatus| {
        conditions::is_true(&status.conditions, conditions::DRIFT_CHECK_FAILED)
    };
    match (unchecked(previous), unchecked(new)) {
        (false, true) => {
            if let Some(c) = find_condition(&new.conditions, conditions::DRIFT_CHECK_FAILED) {
                notices.push(notice(
                    true,
                    "DriftCheckFailed",
                    "CheckDrift",
                    format!("{}: {}", c.reason, c.message),
                ));
            }
        }
        (true, false) => notices.push(notice(
            false,
            "DriftChecked",
            "CheckDrift",
            "the drift check runs again".into(),
        )),
        _ => {}
    }
    notices
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TargetResult;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{type_} {reason}"),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::from_second(1).unwrap()),
        }
    }

    fn target(name: &str, state: TargetState) -> TargetResult {
        TargetResult {
            name: name.into(),
            state,
            ..TargetResult::default()
        }
    }

    fn status(conditions: Vec<Condition>, targets: Vec<TargetResult>) -> ImagePromotionStatus {
        ImagePromotionStatus {
            conditions,
            targets,
            ..ImagePromotionStatus::default()
        }
    }

    fn reasons_of(notices: &[Notice]) -> Vec<(&str, &str)> {
        notices
            .iter()
            .map(|n| (n.reason.as_str(), n.action.as_str()))
            .collect()
    }

    type Case<'a> = (
        &'a ImagePromotionStatus,
        &'a ImagePromotionStatus,
        Vec<(&'static str, &'static str)>,
    );

    #[test]
    fn events_are_published_on_transitions_only() {
        let empty = ImagePromotionStatus::default();
        let pending = status(
            vec![condition("Verified", "Unknown", "ScanPending")],
            vec![target("a", TargetState::Pending)],
        );
        let promoted = status(
            vec![
                condition("Ready", "True", "Promoted"),
                condition("Verified", "True", "PolicySatisfied"),
            ],
            vec![
                target("a", TargetState::Promoted),
                target("b", TargetState::Conflict),
            ],
        );
        let refused = status(
            vec![
                condition("Ready", "False", "VulnerabilitiesFound"),
                condition("Verified", "False", "VulnerabilitiesFound"),
            ],
            vec![target("a", TargetState::Pending)],
        );
        let drifted = status(
            vec![
                condition("Ready", "False", "TagDrifted"),
                condition("Verified", "True", "PolicySatisfied"),
            ],
            vec![
                target("a", TargetState::Promoted),
                target("b", TargetState::Conflict),
            ],
        );
        let cases: [Case<'_>; 6] = [
            (&empty, &pending, vec![("ScanPending", "Verify")]),
            (&pending, &pending, vec![]),
            (
                &pending,
                &promoted,
                vec![
                    ("Verified", "Verify"),
                    ("Promoted", "Promote/a"),
                    ("TagConflict", "Promote/b"),
                ],
            ),
            (&promoted, &promoted, vec![]),
            (
                &empty,
                &refused,
                vec![
                    ("VerificationFailed", "Verify"),
                    ("VulnerabilitiesFound", "Reconcile"),
                ],
            ),
            (&promoted, &drifted, vec![("TagDrifted", "Reconcile")]),
        ];
        for (i, (before, after, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                reasons_of(&transitions(before, after)),
                expected,
                "case {i}"
            );
        }
        let failed = transitions(&empty, &refused);
        assert!(failed[0].warning);
        assert!(failed[0].note.starts_with("VulnerabilitiesFound: "));
    }

    #[test]
    fn ready_raises_a_warning_with_its_own_reason_on_each_transition_to_false() {
        let ready = |status: &str, reason: &str| vec![condition("Ready", status, reason)];
        let none: Vec<Condition> = Vec::new();
        // (before, after) → (warning, reason) or nothing.
        type Case = (Vec<Condition>, Vec<Condition>, Option<(bool, &'static str)>);
        let cases: Vec<Case> = vec![
            // Failures of either kind, whatever they were before.
            (
                none.clone(),
                ready("False", "SourceNotFound"),
                Some((true, "SourceNotFound")),
            ),
            (
                ready("True", "InSync"),
                ready("False", "TagsDrifted"),
                Some((true, "TagsDrifted")),
            ),
            (
                ready("True", "Promoted"),
                ready("False", "TagDrifted"),
                Some((true, "TagDrifted")),
            ),
            (
                ready("Unknown", "Progressing"),
                ready("False", "AccessDenied"),
                Some((true, "AccessDenied")),
            ),
            (
                ready("False", "Backfilling"),
                ready("False", "CredentialsNotFound"),
                Some((true, "CredentialsNotFound")),
            ),
            // Another reason while still False is a transition too.
            (
                ready("False", "CredentialsNotFound"),
                ready("False", "RepositoryNotFound"),
                Some((true, "RepositoryNotFound")),
            ),
            // The same status and reason: nothing, however often.
            (
                ready("False", "AccessDenied"),
                ready("False", "AccessDenied"),
                None,
            ),
            (ready("True", "InSync"), ready("True", "InSync"), None),
            // Recovery, and a first success, are Normal.
            (
                ready("False", "TagsDrifted"),
                ready("True", "InSync"),
                Some((false, "InSync")),
            ),
            (
                ready("False", "TagDrifted"),
                ready("True", "Promoted"),
                Some((false, "Promoted")),
            ),
            (
                none.clone(),
                ready("True", "InSync"),
                Some((false, "InSync")),
            ),
            // Work under way is not a failure.
            (
                none.clone(),
                ready("False", "Backfilling"),
                Some((false, "Backfilling")),
            ),
            (
                ready("True", "InSync"),
                ready("False", "Backfilling"),
                Some((false, "Backfilling")),
            ),
            // Unknown or absent: nothing.
            (
                ready("False", "AccessDenied"),
                ready("Unknown", "ScanPending"),
                None,
            ),
            (ready("True", "Promoted"), none.clone(), None),
        ];
        for (i, (before, after, expected)) in cases.into_iter().enumerate() {
            let notice = ready_transition(&before, &after);
            assert_eq!(
                notice.as_ref().map(|n| (n.warning, n.reason.as_str())),
                expected,
                "case {i}"
            );
            if let Some(notice) = notice {
                assert_eq!(notice.action, READY_ACTION);
                assert_eq!(
                    notice.note,
                    find_condition(&after, "Ready").unwrap().message
                );
            }
        }
    }
}
