//! The status a reconcile writes, pure: the fresh status of a run carried
//! over the previous one so that `lastTransitionTime` (of conditions and of
//! target results) moves only when a status or state flips and a promoted
//! target keeps its result; the status a drift check leads to; the short
//! summary of Ready both kinds show in `kubectl get` ([`summary`]); and
//! whether anything but timestamps changed (else no write).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use crate::api::conditions::{
    self, Clock, ConditionStatus, ConditionUpdate, remove_condition, set_condition,
};
use crate::api::{ImagePromotionStatus, TargetState, reasons};

/// `fresh` with what `previous` already said kept: transition times of
/// conditions and targets whose status did not flip, promoted targets'
/// results, the pinned digest and the verification evidence when the run
/// found none.
pub fn carry(
    previous: &ImagePromotionStatus,
    mut fresh: ImagePromotionStatus,
) -> ImagePromotionStatus {
    for condition in &mut fresh.conditions {
        if let Some(old) = previous
            .conditions
            .iter()
            .find(|c| c.type_ == condition.type_ && c.status == condition.status)
        {
            condition.last_transition_time = old.last_transition_time.clone();
        }
    }
    for result in &mut fresh.targets {
        let Some(old) = previous.targets.iter().find(|r| r.name == result.name) else {
            continue;
        };
        if old.state == result.state {
            if old.state == TargetState::Promoted && old.digest == result.digest {
                // A promoted target keeps its result; tags published since
                // (a tag added to the spec) join the ones it had.
                let mut kept = old.clone();
                for tag in &result.tags {
                    if !kept.tags.contains(tag) {
                        kept.tags.push(tag.clone());
                    }
                }
                *result = kept;
            } else {
                result.last_transition_time = old.last_transition_time.clone();
            }
        }
    }
    if fresh.source_digest.is_none() {
        fresh.source_digest = previous.source_digest.clone();
    }
    if fresh.verification.is_none() {
        fresh.verification = previous.verification.clone();
    }
    fresh
}

/// The most characters of a status summary: with it, `kubectl get` of either
/// kind fits a 120-column terminal for names up to about 23 (mirrors) or 40
/// (promotions) characters
/// (docs/api.md).
pub const SUMMARY_LENGTH: usize = 48;

/// The Ready condition in at most [`SUMMARY_LENGTH`] characters, for the
/// STATUS column: its message (its reason first when Ready is not True) on
/// one line, cut at a word with `…` when longer. `None` without Ready.
pub fn summary(conditions: &[Condition]) -> Option<String> {
    let ready = conditions::find_condition(conditions, conditions::READY)?;
    let message = ready
        .message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let text = match (ready.status.as_str(), message.is_empty()) {
        (_, true) => ready.reason.clone(),
        ("True", false) => message,
        (_, false) if ready.reason.is_empty() => message,
        (_, false) => format!("{}: {message}", ready.reason),
    };
    Some(shorten(&text, SUMMARY_LENGTH))
}

/// `text` in at most `max` characters: cut after the last whole word that
/// fits (or mid-word when a word is longer than half of it), ending in `…`.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max - 1).collect();
    let next_is_space = text.chars().nth(max - 1).is_some_and(char::is_whitespace);
    let cut = match head.rfind(' ') {
        _ if next_is_space => head.as_str(),
        Some(space) if head[..space].chars().count() >= max / 2 => &head[..space],
        _ => head.as_str(),
    };
    let cut = cut.trim_end_matches(|c: char| c.is_whitespace() || ",;:-(".contains(c));
    format!("{cut}…")
}

/// Whether writing `new` changes anything (it carries the timestamps of
/// `previous` where nothing flipped, so equality is the test).
pub fn changed(previous: Option<&ImagePromotionStatus>, new: &ImagePromotionStatus) -> bool {
    previous != Some(new)
}

/// `status` with the `DriftCheckFailed` condition set when the drift check
/// could not run (`unchecked`: its reason and message) or removed when it ran.
pub fn with_drift_check(
    mut status: ImagePromotionStatus,
    unchecked: Option<(&str, &str)>,
    generation: i64,
    clock: &impl Clock,
) -> ImagePromotionStatus {
    match unchecked {
        Some((reason, message)) => {
            let message = format!(
                "the drift check could not run, so nobody sees whether a published tag moved: {message}"
            );
            set_condition(
                &mut status.conditions,
                ConditionUpdate::new(
                    conditions::DRIFT_CHECK_FAILED,
                    ConditionStatus::True,
                    reason,
                )
                .message(&message)
                .generation(Some(generation)),
                clock,
            );
        }
        None => {
            remove_condition(&mut status.conditions, conditions::DRIFT_CHECK_FAILED);
        }
    }
    status
}

