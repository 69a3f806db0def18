//! The promotion policy: may this image leave internal ECR?
//!
//! [`evaluate`] is pure: the object's `spec.verify`, the operator's
//! [`VerificationFloor`], what was observed about the source (repository
//! settings, scan, signature checks) and the current time go in; a
//! [`Verdict`] comes out. Every setting takes the stricter of the object and
//! the floor, and each failure says which side required what failed
//! ([`RequiredBy`]), so a release engineer knows whether to change the
//! object, the image or ask the operator's owners.
//!
//! A scan that is still running is not a failure: the verdict is then
//! "waiting" (`ScanPending`), to be evaluated again later. Ignore entries
//! apply through their expiry date (inclusive, UTC) and no longer; the clock
//! is a parameter so tests can stand on either side of midnight.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::civil::Date;
use k8s_openapi::jiff::tz::TimeZone;

use super::cosign::SignatureOutcome;
use super::floor::VerificationFloor;
use crate::api::conditions::{self, ConditionStatus, ConditionUpdate};
use crate::api::verify::{ScanEvidence, SignatureEvidence};
use crate::api::{
    EncryptionRequirement, IgnoredFinding, Severity, VerificationEvidence, VerificationPolicy,
    reasons,
};
use crate::aws::{
    EncryptionType, RepositorySettings, SIGNATURE_TAG_PREFIX, ScanReport, ScanStatus, TagMutability,
};

/// Most findings named in one message; the rest are counted.
const MAX_LISTED_FINDINGS: usize = 10;

/// What was observed about the source image, the input of [`evaluate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observations {
    /// The pinned digest of the source image.
    pub digest: String,
    /// The source tag, when the source was named by tag.
    pub source_tag: Option<String>,
    /// The source repository's settings; `None` for a source outside Amazon
    /// ECR (a mirror of another registry), which has no such facts and no scan.
    pub repository: Option<RepositorySettings>,
    /// The image's scan.
    pub scan: ScanReport,
    /// The signature checks that were made.
    pub signatures: SignatureChecks,
}

/// The outcomes of the signature checks, one per side that names keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignatureChecks {
    /// Against the key of `spec.verify.signature`, when the object names one.
    pub object: Option<SignatureOutcome>,
    /// Against the floor's `signature.publicKeys`, when it has any.
    pub floor: Option<SignatureOutcome>,
}

/// Which side of the policy required what failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequiredBy {
    /// The object's `spec.verify`.
    Object,
    /// The operator's floor.
    Floor,
    /// Both.
    Both,
}

impl RequiredBy {
    fn of(object: bool, floor: bool) -> Option<Self> {
        match (object, floor) {
            (true, true) => Some(Self::Both),
            (true, false) => Some(Self::Object),
            (false, true) => Some(Self::Floor),
            (false, false) => None,
        }
    }
}

impl fmt::Display for RequiredBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Object => "spec.verify",
            Self::Floor => "the operator's floor",
            Self::Both => "spec.verify and the operator's floor",
        })
    }
}

/// One check the source did not pass (or is waiting for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// PascalCase reason, one of [`crate::api::reasons`].
    pub reason: &'static str,
    /// Which side required it.
    pub required_by: RequiredBy,
    /// What is wrong and what to do, naming tags, CVEs, severities and keys.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (required by {})", self.message, self.required_by)
    }
}

/// The decision of [`evaluate`] and the evidence it rests on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Checks that failed: the image is refused until the image, the object
    /// or the floor changes.
    pub failures: Vec<Failure>,
    /// Checks still waiting for ECR (a running scan): evaluate again later.
    pub pending: Vec<Failure>,
    /// What was found, for `status.verification`.
    pub evidence: VerificationEvidence,
    /// How a passed check was satisfied when that is worth saying (an
    /// `IMMUTABLE_WITH_EXCLUSION` repository whose filters cover only
    /// signature tags); added to the `Verified=True` message.
    pub notes: Vec<String>,
}

impl Verdict {
    /// Every check passed: the image may be copied.
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.pending.is_empty()
    }

    /// Some check failed: nothing may be copied.
    pub fn refused(&self) -> bool {
        !self.failures.is_empty()
    }

    /// Nothing failed, but a check is waiting: retry later.
    pub fn waiting(&self) -> bool {
        self.failures.is_empty() && !self.pending.is_empty()
    }

    /// The `Verified` condition this verdict stands for: True with
    /// `PolicySatisfied`, Unknown with `ScanPending`, or False with the
    /// first failure's reason and every failure in the message.
    pub fn condition(&self) -> ConditionUpdate {
        let join = |failures: &[Failure]| {
            failures
                .iter()
                .map(Failure::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        };
        if let Some(first) = self.failures.first() {
            ConditionUpdate::new(conditions::VERIFIED, ConditionStatus::False, first.reason)
                .message(join(&self.failures))
        } else if let Some(first) = self.pending.first() {
            ConditionUpdate::new(conditions::VERIFIED, ConditionStatus::Unknown, first.reason)
                .message(join(&self.pending))
        } else {
            let mut message = "the source passed every check of the effective policy".to_string();
            for note in &self.notes {
                message.push_str("; ");
                message.push_str(note);
            }
            ConditionUpdate::new(conditions::VERIFIED, true, reasons::POLICY_SATISFIED)
                .message(message)
        }
    }
}

/// Decides whether the observed source satisfies the object's `policy`
/// raised to the operator's `floor`, at time `now`.
pub fn evaluate(
    policy: &VerificationPolicy,
    floor: &VerificationFloor,
    observed: &Observations,
    now: Timestamp,
) -> Verdict {
    evaluate_with(Some(policy), floor, observed, now)
}

