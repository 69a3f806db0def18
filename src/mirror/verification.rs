//! A mirror obeys the same verification as a promotion: each tag's image is
//! checked against `spec.verify` raised to the operator's floor before it is
//! copied, with the promotion's own pieces — the policy decision
//! ([`crate::verify::evaluate_with`]), the ECR facts ([`EcrInspector`]) and
//! the signature checks ([`check_signatures`]).
//!
//! Only images the plan wants to copy are checked, and each verdict is kept
//! in the ledger ([`Verdicts`]) under a fingerprint of the effective policy
//! (`spec.verify`, the floor, the key material), so an idle sync checks
//! nothing and a refused tag costs nothing more until the policy, the floor
//! or a key changes, or the next full resync looks again (a signature may be
//! pushed later). A scan still running is not remembered: the tag waits and
//! is looked at again at the next sync.
//!
//! Tag immutability, encryption and scans are facts of Amazon ECR: for a
//! source elsewhere, a rule that requires them refuses every tag and says
//! why; signatures are checked wherever the source is.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;

use super::ledger::{Evidence, Verdict, Verdicts};
use super::plan::{Problem, Verification};
use super::setup::ListingApi;
use crate::api::{EncryptionRequirement, VerificationEvidence, VerificationPolicy};
use crate::aws::{EcrInspector, EcrRegistry, RepositorySettings, ScanReport};
use crate::promotion::observe::{ObserveError, check_signatures};
use crate::promotion::plan::Verifiers;
use crate::registry::{RegistryClient, Repository};
use crate::verify::{Observations, SignatureChecks, VerificationFloor, evaluate_with};

/// Images checked at once.
const CHECKS_AT_ONCE: usize = 4;

/// Where a source in Amazon ECR is inspected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcrSource {
    pub registry: EcrRegistry,
    pub endpoint: Option<String>,
}

/// The effective verification policy of one mirror, decided at setup.
#[derive(Clone, Debug)]
pub struct MirrorPolicy {
    /// `spec.verify`.
    pub policy: Option<VerificationPolicy>,
    /// The operator's floor.
    pub floor: VerificationFloor,
    /// The signature checks (the object's key, the floor's keys).
    pub verifiers: Verifiers,
    /// The source in ECR; `None` for a source elsewhere.
    pub ecr: Option<EcrSource>,
    /// Identifies the policy, the floor and the key material: verdicts made
    /// under another fingerprint are not used.
    pub fingerprint: String,
}

impl MirrorPolicy {
    /// The policy of a mirror whose source is listed with `listing`.
    pub fn new(
        policy: Option<VerificationPolicy>,
        floor: VerificationFloor,
        verifiers: Verifiers,
        listing: &ListingApi,
    ) -> Self {
        let ecr = match listing {
            ListingApi::Ecr { registry, endpoint } => Some(EcrSource {
                registry: registry.clone(),
                endpoint: endpoint.clone(),
            }),
            _ => None,
        };
        let fingerprint = crate::verify::fingerprint(
            &policy,
            &floor,
            [verifiers.object.as_ref(), verifiers.floor.as_ref()]
                .into_iter()
                .flatten(),
        );
        Self {
            policy,
            floor,
            verifiers,
            ecr,
            fingerprint,
        }
    }

    /// Whether anything is checked at all: `spec.verify` is set or the
    /// floor asks for something.
    pub fn checks_anything(&self) -> bool {
        self.policy.is_some() || self.floor != VerificationFloor::default()
    }

    /// Whether the scan is read: the object's threshold always applies to a
    /// completed scan, the floor's when it has one or requires a scan.
    pub fn reads_scan(&self) -> bool {
        self.policy.is_some()
            || self.floor.scan.required
            || self.floor.scan.fail_on_severity.is_some()
    }

    /// Whether the source repository's settings are read.
    fn reads_settings(&self) -> bool {
        let object = self.policy.as_ref().is_some_and(|p| {
            p.require_tag_immutability || p.encryption != EncryptionRequirement::Any
        });
        object
            || self.floor.require_tag_immutability
            || self.floor.encryption != EncryptionRequirement::Any
            || self.reads_scan()
    }

    /// What is known of `tag` at `digest` before this sync checks anything.
    pub fn remembered(&self, verdicts: &Verdicts, tag: &str, digest: &str) -> Verification {
        if !self.checks_anything() {
            return Verification::Passed;
        }
        match verdicts.get(&self.fingerprint, digest, tag) {
            Some(Verdict::Passed) => Verification::Passed,
            Some(Verdict::Refused(problem)) => Verification::Refused(problem.clone()),
            None => Verification::Unchecked,
        }
    }

