//! What a reconcile does, decided without I/O from the object, the process's
//! memory of it ([`PromotionMemory`]) and, where the memory is empty (after a
//! start, a failover), the previous status read as a hint that can only
//! make the operator do less, never trust more:
//!
//! - whether it only checks for drift (a finished promotion);
//! - what an earlier run of this process settled and is not done again: the
//!   digest pinned for this source, the verdict reached **in this process**
//!   for this generation, digest and effective policy (never the status's
//!   `Verified`), the targets already published with every tag;
//! - which floating tags it already published and does not move again (a
//!   newer promotion may have moved them since);
//! - what comes after a run (done, wait for a scan, retry, or stall).

use std::collections::HashMap;

use crate::api::conditions::{self, find_condition};
use crate::api::{ImagePromotion, ImagePromotionStatus, TargetState, reasons};
use crate::promotion::plan::TargetPlan;
use crate::promotion::status::{Progress, Run};
use crate::promotion::{PromotionPlan, RunOptions};
use crate::registry::copy::report::TargetReport;
use crate::verify::Verdict;

use super::schedule::Outcome;

/// What the process keeps of one promotion between its reconciles.
#[derive(Clone, Debug, Default)]
pub struct PromotionMemory {
    /// The generation of the last run.
    pub generation: Option<i64>,
    /// The digest the source was pinned to, and the source it was pinned for.
    pub pin: Option<Pin>,
    /// The verdict that passed, and what it holds for.
    pub verdict: Option<KeptVerdict>,
    /// What this object published, by target name.
    pub published: HashMap<String, Published>,
}

/// A source pinned to a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    /// The source as the spec names it ([`source_key`]).
    pub source: String,
    /// The digest it resolved to.
    pub digest: String,
}

/// A passed verdict and exactly what it was reached for.
#[derive(Clone, Debug)]
pub struct KeptVerdict {
    /// The object's generation.
    pub generation: i64,
    /// The source digest verified.
    pub digest: String,
    /// The fingerprint of the effective policy ([`crate::verify::fingerprint`]).
    pub policy: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// What a target holds from this object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The target repository.
    pub repository: String,
    /// The source digest promoted.
    pub source_digest: String,
    /// The digest at the target (another one for a platform subset).
    pub digest: String,
    /// The tags this object made point there, floating ones included.
    pub tags: Vec<String>,
}

/// The previous status, or an empty one.
pub fn previous(object: &ImagePromotion) -> ImagePromotionStatus {
    object.status.clone().unwrap_or_default()
}

/// The source as the spec names it: a new value is a new pin.
pub fn source_key(object: &ImagePromotion) -> String {
    format!(
        "{}@{}",
        object.spec.source.image,
        object.spec.source.digest.as_deref().unwrap_or_default()
    )
}

/// What the process knows of this generation, if it ran it.
fn known(memory: &PromotionMemory, generation: i64) -> bool {
    memory.generation == Some(generation)
}

/// Whether the promotion is done and says so: every target of the plan holds
/// the image under every tag it asks for, and the previous status (the one
/// the operator last wrote, or the object's) describes this generation with
/// every target promoted. When this process ran this generation, its memory
/// must agree; otherwise the status alone is a hint that can only lead to a
/// drift check, never to a copy. A promotion whose copy finished but whose
/// status write failed is not done: its next run writes the status from
/// memory, without a request to any registry.
pub fn finished(
    generation: i64,
    memory: &PromotionMemory,
    previous: &ImagePromotionStatus,
    plan: &PromotionPlan,
) -> bool {
    if plan.targets.is_empty() {
        return false;
    }
    let said = previous.observed_generation == Some(generation)
        && previous.source_digest.is_some()
        && plan
            .targets
            .iter()
            .all(|t| promoted_by_status(previous, t).is_some());
    if !known(memory, generation) {
        return said;
    }
    let Some(pin) = &memory.pin else {
        return false;
    };
    said && plan.targets.iter().all(|t| {
        memory.published.get(&t.name).is_some_and(|p| {
            p.repository == t.target.repository.to_string()
                && p.source_digest == pin.digest
                && t.target.tags.iter().all(|tag| p.tags.contains(tag))
        })
    })
}

