//! What one sync does, per (tag, target), decided before anything is written:
//! pure, from what the observation found and the copy budget.
//!
//! - the same digest at the target: in sync;
//! - missing at the target: copy by digest (with every platform, signatures
//!   and referrers);
//! - another digest at the target: drift, reported and left alone, unless the
//!   tag is floating (then it moves);
//! - once selected, no longer at the source, still at a target: reported,
//!   never deleted at the target.
//!
//! Copies go newest tag first; a tag to copy counts once against
//! `maxCopiesPerSync` however many targets lack it, and tags beyond the
//! budget stay pending for the next sync. A tag whose copy failed before is
//! tried again only when its own backoff allows, and after every tag never
//! tried, so tags that keep failing cannot starve the budget. A tag that
//! could not be read fails alone: the others are planned as usual.
//!
//! Nothing is copied that verification has not passed: a tag whose image
//! fails the policy is refused, one whose scan is still running waits, and
//! one not yet checked is planned with `verified: false` so the sync checks
//! it and plans again ([`super::verification`]).

use serde::{Deserialize, Serialize};

use crate::api::reasons;

/// Why a tag could not be observed, verified or copied: a PascalCase reason
/// and a message free of credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub reason: String,
    pub message: String,
}

/// A selected tag and its digest at the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectedTag {
    pub tag: String,
    /// The digest, or why it could not be read.
    pub digest: Result<String, Problem>,
    /// Whether the tag may move at the targets.
    pub floating: bool,
    /// What verification says of its image.
    pub verification: Verification,
    /// How its earlier copies went.
    pub history: CopyHistory,
}

/// What verification says of a tag's image, as far as this sync knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Verification {
    /// Nothing to check, or every check passed.
    #[default]
    Passed,
    /// Not checked yet under the current policy: checked before it is copied.
    Unchecked,
    /// A check waits for ECR (a scan still running): not copied, looked at
    /// again at the next sync.
    Waiting(Problem),
    /// A check failed: not copied.
    Refused(Problem),
    /// What verification needs could not be read: the tag fails this sync.
    Unreadable(Problem),
}

/// How a tag's earlier copies went, from the ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CopyHistory {
    /// No copy of it failed (since its digest last changed).
    #[default]
    Fresh,
    /// Its last copies failed (the last failure) and its backoff has
    /// passed: tried after the fresh tags, reported as failed while the
    /// budget does not reach it.
    Retry(Problem),
    /// Its last copies failed and its backoff has not passed: not tried;
    /// reported with the last failure.
    BackingOff(Problem),
}

/// What one target holds under a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AtTarget {
    Missing,
    At(String),
    Unreadable(Problem),
}

/// What a sync observed: the selected tags newest first, what each target
/// holds under each of them, and tags deleted at the source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Target names, in spec order.
    pub targets: Vec<String>,
    pub selected: Vec<SelectedTag>,
    /// `at_targets[i][t]`: what target `t` holds under `selected[i]`.
    pub at_targets: Vec<Vec<AtTarget>>,
    /// Tags once selected that the source no longer lists, with the targets
    /// (indexes) that still hold them.
    pub deleted: Vec<(String, Vec<usize>)>,
}

/// The state of one tag at one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum TagState {
    /// The target holds the source's digest.
    InSync,
    /// Missing at the target: copied in this sync.
    Copy,
    /// A floating tag that points elsewhere at the target: moved in this sync.
    Move { from: String },
    /// To be copied in a later sync (beyond this sync's budget).
    Pending,
    /// A write-once tag that points elsewhere at the target: left alone.
    Drifted { message: String },
    /// Could not be read or copied; tried again at the next sync (a tag whose
    /// copies keep failing, once its backoff has passed).
    Failed(Problem),
    /// Its image fails verification: not copied.
    Refused(Problem),
    /// Verification waits for ECR (a scan still running): not copied yet.
    Waiting(Problem),
    /// No longer at the source; the target keeps it.
    DeletedAtSource,
}

impl TagState {
    /// Severity for "worst state over the targets": failed, drifted,
    /// pending (including copies not done yet), in sync.
    pub fn severity(&self) -> u8 {
        match self {
            Self::InSync | Self::DeletedAtSource => 0,
            Self::Copy | Self::Move { .. } | Self::Pending | Self::Waiting(_) => 1,
            Self::Drifted { .. } => 2,
            Self::Refused(_) => 3,
            Self::Failed(_) => 4,
        }
    }