/// [`evaluate`] for an object whose policy is optional (a RegistryMirror's
/// `spec.verify`): without one only the floor applies.
pub fn evaluate_with(
    policy: Option<&VerificationPolicy>,
    floor: &VerificationFloor,
    observed: &Observations,
    now: Timestamp,
) -> Verdict {
    let today = now.to_zoned(TimeZone::UTC).date();
    let mut failures = Vec::new();
    let mut pending = Vec::new();
    let (immutability, note) = tag_mutability(policy, floor, observed);
    failures.extend(immutability);
    failures.extend(encryption(policy, floor, observed));
    let scan = scan(policy, floor, observed, today);
    failures.extend(scan.failures);
    pending.extend(scan.pending);
    failures.extend(signatures(policy, floor, observed));
    Verdict {
        failures,
        pending,
        notes: note.into_iter().collect(),
        evidence: VerificationEvidence {
            tag_mutability: observed
                .repository
                .as_ref()
                .map(|r| r.tag_mutability.as_str().to_string()),
            encryption_type: observed
                .repository
                .as_ref()
                .map(|r| r.encryption.kind.as_str().to_string()),
            scan: scan.evidence,
            signature: signature_evidence(&observed.signatures),
        },
    }
}

/// The image as messages name it: `repository@digest`.
fn image(observed: &Observations) -> String {
    let name = observed.repository.as_ref().map_or("", |r| r.name.as_str());
    format!("{name}@{}", observed.digest)
}

/// Why a source outside ECR cannot show `what`, for a failure message.
fn outside_ecr(observed: &Observations, what: &str, remedy: &str) -> String {
    format!(
        "the source of {} is not an Amazon ECR repository, so nothing vouches for {what}; {remedy}",
        observed.digest
    )
}

/// The immutability check: a failure, or when it passed on an
/// `IMMUTABLE_WITH_EXCLUSION` repository, a note saying why that is enough.
fn tag_mutability(
    policy: Option<&VerificationPolicy>,
    floor: &VerificationFloor,
    observed: &Observations,
) -> (Option<Failure>, Option<String>) {
    let Some(required_by) = RequiredBy::of(
        policy.is_some_and(|p| p.require_tag_immutability),
        floor.require_tag_immutability,
    ) else {
        return (None, None);
    };
    let tag = observed.source_tag.as_deref();
    let Some(repository) = &observed.repository else {
        let failure = Failure {
            reason: reasons::TAG_MUTABLE,
            required_by,
            message: outside_ecr(
                observed,
                &format!("tag {} staying on it", tag.unwrap_or("(none)")),
                "immutable source tags are required: mirror from an ECR repository with \
                 immutable tags, or set requireTagImmutability: false",
            ),
        };
        return (Some(failure), None);
    };
    let name = &repository.name;
    let setting = repository.tag_mutability.as_str();
    if repository.tag_is_immutable(tag) {
        let note = (repository.tag_mutability == TagMutability::ImmutableWithExclusion).then(|| {
            let filters = repository.exclusion_filters.join(", ");
            match (tag, repository.release_tag_exclusion()) {
                (_, None) => format!(
                    "repository {name} is {setting}: its exclusion filters ({filters}) cover only \
                     cosign's signature tags ({SIGNATURE_TAG_PREFIX}*), so release tags are immutable"
                ),
                (Some(tag), Some(_)) => format!(
                    "repository {name} is {setting}: none of its exclusion filters ({filters}) \
                     matches tag {tag}, so it is immutable"
                ),
                (None, Some(_)) => unreachable!("tag_is_immutable refuses a release-tag filter without a tag"),
            }
        });
        return (None, note);
    }
    let message = match (tag, &repository.tag_mutability) {
        (Some(tag), TagMutability::ImmutableWithExclusion) => format!(
            "tag {tag} of repository {name} can be moved: it matches the exclusion filter {:?} \
             of the repository's {setting} setting; exclude only cosign's signature tags \
             ({SIGNATURE_TAG_PREFIX}*), or promote a tag no filter matches",
            repository.exclusion_for(tag).unwrap_or_default()
        ),
        (None, TagMutability::ImmutableWithExclusion) => format!(
            "repository {name} is {setting} and its exclusion filter {:?} can free release tags, \
             so nothing vouches for the tags of an image named by digest; exclude only cosign's \
             signature tags ({SIGNATURE_TAG_PREFIX}*), or name the source by an immutable tag",
            repository.release_tag_exclusion().unwrap_or_default()
        ),
        (Some(tag), TagMutability::MutableWithExclusion) => format!(
            "tag {tag} of repository {name} can be moved: the repository is {setting} and no \
             exclusion filter matches the tag; make the repository IMMUTABLE"
        ),
        (Some(tag), _) => format!(
            "tag {tag} of repository {name} can be moved: the repository's tag mutability is \
             {setting}; make it IMMUTABLE"
        ),
        (None, _) => format!("repository {name} allows moving tags ({setting}); make it IMMUTABLE"),
    };
    let failure = Failure {
        reason: reasons::TAG_MUTABLE,
        required_by,
        message,
    };
    (Some(failure), None)
}

fn requirement_name(requirement: EncryptionRequirement) -> &'static str {
    match requirement {
        EncryptionRequirement::Any => "Any",
        EncryptionRequirement::Aes256 => "AES256",
        EncryptionRequirement::Kms => "KMS",
    }
}

fn encryption(
    policy: Option<&VerificationPolicy>,
    floor: &VerificationFloor,
    observed: &Observations,
) -> Option<Failure> {
    let asked = policy.map_or(EncryptionRequirement::Any, |p| p.encryption);
    let Some(repository) = &observed.repository else {
        let required_by = RequiredBy::of(
            asked > EncryptionRequirement::Any,
            floor.encryption > EncryptionRequirement::Any,
        )?;
        return Some(Failure {
            reason: reasons::ENCRYPTION_TOO_WEAK,
            required_by,
            message: outside_ecr(
                observed,
                "its encryption at rest",
                &format!(
                    "encryption {} is required: mirror from an ECR repository encrypted so",
                    requirement_name(asked.max(floor.encryption))
                ),
            ),
        });
    };
    let strength = match repository.encryption.kind {
        EncryptionType::Aes256 => EncryptionRequirement::Aes256,
        EncryptionType::Kms | EncryptionType::KmsDsse => EncryptionRequirement::Kms,
        EncryptionType::Other(_) => EncryptionRequirement::Any,
    };
    let object_fails = asked > strength;
    let floor_fails = floor.encryption > strength;
    let required_by = RequiredBy::of(object_fails, floor_fails)?;
    let required = match required_by {
        RequiredBy::Object => asked,
        RequiredBy::Floor => floor.encryption,
        RequiredBy::Both => asked.max(floor.encryption),
    };
    Some(Failure {
        reason: reasons::ENCRYPTION_TOO_WEAK,
        required_by,
        message: format!(
            "repository {} is encrypted with {}, weaker than the required {} (ECR cannot change \
             a repository's encryption: push the image to a repository created with KMS encryption)",
            repository.name,
            repository.encryption.kind.as_str(),
            requirement_name(required)
        ),
    })
}