/// Whether the promotion looks done before any plan (so its public key
/// Secret, which only verification needs, is not read): the memory or the
/// previous status says every target the spec names is promoted for this
/// generation. A wrong guess costs a second plan, never a skipped check.
pub fn done_by_status(
    object: &ImagePromotion,
    memory: &PromotionMemory,
    previous: &ImagePromotionStatus,
) -> bool {
    let generation = object.metadata.generation.unwrap_or(0);
    let targets = &object.spec.targets;
    if targets.is_empty() {
        return false;
    }
    if known(memory, generation) {
        return targets
            .iter()
            .all(|t| memory.published.contains_key(&t.name));
    }
    previous.observed_generation == Some(generation)
        && previous.source_digest.is_some()
        && targets.iter().all(|t| {
            previous
                .targets
                .iter()
                .any(|r| r.name == t.name && r.state == TargetState::Promoted)
        })
}

/// How a run starts: the pin, the verdict and the targets this process
/// settled earlier, and the plan to run, without the floating tags this
/// object already published at the digest it promotes (another promotion
/// may have moved them since; moving them back would roll back what users
/// pull).
///
/// `policy` is the fingerprint of the plan's effective policy. Without a pin
/// in memory the tag is resolved again and must agree with what the status
/// claims for this generation (`claimed`), or the run is refused.
pub fn resume(
    object: &ImagePromotion,
    memory: &PromotionMemory,
    previous: &ImagePromotionStatus,
    plan: &PromotionPlan,
    policy: &str,
) -> (RunOptions, PromotionPlan) {
    let generation = plan.generation;
    let source = source_key(object);
    let pinned = memory
        .pin
        .as_ref()
        .filter(|p| p.source == source)
        .map(|p| p.digest.clone());
    let claimed = match &pinned {
        Some(_) => None,
        None => previous
            .source_digest
            .clone()
            .filter(|_| previous.observed_generation == Some(generation)),
    };
    let verified = memory
        .verdict
        .as_ref()
        .filter(|v| {
            v.generation == generation
                && v.policy == policy
                && pinned.as_deref() == Some(v.digest.as_str())
        })
        .map(|v| v.verdict.clone());
    let digest = pinned.clone().or_else(|| claimed.clone());
    let mut run = plan.clone();
    let mut done = Vec::new();
    for (i, target) in run.targets.iter_mut().enumerate() {
        let published = digest
            .as_deref()
            .and_then(|d| published_tags(memory, previous, target, d, generation));
        let Some((published, report)) = published else {
            continue;
        };
        target
            .target
            .tags
            .retain(|t| !(target.target.floating.contains(t) && published.contains(t)));
        if target.target.tags.iter().all(|t| published.contains(t)) {
            done.push((i, report));
        }
    }
    let options = RunOptions {
        dry_run: false,
        pinned,
        claimed,
        verified,
        done,
    };
    (options, run)
}

/// The tags `target` holds from this object at the source `digest`, from
/// the memory (when it knows the target) or the previous status, with a
/// report standing for them.
fn published_tags(
    memory: &PromotionMemory,
    previous: &ImagePromotionStatus,
    target: &TargetPlan,
    digest: &str,
    generation: i64,
) -> Option<(Vec<String>, TargetReport)> {
    let repository = target.target.repository.to_string();
    if let Some(p) = memory.published.get(&target.name) {
        if p.repository != repository || p.source_digest != digest {
            return None;
        }
        let report = TargetReport {
            repository,
            digest: p.digest.parse().ok(),
            tags_present: p.tags.clone(),
            ..TargetReport::default()
        };
        return Some((p.tags.clone(), report));
    }
    if known(memory, generation) || previous.source_digest.as_deref() != Some(digest) {
        return None;
    }
    let result = previous.targets.iter().find(|r| r.name == target.name)?;
    if result.state != TargetState::Promoted {
        return None;
    }
    let report = promoted_report(target, result)?;
    Some((result.tags.clone(), report))
}

/// The report standing for a target the previous status says is promoted
/// with every planned tag.
fn promoted_by_status(
    previous: &ImagePromotionStatus,
    target: &TargetPlan,
) -> Option<TargetReport> {
    let result = previous.targets.iter().find(|r| r.name == target.name)?;
    let complete = result.state == TargetState::Promoted
        && target.target.tags.iter().all(|t| result.tags.contains(t));
    complete.then(|| promoted_report(target, result)).flatten()
}