    /// The PascalCase reason reported for a tag in this state.
    pub fn reason(&self) -> &str {
        match self {
            Self::InSync => reasons::IN_SYNC,
            Self::Copy | Self::Move { .. } | Self::Pending => reasons::BACKFILLING,
            Self::Drifted { .. } => reasons::TAG_DRIFTED,
            Self::Failed(problem) | Self::Waiting(problem) => &problem.reason,
            Self::Refused(_) => reasons::VERIFICATION_FAILED,
            Self::DeletedAtSource => reasons::SOURCE_TAG_DELETED,
        }
    }
}

/// One (tag, target) decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub tag: String,
    /// Index into the targets.
    #[serde(skip)]
    pub target: usize,
    /// The target's name.
    #[serde(rename = "target")]
    pub target_name: String,
    /// The source's digest, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(flatten)]
    pub state: TagState,
}

/// One copy: a tag, pinned to its source digest, to the targets that lack it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyJob {
    pub tag: String,
    pub digest: String,
    /// Target indexes.
    pub targets: Vec<usize>,
    pub floating: bool,
    /// Whether verification passed; when not, the sync checks the image and
    /// plans again before copying anything.
    pub verified: bool,
}

/// Everything one sync decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorPlan {
    /// Per (tag, target): selected tags newest first, then deleted ones.
    pub decisions: Vec<Decision>,
    /// The copies to make, newest first, at most the budget.
    pub copies: Vec<CopyJob>,
}

/// Plans one sync from `observation`, copying at most `max_copies` tags:
/// the newest tags never tried first, then those whose backoff has passed.
pub fn plan(observation: &Observation, max_copies: usize) -> MirrorPlan {
    let mut result = MirrorPlan::default();
    let name = |t: usize| observation.targets[t].clone();
    let mut rows: Vec<Vec<TagState>> = Vec::with_capacity(observation.selected.len());
    // (the last failure of a retry, row, targets wanting the tag)
    let mut candidates: Vec<(Option<&Problem>, usize, Vec<usize>)> = Vec::new();
    for (i, selected) in observation.selected.iter().enumerate() {
        let mut states: Vec<TagState> = Vec::with_capacity(observation.targets.len());
        for t in 0..observation.targets.len() {
            let at = observation.at_targets.get(i).and_then(|row| row.get(t));
            let state = match (&selected.digest, at) {
                (Err(problem), _) => TagState::Failed(problem.clone()),
                (_, Some(AtTarget::Unreadable(problem))) => TagState::Failed(problem.clone()),
                (Ok(_), None | Some(AtTarget::Missing)) => TagState::Copy,
                (Ok(wanted), Some(AtTarget::At(held))) if held == wanted => TagState::InSync,
                (Ok(_), Some(AtTarget::At(held))) if selected.floating => {
                    TagState::Move { from: held.clone() }
                }
                (Ok(wanted), Some(AtTarget::At(held))) => TagState::Drifted {
                    message: format!(
                        "points at {held} at the target, the source at {wanted}; a write-once \
                         tag is left alone"
                    ),
                },
            };
            states.push(state);
        }
        let wanting: Vec<usize> = states
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, TagState::Copy | TagState::Move { .. }))
            .map(|(t, _)| t)
            .collect();
        if selected.digest.is_ok() && !wanting.is_empty() {
            let held = match (&selected.verification, &selected.history) {
                (Verification::Refused(problem), _) => Some(TagState::Refused(problem.clone())),
                (Verification::Waiting(problem), _) => Some(TagState::Waiting(problem.clone())),
                (Verification::Unreadable(problem), _) | (_, CopyHistory::BackingOff(problem)) => {
                    Some(TagState::Failed(problem.clone()))
                }
                (_, CopyHistory::Retry(problem)) => {
                    candidates.push((Some(problem), i, wanting.clone()));
                    None
                }
                (_, CopyHistory::Fresh) => {
                    candidates.push((None, i, wanting.clone()));
                    None
                }
            };
            if let Some(state) = held {
                for t in &wanting {
                    states[*t] = state.clone();
                }
            }
        }
        rows.push(states);
    }
    // Tags never tried first, then retries, each newest first.
    candidates.sort_by_key(|(retry, i, _)| (retry.is_some(), *i));
    for (n, (retry, i, wanting)) in candidates.into_iter().enumerate() {
        let selected = &observation.selected[i];
        if n < max_copies {
            result.copies.push(CopyJob {
                tag: selected.tag.clone(),
                digest: selected.digest.clone().expect("candidates have a digest"),
                targets: wanting,
                floating: selected.floating,
                verified: selected.verification == Verification::Passed,
            });
        } else {
            let state = retry.map_or(TagState::Pending, |p| TagState::Failed(p.clone()));
            for t in wanting {
                rows[i][t] = state.clone();
            }
        }
    }
    for (selected, states) in observation.selected.iter().zip(rows) {
        let digest = selected.digest.as_ref().ok().cloned();
        for (t, state) in states.into_iter().enumerate() {
            result.decisions.push(Decision {
                tag: selected.tag.clone(),
                target: t,
                target_name: name(t),
                digest: digest.clone(),
                state,
            });
        }
    }
    for (tag, targets) in &observation.deleted {
        for t in targets {
            result.decisions.push(Decision {
                tag: tag.clone(),
                target: *t,
                target_name: name(*t),
                digest: None,
                state: TagState::DeletedAtSource,
            });
        }
    }
    result
}

