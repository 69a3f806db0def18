//! Kubernetes Events (`events.k8s.io/v1`) on transitions only, decided pure
//! from the previous and the new status ([`transitions`]) and published with
//! the one shared [`Recorder`]. The recorder's de-duplication key leaves out
//! the note, so what tells events apart (the target) goes into `action`.

use kube::runtime::events::{Event, EventType, Recorder};

use crate::api::conditions::{self, find_condition};
use crate::api::{ImagePromotionStatus, TargetState, reasons};

/// One event to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Normal or Warning.
    pub warning: bool,
    /// `Verified`, `VerificationFailed`, `Promoted`, `TagConflict`, `TagDrifted`, `ScanPending`.
    pub reason: &'static str,
    /// What was done (`Verify`, `Promote/<target>`, `CheckDrift`).
    pub action: String,
    /// For people.
    pub note: String,
}

/// The events the step from `previous` to `new` deserves.
pub fn transitions(previous: &ImagePromotionStatus, new: &ImagePromotionStatus) -> Vec<Notice> {
    let mut notices = Vec::new();
    let condition = |status: &ImagePromotionStatus, type_| {
        find_condition(&status.conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
    };
    let notice = |warning, reason, action: &str, note: String| Notice {
        warning,
        reason,
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
    let drifted = |status: &ImagePromotionStatus| {
        condition(status, conditions::READY).is_some_and(|(_, r)| r == reasons::TAG_DRIFTED)
    };
    if drifted(new)
        && !drifted(previous)
        && let Some(c) = find_condition(&new.conditions, conditions::READY)
    {
        notices.push(notice(true, "TagDrifted", "CheckDrift", c.message.clone()));
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

/// Publishes `notices` about `object`; a failure is logged, never fatal.
pub async fn publish<K>(recorder: &Recorder, object: &K, notices: Vec<Notice>)
where
    K: kube::Resource<DynamicType = ()>,
{
    let reference = object.object_ref(&());
    for notice in notices {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.to_string(),
            note: Some(truncate(notice.note, 1000)),
            action: notice.action,
            secondary: None,
        };
        if let Err(error) = recorder.publish(&event, &reference).await {
            tracing::warn!(reason = notice.reason, %error, "publishing an event failed");
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
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
            .map(|n| (n.reason, n.action.as_str()))
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
            vec![condition("Verified", "False", "VulnerabilitiesFound")],
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
            (&empty, &refused, vec![("VerificationFailed", "Verify")]),
            (&promoted, &drifted, vec![("TagDrifted", "CheckDrift")]),
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
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("ab€".into(), 3), "ab");
        assert_eq!(truncate("abc".into(), 3), "abc");
    }
}
