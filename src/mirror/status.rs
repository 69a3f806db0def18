//! A mirror's status from the previous status and one sync's decisions: pure.
//!
//! Counts are per target and overall (a tag counts once, in its worst state
//! at any target; a tag refused by verification counts as `refused`);
//! `failures` lists the first 10 drifted, failed, refused or
//! deleted-at-source tags, newest first; `Ready` is true when every selected
//! tag is in sync at every target. Condition transition times move only when
//! a condition's status flips ([`set_condition`]).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::plan::{Decision, TagState};
use crate::api::conditions::{
    ConditionUpdate, READY, RECONCILING, STALLED, remove_condition, set_condition,
};
use crate::api::{
    Clock, MirrorPhase, RegistryMirrorStatus, TagCounts, TagFailure, TargetTagCounts, reasons,
};

/// Entries in `status.failures`.
pub const MAX_LISTED_FAILURES: usize = 10;

/// What one sync found, as the status needs it.
#[derive(Clone, Debug)]
pub struct SyncSummary<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Target names, in spec order.
    pub targets: &'a [String],
    /// Number of selected tags.
    pub selected: usize,
    /// The settled decisions.
    pub decisions: &'a [Decision],
    /// Whether this sync read every selected tag again.
    pub full_resync: bool,
}

fn count(counts: &mut TargetTagCounts, state: &TagState) {
    match state {
        TagState::InSync => counts.in_sync += 1,
        TagState::Copy | TagState::Move { .. } | TagState::Pending | TagState::Waiting(_) => {
            counts.pending += 1
        }
        TagState::Drifted { .. } => counts.drifted += 1,
        TagState::Failed(_) => counts.failed += 1,
        TagState::Refused(_) => counts.refused += 1,
        TagState::DeletedAtSource => {}
    }
}

