//! Whether a published digest still passes its effective policy, decided
//! without I/O: the checks that can change after publication (the scan's
//! findings, the ignore entries' expiry dates, the signature against the keys
//! as they are now) are evaluated with [`crate::verify::evaluate`] and the
//! outcome is named with one of the `Compliant` condition's reasons.
//!
//! The source repository's settings (tag mutability, encryption) were checked
//! when the image was published and are not what compliance watches: their
//! failures are left out.

use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::civil::Date;
use k8s_openapi::jiff::tz::TimeZone;

use crate::api::conditions::{ConditionStatus, ConditionUpdate};
use crate::api::{VerificationPolicy, reasons};
use crate::verify::{Failure, Observations, VerificationFloor, evaluate_with};

pub use crate::api::conditions::COMPLIANT;
use crate::api::reasons::{IGNORE_EXPIRED, SCAN_UNAVAILABLE};
/// The reasons of Compliant=False, in the order they take precedence.
pub const NONCOMPLIANT_REASONS: [&str; 4] = [
    reasons::SIGNATURE_INVALID,
    IGNORE_EXPIRED,
    reasons::VULNERABILITIES_FOUND,
    SCAN_UNAVAILABLE,
];
/// Ignore entries expiring within this many days are reported.
pub const EXPIRING_WITHIN_DAYS: i32 = 14;

/// Where a published digest stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Every check of the effective policy passes.
    Satisfied,
    /// A check fails: one of [`NONCOMPLIANT_REASONS`] and what is wrong.
    Violated {
        /// The condition's reason.
        reason: &'static str,
        /// Names the CVEs, the expired entries or the key.
        message: String,
    },
}

impl Standing {
    /// The reason of the `Compliant` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Satisfied => reasons::POLICY_SATISFIED,
            Self::Violated { reason, .. } => reason,
        }
    }

    /// The `Compliant` condition this standing stands for.
    pub fn condition(&self) -> ConditionUpdate {
        match self {
            Self::Satisfied => ConditionUpdate::new(COMPLIANT, true, reasons::POLICY_SATISFIED)
                .message("the published digest still passes every check of the effective policy"),
            Self::Violated { reason, message } => {
                ConditionUpdate::new(COMPLIANT, ConditionStatus::False, *reason)
                    .message(message.clone())
            }
        }
    }
}

/// An ignore entry that covers a current finding and expires soon.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpiringIgnore {
    /// The finding id.
    pub id: String,
    /// Its last day.
    pub expires: Date,
}

/// What one compliance check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// Where the digest stands.
    pub standing: Standing,
    /// Ignore entries that cover a current finding and expire within
    /// [`EXPIRING_WITHIN_DAYS`] days.
    pub expiring: Vec<ExpiringIgnore>,
}

/// Judges the digest `observed` under `policy` raised to `floor` at `now`.
pub fn judge(
    policy: &VerificationPolicy,
    floor: &VerificationFloor,
    observed: &Observations,
    now: Timestamp,
) -> Judgement {
    judge_with(Some(policy), floor, observed, now)
}