struct ScanChecks {
    failures: Vec<Failure>,
    pending: Vec<Failure>,
    evidence: Option<ScanEvidence>,
}

/// Whether an ignore entry covers its finding today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ignore {
    Active,
    Expired(Date),
}

fn ignores(entries: &[IgnoredFinding], today: Date) -> (BTreeMap<&str, Ignore>, Vec<Failure>) {
    let mut ignores = BTreeMap::new();
    let mut invalid = Vec::new();
    for entry in entries {
        match entry.expires.parse::<Date>() {
            Ok(expires) => {
                let state = if today <= expires {
                    Ignore::Active
                } else {
                    Ignore::Expired(expires)
                };
                ignores.entry(entry.id.as_str()).or_insert(state);
            }
            Err(_) => invalid.push(Failure {
                reason: reasons::INVALID_SPEC,
                required_by: RequiredBy::Object,
                message: format!(
                    "spec.verify.scan.ignore entry {} expires on {:?}, which is not a date \
                     (YYYY-MM-DD); the entry is not applied",
                    entry.id, entry.expires
                ),
            }),
        }
    }
    (ignores, invalid)
}

/// One vulnerability id with its worst severity, as the message shows it.
struct Blocking<'a> {
    id: &'a str,
    severity: Option<Severity>,
    package: Option<&'a str>,
    note: Option<String>,
}

fn scan(
    policy: Option<&VerificationPolicy>,
    floor: &VerificationFloor,
    observed: &Observations,
    today: Date,
) -> ScanChecks {
    let report = &observed.scan;
    let (ignores, mut failures) = ignores(policy.map_or(&[], |p| &p.scan.ignore), today);
    let mut pending = Vec::new();
    let required_by = RequiredBy::of(policy.is_some_and(|p| p.scan.required), floor.scan.required);
    let image = image(observed);
    let described = report
        .description
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();

    if report.status.has_findings() {
        failures.extend(findings(policy, floor, report, &ignores, &image));
    } else if let Some(required_by) = required_by {
        let status = report.status.as_str();
        if report.status.is_running() {
            pending.push(Failure {
                reason: reasons::SCAN_PENDING,
                required_by,
                message: format!(
                    "the scan of {image} is {status}{described}; verification continues when it completes"
                ),
            });
        } else if observed.repository.is_none() {
            failures.push(Failure {
                reason: reasons::SCAN_MISSING,
                required_by,
                message: outside_ecr(
                    observed,
                    "what it contains: it has no ECR scan",
                    "a completed scan is required: mirror from an ECR repository that scans \
                     its images, or set scan.required: false",
                ),
            });
        } else if report.status == ScanStatus::NotScanned {
            failures.push(Failure {
                reason: reasons::SCAN_MISSING,
                required_by,
                message: format!(
                    "{image} has not been scanned; start a scan (aws ecr start-image-scan) or \
                     enable scan on push for the repository"
                ),
            });
        } else {
            failures.push(Failure {
                reason: reasons::SCAN_FAILED,
                required_by,
                message: format!(
                    "the scan of {image} did not complete: {status}{described}; rescan the image, \
                     or rebuild it on a base image ECR can scan"
                ),
            });
        }
    }

    let evidence = (report.status != ScanStatus::NotScanned).then(|| ScanEvidence {
        status: report.status.as_str().to_string(),
        completed_at: report
            .completed_at
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
        findings: report.counts(),
        ignored: report
            .findings
            .iter()
            .filter(|f| ignores.get(f.id.as_str()) == Some(&Ignore::Active))
            .count() as i32,
    });
    ScanChecks {
        failures,
        pending,
        evidence,
    }
}

fn findings(
    policy: Option<&VerificationPolicy>,
    floor: &VerificationFloor,
    report: &ScanReport,
    ignores: &BTreeMap<&str, Ignore>,
    image: &str,
) -> Option<Failure> {
    // One entry per vulnerability id, with its worst severity.
    let mut worst: BTreeMap<&str, (Option<Severity>, Option<&str>)> = BTreeMap::new();
    for finding in &report.findings {
        let entry = worst
            .entry(finding.id.as_str())
            .or_insert((finding.severity, finding.package.as_deref()));
        if finding.severity > entry.0 {
            *entry = (finding.severity, finding.package.as_deref());
        }
    }
    let (mut object_fails, mut floor_fails) = (false, false);
    let mut blocking = Vec::new();
    for (id, (severity, package)) in worst {
        // UNDEFINED counts as INFORMATIONAL: only the strictest threshold catches it.
        let rank = severity.unwrap_or(Severity::Informational);
        let ignore = ignores.get(id).copied();
        let active = ignore == Some(Ignore::Active);
        let by_object = policy.is_some_and(|p| rank >= p.scan.fail_on_severity) && !active;
        let by_floor = floor.scan.fail_on_severity.is_some_and(|t| rank >= t)
            && !(active && floor.scan.allow_ignores);
        if !(by_object || by_floor) {
            continue;
        }
        object_fails |= by_object;
        floor_fails |= by_floor;
        let note = match ignore {
            Some(Ignore::Expired(date)) => Some(format!("its ignore entry expired on {date}")),
            Some(Ignore::Active) => Some(
                "ignored by spec.verify, but the operator's floor does not accept ignores".into(),
            ),
            None => None,
        };
        blocking.push(Blocking {
            id,
            severity,
            package,
            note,
        });
    }
    let required_by = RequiredBy::of(object_fails, floor_fails)?;
    let asked = policy.map_or(Severity::Critical, |p| p.scan.fail_on_severity);
    let threshold = match required_by {
        RequiredBy::Object => asked,
        RequiredBy::Floor => floor.scan.fail_on_severity.unwrap_or(Severity::Critical),
        RequiredBy::Both => asked.min(floor.scan.fail_on_severity.unwrap_or(Severity::Critical)),
    };
    blocking.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(b.id)));
    let count = blocking.len();
    let mut listed: Vec<String> = blocking
        .iter()
        .take(MAX_LISTED_FINDINGS)
        .map(|b| {
            let severity = b.severity.map_or("UNDEFINED", Severity::as_str);
            let mut detail = match b.package {
                Some(package) => format!("{severity}, {package}"),
                None => severity.to_string(),
            };
            if let Some(note) = &b.note {
                detail = format!("{detail}; {note}");
            }
            format!("{} ({detail})", b.id)
        })
        .collect();
    if count > MAX_LISTED_FINDINGS {
        listed.push(format!("and {} more", count - MAX_LISTED_FINDINGS));
    }
    Some(Failure {
        reason: reasons::VULNERABILITIES_FOUND,
        required_by,
        message: format!(
            "{image} has {count} {} at or above {threshold} that no unexpired ignore entry covers: {}; \
             fix the image, or add an ignore entry with a reason and an expiry date",
            if count == 1 {
                "vulnerability"
            } else {
                "vulnerabilities"
            },
            listed.join(", ")
        ),
    })
}

