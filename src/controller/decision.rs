//! What a reconcile does, decided from the object and its previous status
//! without I/O: whether it only checks for drift (a finished promotion),
//! what an earlier run settled that is not done again (the pinned digest,
//! the verdict of this generation, the targets already promoted), and what
//! comes after a run (done, wait for a scan, retry, or stall).

use crate::api::conditions::{self, find_condition};
use crate::api::{ImagePromotion, ImagePromotionStatus, TargetState, reasons};
use crate::promotion::plan::TargetPlan;
use crate::promotion::status::{Progress, Run};
use crate::promotion::{PromotionPlan, RunOptions};
use crate::registry::copy::report::TargetReport;
use crate::verify::Verdict;

/// The previous status, or an empty one.
pub fn previous(object: &ImagePromotion) -> ImagePromotionStatus {
    object.status.clone().unwrap_or_default()
}

/// Whether the promotion is done: its status describes this generation, the
/// source is pinned and every target of the spec is promoted. A finished
/// promotion is only checked for drift.
pub fn finished(generation: i64, previous: &ImagePromotionStatus, plan: &PromotionPlan) -> bool {
    previous.observed_generation == Some(generation)
        && previous.source_digest.is_some()
        && !plan.targets.is_empty()
        && plan.targets.iter().all(|t| promoted(previous, t).is_some())
}

/// Whether the previous status says the promotion is done, before any plan:
/// it describes this generation, the source is pinned and every target the
/// spec names is promoted, verification having passed. A done promotion needs no verification input
/// (its public key Secret may be gone) and keeps its status when its drift
/// check cannot run.
pub fn done_by_status(object: &ImagePromotion, previous: &ImagePromotionStatus) -> bool {
    previous.observed_generation == object.metadata.generation
        && previous.source_digest.is_some()
        && previous.verification.is_some()
        && conditions::is_true(&previous.conditions, conditions::VERIFIED)
        && !object.spec.targets.is_empty()
        && object.spec.targets.iter().all(|t| {
            previous
                .targets
                .iter()
                .any(|r| r.name == t.name && r.state == TargetState::Promoted)
        })
}

/// What an earlier run settled: the pinned digest (always kept), the verdict
/// (when it passed for this generation and digest) and the targets promoted
/// for this generation with every tag the plan asks for.
pub fn resume(
    generation: i64,
    previous: &ImagePromotionStatus,
    plan: &PromotionPlan,
) -> RunOptions {
    let pinned = previous.source_digest.clone();
    let same_generation = previous.observed_generation == Some(generation);
    let verified = find_condition(&previous.conditions, conditions::VERIFIED)
        .filter(|c| c.status == "True" && same_generation && pinned.is_some())
        .and_then(|_| previous.verification.clone())
        .map(|evidence| Verdict {
            failures: Vec::new(),
            pending: Vec::new(),
            evidence,
        });
    let done = if same_generation && verified.is_some() {
        plan.targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((i, promoted(previous, t)?)))
            .collect()
    } else {
        Vec::new()
    };
    RunOptions {
        dry_run: false,
        pinned,
        verified,
        done,
    }
}

/// The report standing for a target promoted earlier with every planned tag.
fn promoted(previous: &ImagePromotionStatus, target: &TargetPlan) -> Option<TargetReport> {
    let result = previous.targets.iter().find(|r| r.name == target.name)?;
    let digest = result.digest.as_deref()?.parse().ok()?;
    let complete = result.state == TargetState::Promoted
        && target.target.tags.iter().all(|t| result.tags.contains(t));
    complete.then(|| TargetReport {
        repository: target.target.repository.to_string(),
        digest: Some(digest),
        tags_present: result.tags.clone(),
        bytes_written: result.bytes_copied.max(0) as u64,
        blobs_uploaded: result.blobs_copied.max(0) as u64,
        blobs_skipped: result.blobs_skipped.max(0) as u64,
        blobs_mounted: result.blobs_mounted.max(0) as u64,
        ..TargetReport::default()
    })
}

/// What happens after a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Every target promoted: check for drift at the resync interval.
    Done,
    /// A scan is running: look again with the scan backoff.
    WaitForScan,
    /// A transient failure: retry with the per-object backoff.
    Retry,
    /// A permanent failure: wait for the object, a Secret or the configuration to change.
    Stalled,
}