/// [`judge`] for an object whose policy is optional (a RegistryMirror's
/// `spec.verify`): without one only the floor applies.
pub fn judge_with(
    policy: Option<&VerificationPolicy>,
    floor: &VerificationFloor,
    observed: &Observations,
    now: Timestamp,
) -> Judgement {
    let verdict = evaluate_with(policy, floor, observed, now);
    let today = now.to_zoned(TimeZone::UTC).date();
    let of = |reasons: &[&str]| -> Vec<&Failure> {
        verdict
            .failures
            .iter()
            .chain(&verdict.pending)
            .filter(|f| reasons.contains(&f.reason))
            .collect()
    };
    let signature = of(&[reasons::SIGNATURE_INVALID, reasons::SIGNATURE_MISSING]);
    let vulnerabilities = of(&[reasons::VULNERABILITIES_FOUND]);
    let scan = of(&[
        reasons::SCAN_MISSING,
        reasons::SCAN_FAILED,
        reasons::SCAN_PENDING,
    ]);
    let standing = if !signature.is_empty() {
        violated(reasons::SIGNATURE_INVALID, &signature, "")
    } else if !vulnerabilities.is_empty() {
        let expired = expired_entries(policy, today);
        if !expired.is_empty() && passes_if_renewed(policy, floor, observed, now) {
            let named: Vec<String> = expired
                .iter()
                .filter(|(id, _)| observed.scan.findings.iter().any(|f| f.id == **id))
                .map(|(id, date)| format!("{id} (expired on {date})"))
                .collect();
            let prefix = format!(
                "the ignore {} {} no longer {}: renew {} with a reason and a new expiry date, or \
                 ship a fixed image; ",
                if named.len() == 1 { "entry" } else { "entries" },
                named.join(", "),
                if named.len() == 1 { "applies" } else { "apply" },
                if named.len() == 1 { "it" } else { "them" },
            );
            violated(IGNORE_EXPIRED, &vulnerabilities, &prefix)
        } else {
            violated(reasons::VULNERABILITIES_FOUND, &vulnerabilities, "")
        }
    } else if !scan.is_empty() {
        violated(SCAN_UNAVAILABLE, &scan, "")
    } else {
        Standing::Satisfied
    };
    Judgement {
        standing,
        expiring: expiring(policy, observed, today),
    }
}

/// The standing when the scan could not be read at all.
pub fn scan_unreadable(image: &str, why: &str) -> Standing {
    Standing::Violated {
        reason: SCAN_UNAVAILABLE,
        message: format!(
            "the scan findings of {image} could not be read: {why}; checked again at the next \
             compliance interval"
        ),
    }
}

/// The standing when the key the object names can no longer be read.
pub fn key_unreadable(why: &str) -> Standing {
    Standing::Violated {
        reason: reasons::SIGNATURE_INVALID,
        message: format!(
            "the public key the published image was verified with can no longer be read, so \
             its signature is no longer trusted: {why}"
        ),
    }
}

fn violated(reason: &'static str, failures: &[&Failure], prefix: &str) -> Standing {
    let joined = failures
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    Standing::Violated {
        reason,
        message: format!("{prefix}{joined}"),
    }
}

/// The object's ignore entries whose expiry date has passed.
fn expired_entries(policy: Option<&VerificationPolicy>, today: Date) -> Vec<(&str, Date)> {
    ignore_entries(policy)
        .filter_map(|e| Some((e.id.as_str(), e.expires.parse::<Date>().ok()?)))
        .filter(|(_, expires)| *expires < today)
        .collect()
}

/// The object's ignore entries (none without a policy).
fn ignore_entries(
    policy: Option<&VerificationPolicy>,
) -> impl Iterator<Item = &crate::api::IgnoredFinding> {
    policy.into_iter().flat_map(|p| p.scan.ignore.iter())
}

/// Whether the findings would pass if every expired ignore entry still applied.
fn passes_if_renewed(
    policy: Option<&VerificationPolicy>,
    floor: &VerificationFloor,
    observed: &Observations,
    now: Timestamp,
) -> bool {
    let mut renewed = policy.cloned();
    for entry in renewed.iter_mut().flat_map(|p| p.scan.ignore.iter_mut()) {
        entry.expires = "9999-12-31".into();
    }
    !evaluate_with(renewed.as_ref(), floor, observed, now)
        .failures
        .iter()
        .any(|f| f.reason == reasons::VULNERABILITIES_FOUND)
}