fn clamp(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Per-target and overall counts.
pub fn counts(summary: &SyncSummary<'_>) -> (TagCounts, Vec<TargetTagCounts>) {
    let mut targets: Vec<TargetTagCounts> = summary
        .targets
        .iter()
        .map(|name| TargetTagCounts {
            name: name.clone(),
            selected: clamp(summary.selected),
            ..TargetTagCounts::default()
        })
        .collect();
    let mut worst: BTreeMap<&str, &TagState> = BTreeMap::new();
    for decision in summary.decisions {
        if decision.state == TagState::DeletedAtSource {
            continue;
        }
        if let Some(counts) = targets.get_mut(decision.target) {
            count(counts, &decision.state);
        }
        let entry = worst
            .entry(decision.tag.as_str())
            .or_insert(&decision.state);
        if decision.state.severity() > entry.severity() {
            *entry = &decision.state;
        }
    }
    let mut overall = TargetTagCounts::default();
    for state in worst.values() {
        count(&mut overall, state);
    }
    let total = TagCounts {
        selected: clamp(summary.selected),
        in_sync: overall.in_sync,
        pending: overall.pending,
        drifted: overall.drifted,
        failed: overall.failed,
        refused: overall.refused,
        // Compliance fills it in (crate::compliance::mirror::project).
        noncompliant: 0,
    };
    (total, targets)
}

fn failures(decisions: &[Decision]) -> Vec<TagFailure> {
    decisions
        .iter()
        .filter(|d| {
            matches!(
                d.state,
                TagState::Drifted { .. }
                    | TagState::Failed(_)
                    | TagState::Refused(_)
                    | TagState::DeletedAtSource
            )
        })
        .take(MAX_LISTED_FAILURES)
        .map(|d| TagFailure {
            tag: d.tag.clone(),
            target: d.target_name.clone(),
            reason: d.state.reason().to_string(),
            message: Some(match &d.state {
                TagState::Drifted { message } => message.clone(),
                TagState::Failed(problem) => problem.message.clone(),
                TagState::Refused(problem) => format!("{}: {}", problem.reason, problem.message),
                _ => "no longer at the source; the target keeps it".to_string(),
            }),
        })
        .collect()
}

/// Whether a sync that ran left the mirror stalled: nothing pending, and
/// Ready False for tags that failed, fail verification or drifted at a
/// target (the operator never overwrites them).
fn settled_problem(reason: &str, tags: &TagCounts) -> bool {
    tags.pending == 0
        && [
            reasons::TAGS_FAILED,
            reasons::VERIFICATION_FAILED,
            reasons::TAGS_DRIFTED,
        ]
        .contains(&reason)
}

/// The status after a sync that ran.
pub fn synced_status(
    previous: &RegistryMirrorStatus,
    summary: &SyncSummary<'_>,
    clock: &impl Clock,
) -> RegistryMirrorStatus {
    let (tags, targets) = counts(summary);
    let mut status = previous.clone();
    let generation = summary.generation;
    status.observed_generation = generation;
    status.phase = Some(if tags.pending > 0 {
        MirrorPhase::Backfilling
    } else {
        MirrorPhase::Synced
    });
    let (ready, reason, message) = if tags.failed > 0 {
        (
            false,
            reasons::TAGS_FAILED,
            format!("{} of {} selected tags failed", tags.failed, tags.selected),
        )
    } else if tags.refused > 0 {
        (
            false,
            reasons::VERIFICATION_FAILED,
            format!(
                "{} of {} selected tags fail verification and were not copied",
                tags.refused, tags.selected
            ),
        )
    } else if tags.drifted > 0 {
        (
            false,
            reasons::TAGS_DRIFTED,
            format!(
                "{} of {} selected tags drifted at a target and were left alone",
                tags.drifted, tags.selected
            ),
        )
    } else if tags.pending > 0 {
        (
            false,
            reasons::BACKFILLING,
            format!(
                "{} of {} selected tags in sync, {} to copy",
                tags.in_sync, tags.selected, tags.pending
            ),
        )
    } else {
        (
            true,
            reasons::IN_SYNC,
            format!(
                "{} in sync at {}",
                counted(i64::from(tags.selected), "selected tag"),
                counted(targets.len() as i64, "target")
            ),
        )
    };
    set_condition(
        &mut status.conditions,
        ConditionUpdate::new(READY, ready, reason)
            .message(message.clone())
            .generation(generation),
        clock,
    );
    let stalled_message = message.clone();
    if tags.pending > 0 {
        set_condition(
            &mut status.conditions,
            ConditionUpdate::new(RECONCILING, true, reasons::BACKFILLING)
                .message(message)
                .generation(generation),
            clock,
        );
    } else {
        remove_condition(&mut status.conditions, RECONCILING);
    }
    if settled_problem(reason, &tags) {
        // Nothing left to copy, and what is wrong the next sync will not fix
        // by itself: kstatus (Flux) says Failed, as Argo CD says Degraded.
        set_condition(
            &mut status.conditions,
            ConditionUpdate::new(STALLED, true, reason)
                .message(stalled_message)
                .generation(generation),
            clock,
        );
    } else {
        remove_condition(&mut status.conditions, STALLED);
    }
    status.failures = failures(summary.decisions);
    status.tags = Some(tags);
    status.targets = targets;
    let now = clock.now();
    if summary.full_resync {
        status.last_full_resync_time = Some(now.clone());
    }
    status.last_sync_time = Some(now);
    status
}

/// The status after a sync that could not run: `Stalled` (the object or the
/// configuration must change) or `Reconciling` (retried later). Counts and
/// failures stay as the last sync left them.
pub fn blocked_status(
    previous: &RegistryMirrorStatus,
    generation: Option<i64>,
    reason: &str,
    message: &str,
    stalled: bool,
    clock: &impl Clock,
) -> RegistryMirrorStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    let update = |type_, status| {
        ConditionUpdate::new(type_, status, reason)
            .message(message)
            .generation(generation)
    };
    set_condition(&mut status.conditions, update(READY, false), clock);
    let (set, removed) = if stalled {
        (STALLED, RECONCILING)
    } else {
        (RECONCILING, STALLED)
    };
    set_condition(&mut status.conditions, update(set, true), clock);
    remove_condition(&mut status.conditions, removed);
    status
}

/// The status of a suspended mirror: the last sync's results as they were,
/// the generation acknowledged (suspending is itself a spec change, and tools
/// that wait for `observedGeneration` would otherwise wait for ever) and no
/// `Reconciling`, since nothing is under way.
pub fn suspended_status(
    previous: &RegistryMirrorStatus,
    generation: Option<i64>,
) -> RegistryMirrorStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    remove_condition(&mut status.conditions, RECONCILING);
    status
}