/// The decisions after the copies ran: each copied (tag, target) becomes in
/// sync, drifted (the target's write-once tag turned out to point elsewhere)
/// or failed, from `outcome(tag, target)`.
pub fn settle(
    decisions: &mut [Decision],
    mut outcome: impl FnMut(&str, usize) -> Option<Result<(), Problem>>,
) {
    for decision in decisions.iter_mut() {
        if !matches!(decision.state, TagState::Copy | TagState::Move { .. }) {
            continue;
        }
        decision.state = match outcome(&decision.tag, decision.target) {
            Some(Ok(())) => TagState::InSync,
            Some(Err(problem)) if problem.reason == reasons::TAG_CONFLICT => TagState::Drifted {
                message: problem.message,
            },
            Some(Err(problem)) => TagState::Failed(problem),
            None => TagState::Pending,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(reason: &str) -> Problem {
        Problem {
            reason: reason.into(),
            message: "m".into(),
        }
    }

    fn tag(name: &str, digest: &str, floating: bool) -> SelectedTag {
        SelectedTag {
            tag: name.into(),
            digest: Ok(digest.into()),
            floating,
            verification: Verification::Passed,
            history: CopyHistory::Fresh,
        }
    }

    fn at(digest: &str) -> AtTarget {
        AtTarget::At(digest.into())
    }

    fn states(plan: &MirrorPlan) -> Vec<(String, String, TagState)> {
        plan.decisions
            .iter()
            .map(|d| (d.tag.clone(), d.target_name.clone(), d.state.clone()))
            .collect()
    }

    #[test]
    fn each_tag_and_target_gets_its_state() {
        let observation = Observation {
            targets: vec!["a".into(), "b".into()],
            selected: vec![
                tag("3.0.0", "d3", false),
                tag("latest", "d3", true),
                tag("2.0.0", "d2", false),
                SelectedTag {
                    digest: Err(problem("RegistryThrottled")),
                    ..tag("1.0.0", "", false)
                },
            ],
            at_targets: vec![
                vec![AtTarget::Missing, at("d3")],
                vec![at("d2"), at("d3")],
                vec![
                    at("dX"),
                    AtTarget::Unreadable(problem("RegistryUnavailable")),
                ],
                vec![AtTarget::Missing, AtTarget::Missing],
            ],
            deleted: vec![("0.9.0".into(), vec![1])],
        };
        let planned = plan(&observation, 50);
        let s = |tag: &str, target: &str, state: TagState| (tag.into(), target.into(), state);
        assert_eq!(
            states(&planned),
            vec![
                s("3.0.0", "a", TagState::Copy),
                s("3.0.0", "b", TagState::InSync),
                s("latest", "a", TagState::Move { from: "d2".into() }),
                s("latest", "b", TagState::InSync),
                s(
                    "2.0.0",
                    "a",
                    TagState::Drifted {
                        message: "points at dX at the target, the source at d2; a write-once \
                                  tag is left alone"
                            .into()
                    }
                ),
                s(
                    "2.0.0",
                    "b",
                    TagState::Failed(problem("RegistryUnavailable"))
                ),
                s("1.0.0", "a", TagState::Failed(problem("RegistryThrottled"))),
                s("1.0.0", "b", TagState::Failed(problem("RegistryThrottled"))),
                s("0.9.0", "b", TagState::DeletedAtSource),
            ]
        );
        assert_eq!(
            planned.copies,
            vec![
                CopyJob {
                    tag: "3.0.0".into(),
                    digest: "d3".into(),
                    targets: vec![0],
                    floating: false,
                    verified: true
                },
                CopyJob {
                    tag: "latest".into(),
                    digest: "d3".into(),
                    targets: vec![0],
                    floating: true,
                    verified: true
                },
            ]
        );
    }

    #[test]
    fn the_budget_copies_the_newest_tags_and_leaves_the_rest_pending() {
        let observation = Observation {
            targets: vec!["a".into(), "b".into()],
            selected: (0..5)
                .rev()
                .map(|i| tag(&format!("1.{i}.0"), &format!("d{i}"), false))
                .collect(),
            at_targets: (0..5)
                .map(|_| vec![AtTarget::Missing, AtTarget::Missing])
                .collect(),
            deleted: vec![],
        };
        for (budget, copied) in [(0, 0), (2, 2), (5, 5), (9, 5)] {
            let planned = plan(&observation, budget);
            let tags: Vec<&str> = planned.copies.iter().map(|c| c.tag.as_str()).collect();
            let expected: Vec<String> = (0..5)
                .rev()
                .take(copied)
                .map(|i| format!("1.{i}.0"))
                .collect();
            assert_eq!(tags, expected, "budget {budget}");
            assert!(planned.copies.iter().all(|c| c.targets == [0, 1]));
            let pending = planned
                .decisions
                .iter()
                .filter(|d| d.state == TagState::Pending)
                .count();
            assert_eq!(pending, (5 - copied) * 2, "budget {budget}");
        }
    }

    #[test]
    fn tags_that_failed_before_come_after_the_tags_never_tried() {
        use CopyHistory::{BackingOff, Fresh};
        let retry = || CopyHistory::Retry(problem("BlobUnknown"));
        // Five tags, newest first, all missing at the one target.
        let histories = |h: [CopyHistory; 5]| Observation {
            targets: vec!["a".into()],
            selected: h
                .into_iter()
                .enumerate()
                .map(|(i, history)| SelectedTag {
                    history,
                    ..tag(&format!("t{i}"), &format!("d{i}"), false)
                })
                .collect(),
            at_targets: (0..5).map(|_| vec![AtTarget::Missing]).collect(),
            deleted: vec![],
        };
        let waiting = || BackingOff(problem("ManifestUnknown"));
        // (case, histories newest first, budget, copied in order, reported failed)
        type Case<'a> = (
            &'a str,
            [CopyHistory; 5],
            usize,
            &'a [&'a str],
            &'a [&'a str],
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "nothing failed: newest first",
                [Fresh, Fresh, Fresh, Fresh, Fresh],
                2,
                &["t0", "t1"],
                &[],
            ),
            (
                "retries after every fresh tag, even older ones; beyond the budget they stay failed",
                [retry(), retry(), Fresh, Fresh, Fresh],
                3,
                &["t2", "t3", "t4"],
                &["t0", "t1"],
            ),
            (
                "retries fill what the fresh tags leave, newest first",
                [retry(), Fresh, retry(), Fresh, retry()],
                4,
                &["t1", "t3", "t0", "t2"],
                &["t4"],
            ),
            (
                "a tag backing off is not tried and keeps its failure",
                [waiting(), Fresh, waiting(), retry(), Fresh],
                5,
                &["t1", "t4", "t3"],
                &["t0", "t2"],
            ),
            (
                "a budget of one goes to the newest fresh tag",
                [retry(), waiting(), retry(), retry(), Fresh],
                1,
                &["t4"],
                &["t0", "t1", "t2", "t3"],
            ),
        ];
        for (case, history, budget, copied, failed) in cases {
            let planned = plan(&histories(history), budget);
            let tags: Vec<&str> = planned.copies.iter().map(|c| c.tag.as_str()).collect();
            assert_eq!(tags, copied, "{case}");
            let failing: Vec<&str> = planned
                .decisions
                .iter()
                .filter(|d| matches!(d.state, TagState::Failed(_)))
                .map(|d| d.tag.as_str())
                .collect();
            assert_eq!(failing, failed, "{case}");
            let pending = planned
                .decisions
                .iter()
                .filter(|d| d.state == TagState::Pending)
                .count();
            assert_eq!(pending, 5 - copied.len() - failed.len(), "{case}");
        }
    }

    #[test]
    fn only_verified_images_are_copied_and_refusals_spend_no_budget() {
        let verified = |v: Verification, name: &str| SelectedTag {
            verification: v,
            ..tag(name, &format!("d-{name}"), false)
        };
        let observation = Observation {
            targets: vec!["a".into(), "b".into()],
            selected: vec![
                verified(Verification::Refused(problem("SignatureMissing")), "5"),
                verified(Verification::Waiting(problem("ScanPending")), "4"),
                verified(
                    Verification::Unreadable(problem("RegistryUnavailable")),
                    "3",
                ),
                verified(Verification::Unchecked, "2"),
                verified(Verification::Passed, "1"),
                verified(Verification::Refused(problem("SignatureMissing")), "0"),
            ],
            at_targets: vec![
                vec![AtTarget::Missing, AtTarget::Missing],
                vec![AtTarget::Missing, AtTarget::Missing],
                vec![AtTarget::Missing, AtTarget::Missing],
                vec![AtTarget::Missing, AtTarget::Missing],
                vec![AtTarget::Missing, AtTarget::Missing],
                // Already published: in sync stays in sync.
                vec![at("d-0"), AtTarget::Missing],
            ],
            deleted: vec![],
        };
        let planned = plan(&observation, 2);
        let copies: Vec<(&str, bool)> = planned
            .copies
            .iter()
            .map(|c| (c.tag.as_str(), c.verified))
            .collect();
        assert_eq!(copies, [("2", false), ("1", true)]);
        let reasons: Vec<(&str, &str, &str)> = planned
            .decisions
            .iter()
            .map(|d| (d.tag.as_str(), d.target_name.as_str(), d.state.reason()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("5", "a", reasons::VERIFICATION_FAILED),
                ("5", "b", reasons::VERIFICATION_FAILED),
                ("4", "a", "ScanPending"),
                ("4", "b", "ScanPending"),
                ("3", "a", "RegistryUnavailable"),
                ("3", "b", "RegistryUnavailable"),
                ("2", "a", reasons::BACKFILLING),
                ("2", "b", reasons::BACKFILLING),
                ("1", "a", reasons::BACKFILLING),
                ("1", "b", reasons::BACKFILLING),
                ("0", "a", reasons::IN_SYNC),
                ("0", "b", reasons::VERIFICATION_FAILED),
            ]
        );
    }

    #[test]
    fn settling_turns_copies_into_their_outcomes() {
        let observation = Observation {
            targets: vec!["a".into()],
            selected: vec![
                tag("1", "d1", false),
                tag("2", "d2", false),
                tag("3", "d3", false),
                tag("4", "d4", false),
            ],
            at_targets: (0..4).map(|_| vec![AtTarget::Missing]).collect(),
            deleted: vec![],
        };
        let mut planned = plan(&observation, 50);
        settle(&mut planned.decisions, |tag, _| match tag {
            "1" => Some(Ok(())),
            "2" => Some(Err(problem(reasons::TAG_CONFLICT))),
            "3" => Some(Err(problem("RegistryUnavailable"))),
            _ => None,
        });
        let reasons: Vec<&str> = planned.decisions.iter().map(|d| d.state.reason()).collect();
        assert_eq!(
            reasons,
            [
                reasons::IN_SYNC,
                reasons::TAG_DRIFTED,
                "RegistryUnavailable",
                reasons::BACKFILLING
            ]
        );
    }
}