    /// The verification of `tag` at `digest` from what was observed (pure).
    pub fn decide(
        &self,
        tag: &str,
        digest: &str,
        repository: Option<&RepositorySettings>,
        facts: &ImageFacts,
        now: Timestamp,
    ) -> Verification {
        self.decide_with_evidence(tag, digest, repository, facts, now)
            .0
    }

    /// [`Self::decide`], with what the decision rested on (the scan and the
    /// signature verified) for the receipts of the copies it allows.
    pub fn decide_with_evidence(
        &self,
        tag: &str,
        digest: &str,
        repository: Option<&RepositorySettings>,
        facts: &ImageFacts,
        now: Timestamp,
    ) -> (Verification, VerificationEvidence) {
        let observations = Observations {
            digest: digest.to_string(),
            source_tag: Some(tag.to_string()),
            repository: repository.cloned(),
            scan: facts.scan.clone(),
            signatures: facts.signatures.clone(),
        };
        let verdict = evaluate_with(self.policy.as_ref(), &self.floor, &observations, now);
        let problem = |failures: &[crate::verify::Failure]| Problem {
            reason: failures[0].reason.to_string(),
            message: failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        };
        let verification = if verdict.refused() {
            Verification::Refused(problem(&verdict.failures))
        } else if verdict.waiting() {
            Verification::Waiting(problem(&verdict.pending))
        } else {
            Verification::Passed
        };
        (verification, verdict.evidence)
    }
}

/// What was read about one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFacts {
    /// Its ECR scan (not scanned when none was read).
    pub scan: ScanReport,
    /// Its signature checks.
    pub signatures: SignatureChecks,
}

fn problem(error: &ObserveError) -> Problem {
    Problem {
        reason: error.reason(),
        message: error.to_string(),
    }
}

/// Reads the scan (with `inspector`, when the policy reads scans) and the
/// signature checks of `digest`.
async fn read_image(
    policy: &MirrorPolicy,
    inspector: Option<&EcrInspector>,
    client: &RegistryClient,
    source: &Repository,
    digest: String,
) -> (String, Result<ImageFacts, Problem>) {
    let read = async {
        let scan = match inspector {
            Some(inspector) => inspector.scan_report(&source.name, &digest).await?,
            None => ScanReport::not_scanned(),
        };
        let signed = [(None, digest.clone())];
        let signatures =
            check_signatures(client.clone(), source, &policy.verifiers, &signed).await?;
        Ok::<_, ObserveError>(ImageFacts { scan, signatures })
    };
    let facts = read.await.map_err(|e| problem(&e));
    (digest, facts)
}

