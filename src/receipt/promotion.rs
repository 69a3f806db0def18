//! Receipts of an ImagePromotion: the facts of each promoted target, taken
//! from the plan and the verdict the run acted on, and the receipt digests
//! written into the status the controller is about to write.

use k8s_openapi::jiff::Timestamp;
use tracing::{info, warn};

use super::statement::Verified;
use super::{Ensured, PolicyObject, ReceiptFacts, Receipts};
use kube::{Resource, ResourceExt};

use crate::api::{IgnoredFinding, ImagePromotion, ImagePromotionStatus, TargetState};
use crate::promotion::PromotionPlan;
use crate::promotion::status::Run;
use crate::registry::{Engine, Repository};
use crate::verify::Verdict;

/// Who a promotion's receipts are for.
pub struct Promotion {
    /// `ImagePromotion`, its namespace, name, UID and generation.
    pub object: PolicyObject,
    /// The fingerprint of the effective policy.
    pub policy: String,
    /// The source repository.
    pub source: String,
    /// The policy's ignore entries.
    pub ignores: Vec<IgnoredFinding>,
    /// The targets: name and repository.
    pub targets: Vec<(String, Repository)>,
}

impl Promotion {
    /// The receipts' facts of `plan` for `object` under policy fingerprint `policy`.
    pub fn of(object: PolicyObject, plan: &PromotionPlan, policy: &str) -> Self {
        Self {
            object,
            policy: policy.to_string(),
            source: plan.source.image.repository.to_string(),
            ignores: plan.policy.scan.ignore.clone(),
            targets: plan
                .targets
                .iter()
                .map(|t| (t.name.clone(), t.target.repository.clone()))
                .collect(),
        }
    }
}

/// The object a receipt's policy names.
pub fn policy_object(object: &ImagePromotion) -> PolicyObject {
    PolicyObject {
        kind: ImagePromotion::kind(&()).to_string(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
        uid: object.uid().unwrap_or_default(),
        generation: object.metadata.generation.unwrap_or(0),
    }
}

/// What the receipts of a run rest on: the verdict, when it passed.
pub fn for_run(
    object: &ImagePromotion,
    plan: &PromotionPlan,
    policy: &str,
    run: &Run,
) -> (Promotion, Option<Verdict>) {
    let verdict = run.verdict.clone().filter(Verdict::passed);
    (Promotion::of(policy_object(object), plan, policy), verdict)
}

/// What the receipts of a drift check rest on: the verdict this process
/// kept for the generation and digest (`kept`: policy fingerprint and
/// verdict), if any; without it receipts are only looked for.
pub fn for_drift_check(
    object: &ImagePromotion,
    plan: &PromotionPlan,
    kept: Option<(&str, &Verdict)>,
) -> (Promotion, Option<Verdict>) {
    let policy = kept.map(|(p, _)| p).unwrap_or_default();
    (
        Promotion::of(policy_object(object), plan, policy),
        kept.map(|(_, v)| v.clone()),
    )
}

/// The facts of a receipt for target `name` at `digest`, verified by `verdict`
/// at `now` (pure).
pub fn facts(
    promotion: &Promotion,
    target: &str,
    digest: &str,
    source_digest: &str,
    verdict: &Verdict,
    now: Timestamp,
) -> ReceiptFacts {
    let verified = Verified {
        object: &promotion.object,
        policy: &promotion.policy,
        source: &promotion.source,
        ignores: &promotion.ignores,
        evidence: Some(&verdict.evidence),
    };
    ReceiptFacts::of(&verified, target, digest, source_digest, now)
}

/// Makes sure every promoted target of `status` has its receipt (with the
/// `verdict` the promotion passed, when the process holds it) or, without
/// it, finds the receipt written before a restart; sets each target's
/// `receipt` in `status`. Nothing is written for a target whose receipt is
/// known or found. A failure is logged and tried again at the next reconcile.
pub async fn settle(
    receipts: &Receipts,
    engine: &Engine,
    promotion: &Promotion,
    verdict: Option<&Verdict>,
    status: &mut ImagePromotionStatus,
) {
    let Some(source_digest) = status.source_digest.clone() else {
        return;
    };
    let generation = promotion.object.generation;
    for result in &mut status.targets {
        result.receipt = None;
        if result.state != TargetState::Promoted {
            continue;
        }
        let Some(digest) = result.digest.clone() else {
            continue;
        };
        let Some((_, repository)) = promotion.targets.iter().find(|(n, _)| *n == result.name)
        else {
            continue;
        };
        let client = match engine.client(&repository.registry) {
            Ok(client) => client,
            Err(error) => {
                warn!(target = %result.name, %error, "no client for the receipt");
                continue;
            }
        };
        let outcome = match verdict {
            Some(verdict) => {
                let facts = facts(
                    promotion,
                    &repository.to_string(),
                    &digest,
                    &source_digest,
                    verdict,
                    Timestamp::now(),
                );
                receipts
                    .ensure(&client, repository, &result.name, &facts)
                    .await
                    .map(Some)
            }
            None => receipts
                .observe(
                    &client,
                    repository,
                    &result.name,
                    &promotion.object.uid,
                    generation,
                    &digest,
                )
                .await
                .map(|found| found.map(Ensured::Found)),
        };
        match outcome {
            Ok(Some(ensured)) => {
                if let Ensured::Written(receipt) = &ensured {
                    info!(audit = true, target = %result.name, %receipt, key = %receipts.reference(), "wrote the promotion receipt");
                }
                result.receipt = Some(ensured.digest().to_string());
            }
            Ok(None) => {}
            Err(error) => {
                warn!(target = %result.name, reason = error.reason(), transient = error.is_transient(), %error, "the promotion receipt could not be written; tried again at the next reconcile");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VerificationEvidence;
    use crate::api::verify::SignatureEvidence;

    #[test]
    fn the_facts_name_the_signature_and_only_unexpired_ignores() {
        let ignores = vec![
            IgnoredFinding {
                id: "CVE-1".into(),
                reason: "r".into(),
                expires: "2026-12-07".into(),
            },
            IgnoredFinding {
                id: "CVE-2".into(),
                reason: "r".into(),
                expires: "2026-12-06".into(),
            },
        ];
        let promotion = Promotion {
            object: PolicyObject {
                kind: "ImagePromotion".into(),
                namespace: "ns".into(),
                name: "app".into(),
                uid: "u".into(),
                generation: 2,
            },
            policy: "sha256:ff".into(),
            source: "ecr.example/app".into(),
            ignores,
            targets: vec![],
        };
        let verdict = Verdict {
            failures: vec![],
            pending: vec![],
            notes: vec![],
            evidence: VerificationEvidence {
                signature: Some(SignatureEvidence {
                    key_id: "sha256:k".into(),
                    signature_digest: Some("sha256:5151".into()),
                }),
                ..VerificationEvidence::default()
            },
        };
        let now: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let f = facts(
            &promotion,
            "quay.io/acme/app",
            "sha256:aa",
            "sha256:bb",
            &verdict,
            now,
        );
        assert_eq!(f.inputs.len(), 1);
        assert_eq!(f.inputs[0].digest, "sha256:5151");
        assert!(
            f.inputs[0].uri.ends_with("@sha256:5151"),
            "{}",
            f.inputs[0].uri
        );
        assert!(f.source.ends_with("@sha256:bb"));
        assert_eq!(f.ignored.len(), 1);
        assert_eq!(f.ignored[0].id, "CVE-1");
        assert_eq!(f.time_verified, "2026-12-07T10:00:00Z");
    }
}
