//! The ImagePromotion `status` a run leads to: pure, from what the run
//! found and did, with the clock as a parameter.
//!
//! The shape and vocabulary are the API's (docs/api.md): `Ready` always;
//! `Verified` once verification decided; `Reconciling` and `Stalled` only
//! while they hold (abnormal-true), `Reconciling` for what a later run may
//! fix by itself (a running scan, a transient failure), `Stalled` for what
//! needs the image, the object or the world to change. Reasons of the copy
//! engine are translated to the API's where one fits.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::conditions::{
    self, Clock, ConditionStatus, ConditionUpdate, find_condition, set_condition,
};
use crate::api::{ImagePromotionStatus, TargetResult, TargetState, reasons};
use crate::registry::copy::report::TargetReport;
use crate::verify::Verdict;

/// A failure with its reason and retry class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// PascalCase, the API's where one fits.
    pub reason: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Whether trying again later may succeed without a change.
    pub transient: bool,
}

/// What happened at one target.
#[derive(Clone, Debug, Default)]
pub struct TargetOutcome {
    /// The engine's report, when the copy reached the target.
    pub report: Option<TargetReport>,
    /// Why the target is not promoted; `None` when it is.
    pub failure: Option<Problem>,
    /// What else was done, e.g. the repository was created.
    pub note: Option<String>,
}

impl TargetOutcome {
    /// The outcome the engine reported, its failure reason translated.
    pub fn from_report(report: TargetReport, note: Option<String>) -> Self {
        let failure = report.error.as_ref().map(|error| Problem {
            reason: target_reason(&error.reason, error.transient),
            message: error.message.clone(),
            transient: error.transient,
        });
        Self {
            report: Some(report),
            failure,
            note,
        }
    }

    /// A target that failed before the engine copied to it.
    pub fn failed(problem: Problem) -> Self {
        Self {
            failure: Some(problem),
            ..Self::default()
        }
    }
}

/// How far the run got.
#[derive(Clone, Debug)]
pub enum Progress {
    /// A read failed before verification could decide.
    Blocked(Problem),
    /// Verification refused the source; nothing was copied.
    Refused,
    /// Verification waits for a running scan; nothing was copied.
    Waiting,
    /// `--dry-run`: verification passed; nothing was copied.
    DryRun,
    /// The copy ran: one outcome per target, in spec order.
    Copied(Vec<TargetOutcome>),
}

/// What a run found and did.
#[derive(Clone, Debug)]
pub struct Run {
    /// `metadata.generation` (0 for an object never stored).
    pub generation: i64,
    /// The target names, in spec order.
    pub targets: Vec<String>,
    /// The pinned source digest, once known.
    pub digest: Option<String>,
    /// Verification's decision, once made.
    pub verdict: Option<Verdict>,
    /// How far it got.
    pub progress: Progress,
}

impl Run {
    /// True when the command succeeded: every target promoted, or a dry run verified.
    pub fn succeeded(&self) -> bool {
        match &self.progress {
            Progress::DryRun => true,
            Progress::Copied(outcomes) => outcomes.iter().all(|o| o.failure.is_none()),
            _ => false,
        }
    }
}

/// The API reason for a copy engine failure at a target.
pub fn target_reason(engine: &str, transient: bool) -> String {
    match engine {
        "TagConflict" => reasons::TAG_CONFLICT,
        "NotFound" => reasons::REPOSITORY_NOT_FOUND,
        _ => return common_reason(engine, transient),
    }
    .to_string()
}

/// The API reason for a registry failure reading the source.
pub fn source_reason(engine: &str, transient: bool) -> String {
    match engine {
        "NotFound" => reasons::SOURCE_NOT_FOUND.to_string(),
        _ => common_reason(engine, transient),
    }
}

fn common_reason(engine: &str, transient: bool) -> String {
    match engine {
        _ if transient => reasons::REGISTRY_UNAVAILABLE,
        "RegistryUnauthorized" | "RegistryAuthFailed" => reasons::AUTHENTICATION_FAILED,
        "RegistryForbidden" => reasons::ACCESS_DENIED,
        other => other,
    }
    .to_string()
}

/// Who reads the status: the messages say what to do next in their terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// `image-promoter promote`: running the command again is the retry.
    CommandLine,
    /// A cluster user: the operator retries by itself.
    Cluster,
}