fn signatures(
    policy: Option<&VerificationPolicy>,
    floor: &VerificationFloor,
    observed: &Observations,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    let asked = policy.and_then(|p| p.signature.as_ref());
    if asked.is_some() {
        failures.extend(signature_failure(
            observed.signatures.object.as_ref(),
            RequiredBy::Object,
            &observed.digest,
        ));
    }
    if floor.signature.names_signers() {
        failures.extend(signature_failure(
            observed.signatures.floor.as_ref(),
            RequiredBy::Floor,
            &observed.digest,
        ));
    } else if floor.signature.required && asked.is_none() {
        failures.push(Failure {
            reason: reasons::INVALID_SPEC,
            required_by: RequiredBy::Floor,
            message: "the operator requires every promotion to verify a cosign signature: set \
                      spec.verify.signature.publicKey to the key the image is signed with, or \
                      spec.verify.signature.keyless to the identity that signs it"
                .into(),
        });
    }
    failures
}

fn signature_failure(
    outcome: Option<&SignatureOutcome>,
    required_by: RequiredBy,
    digest: &str,
) -> Option<Failure> {
    let Some(outcome) = outcome else {
        // Fail closed: a required check that was not made is not a pass.
        return Some(Failure {
            reason: reasons::SIGNATURE_MISSING,
            required_by,
            message: format!(
                "the signatures of {digest} were not checked against the key {required_by} names"
            ),
        });
    };
    let (reason, message) = match outcome {
        SignatureOutcome::Verified { .. } => return None,
        SignatureOutcome::Missing => (
            reasons::SIGNATURE_MISSING,
            format!(
                "{digest} has no cosign signature (no sha256-<hex>.sig tag and no OCI 1.1 \
                 referrer); sign it with cosign sign"
            ),
        ),
        SignatureOutcome::Invalid { trusted, problems } => (
            reasons::SIGNATURE_INVALID,
            format!(
                "no signature of {digest} verifies with {} {}: {}",
                match (
                    trusted.iter().all(|t| t.starts_with("sha256:")),
                    trusted.len()
                ) {
                    (true, 1) => "key",
                    (true, _) => "any of the keys",
                    (false, 1) => "keyless identity",
                    (false, _) => "any of the keyless identities",
                },
                trusted.join(", "),
                problems.join("; ")
            ),
        ),
        SignatureOutcome::Unsupported { what } => (reasons::INVALID_SPEC, what.clone()),
    };
    Some(Failure {
        reason,
        required_by,
        message,
    })
}