fn promoted_report(target: &TargetPlan, result: &crate::api::TargetResult) -> Option<TargetReport> {
    let digest = result.digest.as_deref()?.parse().ok()?;
    Some(TargetReport {
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

/// The memory after `run` of `plan` (the plan as it ran, see [`resume`]):
/// the pin, a passed verdict with what it holds for, and the tags each
/// promoted target now holds from this object.
pub fn remember(
    memory: &mut PromotionMemory,
    object: &ImagePromotion,
    plan: &PromotionPlan,
    policy: &str,
    run: &Run,
) {
    let source = source_key(object);
    if memory.generation != Some(plan.generation) {
        memory.verdict = None;
    }
    memory.generation = Some(plan.generation);
    let Some(digest) = run.digest.clone() else {
        return;
    };
    if memory.pin.as_ref().is_some_and(|p| p.digest != digest) {
        memory.published.clear();
        memory.verdict = None;
    }
    memory.pin = Some(Pin {
        source,
        digest: digest.clone(),
    });
    if let Some(verdict) = run.verdict.as_ref().filter(|v| v.passed()) {
        memory.verdict = Some(KeptVerdict {
            generation: plan.generation,
            digest: digest.clone(),
            policy: policy.to_string(),
            verdict: verdict.clone(),
        });
    }
    let Progress::Copied(outcomes) = &run.progress else {
        return;
    };
    for (target, outcome) in plan.targets.iter().zip(outcomes) {
        let Some(report) = outcome
            .report
            .as_ref()
            .filter(|_| outcome.failure.is_none())
        else {
            continue;
        };
        let Some(at) = report.digest.as_ref() else {
            continue;
        };
        let repository = target.target.repository.to_string();
        let entry = memory
            .published
            .entry(target.name.clone())
            .or_insert_with(|| Published {
                repository: repository.clone(),
                source_digest: digest.clone(),
                digest: at.to_string(),
                tags: Vec::new(),
            });
        if entry.repository != repository || entry.source_digest != digest {
            *entry = Published {
                repository,
                source_digest: digest.clone(),
                digest: at.to_string(),
                tags: Vec::new(),
            };
        }
        entry.digest = at.to_string();
        for tag in report.tags_written.iter().chain(&report.tags_present) {
            if !entry.tags.contains(tag) {
                entry.tags.push(tag.clone());
            }
        }
    }
    memory
        .published
        .retain(|name, _| plan.targets.iter().any(|t| &t.name == name));
}

/// What comes after `run`.
pub fn next(run: &Run) -> Outcome {
    match &run.progress {
        Progress::Blocked(problem) if problem.transient => Outcome::Retry,
        Progress::Blocked(problem) => Outcome::Stalled(problem.reason.clone()),
        Progress::Refused => Outcome::Stalled(
            run.verdict
                .as_ref()
                .and_then(|v| v.failures.first())
                .map(|f| f.reason.to_string())
                .unwrap_or_else(|| "VerificationFailed".into()),
        ),
        Progress::Waiting => Outcome::WaitForScan,
        Progress::DryRun => Outcome::Done,
        Progress::Copied(outcomes) => {
            let failures: Vec<_> = outcomes.iter().filter_map(|o| o.failure.as_ref()).collect();
            if failures.is_empty() {
                Outcome::Done
            } else if failures.iter().any(|p| p.transient) {
                Outcome::Retry
            } else {
                Outcome::Stalled(failures[0].reason.clone())
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
        .is_some_and(|s| s.names_secret(name));
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
        let object = object();
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

    fn object() -> ImagePromotion {
        serde_yaml_ng::from_str(
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
        .unwrap()
    }

    fn passed() -> Verdict {
        Verdict {
            failures: Vec::new(),
            pending: Vec::new(),
            evidence: VerificationEvidence::default(),
            notes: Vec::new(),
        }
    }

    /// A memory of generation 2 that verified DIGEST under policy "p" and
    /// published `published` (target, tags).
    fn memory(published: &[(&str, &[&str])]) -> PromotionMemory {
        let plan = plan();
        PromotionMemory {
            generation: Some(2),
            pin: Some(Pin {
                source: source_key(&object()),
                digest: DIGEST.into(),
            }),
            verdict: Some(KeptVerdict {
                generation: 2,
                digest: DIGEST.into(),
                policy: "p".into(),
                verdict: passed(),
            }),
            published: published
                .iter()
                .map(|(name, tags)| {
                    let target = plan.targets.iter().find(|t| t.name == *name).unwrap();
                    (
                        name.to_string(),
                        Published {
                            repository: target.target.repository.to_string(),
                            source_digest: DIGEST.into(),
                            digest: DIGEST.into(),
                            tags: tags.iter().map(ToString::to_string).collect(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_verdict_comes_only_from_this_process_for_this_generation_digest_and_policy() {
        let plan = plan();
        let object = object();
        let forged = status(2, "True", vec![result("a", TargetState::Failed, &[])]);
        // The status says Verified=True: it counts for nothing.
        let (options, _) = resume(&object, &PromotionMemory::default(), &forged, &plan, "p");
        assert!(options.verified.is_none(), "never from the status");
        assert_eq!(options.pinned, None, "the status's digest is not a pin");
        assert_eq!(
            options.claimed.as_deref(),
            Some(DIGEST),
            "but the tag must resolve to it"
        );
        let kept = memory(&[]);
        let (options, _) = resume(&object, &kept, &forged, &plan, "p");
        assert!(options.verified.is_some());
        assert_eq!(options.pinned.as_deref(), Some(DIGEST));
        assert_eq!(options.claimed, None);
        let (options, _) = resume(&object, &kept, &forged, &plan, "tightened");
        assert!(options.verified.is_none(), "another policy: verified again");
        let mut next = plan.clone();
        next.generation = 3;
        let (options, _) = resume(&object, &kept, &forged, &next, "p");
        assert!(options.verified.is_none(), "another generation");
        let mut moved = object.clone();
        moved.spec.source.image =
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:2.0".into();
        let (options, _) = resume(&moved, &kept, &forged, &plan, "p");
        assert!(
            options.pinned.is_none() && options.verified.is_none(),
            "another source: pinned again"
        );
        let older = status(1, "True", vec![]);
        let (options, _) = resume(&object, &PromotionMemory::default(), &older, &plan, "p");
        assert_eq!(
            options.claimed, None,
            "a status of another generation claims nothing"
        );
    }

    #[test]
    fn published_floating_tags_are_not_moved_again_and_done_targets_not_copied() {
        let plan = plan();
        let object = object();
        // Target a holds 1.0 and latest from this object; a tag was added (1.0.0).
        let mut grown = plan.clone();
        grown.targets[0].target.tags.push("1.0.0".into());
        let (options, run) = resume(
            &object,
            &memory(&[("a", &["1.0", "latest"]), ("b", &["1.0"])]),
            &ImagePromotionStatus::default(),
            &grown,
            "p",
        );
        assert_eq!(
            run.targets[0].target.tags,
            vec!["1.0", "1.0.0"],
            "latest stays where it is"
        );
        assert_eq!(options.done.len(), 1, "b has every tag");
        assert_eq!(options.done[0].0, 1);
        // After a start, the status is the hint of what was published.
        let hint = status(
            2,
            "True",
            vec![
                result("a", TargetState::Promoted, &["1.0", "latest"]),
                result("b", TargetState::Failed, &[]),
            ],
        );
        let (options, run) = resume(&object, &PromotionMemory::default(), &hint, &grown, "p");
        assert_eq!(run.targets[0].target.tags, vec!["1.0", "1.0.0"]);
        assert!(options.done.is_empty());
        // A floating tag never published by this object is published.
        let (_, run) = resume(&object, &memory(&[]), &hint, &grown, "p");
        assert_eq!(run.targets[0].target.tags, vec!["1.0", "latest", "1.0.0"]);
    }

    #[test]
    fn finished_from_memory_or_else_from_the_status_hint() {
        let plan = plan();
        let both = vec![
            result("a", TargetState::Promoted, &["1.0", "latest"]),
            result("b", TargetState::Promoted, &["1.0"]),
        ];
        let none = PromotionMemory::default();
        // (memory, status, finished)
        let cases = [
            (none.clone(), ImagePromotionStatus::default(), false),
            (none.clone(), status(2, "True", both.clone()), true),
            (none.clone(), status(1, "True", both.clone()), false),
            (
                none.clone(),
                status(
                    2,
                    "True",
                    vec![
                        result("a", TargetState::Promoted, &["1.0"]),
                        both[1].clone(),
                    ],
                ),
                false,
            ),
            (
                memory(&[("a", &["1.0", "latest"]), ("b", &["1.0"])]),
                status(2, "True", both.clone()),
                true,
            ),
            (
                memory(&[("a", &["1.0", "latest"])]),
                status(2, "True", both.clone()),
                false,
            ),
            // Copied, but the status write failed: not done until it says so.
            (
                memory(&[("a", &["1.0", "latest"]), ("b", &["1.0"])]),
                ImagePromotionStatus::default(),
                false,
            ),
        ];
        for (i, (memory, previous, expected)) in cases.into_iter().enumerate() {
            assert_eq!(finished(2, &memory, &previous, &plan), expected, "case {i}");
        }
        let object = object();
        assert!(done_by_status(
            &object,
            &none,
            &status(2, "True", both.clone())
        ));
        assert!(!done_by_status(&object, &none, &status(1, "True", both)));
        assert!(done_by_status(
            &object,
            &memory(&[("a", &["1.0"]), ("b", &["1.0"])]),
            &ImagePromotionStatus::default()
        ));
    }

    #[test]
    fn a_run_is_remembered_with_its_pin_verdict_and_published_tags() {
        let plan = plan();
        let object = object();
        let mut memory = PromotionMemory::default();
        let report = |tags: &[&str]| TargetReport {
            digest: Some(DIGEST.parse().unwrap()),
            tags_written: tags.iter().map(ToString::to_string).collect(),
            ..TargetReport::default()
        };
        let run = Run {
            generation: 2,
            targets: vec!["a".into(), "b".into()],
            digest: Some(DIGEST.into()),
            verdict: Some(passed()),
            progress: Progress::Copied(vec![
                TargetOutcome::from_report(report(&["1.0", "latest"]), None),
                TargetOutcome::failed(problem(true)),
            ]),
        };
        remember(&mut memory, &object, &plan, "p", &run);
        assert_eq!(memory.pin.as_ref().unwrap().digest, DIGEST);
        assert_eq!(memory.verdict.as_ref().unwrap().policy, "p");
        assert_eq!(memory.published["a"].tags, vec!["1.0", "latest"]);
        assert!(
            !memory.published.contains_key("b"),
            "a failed target holds nothing"
        );
        let refused = Run {
            verdict: Some(Verdict {
                failures: vec![crate::verify::Failure {
                    reason: reasons::SIGNATURE_MISSING,
                    required_by: crate::verify::RequiredBy::Floor,
                    message: "m".into(),
                }],
                ..passed()
            }),
            progress: Progress::Refused,
            ..run
        };
        let mut next = plan.clone();
        next.generation = 3;
        remember(&mut memory, &object, &next, "q", &refused);
        assert!(memory.verdict.is_none(), "a refusal keeps no verdict");
        assert_eq!(
            memory.published["a"].tags,
            vec!["1.0", "latest"],
            "what is published stays known"
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
            (Progress::Blocked(problem(true)), Outcome::Retry),
            (
                Progress::Blocked(problem(false)),
                Outcome::Stalled("R".into()),
            ),
            (
                Progress::Refused,
                Outcome::Stalled("VerificationFailed".into()),
            ),
            (Progress::Waiting, Outcome::WaitForScan),
            (
                Progress::Copied(vec![ok.clone(), ok.clone()]),
                Outcome::Done,
            ),
            (
                Progress::Copied(vec![ok.clone(), failed(false)]),
                Outcome::Stalled("R".into()),
            ),
            (
                Progress::Copied(vec![failed(false), failed(true)]),
                Outcome::Retry,
            ),
        ];
        for (progress, expected) in cases {
            let label = format!("{progress:?}");
            assert_eq!(next(&run(progress)), expected, "{label}");
        }
    }
}