/// What comes after `run`.
pub fn next(run: &Run) -> Next {
    match &run.progress {
        Progress::Blocked(problem) if problem.transient => Next::Retry,
        Progress::Blocked(_) | Progress::Refused => Next::Stalled,
        Progress::Waiting => Next::WaitForScan,
        Progress::DryRun => Next::Done,
        Progress::Copied(outcomes) => {
            let failures: Vec<_> = outcomes.iter().filter_map(|o| o.failure.as_ref()).collect();
            if failures.is_empty() {
                Next::Done
            } else if failures.iter().any(|p| p.transient) {
                Next::Retry
            } else {
                Next::Stalled
            }
        }
    }
}

/// Whether `promotion` names the Secret `name` (of its own namespace).
pub fn references_secret(promotion: &ImagePromotion, name: &str) -> bool {
    let spec = &promotion.spec;
    let credentials = std::iter::once(spec.source.credentials.as_ref())
        .chain(spec.targets.iter().map(|t| t.credentials.as_ref()))
        .flatten()
        .filter_map(|c| c.secret_ref.as_ref())
        .any(|s| s.name == name);
    let key = spec
        .verify
        .signature
        .as_ref()
        .and_then(|s| s.public_key.as_ref())
        .is_some_and(|k| k.secret_ref.name == name);
    credentials || key
}