fn expiring(
    policy: Option<&VerificationPolicy>,
    observed: &Observations,
    today: Date,
) -> Vec<ExpiringIgnore> {
    let horizon = today
        .checked_add(k8s_openapi::jiff::Span::new().days(EXPIRING_WITHIN_DAYS))
        .unwrap_or(today);
    let mut soon: Vec<ExpiringIgnore> = ignore_entries(policy)
        .filter(|e| observed.scan.findings.iter().any(|f| f.id == e.id))
        .filter_map(|e| {
            let expires = e.expires.parse::<Date>().ok()?;
            (today <= expires && expires <= horizon).then(|| ExpiringIgnore {
                id: e.id.clone(),
                expires,
            })
        })
        .collect();
    soon.sort();
    soon.dedup();
    soon
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{IgnoredFinding, Severity, SignaturePolicy};
    use crate::aws::{
        Encryption, EncryptionType, Finding, RepositorySettings, ScanReport, ScanStatus,
        TagMutability,
    };
    use crate::verify::SignatureChecks;
    use crate::verify::cosign::{SignatureLayout, SignatureOutcome};

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn now() -> Timestamp {
        "2026-12-07T12:00:00Z".parse().unwrap()
    }

    fn observed(
        findings: &[(&str, Severity)],
        signature: Option<SignatureOutcome>,
    ) -> Observations {
        Observations {
            digest: DIGEST.into(),
            source_tag: Some("1.0.0".into()),
            repository: Some(RepositorySettings {
                name: "team/app".into(),
                // Mutable and AES256: compliance leaves these checks out.
                tag_mutability: TagMutability::Mutable,
                exclusion_filters: vec![],
                encryption: Encryption {
                    kind: EncryptionType::Aes256,
                    kms_key: None,
                },
            }),
            scan: ScanReport {
                status: ScanStatus::Complete,
                description: None,
                completed_at: None,
                findings: findings
                    .iter()
                    .map(|(id, severity)| Finding {
                        id: id.to_string(),
                        severity: Some(*severity),
                        package: Some("openssl".into()),
                    })
                    .collect(),
            },
            signatures: SignatureChecks {
                object: signature,
                floor: None,
            },
        }
    }

    fn policy(ignore: &[(&str, &str)], signed: bool) -> VerificationPolicy {
        let mut policy = VerificationPolicy {
            encryption: crate::api::EncryptionRequirement::Kms,
            ..VerificationPolicy::default()
        };
        policy.scan.ignore = ignore
            .iter()
            .map(|(id, expires)| IgnoredFinding {
                id: id.to_string(),
                reason: "not reachable".into(),
                expires: expires.to_string(),
            })
            .collect();
        if signed {
            policy.signature = Some(
                serde_json::from_value::<SignaturePolicy>(serde_json::json!({
                    "publicKey": {"secretRef": {"name": "cosign-public-key"}}
                }))
                .unwrap(),
            );
        }
        policy
    }

    fn verified() -> SignatureOutcome {
        SignatureOutcome::Verified {
            key_id: "sha256:aa".into(),
            signature_digest: DIGEST.into(),
            layout: SignatureLayout::SignatureTag,
        }
    }

    #[test]
    fn each_outcome_has_its_reason_and_names_what_is_wrong() {
        let critical = [("CVE-2026-1", Severity::Critical)];
        let revoked = SignatureOutcome::Invalid {
            trusted: vec!["sha256:bb".into()],
            problems: vec!["signed by an untrusted key sha256:aa".into()],
        };
        let cases: Vec<(&str, VerificationPolicy, Observations, &str, &str)> = vec![
            (
                "clean",
                policy(&[], true),
                observed(&[("CVE-2026-9", Severity::Low)], Some(verified())),
                "PolicySatisfied",
                "",
            ),
            (
                "a new critical finding",
                policy(&[], true),
                observed(&critical, Some(verified())),
                "VulnerabilitiesFound",
                "CVE-2026-1",
            ),
            (
                "an ignored finding",
                policy(&[("CVE-2026-1", "2027-06-01")], true),
                observed(&critical, Some(verified())),
                "PolicySatisfied",
                "",
            ),
            (
                "the ignore entry expired yesterday",
                policy(&[("CVE-2026-1", "2026-12-06")], true),
                observed(&critical, Some(verified())),
                "IgnoreExpired",
                "CVE-2026-1 (expired on 2026-12-06)",
            ),
            (
                "the ignore entry's last day is today",
                policy(&[("CVE-2026-1", "2026-12-07")], true),
                observed(&critical, Some(verified())),
                "PolicySatisfied",
                "",
            ),
            (
                "an expired entry and another finding nothing covers",
                policy(&[("CVE-2026-1", "2026-01-01")], true),
                observed(
                    &[
                        ("CVE-2026-1", Severity::Critical),
                        ("CVE-2026-2", Severity::High),
                    ],
                    Some(verified()),
                ),
                "VulnerabilitiesFound",
                "CVE-2026-2",
            ),
            (
                "the key was revoked",
                policy(&[], true),
                observed(&critical, Some(revoked.clone())),
                "SignatureInvalid",
                "sha256:bb",
            ),
            (
                "the signature is gone",
                policy(&[], true),
                observed(&[], Some(SignatureOutcome::Missing)),
                "SignatureInvalid",
                "no cosign signature",
            ),
        ];
        for (name, policy, observed, reason, named) in cases {
            let judged = judge(&policy, &VerificationFloor::default(), &observed, now());
            assert_eq!(judged.standing.reason(), reason, "{name}");
            if let Standing::Violated { message, .. } = &judged.standing {
                assert!(message.contains(named), "{name}: {message}");
            }
        }
    }

    #[test]
    fn a_scan_that_is_not_there_is_unavailable() {
        for status in [
            ScanStatus::NotScanned,
            ScanStatus::InProgress,
            ScanStatus::Failed,
        ] {
            let mut seen = observed(&[], None);
            seen.scan.status = status.clone();
            let judged = judge(
                &policy(&[], false),
                &VerificationFloor::default(),
                &seen,
                now(),
            );
            assert_eq!(judged.standing.reason(), "ScanUnavailable", "{status:?}");
        }
    }

    #[test]
    fn the_floor_counts_too() {
        let floor: VerificationFloor = serde_json::from_value(serde_json::json!({
            "scan": {"failOnSeverity": "MEDIUM"}
        }))
        .unwrap();
        let seen = observed(&[("CVE-2026-5", Severity::Medium)], None);
        let judged = judge(&policy(&[], false), &floor, &seen, now());
        assert_eq!(judged.standing.reason(), "VulnerabilitiesFound");
        assert_eq!(
            judge(
                &policy(&[], false),
                &VerificationFloor::default(),
                &seen,
                now()
            )
            .standing
            .reason(),
            "PolicySatisfied"
        );
    }

    #[test]
    fn without_a_policy_only_the_floor_judges() {
        let critical = observed(&[("CVE-2026-1", Severity::Critical)], None);
        let floor: VerificationFloor = serde_json::from_value(serde_json::json!({
            "scan": {"failOnSeverity": "CRITICAL"}
        }))
        .unwrap();
        let judged = judge_with(None, &floor, &critical, now());
        assert_eq!(judged.standing.reason(), "VulnerabilitiesFound");
        let judged = judge_with(None, &VerificationFloor::default(), &critical, now());
        assert_eq!(judged.standing.reason(), "PolicySatisfied");
        assert!(judged.expiring.is_empty());
    }

    #[test]
    fn entries_expiring_within_two_weeks_that_cover_a_finding_are_reported() {
        let seen = observed(
            &[
                ("CVE-1", Severity::Critical),
                ("CVE-2", Severity::Critical),
                ("CVE-3", Severity::Critical),
            ],
            None,
        );
        let policy = policy(
            &[
                ("CVE-1", "2026-12-21"), // the 14th day: reported
                ("CVE-2", "2026-12-22"), // the 15th: not yet
                ("CVE-3", "2026-12-07"), // today, its last day
                ("CVE-4", "2026-12-08"), // covers nothing found
            ],
            false,
        );
        let judged = judge(&policy, &VerificationFloor::default(), &seen, now());
        let ids: Vec<&str> = judged.expiring.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, vec!["CVE-1", "CVE-3"]);
        assert_eq!(judged.standing, Standing::Satisfied);
    }
}