fn signature_evidence(checks: &SignatureChecks) -> Option<SignatureEvidence> {
    [&checks.object, &checks.floor]
        .into_iter()
        .flatten()
        .find_map(|outcome| match outcome {
            SignatureOutcome::Verified {
                key_id,
                signature_digest,
                ..
            } => Some(SignatureEvidence {
                key_id: key_id.clone(),
                signature_digest: Some(signature_digest.clone()),
            }),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{KeylessSignature, PublicKeySignature, SecretKeyReference, SignaturePolicy};
    use crate::aws::{Encryption, Finding};
    use crate::verify::cosign::SignatureLayout;

    const DIGEST: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn now() -> Timestamp {
        at("2026-06-15T12:00:00Z")
    }

    fn finding(id: &str, severity: Option<Severity>) -> Finding {
        Finding {
            id: id.into(),
            severity,
            package: Some("openssl".into()),
        }
    }

    fn verified() -> SignatureOutcome {
        SignatureOutcome::Verified {
            key_id: "sha256:aaaa".into(),
            signature_digest: "sha256:5151".into(),
            layout: SignatureLayout::SignatureTag,
        }
    }

    /// An image that passes every check of the strictest policy below.
    fn good() -> Observations {
        Observations {
            digest: DIGEST.into(),
            source_tag: Some("1.2.3".into()),
            repository: Some(RepositorySettings {
                name: "team/app".into(),
                tag_mutability: TagMutability::Immutable,
                exclusion_filters: Vec::new(),
                encryption: Encryption {
                    kind: EncryptionType::Kms,
                    kms_key: Some("arn:aws:kms:us-east-1:123456789012:key/k".into()),
                },
            }),
            scan: ScanReport {
                status: ScanStatus::Complete,
                description: None,
                completed_at: Some(at("2026-06-14T08:00:00Z")),
                findings: vec![finding("CVE-2026-0001", Some(Severity::Low))],
            },
            signatures: SignatureChecks {
                object: Some(verified()),
                floor: None,
            },
        }
    }

    fn signed_policy() -> VerificationPolicy {
        VerificationPolicy {
            encryption: EncryptionRequirement::Kms,
            signature: Some(SignaturePolicy {
                public_key: Some(PublicKeySignature {
                    secret_ref: SecretKeyReference {
                        name: "cosign".into(),
                        key: "cosign.pub".into(),
                    },
                }),
                keyless: None,
            }),
            ..VerificationPolicy::default()
        }
    }

    fn ignore(id: &str, expires: &str) -> IgnoredFinding {
        IgnoredFinding {
            id: id.into(),
            reason: "not reachable".into(),
            expires: expires.into(),
        }
    }

    /// (reason, required_by) of every failure.
    fn reasons(verdict: &Verdict) -> Vec<(&'static str, RequiredBy)> {
        verdict
            .failures
            .iter()
            .map(|f| (f.reason, f.required_by))
            .collect()
    }

    #[test]
    fn without_an_object_policy_only_the_floor_applies_and_outside_ecr_fails_closed() {
        use crate::verify::floor::ScanFloor;
        let floor = VerificationFloor {
            require_tag_immutability: true,
            encryption: EncryptionRequirement::Kms,
            scan: ScanFloor {
                required: true,
                ..ScanFloor::default()
            },
            ..VerificationFloor::default()
        };
        // An ECR image with a HIGH finding: the object's default threshold
        // would refuse it, the floor has none.
        let mut high = good();
        high.scan.findings = vec![finding("CVE-2026-0002", Some(Severity::High))];
        let verdict = evaluate_with(None, &floor, &high, now());
        assert!(verdict.passed(), "{:?}", verdict.failures);
        assert!(evaluate(&VerificationPolicy::default(), &floor, &high, now()).refused());
        assert!(evaluate_with(None, &VerificationFloor::default(), &high, now()).passed());

        let outside = Observations {
            repository: None,
            scan: ScanReport::not_scanned(),
            ..good()
        };
        let verdict = evaluate_with(None, &floor, &outside, now());
        let reasons: Vec<(&str, RequiredBy)> = verdict
            .failures
            .iter()
            .map(|f| (f.reason, f.required_by))
            .collect();
        assert_eq!(
            reasons,
            [
                (reasons::TAG_MUTABLE, RequiredBy::Floor),
                (reasons::ENCRYPTION_TOO_WEAK, RequiredBy::Floor),
                (reasons::SCAN_MISSING, RequiredBy::Floor),
            ]
        );
        for failure in &verdict.failures {
            assert!(
                failure.message.contains("is not an Amazon ECR repository"),
                "{failure}"
            );
        }
        assert_eq!(verdict.evidence.tag_mutability, None);
        let nothing_asked = evaluate_with(None, &VerificationFloor::default(), &outside, now());
        assert!(nothing_asked.passed(), "{:?}", nothing_asked.failures);
    }

    #[test]
    fn a_good_image_passes_with_its_evidence() {
        let verdict = evaluate(
            &signed_policy(),
            &VerificationFloor::default(),
            &good(),
            now(),
        );
        assert!(
            verdict.passed() && !verdict.refused() && !verdict.waiting(),
            "{verdict:?}"
        );
        let evidence = &verdict.evidence;
        assert_eq!(evidence.tag_mutability.as_deref(), Some("IMMUTABLE"));
        assert_eq!(evidence.encryption_type.as_deref(), Some("KMS"));
        let scan = evidence.scan.as_ref().unwrap();
        assert_eq!(
            (scan.status.as_str(), scan.findings.low, scan.ignored),
            ("COMPLETE", 1, 0)
        );
        assert_eq!(evidence.signature.as_ref().unwrap().key_id, "sha256:aaaa");
        let condition = verdict.condition();
        assert_eq!(
            (condition.status, condition.reason.as_str()),
            (ConditionStatus::True, "PolicySatisfied")
        );
    }

    /// `IMMUTABLE_WITH_EXCLUSION`: exclusions of cosign's signature tags are
    /// accepted and the Verified message says so; an exclusion that matches the
    /// source tag, or that could free release tags of a digest-only source, is
    /// refused naming the filter.
    #[test]
    fn immutable_with_exclusion_is_accepted_only_for_signature_tags() {
        /// The condition's status (passed or refused) and fragments of its message.
        type Expected = Result<&'static [&'static str], &'static [&'static str]>;
        let cases: [(&[&str], Option<&str>, Expected); 7] = [
            (
                &["sha256-*"],
                Some("1.2.3"),
                Ok(&[
                    "IMMUTABLE_WITH_EXCLUSION",
                    "(sha256-*) cover only cosign's signature tags",
                ]),
            ),
            (
                &["sha256-*.sig", "sha256-*.att"],
                None,
                Ok(&["(sha256-*.sig, sha256-*.att) cover only cosign's signature tags"]),
            ),
            (
                &["dev-*"],
                Some("1.2.3"),
                Ok(&["none of its exclusion filters (dev-*) matches tag 1.2.3"]),
            ),
            (
                &["sha256-*", "1.2.*"],
                Some("1.2.3"),
                Err(&[
                    "tag 1.2.3",
                    "exclusion filter \"1.2.*\"",
                    "exclude only cosign's signature tags (sha256-*)",
                ]),
            ),
            (
                &["latest"],
                None,
                Err(&[
                    "team/app",
                    "exclusion filter \"latest\" can free release tags",
                    "named by digest",
                ]),
            ),
            (&["sha256-*", "*"], None, Err(&["exclusion filter \"*\""])),
            (&["sha256*"], None, Err(&["exclusion filter \"sha256*\""])),
        ];
        for (filters, tag, expected) in cases {
            let mut observed = good();
            observed.source_tag = tag.map(str::to_string);
            let repository = observed.repository.as_mut().unwrap();
            repository.tag_mutability = TagMutability::ImmutableWithExclusion;
            repository.exclusion_filters = filters.iter().map(|f| f.to_string()).collect();
            let verdict = evaluate(
                &signed_policy(),
                &VerificationFloor::default(),
                &observed,
                now(),
            );
            let condition = verdict.condition();
            let (status, reason, fragments) = match expected {
                Ok(fragments) => (ConditionStatus::True, "PolicySatisfied", fragments),
                Err(fragments) => (ConditionStatus::False, "TagMutable", fragments),
            };
            assert_eq!(
                (condition.status, condition.reason.as_str()),
                (status, reason),
                "{filters:?} {tag:?}: {verdict:?}"
            );
            for fragment in fragments {
                assert!(
                    condition.message.contains(fragment),
                    "{filters:?} {tag:?}: {fragment:?} not in {:?}",
                    condition.message
                );
            }
        }
        let plain = evaluate(
            &signed_policy(),
            &VerificationFloor::default(),
            &good(),
            now(),
        );
        assert!(plain.notes.is_empty(), "{:?}", plain.notes);
        assert_eq!(
            plain.condition().message,
            "the source passed every check of the effective policy"
        );
    }

    /// One observation changed at a time; each fails with its reason.
    #[test]
    fn every_single_failure_has_its_reason() {
        type Change = fn(&mut Observations, &mut VerificationPolicy);
        let cases: Vec<(&str, Change, &str, &[&str])> = vec![
            (
                "mutable repository",
                |o, _| o.repository.as_mut().unwrap().tag_mutability = TagMutability::Mutable,
                "TagMutable",
                &["tag 1.2.3", "team/app", "MUTABLE", "make it IMMUTABLE"],
            ),
            (
                "tag excluded from immutability",
                |o, _| {
                    o.repository.as_mut().unwrap().tag_mutability =
                        TagMutability::ImmutableWithExclusion;
                    o.repository.as_mut().unwrap().exclusion_filters = vec!["1.2.*".into()];
                },
                "TagMutable",
                &[
                    "tag 1.2.3",
                    "exclusion filter \"1.2.*\"",
                    "IMMUTABLE_WITH_EXCLUSION",
                ],
            ),
            (
                "tag not covered by a mutable repository's exclusion",
                |o, _| {
                    o.repository.as_mut().unwrap().tag_mutability =
                        TagMutability::MutableWithExclusion;
                    o.repository.as_mut().unwrap().exclusion_filters = vec!["release-*".into()];
                },
                "TagMutable",
                &["MUTABLE_WITH_EXCLUSION", "no exclusion filter matches"],
            ),
            (
                "AES256 where KMS is required",
                |o, _| o.repository.as_mut().unwrap().encryption.kind = EncryptionType::Aes256,
                "EncryptionTooWeak",
                &["encrypted with AES256", "required KMS"],
            ),
            (
                "never scanned",
                |o, _| o.scan = ScanReport::not_scanned(),
                "ScanMissing",
                &[
                    "team/app@sha256:9f86",
                    "has not been scanned",
                    "start-image-scan",
                ],
            ),
            (
                "scan failed",
                |o, _| {
                    o.scan.status = ScanStatus::Failed;
                    o.scan.description = Some("the scanner broke".into());
                },
                "ScanFailed",
                &["FAILED: the scanner broke"],
            ),
            (
                "unsupported image",
                |o, _| o.scan.status = ScanStatus::UnsupportedImage,
                "ScanFailed",
                &["UNSUPPORTED_IMAGE"],
            ),
            (
                "critical and high findings",
                |o, _| {
                    o.scan
                        .findings
                        .push(finding("CVE-2026-0002", Some(Severity::High)));
                    o.scan
                        .findings
                        .push(finding("CVE-2026-0003", Some(Severity::Critical)));
                },
                "VulnerabilitiesFound",
                &[
                    "2 vulnerabilities at or above HIGH",
                    "CVE-2026-0003 (CRITICAL, openssl), CVE-2026-0002 (HIGH, openssl)",
                ],
            ),
            (
                "unsigned",
                |o, _| o.signatures.object = Some(SignatureOutcome::Missing),
                "SignatureMissing",
                &["sha256:9f86", "no cosign signature"],
            ),
            (
                "signature not checked",
                |o, _| o.signatures.object = None,
                "SignatureMissing",
                &["were not checked"],
            ),
            (
                "signed by another key",
                |o, _| {
                    o.signatures.object = Some(SignatureOutcome::Invalid {
                        trusted: vec!["sha256:aaaa".into()],
                        problems: vec!["sha256:5151 (.sig tag): not made by a trusted key".into()],
                    })
                },
                "SignatureInvalid",
                &["verifies with key sha256:aaaa", "not made by a trusted key"],
            ),
            (
                "keyless policy, signed by another identity",
                |o, p| {
                    p.signature = Some(SignaturePolicy {
                        public_key: None,
                        keyless: Some(KeylessSignature {
                            issuer: Some("https://issuer.example".into()),
                            subject: Some("ci".into()),
                            ..KeylessSignature::default()
                        }),
                    });
                    o.signatures.object = Some(SignatureOutcome::Invalid {
                        trusted: vec!["issuer https://issuer.example, subject ci".into()],
                        problems: vec!["its certificate names subject other".into()],
                    })
                },
                "SignatureInvalid",
                &[
                    "verifies with keyless identity issuer https://issuer.example, subject ci",
                    "names subject other",
                ],
            ),
            (
                "ignore entry with a bad date",
                |_, p| p.scan.ignore = vec![ignore("CVE-2026-0001", "next tuesday")],
                "InvalidSpec",
                &["CVE-2026-0001", "not a date"],
            ),
        ];
        for (name, change, reason, phrases) in cases {
            let mut observed = good();
            let mut policy = signed_policy();
            change(&mut observed, &mut policy);
            let verdict = evaluate(&policy, &VerificationFloor::default(), &observed, now());
            assert_eq!(reasons(&verdict), [(reason, RequiredBy::Object)], "{name}");
            assert!(verdict.refused() && verdict.pending.is_empty(), "{name}");
            let message = &verdict.failures[0].message;
            for phrase in phrases {
                assert!(
                    message.contains(phrase),
                    "{name}: {message:?} lacks {phrase:?}"
                );
            }
            let condition = verdict.condition();
            assert_eq!(condition.status, ConditionStatus::False, "{name}");
            assert_eq!(condition.reason, reason, "{name}");
            assert!(
                condition.message.ends_with("(required by spec.verify)"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_running_scan_is_waited_for_not_refused() {
        for status in [ScanStatus::InProgress, ScanStatus::Pending] {
            let mut observed = good();
            observed.scan = ScanReport {
                status: status.clone(),
                description: None,
                completed_at: None,
                findings: Vec::new(),
            };
            let verdict = evaluate(
                &signed_policy(),
                &VerificationFloor::default(),
                &observed,
                now(),
            );
            assert!(verdict.waiting() && !verdict.passed() && !verdict.refused());
            assert_eq!(verdict.pending[0].reason, "ScanPending");
            assert!(verdict.pending[0].message.contains(status.as_str()));
            let condition = verdict.condition();
            assert_eq!(
                (condition.status, condition.reason.as_str()),
                (ConditionStatus::Unknown, "ScanPending")
            );
            assert_eq!(verdict.evidence.scan.unwrap().status, status.as_str());
        }
        // A failure elsewhere still refuses while the scan runs.
        let mut observed = good();
        observed.scan.status = ScanStatus::InProgress;
        observed.repository.as_mut().unwrap().tag_mutability = TagMutability::Mutable;
        let verdict = evaluate(
            &signed_policy(),
            &VerificationFloor::default(),
            &observed,
            now(),
        );
        assert!(verdict.refused() && !verdict.waiting());
        assert_eq!(verdict.condition().reason, "TagMutable");
    }

    #[test]
    fn without_a_scan_requirement_only_completed_findings_count() {
        let mut policy = signed_policy();
        policy.scan.required = false;
        for status in [
            ScanStatus::NotScanned,
            ScanStatus::InProgress,
            ScanStatus::Failed,
        ] {
            let mut observed = good();
            observed.scan.status = status;
            observed.scan.findings.clear();
            assert!(evaluate(&policy, &VerificationFloor::default(), &observed, now()).passed());
        }
        let mut observed = good();
        observed
            .scan
            .findings
            .push(finding("CVE-2026-0009", Some(Severity::Critical)));
        let verdict = evaluate(&policy, &VerificationFloor::default(), &observed, now());
        assert_eq!(
            reasons(&verdict),
            [("VulnerabilitiesFound", RequiredBy::Object)]
        );
    }

    #[test]
    fn ignore_entries_apply_through_their_expiry_day_only() {
        let mut policy = signed_policy();
        policy.scan.ignore = vec![ignore("CVE-2026-0003", "2026-06-30")];
        let mut observed = good();
        observed
            .scan
            .findings
            .push(finding("CVE-2026-0003", Some(Severity::Critical)));
        observed
            .scan
            .findings
            .push(finding("CVE-2026-0003", Some(Severity::High)));

        for time in ["2026-06-15T00:00:00Z", "2026-06-30T23:59:59Z"] {
            let verdict = evaluate(&policy, &VerificationFloor::default(), &observed, at(time));
            assert!(verdict.passed(), "{time}: {verdict:?}");
            assert_eq!(verdict.evidence.scan.unwrap().ignored, 2, "{time}");
        }
        let verdict = evaluate(
            &policy,
            &VerificationFloor::default(),
            &observed,
            at("2026-07-01T00:00:00Z"),
        );
        assert_eq!(
            reasons(&verdict),
            [("VulnerabilitiesFound", RequiredBy::Object)]
        );
        let message = &verdict.failures[0].message;
        assert!(
            message.contains("1 vulnerability at or above HIGH"),
            "{message}"
        );
        assert!(
            message.contains(
                "CVE-2026-0003 (CRITICAL, openssl; its ignore entry expired on 2026-06-30)"
            ),
            "{message}"
        );
        assert_eq!(verdict.evidence.scan.unwrap().ignored, 0);
    }

    #[test]
    fn the_floor_tightens_and_says_so() {
        let lax = VerificationPolicy {
            require_tag_immutability: false,
            encryption: EncryptionRequirement::Any,
            scan: crate::api::ScanPolicy {
                required: false,
                fail_on_severity: Severity::Critical,
                ignore: Vec::new(),
            },
            signature: None,
        };
        let floor = VerificationFloor {
            require_tag_immutability: true,
            encryption: EncryptionRequirement::Kms,
            scan: crate::verify::ScanFloor {
                required: true,
                fail_on_severity: Some(Severity::High),
                allow_ignores: true,
            },
            signature: crate::verify::SignatureFloor {
                required: true,
                ..Default::default()
            },
        };
        let mut observed = good();
        observed.repository.as_mut().unwrap().tag_mutability = TagMutability::Mutable;
        observed.repository.as_mut().unwrap().encryption.kind = EncryptionType::Aes256;
        observed
            .scan
            .findings
            .push(finding("CVE-2026-0002", Some(Severity::High)));
        observed.signatures = SignatureChecks::default();
        let verdict = evaluate(&lax, &floor, &observed, now());
        assert_eq!(
            reasons(&verdict),
            [
                ("TagMutable", RequiredBy::Floor),
                ("EncryptionTooWeak", RequiredBy::Floor),
                ("VulnerabilitiesFound", RequiredBy::Floor),
                ("InvalidSpec", RequiredBy::Floor),
            ]
        );
        assert!(verdict.failures[2].message.contains("at or above HIGH"));
        assert!(
            verdict
                .condition()
                .message
                .contains("(required by the operator's floor)"),
            "{}",
            verdict.condition().message
        );

        // Without a scan the floor's requirement applies.
        observed.scan = ScanReport::not_scanned();
        let verdict = evaluate(&lax, &floor, &observed, now());
        assert!(reasons(&verdict).contains(&("ScanMissing", RequiredBy::Floor)));
    }

    #[test]
    fn which_side_a_finding_fails_depends_on_both_thresholds() {
        let floor = |threshold| VerificationFloor {
            scan: crate::verify::ScanFloor {
                fail_on_severity: threshold,
                ..Default::default()
            },
            ..Default::default()
        };
        let cases = [
            // (object threshold, floor threshold, finding severity, failing side)
            (
                Severity::Low,
                Some(Severity::High),
                Severity::Medium,
                Some(RequiredBy::Object),
            ),
            (
                Severity::Critical,
                Some(Severity::High),
                Severity::High,
                Some(RequiredBy::Floor),
            ),
            (
                Severity::High,
                Some(Severity::High),
                Severity::Critical,
                Some(RequiredBy::Both),
            ),
            (
                Severity::High,
                None,
                Severity::Critical,
                Some(RequiredBy::Object),
            ),
            (
                Severity::Critical,
                Some(Severity::Critical),
                Severity::High,
                None,
            ),
            (
                Severity::Informational,
                None,
                Severity::Informational,
                Some(RequiredBy::Object),
            ),
        ];
        for (object, floor_threshold, severity, side) in cases {
            let mut policy = signed_policy();
            policy.scan.fail_on_severity = object;
            let mut observed = good();
            observed.scan.findings = vec![finding("CVE-2026-0100", Some(severity))];
            let verdict = evaluate(&policy, &floor(floor_threshold), &observed, now());
            let expected: Vec<_> = side
                .map(|s| ("VulnerabilitiesFound", s))
                .into_iter()
                .collect();
            assert_eq!(
                reasons(&verdict),
                expected,
                "{object} {floor_threshold:?} {severity}"
            );
        }
        // UNDEFINED findings count as INFORMATIONAL.
        let mut policy = signed_policy();
        policy.scan.fail_on_severity = Severity::Informational;
        let mut observed = good();
        observed.scan.findings = vec![finding("CVE-2026-0101", None)];
        let verdict = evaluate(&policy, &VerificationFloor::default(), &observed, now());
        assert!(
            verdict.failures[0]
                .message
                .contains("CVE-2026-0101 (UNDEFINED, openssl)")
        );
        policy.scan.fail_on_severity = Severity::Low;
        assert!(evaluate(&policy, &VerificationFloor::default(), &observed, now()).passed());
    }

    #[test]
    fn a_floor_may_refuse_the_objects_ignore_entries() {
        let mut policy = signed_policy();
        policy.scan.ignore = vec![ignore("CVE-2026-0003", "2026-12-31")];
        let mut observed = good();
        observed
            .scan
            .findings
            .push(finding("CVE-2026-0003", Some(Severity::Critical)));
        let floor = |allow_ignores| VerificationFloor {
            scan: crate::verify::ScanFloor {
                required: true,
                fail_on_severity: Some(Severity::Critical),
                allow_ignores,
            },
            ..Default::default()
        };
        assert!(evaluate(&policy, &floor(true), &observed, now()).passed());
        let verdict = evaluate(&policy, &floor(false), &observed, now());
        assert_eq!(
            reasons(&verdict),
            [("VulnerabilitiesFound", RequiredBy::Floor)]
        );
        assert!(
            verdict.failures[0].message.contains(
                "ignored by spec.verify, but the operator's floor does not accept ignores"
            )
        );
    }

    #[test]
    fn floor_keys_are_checked_besides_the_objects() {
        let floor = VerificationFloor {
            signature: crate::verify::SignatureFloor {
                required: true,
                public_keys: vec!["(a PEM key)".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        let cases = [
            (Some(verified()), Some(verified()), vec![]),
            (
                Some(verified()),
                Some(SignatureOutcome::Missing),
                vec![("SignatureMissing", RequiredBy::Floor)],
            ),
            (
                Some(SignatureOutcome::Missing),
                Some(verified()),
                vec![("SignatureMissing", RequiredBy::Object)],
            ),
            (
                Some(verified()),
                None,
                vec![("SignatureMissing", RequiredBy::Floor)],
            ),
            (
                Some(verified()),
                Some(SignatureOutcome::Unsupported { what: "x".into() }),
                vec![("InvalidSpec", RequiredBy::Floor)],
            ),
        ];
        for (object, floor_outcome, expected) in cases {
            let mut observed = good();
            observed.signatures = SignatureChecks {
                object: object.clone(),
                floor: floor_outcome.clone(),
            };
            let verdict = evaluate(&signed_policy(), &floor, &observed, now());
            assert_eq!(reasons(&verdict), expected, "{object:?} {floor_outcome:?}");
        }
        // A floor with keys satisfies its own requirement without an object policy.
        let mut observed = good();
        observed.signatures = SignatureChecks {
            object: None,
            floor: Some(verified()),
        };
        let mut policy = signed_policy();
        policy.signature = None;
        let verdict = evaluate(&policy, &floor, &observed, now());
        assert!(verdict.passed(), "{verdict:?}");
        assert_eq!(verdict.evidence.signature.unwrap().key_id, "sha256:aaaa");
    }

    #[test]
    fn long_lists_of_findings_are_cut_short() {
        let mut observed = good();
        observed.scan.findings = (0..15)
            .map(|i| finding(&format!("CVE-2026-{i:04}"), Some(Severity::High)))
            .collect();
        let verdict = evaluate(
            &signed_policy(),
            &VerificationFloor::default(),
            &observed,
            now(),
        );
        let message = &verdict.failures[0].message;
        assert!(message.contains("15 vulnerabilities"), "{message}");
        assert!(
            message.contains("CVE-2026-0009 (HIGH, openssl), and 5 more"),
            "{message}"
        );
        assert!(!message.contains("CVE-2026-0010"), "{message}");
    }

    #[test]
    fn required_by_reads_as_a_side() {
        assert_eq!(RequiredBy::Object.to_string(), "spec.verify");
        assert_eq!(RequiredBy::Floor.to_string(), "the operator's floor");
        assert_eq!(
            RequiredBy::Both.to_string(),
            "spec.verify and the operator's floor"
        );
        assert_eq!(RequiredBy::of(false, false), None);
    }
}