/// A write-once tag that points elsewhere than the promoted digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The target's name.
    pub target: String,
    /// The tag.
    pub tag: String,
    /// The digest promoted there.
    pub promoted: String,
    /// What the tag points at now (`None`: the tag is gone).
    pub found: Option<String>,
}

impl Drift {
    /// One sentence for a cluster user.
    pub fn message(&self) -> String {
        match &self.found {
            Some(found) => format!(
                "{}: tag {} now points at {found}, not the promoted {}",
                self.target, self.tag, self.promoted
            ),
            None => format!(
                "{}: tag {} no longer exists (it pointed at {})",
                self.target, self.tag, self.promoted
            ),
        }
    }
}

/// The status of a finished promotion after a drift check that found `drifts`.
pub fn after_drift_check(
    previous: &ImagePromotionStatus,
    drifts: &[Drift],
    generation: i64,
    clock: &impl Clock,
) -> ImagePromotionStatus {
    let mut status = previous.clone();
    let generation = Some(generation);
    status.observed_generation = generation;
    let update = |type_, state: ConditionStatus, reason: &str, message: &str| {
        ConditionUpdate::new(type_, state, reason)
            .message(message)
            .generation(generation)
    };
    let set = |conditions: &mut Vec<Condition>, u| {
        set_condition(conditions, u, clock);
    };
    if drifts.is_empty() {
        let drifted = conditions::find_condition(&status.conditions, conditions::READY)
            .is_some_and(|c| c.reason == reasons::TAG_DRIFTED);
        if drifted {
            let total = status.targets.len();
            let message = format!("{total}/{total} targets promoted");
            set(
                &mut status.conditions,
                update(
                    conditions::READY,
                    ConditionStatus::True,
                    reasons::PROMOTED,
                    &message,
                ),
            );
            remove_condition(&mut status.conditions, conditions::STALLED);
        }
        return status;
    }
    let message = format!(
        "{}; a published write-once tag is never rewritten: restore it by hand",
        drifts
            .iter()
            .map(Drift::message)
            .collect::<Vec<_>>()
            .join("; ")
    );
    set(
        &mut status.conditions,
        update(
            conditions::READY,
            ConditionStatus::False,
            reasons::TAG_DRIFTED,
            &message,
        ),
    );
    set(
        &mut status.conditions,
        update(
            conditions::STALLED,
            ConditionStatus::True,
            reasons::TAG_DRIFTED,
            &message,
        ),
    );
    remove_condition(&mut status.conditions, conditions::RECONCILING);
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TargetResult;
    use crate::api::conditions::find_condition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    fn condition(type_: &str, status: &str, reason: &str, second: i64) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: "m".into(),
            observed_generation: Some(1),
            last_transition_time: at(second),
        }
    }

    fn target(state: TargetState, bytes: i64, second: i64) -> TargetResult {
        TargetResult {
            name: "quay".into(),
            digest: Some("sha256:aa".into()),
            state,
            bytes_copied: bytes,
            last_transition_time: Some(at(second)),
            ..TargetResult::default()
        }
    }

    fn status(conditions: Vec<Condition>, targets: Vec<TargetResult>) -> ImagePromotionStatus {
        ImagePromotionStatus {
            observed_generation: Some(1),
            conditions,
            targets,
            ..ImagePromotionStatus::default()
        }
    }

    #[test]
    fn the_summary_is_ready_in_short_with_its_reason_when_not_true() {
        let ready = |status: &str, reason: &str, message: &str| {
            vec![Condition {
                message: message.into(),
                ..condition("Ready", status, reason, 1)
            }]
        };
        let long = "0 of 2 targets promoted; quay: the repository quay.io/acme/app does not exist";
        let cases: [(Vec<Condition>, Option<&str>); 9] = [
            (vec![], None),
            (
                ready("True", "Promoted", "2/2 targets promoted"),
                Some("2/2 targets promoted"),
            ),
            (ready("True", "InSync", ""), Some("InSync")),
            (
                ready("False", "TagsDrifted", "1 of 43 selected tags drifted"),
                Some("TagsDrifted: 1 of 43 selected tags drifted"),
            ),
            (
                ready("False", "RepositoryNotFound", long),
                Some("RepositoryNotFound: 0 of 2 targets promoted…"),
            ),
            (
                ready(
                    "Unknown",
                    "ScanPending",
                    "nothing copied yet:\n the scan is IN_PROGRESS",
                ),
                Some("ScanPending: nothing copied yet: the scan is…"),
            ),
            (
                ready("False", "AccessDenied", &"x".repeat(80)),
                Some(&*format!("AccessDenied: {}…", "x".repeat(33))),
            ),
            (
                ready(
                    "False",
                    "",
                    "exactly forty-eight characters, no more, no less",
                ),
                Some("exactly forty-eight characters, no more, no less"),
            ),
            (
                ready("True", "InSync", "héllo wörld ünïcode ".repeat(4).trim()),
                Some("héllo wörld ünïcode héllo wörld ünïcode héllo…"),
            ),
        ];
        for (conditions, expected) in cases {
            let got = summary(&conditions);
            assert_eq!(got.as_deref(), expected, "{conditions:?}");
            if let Some(got) = got {
                assert!(got.chars().count() <= SUMMARY_LENGTH, "{got}");
            }
        }
    }

    #[test]
    fn transition_times_move_only_on_a_flip() {
        let previous = status(
            vec![
                condition("Ready", "False", "ScanPending", 100),
                condition("Verified", "Unknown", "ScanPending", 100),
            ],
            vec![target(TargetState::Pending, 0, 100)],
        );
        let fresh = status(
            vec![
                condition("Ready", "False", "RegistryUnavailable", 200),
                condition("Verified", "True", "PolicySatisfied", 200),
                condition("Reconciling", "True", "RegistryUnavailable", 200),
            ],
            vec![target(TargetState::Pending, 0, 200)],
        );
        let carried = carry(&previous, fresh);
        let time = |type_| {
            find_condition(&carried.conditions, type_)
                .unwrap()
                .last_transition_time
                .clone()
        };
        assert_eq!(time("Ready"), at(100), "no flip: kept");
        assert_eq!(time("Verified"), at(200), "flipped");
        assert_eq!(time("Reconciling"), at(200), "added");
        assert_eq!(carried.targets[0].last_transition_time, Some(at(100)));
        assert!(changed(Some(&previous), &carried));
    }

    #[test]
    fn an_unchanged_run_writes_nothing_and_a_promoted_target_keeps_its_result() {
        let previous = status(
            vec![condition("Ready", "True", "Promoted", 100)],
            vec![target(TargetState::Promoted, 42, 100)],
        );
        let fresh = status(
            vec![condition("Ready", "True", "Promoted", 300)],
            vec![target(TargetState::Promoted, 0, 300)],
        );
        let carried = carry(&previous, fresh);
        assert_eq!(carried, previous);
        assert!(!changed(Some(&previous), &carried));
        assert!(changed(None, &carried), "no status yet: written");
    }

    #[test]
    fn drift_stalls_the_promotion_and_its_end_makes_it_ready_again() {
        let ready = status(
            vec![condition("Ready", "True", "Promoted", 100)],
            vec![target(TargetState::Promoted, 42, 100)],
        );
        let same = after_drift_check(&ready, &[], 1, &at(200));
        assert_eq!(same, ready, "nothing drifted, nothing changes");
        let drift = Drift {
            target: "quay".into(),
            tag: "1.0.0".into(),
            promoted: "sha256:aa".into(),
            found: Some("sha256:bb".into()),
        };
        let drifted = after_drift_check(&ready, std::slice::from_ref(&drift), 1, &at(200));
        let ready_condition = find_condition(&drifted.conditions, "Ready").unwrap();
        assert_eq!(
            (
                ready_condition.status.as_str(),
                ready_condition.reason.as_str()
            ),
            ("False", "TagDrifted")
        );
        assert!(
            ready_condition
                .message
                .contains("tag 1.0.0 now points at sha256:bb")
        );
        assert_eq!(ready_condition.last_transition_time, at(200));
        assert!(conditions::is_true(&drifted.conditions, "Stalled"));
        let again = after_drift_check(&drifted, &[drift], 1, &at(300));
        assert_eq!(again, drifted, "the same drift: no write");
        let restored = after_drift_check(&drifted, &[], 1, &at(400));
        assert!(conditions::is_true(&restored.conditions, "Ready"));
        assert!(find_condition(&restored.conditions, "Stalled").is_none());
    }
}