/// The status of the object after `run`, stamped with the `clock`'s time,
/// as the command line prints it.
pub fn promotion_status(run: &Run, clock: &impl Clock) -> ImagePromotionStatus {
    promotion_status_for(run, clock, Audience::CommandLine)
}

/// The status of the object after `run` with messages for `audience`.
pub fn promotion_status_for(
    run: &Run,
    clock: &impl Clock,
    audience: Audience,
) -> ImagePromotionStatus {
    let now = clock.now();
    let generation = Some(run.generation);
    let results = target_results(run, &now, audience);
    let promoted = results
        .iter()
        .filter(|r| r.state == TargetState::Promoted)
        .count();
    let mut status = ImagePromotionStatus {
        observed_generation: generation,
        source_digest: run.digest.clone(),
        targets_ready: Some(format!("{promoted}/{}", results.len())),
        targets: results,
        verification: run.verdict.as_ref().map(|v| v.evidence.clone()),
        ..ImagePromotionStatus::default()
    };
    let mut updates = conditions_of(run, &status, audience);
    if let Some(verdict) = &run.verdict {
        updates.insert(1, verdict.condition());
    }
    for update in updates {
        set_condition(&mut status.conditions, update.generation(generation), clock);
    }
    status
}

fn condition(
    type_: &'static str,
    status: impl Into<ConditionStatus>,
    reason: &str,
    message: &str,
) -> ConditionUpdate {
    ConditionUpdate::new(type_, status, reason).message(message)
}

/// Ready, then Reconciling or Stalled when they hold.
fn conditions_of(
    run: &Run,
    status: &ImagePromotionStatus,
    audience: Audience,
) -> Vec<ConditionUpdate> {
    let total = run.targets.len();
    let verdict_message = || {
        run.verdict
            .as_ref()
            .map(|v| v.condition().message)
            .unwrap_or_default()
    };
    match &run.progress {
        Progress::Blocked(problem) => {
            let message = format!("nothing copied: {}", problem.message);
            abnormal(&problem.reason, &message, problem.transient)
        }
        Progress::Refused => {
            let reason = run.verdict.as_ref().map_or(reasons::INVALID_SPEC, |v| {
                v.failures
                    .first()
                    .map_or(reasons::INVALID_SPEC, |f| f.reason)
            });
            let message = format!(
                "nothing copied: the source failed verification: {}",
                verdict_message()
            );
            abnormal(reason, &message, false)
        }
        Progress::Waiting => {
            let message = match audience {
                Audience::CommandLine => format!(
                    "nothing copied yet: {}. The operator checks again on its own; from the \
                     command line, run promote again once the scan has completed",
                    verdict_message()
                ),
                Audience::Cluster => format!(
                    "nothing copied yet: {}. Checked again until the scan has completed",
                    verdict_message()
                ),
            };
            vec![
                condition(
                    conditions::READY,
                    ConditionStatus::Unknown,
                    reasons::SCAN_PENDING,
                    &message,
                ),
                condition(
                    conditions::RECONCILING,
                    true,
                    reasons::SCAN_PENDING,
                    &message,
                ),
            ]
        }
        Progress::DryRun => {
            let message = format!(
                "dry run: the source passed verification; nothing was copied to the {total} \
                 target(s) (run without --dry-run to promote)"
            );
            vec![
                condition(
                    conditions::READY,
                    ConditionStatus::Unknown,
                    reasons::PROGRESSING,
                    &message,
                ),
                condition(
                    conditions::RECONCILING,
                    true,
                    reasons::PROGRESSING,
                    &message,
                ),
            ]
        }
        Progress::Copied(outcomes) => copied(outcomes, status, total),
    }
}

/// Ready=False with `reason`, and Reconciling (transient) or Stalled (permanent).
fn abnormal(reason: &str, message: &str, transient: bool) -> Vec<ConditionUpdate> {
    let second = if transient {
        conditions::RECONCILING
    } else {
        conditions::STALLED
    };
    vec![
        condition(conditions::READY, false, reason, message),
        condition(second, true, reason, message),
    ]
}