/// Checks each `(tag, digest)` of `tags` (images of `source`, read with
/// `client`), remembering final verdicts in `verdicts`; one verification per tag.
pub async fn check(
    policy: &MirrorPolicy,
    client: &RegistryClient,
    sdk: &SdkConfig,
    source: &Repository,
    verdicts: &mut Verdicts,
    tags: &[(String, String)],
    now: Timestamp,
) -> BTreeMap<String, Verification> {
    let inspector = policy
        .ecr
        .as_ref()
        .map(|ecr| EcrInspector::new(sdk, ecr.registry.clone(), ecr.endpoint.as_deref()));
    let settings = match &inspector {
        Some(inspector) if policy.reads_settings() => {
            match inspector.repository_settings(&source.name).await {
                Ok(settings) => Some(settings),
                Err(error) => {
                    let unreadable = Verification::Unreadable(problem(&ObserveError::from(error)));
                    return tags
                        .iter()
                        .map(|(tag, _)| (tag.clone(), unreadable.clone()))
                        .collect();
                }
            }
        }
        _ => None,
    };
    let mut digests: Vec<&str> = tags.iter().map(|(_, d)| d.as_str()).collect();
    digests.sort_unstable();
    digests.dedup();
    let inspector = inspector.as_ref().filter(|_| policy.reads_scan());
    let facts: BTreeMap<String, Result<ImageFacts, Problem>> =
        futures::stream::iter(digests.into_iter().map(str::to_string))
            .map(|digest| read_image(policy, inspector, client, source, digest))
            .buffer_unordered(CHECKS_AT_ONCE)
            .collect()
            .await;
    let mut result = BTreeMap::new();
    for (tag, digest) in tags {
        let (verification, evidence) = match &facts[digest] {
            Err(problem) => (Verification::Unreadable(problem.clone()), None),
            Ok(facts) => {
                let (verification, evidence) =
                    policy.decide_with_evidence(tag, digest, settings.as_ref(), facts, now);
                (verification, Some(evidence))
            }
        };
        match &verification {
            Verification::Passed => {
                verdicts.record(&policy.fingerprint, digest, tag, Verdict::Passed);
                if let (Some(verification), Ok(facts)) = (evidence, &facts[digest]) {
                    let evidence = Evidence {
                        verification,
                        signatures: facts.signatures.clone(),
                    };
                    verdicts.evidence.insert(digest.clone(), evidence);
                }
            }
            Verification::Refused(problem) => verdicts.record(
                &policy.fingerprint,
                digest,
                tag,
                Verdict::Refused(problem.clone()),
            ),
            _ => {}
        }
        result.insert(tag.clone(), verification);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Severity;
    use crate::aws::{Encryption, EncryptionType, Finding, ScanStatus, TagMutability};
    use crate::verify::cosign::{PublicKey, SignatureLayout, SignatureOutcome, Verifier};

    const KEY: &str = include_str!("../../tests/fixtures/cosign/key-a.pub");

    fn floor(yaml: &str) -> VerificationFloor {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn ecr() -> ListingApi {
        ListingApi::Ecr {
            registry: crate::aws::resolve_ecr_registry(
                "ecr.test",
                Some("us-east-1"),
                Some("123456789012"),
            )
            .unwrap(),
            endpoint: None,
        }
    }

    fn floor_keys() -> Verifiers {
        Verifiers {
            object: None,
            floor: Some(Verifier::PublicKeys(vec![
                PublicKey::from_pem(KEY.as_bytes()).unwrap(),
            ])),
        }
    }

    fn settings(mutability: TagMutability) -> RepositorySettings {
        RepositorySettings {
            name: "team/app".into(),
            tag_mutability: mutability,
            exclusion_filters: vec!["latest".into()],
            encryption: Encryption {
                kind: EncryptionType::Kms,
                kms_key: None,
            },
        }
    }

    fn facts(scan: ScanStatus, critical: bool, signed: Option<bool>) -> ImageFacts {
        ImageFacts {
            scan: ScanReport {
                status: scan,
                description: None,
                completed_at: None,
                findings: if critical {
                    vec![Finding {
                        id: "CVE-2026-1".into(),
                        severity: Some(Severity::Critical),
                        package: None,
                    }]
                } else {
                    Vec::new()
                },
            },
            signatures: SignatureChecks {
                object: None,
                floor: signed.map(|signed| {
                    if signed {
                        SignatureOutcome::Verified {
                            key_id: "k".into(),
                            signature_digest: "sha256:5151".into(),
                            layout: SignatureLayout::SignatureTag,
                        }
                    } else {
                        SignatureOutcome::Missing
                    }
                }),
            },
        }
    }

    fn reason(v: &Verification) -> String {
        match v {
            Verification::Passed => "Passed".into(),
            Verification::Unchecked => "Unchecked".into(),
            Verification::Waiting(p) | Verification::Refused(p) | Verification::Unreadable(p) => {
                p.reason.clone()
            }
        }
    }

    #[test]
    fn each_tag_is_decided_by_the_promotions_policy() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let immutable = Some(settings(TagMutability::ImmutableWithExclusion));
        let mut keyed_floor = VerificationFloor::default();
        keyed_floor.signature.public_keys = vec![KEY.into()];
        // (case, policy, tag, repository settings, facts, outcome)
        type Case<'a> = (
            &'a str,
            MirrorPolicy,
            &'a str,
            Option<RepositorySettings>,
            ImageFacts,
            &'a str,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                "nothing asked",
                MirrorPolicy::new(
                    None,
                    VerificationFloor::default(),
                    Verifiers::default(),
                    &ListingApi::Registry,
                ),
                "1.0",
                None,
                facts(ScanStatus::NotScanned, true, None),
                "Passed",
            ),
            (
                "the floor's key, signed",
                MirrorPolicy::new(
                    None,
                    keyed_floor.clone(),
                    floor_keys(),
                    &ListingApi::Registry,
                ),
                "1.0",
                None,
                facts(ScanStatus::NotScanned, false, Some(true)),
                "Passed",
            ),
            (
                "the floor's key, unsigned",
                MirrorPolicy::new(
                    None,
                    keyed_floor.clone(),
                    floor_keys(),
                    &ListingApi::Registry,
                ),
                "1.0",
                None,
                facts(ScanStatus::NotScanned, false, Some(false)),
                "SignatureMissing",
            ),
            (
                "a floor threshold, a critical finding in ECR",
                MirrorPolicy::new(
                    None,
                    floor("scan: {failOnSeverity: CRITICAL}"),
                    Verifiers::default(),
                    &ecr(),
                ),
                "1.0",
                immutable.clone(),
                facts(ScanStatus::Complete, true, None),
                "VulnerabilitiesFound",
            ),
            (
                "a floor threshold only: a HIGH finding passes without spec.verify",
                MirrorPolicy::new(
                    None,
                    floor("scan: {failOnSeverity: CRITICAL}"),
                    Verifiers::default(),
                    &ecr(),
                ),
                "1.0",
                immutable.clone(),
                ImageFacts {
                    scan: ScanReport {
                        findings: vec![Finding {
                            id: "CVE-2026-2".into(),
                            severity: Some(Severity::High),
                            package: None,
                        }],
                        ..facts(ScanStatus::Complete, false, None).scan
                    },
                    ..facts(ScanStatus::Complete, false, None)
                },
                "Passed",
            ),
            (
                "a scan still running waits",
                MirrorPolicy::new(
                    None,
                    floor("scan: {required: true}"),
                    Verifiers::default(),
                    &ecr(),
                ),
                "1.0",
                immutable.clone(),
                facts(ScanStatus::InProgress, false, None),
                "ScanPending",
            ),
            (
                "a required scan, a source outside ECR",
                MirrorPolicy::new(
                    None,
                    floor("scan: {required: true}"),
                    Verifiers::default(),
                    &ListingApi::Registry,
                ),
                "1.0",
                None,
                facts(ScanStatus::NotScanned, false, None),
                "ScanMissing",
            ),
            (
                "immutability, a tag the exclusion filter makes mutable",
                MirrorPolicy::new(
                    None,
                    floor("requireTagImmutability: true"),
                    Verifiers::default(),
                    &ecr(),
                ),
                "latest",
                immutable.clone(),
                facts(ScanStatus::NotScanned, false, None),
                "TagMutable",
            ),
            (
                "immutability, another tag of the same image",
                MirrorPolicy::new(
                    None,
                    floor("requireTagImmutability: true"),
                    Verifiers::default(),
                    &ecr(),
                ),
                "1.0",
                immutable.clone(),
                facts(ScanStatus::NotScanned, false, None),
                "Passed",
            ),
            (
                "spec.verify's defaults on an ECR source",
                MirrorPolicy::new(
                    Some(VerificationPolicy::default()),
                    VerificationFloor::default(),
                    Verifiers::default(),
                    &ecr(),
                ),
                "1.0",
                Some(settings(TagMutability::Immutable)),
                facts(ScanStatus::Complete, true, None),
                "VulnerabilitiesFound",
            ),
        ];
        for (case, policy, tag, repository, facts, expected) in cases {
            let verification = policy.decide(tag, "sha256:aa", repository.as_ref(), &facts, now);
            assert_eq!(reason(&verification), expected, "{case}: {verification:?}");
        }
        let outside = MirrorPolicy::new(
            None,
            floor("scan: {required: true}"),
            Verifiers::default(),
            &ListingApi::Registry,
        )
        .decide(
            "1.0",
            "sha256:aa",
            None,
            &facts(ScanStatus::NotScanned, false, None),
            now,
        );
        let Verification::Refused(problem) = outside else {
            panic!("{outside:?}")
        };
        assert!(
            problem.message.contains("not an Amazon ECR repository"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("no ECR scan"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("the operator's floor"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn the_fingerprint_moves_with_the_policy_the_floor_and_the_keys() {
        let base = MirrorPolicy::new(
            None,
            VerificationFloor::default(),
            Verifiers::default(),
            &ListingApi::Registry,
        );
        assert!(!base.checks_anything());
        let same = MirrorPolicy::new(
            None,
            VerificationFloor::default(),
            Verifiers::default(),
            &ecr(),
        );
        assert_eq!(base.fingerprint, same.fingerprint);
        let others = [
            MirrorPolicy::new(
                Some(VerificationPolicy::default()),
                VerificationFloor::default(),
                Verifiers::default(),
                &ListingApi::Registry,
            ),
            MirrorPolicy::new(
                None,
                floor("scan: {required: true}"),
                Verifiers::default(),
                &ListingApi::Registry,
            ),
            MirrorPolicy::new(
                None,
                VerificationFloor::default(),
                floor_keys(),
                &ListingApi::Registry,
            ),
        ];
        for other in others {
            assert_ne!(base.fingerprint, other.fingerprint);
            assert!(other.checks_anything() || other.verifiers.any());
        }
        let mut verdicts = Verdicts::default();
        let policy = MirrorPolicy::new(
            None,
            floor("scan: {required: true}"),
            Verifiers::default(),
            &ListingApi::Registry,
        );
        assert_eq!(
            policy.remembered(&verdicts, "t", "d"),
            Verification::Unchecked
        );
        verdicts.record(
            &policy.fingerprint,
            "d",
            "t",
            Verdict::Refused(Problem {
                reason: "ScanMissing".into(),
                message: "m".into(),
            }),
        );
        assert!(matches!(
            policy.remembered(&verdicts, "t", "d"),
            Verification::Refused(_)
        ));
        assert_eq!(
            base.remembered(&verdicts, "t", "d"),
            Verification::Passed,
            "nothing to check"
        );
    }
}