/// The state label of a status for `image_promoter_promotions{state}`.
pub fn state_of(status: &ImagePromotionStatus) -> &'static str {
    let ready = find_condition(&status.conditions, conditions::READY);
    if conditions::is_true(&status.conditions, conditions::STALLED) {
        if ready.is_some_and(|c| c.reason == reasons::TAG_DRIFTED) {
            "Drifted"
        } else {
            "Stalled"
        }
    } else if conditions::is_true(&status.conditions, conditions::RECONCILING) {
        "Reconciling"
    } else if ready.is_some_and(|c| c.status == "True") {
        "Ready"
    } else {
        "Pending"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{TargetResult, VerificationEvidence};
    use crate::config::Config;
    use crate::promotion::status::{Problem, TargetOutcome};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn plan() -> PromotionPlan {
        let object: ImagePromotion = serde_yaml_ng::from_str(
            r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {name: app, namespace: team, generation: 2}
spec:
  source: {image: "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.0"}
  targets:
    - {name: a, repository: quay.io/acme/app, tags: ["1.0", latest], floatingTags: [latest]}
    - {name: b, repository: public.ecr.aws/acme/app}
"#,
        )
        .unwrap();
        crate::promotion::plan_with(
            &object,
            &Config::default(),
            None,
            crate::promotion::SecretAccess::Api,
        )
        .unwrap()
    }

    fn condition(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "R".into(),
            message: String::new(),
            observed_generation: Some(2),
            last_transition_time: Time(Timestamp::from_second(1_781_000_000).unwrap()),
        }
    }

    fn result(name: &str, state: TargetState, tags: &[&str]) -> TargetResult {
        TargetResult {
            name: name.into(),
            digest: Some(DIGEST.into()),
            tags: tags.iter().map(ToString::to_string).collect(),
            state,
            bytes_copied: 10,
            ..TargetResult::default()
        }
    }

    fn status(generation: i64, verified: &str, targets: Vec<TargetResult>) -> ImagePromotionStatus {
        ImagePromotionStatus {
            observed_generation: Some(generation),
            source_digest: Some(DIGEST.into()),
            conditions: vec![condition("Verified", verified)],
            targets,
            verification: Some(VerificationEvidence::default()),
            ..ImagePromotionStatus::default()
        }
    }

    #[test]
    fn what_an_earlier_run_settled_is_not_done_again() {
        let plan = plan();
        let both = vec![
            result("a", TargetState::Promoted, &["1.0", "latest"]),
            result("b", TargetState::Promoted, &["1.0"]),
        ];
        // (status, finished, verdict kept, targets kept)
        let cases = [
            (ImagePromotionStatus::default(), false, false, 0),
            (status(2, "True", both.clone()), true, true, 2),
            (status(1, "True", both.clone()), false, false, 0),
            (status(2, "False", both.clone()), true, false, 0),
            (
                status(
                    2,
                    "True",
                    vec![
                        result("a", TargetState::Promoted, &["1.0"]),
                        result("b", TargetState::Failed, &[]),
                    ],
                ),
                false,
                true,
                0,
            ),
            (status(2, "True", vec![both[0].clone()]), false, true, 1),
        ];
        for (i, (previous, finished_, verdict, done)) in cases.into_iter().enumerate() {
            assert_eq!(finished(2, &previous, &plan), finished_, "case {i}");
            let options = resume(2, &previous, &plan);
            assert_eq!(options.pinned, previous.source_digest, "case {i}");
            assert_eq!(options.verified.is_some(), verdict, "case {i}");
            assert_eq!(options.done.len(), done, "case {i}");
        }
        let options = resume(2, &status(2, "True", both), &plan);
        assert_eq!(options.done[0].1.bytes_written, 10);
    }

    #[test]
    fn done_by_status_needs_this_generation_and_every_target_promoted() {
        let object: ImagePromotion = serde_yaml_ng::from_str(
            r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {name: app, namespace: team, generation: 2}
spec:
  source: {image: "r.io/team/app:1.0"}
  targets: [{name: a, repository: quay.io/acme/app}, {name: b, repository: q.io/acme/app}]
"#,
        )
        .unwrap();
        let both = vec![
            result("a", TargetState::Promoted, &["1.0"]),
            result("b", TargetState::Promoted, &["1.0"]),
        ];
        assert!(done_by_status(&object, &status(2, "True", both.clone())));
        assert!(!done_by_status(&object, &status(1, "True", both.clone())));
        assert!(!done_by_status(
            &object,
            &status(2, "True", vec![both[0].clone()])
        ));
        assert!(!done_by_status(&object, &ImagePromotionStatus::default()));
        assert!(
            !done_by_status(&object, &status(2, "False", both)),
            "never verified"
        );
    }

    #[test]
    fn a_secret_is_referenced_by_credentials_or_the_public_key() {
        let object = |extra: &str| -> ImagePromotion {
            serde_yaml_ng::from_str(&format!(
                r#"
apiVersion: imagepromoter.dev/v1alpha1
kind: ImagePromotion
metadata: {{name: app, namespace: team}}
spec:
  source: {{image: "r.io/team/app:1.0"{source}}}
  targets:
    - {{name: a, repository: quay.io/acme/app{target}}}
  {verify}
"#,
                source = if extra == "source" {
                    ", credentials: {secretRef: {name: s}}"
                } else {
                    ""
                },
                target = if extra == "target" {
                    ", credentials: {secretRef: {name: s}}"
                } else {
                    ""
                },
                verify = if extra == "key" {
                    "verify: {signature: {publicKey: {secretRef: {name: s}}}}"
                } else {
                    ""
                },
            ))
            .unwrap()
        };
        for (extra, expected) in [
            ("source", true),
            ("target", true),
            ("key", true),
            ("", false),
        ] {
            assert_eq!(references_secret(&object(extra), "s"), expected, "{extra}");
            assert!(!references_secret(&object(extra), "other"), "{extra}");
        }
    }

    fn problem(transient: bool) -> Problem {
        Problem {
            reason: "R".into(),
            message: "m".into(),
            transient,
        }
    }

    fn run(progress: Progress) -> Run {
        Run {
            generation: 1,
            targets: vec!["a".into(), "b".into()],
            digest: None,
            verdict: None,
            progress,
        }
    }

    #[test]
    fn each_way_a_run_ends_has_its_next_step() {
        let ok = TargetOutcome::default();
        let failed = |transient| TargetOutcome::failed(problem(transient));
        let cases = [
            (Progress::Blocked(problem(true)), Next::Retry),
            (Progress::Blocked(problem(false)), Next::Stalled),
            (Progress::Refused, Next::Stalled),
            (Progress::Waiting, Next::WaitForScan),
            (Progress::Copied(vec![ok.clone(), ok.clone()]), Next::Done),
            (
                Progress::Copied(vec![ok.clone(), failed(false)]),
                Next::Stalled,
            ),
            (
                Progress::Copied(vec![failed(false), failed(true)]),
                Next::Retry,
            ),
        ];
        for (progress, expected) in cases {
            let label = format!("{progress:?}");
            assert_eq!(next(&run(progress)), expected, "{label}");
        }
    }
}