fn copied(
    outcomes: &[TargetOutcome],
    status: &ImagePromotionStatus,
    total: usize,
) -> Vec<ConditionUpdate> {
    let failures: Vec<(&str, &Problem)> = status
        .targets
        .iter()
        .zip(outcomes)
        .filter_map(|(result, o)| Some((result.name.as_str(), o.failure.as_ref()?)))
        .collect();
    let Some((_, first)) = failures.first() else {
        let message = format!("{total}/{total} targets promoted");
        return vec![condition(
            conditions::READY,
            true,
            reasons::PROMOTED,
            &message,
        )];
    };
    let message = failures
        .iter()
        .map(|(name, p)| format!("{name}: {} [{}]", p.message, p.reason))
        .collect::<Vec<_>>()
        .join("; ");
    let message = format!(
        "{} of {total} targets promoted; {message}",
        total - failures.len()
    );
    let transient = failures.iter().find(|(_, p)| p.transient);
    match transient {
        Some((_, p)) => abnormal(&p.reason, &message, true),
        None => abnormal(&first.reason, &message, false),
    }
}

fn target_results(run: &Run, now: &Time, audience: Audience) -> Vec<TargetResult> {
    let pending = |message: &str| -> Vec<TargetResult> {
        run.targets
            .iter()
            .map(|name| TargetResult {
                name: name.clone(),
                state: TargetState::Pending,
                message: Some(message.to_string()),
                last_transition_time: Some(now.clone()),
                ..TargetResult::default()
            })
            .collect()
    };
    match &run.progress {
        Progress::Blocked(problem) => pending(&format!("not copied: {}", problem.reason)),
        Progress::Refused => pending("not copied: the source failed verification"),
        Progress::Waiting => pending("not copied yet: waiting for the image scan"),
        Progress::DryRun => pending("dry run: not copied"),
        Progress::Copied(outcomes) => run
            .targets
            .iter()
            .zip(outcomes)
            .map(|(name, outcome)| target_result(name, outcome, now, audience))
            .collect(),
    }
}

fn target_result(
    name: &str,
    outcome: &TargetOutcome,
    now: &Time,
    audience: Audience,
) -> TargetResult {
    let report = outcome.report.clone().unwrap_or_default();
    let state = match &outcome.failure {
        None => TargetState::Promoted,
        Some(p) if p.reason == reasons::TAG_CONFLICT => TargetState::Conflict,
        Some(_) => TargetState::Failed,
    };
    let message = match &outcome.failure {
        Some(p) if p.transient => Some(match audience {
            Audience::CommandLine => format!(
                "{}; transient: run promote again (the operator retries with backoff)",
                p.message
            ),
            Audience::Cluster => format!("{}; transient: retried with backoff", p.message),
        }),
        Some(p) => Some(format!(
            "{}; not retried: it needs the object, the target or its credentials to change",
            p.message
        )),
        None => {
            let notes: Vec<&str> = outcome
                .note
                .iter()
                .chain(outcome.report.iter().flat_map(|r| &r.warnings))
                .map(String::as_str)
                .collect();
            (!notes.is_empty()).then(|| notes.join("; "))
        }
    };
    let mut tags = report.tags_written.clone();
    tags.extend(report.tags_present.iter().cloned());
    TargetResult {
        name: name.to_string(),
        digest: report.digest.as_ref().map(ToString::to_string),
        tags: if state == TargetState::Promoted {
            tags
        } else {
            Vec::new()
        },
        state,
        message,
        bytes_copied: report.bytes_written as i64,
        blobs_copied: report.blobs_uploaded as i32,
        blobs_skipped: report.blobs_skipped as i32,
        blobs_mounted: report.blobs_mounted as i32,
        receipt: None,
        last_transition_time: Some(now.clone()),
    }
}