/// "1 target", "3 targets".
fn counted(n: i64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Last sync time of a status, for schedules.
pub fn last_sync(status: &RegistryMirrorStatus) -> Option<&Time> {
    status.last_sync_time.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::find_condition;
    use crate::mirror::plan::Problem;
    use k8s_openapi::jiff::Timestamp;

    struct At(i64);
    impl Clock for At {
        fn now(&self) -> Time {
            Time(Timestamp::from_second(self.0).unwrap())
        }
    }

    fn decision(tag: &str, target: usize, state: TagState) -> Decision {
        Decision {
            tag: tag.into(),
            target,
            target_name: ["a", "b"][target].into(),
            digest: None,
            state,
        }
    }

    fn failed() -> TagState {
        TagState::Failed(Problem {
            reason: "RegistryThrottled".into(),
            message: "429".into(),
        })
    }

    #[test]
    fn counts_per_target_and_by_worst_state() {
        let targets = ["a".to_string(), "b".to_string()];
        let decisions = vec![
            decision("1", 0, TagState::InSync),
            decision("1", 1, TagState::InSync),
            decision("2", 0, TagState::InSync),
            decision("2", 1, TagState::Pending),
            decision(
                "3",
                0,
                TagState::Drifted {
                    message: "x".into(),
                },
            ),
            decision("3", 1, failed()),
            decision("4", 0, TagState::Copy),
            decision(
                "4",
                1,
                TagState::Drifted {
                    message: "y".into(),
                },
            ),
            decision("old", 1, TagState::DeletedAtSource),
        ];
        let summary = SyncSummary {
            generation: Some(2),
            targets: &targets,
            selected: 4,
            decisions: &decisions,
            full_resync: false,
        };
        let (total, per_target) = counts(&summary);
        assert_eq!(
            total,
            TagCounts {
                selected: 4,
                in_sync: 1,
                pending: 1,
                drifted: 1,
                failed: 1,
                refused: 0,
                noncompliant: 0
            }
        );
        let row = |t: &TargetTagCounts| (t.in_sync, t.pending, t.drifted, t.failed);
        assert_eq!(row(&per_target[0]), (2, 1, 1, 0));
        assert_eq!(row(&per_target[1]), (1, 1, 1, 1));
        let status = synced_status(&RegistryMirrorStatus::default(), &summary, &At(100));
        let reasons_listed: Vec<(&str, &str)> = status
            .failures
            .iter()
            .map(|f| (f.tag.as_str(), f.reason.as_str()))
            .collect();
        assert_eq!(
            reasons_listed,
            [
                ("3", "TagDrifted"),
                ("3", "RegistryThrottled"),
                ("4", "TagDrifted"),
                ("old", "SourceTagDeleted")
            ]
        );
        assert_eq!(status.phase, Some(MirrorPhase::Backfilling));
        let ready = find_condition(&status.conditions, READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "TagsFailed")
        );
        assert!(find_condition(&status.conditions, RECONCILING).is_some());
    }

    #[test]
    fn only_a_settled_problem_stalls_the_mirror() {
        let targets = ["a".to_string()];
        let drifted = || TagState::Drifted {
            message: "points elsewhere".into(),
        };
        let cases: Vec<(&str, Vec<Decision>, Option<&str>)> = vec![
            ("in sync", vec![decision("1", 0, TagState::InSync)], None),
            (
                "drifted",
                vec![decision("1", 0, drifted())],
                Some("TagsDrifted"),
            ),
            (
                "failed",
                vec![decision("1", 0, failed())],
                Some("TagsFailed"),
            ),
            (
                "drifted, more to copy",
                vec![
                    decision("1", 0, drifted()),
                    decision("2", 0, TagState::Pending),
                ],
                None,
            ),
            (
                "failed, more to copy",
                vec![
                    decision("1", 0, failed()),
                    decision("2", 0, TagState::Pending),
                ],
                None,
            ),
        ];
        for (name, decisions, want) in cases {
            let summary = SyncSummary {
                generation: Some(1),
                targets: &targets,
                selected: 2,
                decisions: &decisions,
                full_resync: false,
            };
            let status = synced_status(&RegistryMirrorStatus::default(), &summary, &At(10));
            let stalled = find_condition(&status.conditions, STALLED);
            assert_eq!(stalled.map(|c| c.reason.as_str()), want, "{name}");
            if let Some(stalled) = stalled {
                let ready = find_condition(&status.conditions, READY).unwrap();
                assert_eq!(stalled.message, ready.message, "{name}");
            }
            // The next sync that finds the tags in sync clears it.
            let healed = [decision("1", 0, TagState::InSync)];
            let next = synced_status(
                &status,
                &SyncSummary {
                    decisions: &healed,
                    ..summary
                },
                &At(20),
            );
            assert!(
                find_condition(&next.conditions, STALLED).is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn ready_moves_its_transition_time_only_when_it_flips() {
        let targets = ["a".to_string()];
        let in_sync = vec![decision("1", 0, TagState::InSync)];
        let pending = vec![decision("1", 0, TagState::Pending)];
        let summary = |decisions, full_resync| SyncSummary {
            generation: Some(1),
            targets: &targets,
            selected: 1,
            decisions,
            full_resync,
        };
        let first = synced_status(
            &RegistryMirrorStatus::default(),
            &summary(&pending, true),
            &At(10),
        );
        let second = synced_status(&first, &summary(&in_sync, false), &At(20));
        let third = synced_status(&second, &summary(&in_sync, false), &At(30));
        let ready_at = |s: &RegistryMirrorStatus| {
            let c = find_condition(&s.conditions, READY).unwrap();
            (c.status.clone(), c.last_transition_time.0.as_second())
        };
        assert_eq!(ready_at(&first), ("False".to_string(), 10));
        assert_eq!(ready_at(&second), ("True".to_string(), 20));
        assert_eq!(ready_at(&third), ("True".to_string(), 20));
        assert_eq!(third.last_sync_time.as_ref().unwrap().0.as_second(), 30);
        assert_eq!(
            third.last_full_resync_time.as_ref().unwrap().0.as_second(),
            10,
            "only a full resync moves it"
        );
        assert_eq!(third.phase, Some(MirrorPhase::Synced));
        assert!(find_condition(&third.conditions, RECONCILING).is_none());

        let stalled = blocked_status(&third, Some(2), "InvalidTagFilter", "bad", true, &At(40));
        assert_eq!(ready_at(&stalled), ("False".to_string(), 40));
        assert_eq!(
            find_condition(&stalled.conditions, STALLED).unwrap().reason,
            "InvalidTagFilter"
        );
        assert_eq!(stalled.tags, third.tags, "counts stay");
        let retrying = blocked_status(
            &stalled,
            Some(2),
            "RegistryUnavailable",
            "503",
            false,
            &At(50),
        );
        assert!(find_condition(&retrying.conditions, STALLED).is_none());
        assert!(find_condition(&retrying.conditions, RECONCILING).is_some());
    }

    #[test]
    fn a_suspended_mirror_keeps_its_results_and_acknowledges_the_generation() {
        let mut previous = RegistryMirrorStatus {
            observed_generation: Some(3),
            ..RegistryMirrorStatus::default()
        };
        set_condition(
            &mut previous.conditions,
            ConditionUpdate::new(READY, false, "Backfilling"),
            &At(10),
        );
        set_condition(
            &mut previous.conditions,
            ConditionUpdate::new(RECONCILING, true, "Backfilling"),
            &At(10),
        );
        let cases = [
            (RegistryMirrorStatus::default(), Some(1), None),
            (previous.clone(), Some(4), Some("False")),
        ];
        for (before, generation, ready) in cases {
            let after = suspended_status(&before, generation);
            assert_eq!(after.observed_generation, generation);
            assert!(find_condition(&after.conditions, RECONCILING).is_none());
            assert_eq!(
                find_condition(&after.conditions, READY).map(|c| c.status.as_str()),
                ready
            );
            assert_eq!(after.tags, before.tags);
            assert_eq!(after.last_sync_time, before.last_sync_time);
        }
    }
}