/// The Ready condition of `status`, for a one-line summary.
pub fn ready(status: &ImagePromotionStatus) -> Option<&Condition> {
    find_condition(&status.conditions, conditions::READY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VerificationEvidence;
    use crate::registry::copy::report::TargetFailure;
    use crate::verify::{Failure, RequiredBy};
    use k8s_openapi::jiff::Timestamp;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn at() -> Time {
        Time(Timestamp::from_second(1_781_000_000).unwrap())
    }

    fn failure(reason: &'static str, message: &str) -> Failure {
        Failure {
            reason,
            required_by: RequiredBy::Object,
            message: message.into(),
        }
    }

    fn verdict(failures: Vec<Failure>, pending: Vec<Failure>) -> Verdict {
        Verdict {
            failures,
            pending,
            evidence: VerificationEvidence {
                tag_mutability: Some("IMMUTABLE".into()),
                ..VerificationEvidence::default()
            },
            notes: Vec::new(),
        }
    }

    fn run(verdict: Option<Verdict>, progress: Progress) -> Run {
        Run {
            generation: 2,
            targets: vec!["quay".into(), "ecr-public".into()],
            digest: Some(DIGEST.into()),
            verdict,
            progress,
        }
    }

    fn report(error: Option<(&str, bool)>) -> TargetReport {
        TargetReport {
            digest: error.is_none().then(|| DIGEST.parse().unwrap()),
            tags_written: vec!["1.0".into()],
            tags_present: vec!["latest".into()],
            bytes_written: 2048,
            blobs_uploaded: 2,
            blobs_skipped: 1,
            error: error.map(|(reason, transient)| TargetFailure {
                reason: reason.into(),
                message: format!("{reason} happened"),
                transient,
            }),
            ..TargetReport::default()
        }
    }

    /// (type, status, reason) of the conditions expected, in order.
    type Conditions = &'static [(&'static str, &'static str, &'static str)];

    /// (type, status, reason) of every condition, in order.
    fn summary(status: &ImagePromotionStatus) -> Vec<(String, String, String)> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    fn triples(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        expected
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect()
    }

    #[test]
    fn every_way_a_run_ends_has_its_conditions_and_exit() {
        let passed = || Some(verdict(vec![], vec![]));
        let promoted = || TargetOutcome::from_report(report(None), None);
        let cases: Vec<(Run, Conditions, &str, bool)> = vec![
            (
                run(passed(), Progress::Copied(vec![promoted(), promoted()])),
                &[
                    ("Ready", "True", "Promoted"),
                    ("Verified", "True", "PolicySatisfied"),
                ],
                "2/2",
                true,
            ),
            (
                run(
                    Some(verdict(
                        vec![failure("TagMutable", "tag 1.0 can be moved")],
                        vec![],
                    )),
                    Progress::Refused,
                ),
                &[
                    ("Ready", "False", "TagMutable"),
                    ("Verified", "False", "TagMutable"),
                    ("Stalled", "True", "TagMutable"),
                ],
                "0/2",
                false,
            ),
            (
                run(
                    Some(verdict(
                        vec![],
                        vec![failure("ScanPending", "the scan is IN_PROGRESS")],
                    )),
                    Progress::Waiting,
                ),
                &[
                    ("Ready", "Unknown", "ScanPending"),
                    ("Verified", "Unknown", "ScanPending"),
                    ("Reconciling", "True", "ScanPending"),
                ],
                "0/2",
                false,
            ),
            (
                run(passed(), Progress::DryRun),
                &[
                    ("Ready", "Unknown", "Progressing"),
                    ("Verified", "True", "PolicySatisfied"),
                    ("Reconciling", "True", "Progressing"),
                ],
                "0/2",
                true,
            ),
            (
                run(
                    None,
                    Progress::Blocked(Problem {
                        reason: "SourceNotFound".into(),
                        message: "no such tag".into(),
                        transient: false,
                    }),
                ),
                &[
                    ("Ready", "False", "SourceNotFound"),
                    ("Stalled", "True", "SourceNotFound"),
                ],
                "0/2",
                false,
            ),
            (
                run(
                    passed(),
                    Progress::Copied(vec![
                        promoted(),
                        TargetOutcome::from_report(report(Some(("TagConflict", false))), None),
                    ]),
                ),
                &[
                    ("Ready", "False", "TagConflict"),
                    ("Verified", "True", "PolicySatisfied"),
                    ("Stalled", "True", "TagConflict"),
                ],
                "1/2",
                false,
            ),
            (
                run(
                    passed(),
                    Progress::Copied(vec![
                        TargetOutcome::from_report(
                            report(Some(("RegistryForbidden", false))),
                            None,
                        ),
                        TargetOutcome::from_report(report(Some(("RegistryThrottled", true))), None),
                    ]),
                ),
                &[
                    ("Ready", "False", "RegistryUnavailable"),
                    ("Verified", "True", "PolicySatisfied"),
                    ("Reconciling", "True", "RegistryUnavailable"),
                ],
                "0/2",
                false,
            ),
        ];
        for (run, conditions, ready, succeeded) in cases {
            let status = promotion_status(&run, &at());
            let label = format!("{:?}", run.progress);
            assert_eq!(summary(&status), triples(conditions), "{label}");
            assert_eq!(status.targets_ready.as_deref(), Some(ready), "{label}");
            assert_eq!(run.succeeded(), succeeded, "{label}");
            assert_eq!(status.observed_generation, Some(2));
            assert_eq!(status.source_digest.as_deref(), Some(DIGEST));
            assert_eq!(status.verification.is_some(), run.verdict.is_some());
            for c in &status.conditions {
                assert_eq!(
                    (c.observed_generation, &c.last_transition_time),
                    (Some(2), &at())
                );
                assert!(!c.message.is_empty(), "{label}: {} has no message", c.type_);
            }
        }
    }

    #[test]
    fn targets_carry_their_state_counts_and_what_to_do() {
        let outcomes = vec![
            TargetOutcome::from_report(
                report(None),
                Some("created ECR Public repository app".into()),
            ),
            TargetOutcome::from_report(report(Some(("TagConflict", false))), None),
            TargetOutcome::from_report(report(Some(("RegistryUnreachable", true))), None),
            TargetOutcome::failed(Problem {
                reason: "AccessDenied".into(),
                message: "creating ECR Public repository app: denied".into(),
                transient: false,
            }),
        ];
        let mut run = run(Some(verdict(vec![], vec![])), Progress::Copied(outcomes));
        run.targets = vec!["a".into(), "b".into(), "c".into(), "d".into()];
        let status = promotion_status(&run, &at());
        let [a, b, c, d] = &status.targets[..] else {
            panic!("four targets")
        };
        assert_eq!(a.state, TargetState::Promoted);
        assert_eq!(a.digest.as_deref(), Some(DIGEST));
        assert_eq!(a.tags, ["1.0", "latest"]);
        assert_eq!(
            (a.bytes_copied, a.blobs_copied, a.blobs_skipped),
            (2048, 2, 1)
        );
        assert_eq!(
            a.message.as_deref(),
            Some("created ECR Public repository app")
        );
        assert_eq!(b.state, TargetState::Conflict);
        assert!(b.tags.is_empty());
        assert!(b.message.as_deref().unwrap().contains("not retried"));
        assert_eq!(c.state, TargetState::Failed);
        assert!(
            c.message
                .as_deref()
                .unwrap()
                .contains("transient: run promote again")
        );
        assert_eq!(d.state, TargetState::Failed);
        assert_eq!(status.targets_ready.as_deref(), Some("1/4"));
        let ready = ready(&status).unwrap();
        assert_eq!(
            ready.reason, "RegistryUnavailable",
            "a transient failure is retried"
        );
        assert!(
            ready
                .message
                .starts_with("1 of 4 targets promoted; b: TagConflict happened [TagConflict]"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn engine_reasons_become_the_api_reasons() {
        let cases = [
            (target_reason("TagConflict", false), "TagConflict"),
            (target_reason("NotFound", false), "RepositoryNotFound"),
            (source_reason("NotFound", false), "SourceNotFound"),
            (
                target_reason("RegistryUnauthorized", false),
                "AuthenticationFailed",
            ),
            (
                target_reason("RegistryAuthFailed", true),
                "RegistryUnavailable",
            ),
            (target_reason("RegistryForbidden", false), "AccessDenied"),
            (
                target_reason("RegistryThrottled", true),
                "RegistryUnavailable",
            ),
            (target_reason("ManifestRefused", false), "ManifestRefused"),
        ];
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn a_refusal_says_every_failure_and_pending_runs_say_they_will_be_checked_again() {
        let refused = run(
            Some(verdict(
                vec![
                    failure("TagMutable", "tag 1.0 can be moved"),
                    failure("VulnerabilitiesFound", "CVE-2026-1 (CRITICAL)"),
                ],
                vec![],
            )),
            Progress::Refused,
        );
        let status = promotion_status(&refused, &at());
        let message = &ready(&status).unwrap().message;
        assert!(
            message.contains("tag 1.0 can be moved") && message.contains("CVE-2026-1"),
            "{message}"
        );
        assert!(
            status
                .targets
                .iter()
                .all(|t| t.state == TargetState::Pending)
        );

        let waiting = run(
            Some(verdict(
                vec![],
                vec![failure("ScanPending", "the scan is IN_PROGRESS")],
            )),
            Progress::Waiting,
        );
        let status = promotion_status(&waiting, &at());
        let message = &ready(&status).unwrap().message;
        assert!(
            message.contains("run promote again once the scan has completed"),
            "{message}"
        );
    }
}
