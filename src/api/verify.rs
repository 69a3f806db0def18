//! The verification policy a promotion asks for, and the evidence it produced.
//!
//! ECR Public has no tag immutability and no scanning, so the promoter is the
//! only gate between internal ECR and the public. The policy here is what one
//! `ImagePromotion` requests; the operator's configuration sets a cluster-wide
//! floor, and the policy that applies is the stricter of the two for every
//! setting: a namespace can tighten the floor, never weaken it.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules;

/// What the source image must satisfy before any byte is copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationPolicy {
    /// Require the source repository to have immutable tags, so the source tag
    /// cannot be pointed at another image after it was verified.
    #[serde(default = "default_true")]
    pub require_tag_immutability: bool,
    /// Weakest encryption at rest accepted for the source repository: `Any`,
    /// `AES256` (AES256 or KMS) or `KMS` (KMS or KMS_DSSE).
    #[serde(default)]
    pub encryption: EncryptionRequirement,
    /// Vulnerability scan requirements.
    #[serde(default)]
    pub scan: ScanPolicy,
    /// Signature requirement. Absent: no signature is required by this object
    /// (the operator's floor may still require one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignaturePolicy>,
}

impl Default for VerificationPolicy {
    fn default() -> Self {
        Self {
            require_tag_immutability: true,
            encryption: EncryptionRequirement::default(),
            scan: ScanPolicy::default(),
            signature: None,
        }
    }
}

/// Weakest accepted encryption at rest, ordered from weakest to strongest.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum EncryptionRequirement {
    /// No requirement (ECR always encrypts at rest, at least with AES256).
    #[default]
    Any,
    /// AES256 or KMS.
    #[serde(rename = "AES256")]
    Aes256,
    /// KMS or KMS_DSSE: a key the account controls and audits.
    #[serde(rename = "KMS")]
    Kms,
}

/// Requirements on the ECR image scan of the source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanPolicy {
    /// Require a completed scan. When false and the image has no completed
    /// scan it passes; the findings of a completed scan are always evaluated.
    #[serde(default = "default_true")]
    pub required: bool,
    /// Refuse the image when it has a finding of this severity or above:
    /// `CRITICAL`, `HIGH`, `MEDIUM`, `LOW` or `INFORMATIONAL`.
    #[serde(default = "default_fail_on_severity")]
    pub fail_on_severity: Severity,
    /// Findings to disregard, each with a reason and an expiry date. An entry
    /// stops applying after its expiry date and its finding counts again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["id".into()]))]
    pub ignore: Vec<IgnoredFinding>,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        Self {
            required: true,
            fail_on_severity: default_fail_on_severity(),
            ignore: Vec::new(),
        }
    }
}

/// Severity of a finding, as Amazon ECR (and Amazon Inspector) report it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Informational findings.
    Informational,
    /// Low severity.
    Low,
    /// Medium severity.
    Medium,
    /// High severity.
    High,
    /// Critical severity.
    Critical,
}

impl Severity {
    /// The name ECR uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Informational => "INFORMATIONAL",
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finding that does not fail the verification, until it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IgnoredFinding {
    /// Finding id as the scanner reports it, e.g. `CVE-2025-12345` or `GHSA-xxxx-xxxx-xxxx`.
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// Why the finding is acceptable, for the next reader (required).
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// Last day (`YYYY-MM-DD`, UTC) on which the entry applies (required).
    #[schemars(extend("format" = "date"))]
    pub expires: String,
}

/// How the source image must be signed. Set exactly one of publicKey or keyless.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::exactly_one_of(&["publicKey", "keyless"]))]
pub struct SignaturePolicy {
    /// Require a cosign signature made with the private key matching this
    /// public key (PEM), read from a Secret in the object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeySignature>,
    /// Require a keyless (Sigstore Fulcio certificate) cosign signature whose
    /// certificate names this OIDC issuer and subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessSignature>,
}

impl SignaturePolicy {
    /// Whether the policy reads the Secret `name` (its public key, or its
    /// keyless trusted root), so a change to that Secret re-checks it.
    pub fn names_secret(&self, name: &str) -> bool {
        let key = self
            .public_key
            .as_ref()
            .is_some_and(|k| k.secret_ref.name == name);
        let root = self
            .keyless
            .as_ref()
            .and_then(|k| k.trusted_root.as_ref())
            .and_then(|r| r.secret_ref.as_ref())
            .is_some_and(|r| r.name == name);
        key || root
    }
}

/// A cosign public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicKeySignature {
    /// The Secret key holding the PEM-encoded public key.
    pub secret_ref: SecretKeyReference,
}

/// One key of a Secret in the same namespace as the object that refers to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[serde(default = "default_public_key_name")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The identity a keyless signature's certificate must carry, and the root
/// of trust its certificate and log entry must chain to. Name the issuer and
/// the subject each exactly or with a regular expression, as cosign's
/// `--certificate-oidc-issuer(-regexp)` and `--certificate-identity(-regexp)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::exactly_one_of(&["issuer", "issuerRegExp"]))]
#[x_kube(validation = rules::exactly_one_of(&["subject", "subjectRegExp"]))]
pub struct KeylessSignature {
    /// OIDC issuer URL the certificate's Fulcio issuer extension must equal,
    /// e.g. `https://token.actions.githubusercontent.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('https://') && isURL(self)")
        .message("must be an https:// URL"))]
    pub issuer: Option<String>,
    /// Regular expression (RE2 syntax, unanchored as in cosign: use `^…$`)
    /// the certificate's OIDC issuer must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub issuer_reg_exp: Option<String>,
    /// Certificate identity (a SAN: URI or e-mail) the certificate must carry, e.g.
    /// `https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub subject: Option<String>,
    /// Regular expression (RE2 syntax, unanchored as in cosign: use `^…$`)
    /// one of the certificate's SANs must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub subject_reg_exp: Option<String>,
    /// Sigstore `trusted_root.json` (certificate authorities and transparency
    /// logs) to verify against. Absent: the operator's default
    /// (`verify.signature.trustedRoot` in its configuration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<TrustedRootReference>,
}

/// Where a Sigstore `trusted_root.json` is kept, in the object's namespace.
/// Set exactly one of secretRef or configMapRef.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = rules::exactly_one_of(&["secretRef", "configMapRef"]))]
pub struct TrustedRootReference {
    /// A key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<TrustedRootKey>,
    /// A key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<TrustedRootKey>,
}

/// One key of a Secret or ConfigMap holding `trusted_root.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustedRootKey {
    /// Name of the Secret or ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within its data.
    #[serde(default = "default_trusted_root_name")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// What verification found, recorded in status so the decision can be audited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerificationEvidence {
    /// Tag mutability of the source repository as ECR reports it: `IMMUTABLE` or `MUTABLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_mutability: Option<String>,
    /// Encryption type of the source repository as ECR reports it: `AES256`, `KMS` or `KMS_DSSE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_type: Option<String>,
    /// The image scan that was evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanEvidence>,
    /// The signature that was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureEvidence>,
}

/// The scan of the source image.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanEvidence {
    /// Scan status as ECR reports it, e.g. `COMPLETE`, `IN_PROGRESS`, `FAILED`.
    pub status: String,
    /// When the scan completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// Number of findings by severity, before ignores.
    #[serde(default)]
    pub findings: FindingCounts,
    /// Number of findings disregarded by unexpired ignore entries.
    #[serde(default)]
    pub ignored: i32,
}

/// Number of findings per severity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FindingCounts {
    /// Findings of severity CRITICAL.
    #[serde(default)]
    pub critical: i32,
    /// Findings of severity HIGH.
    #[serde(default)]
    pub high: i32,
    /// Findings of severity MEDIUM.
    #[serde(default)]
    pub medium: i32,
    /// Findings of severity LOW.
    #[serde(default)]
    pub low: i32,
    /// Findings of severity INFORMATIONAL.
    #[serde(default)]
    pub informational: i32,
    /// Findings ECR reports without a severity (UNDEFINED).
    #[serde(default)]
    pub undefined: i32,
}

/// The signature that satisfied the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureEvidence {
    /// Identity of the verifying key: `sha256:<hex>` of the public key's DER
    /// encoding, or `<issuer> <subject>` for a keyless signature.
    pub key_id: String,
    /// Digest of the signature manifest that was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_digest: Option<String>,
}

fn default_true() -> bool {
    true
}

fn default_fail_on_severity() -> Severity {
    Severity::High
}

fn default_public_key_name() -> String {
    "cosign.pub".to_string()
}

fn default_trusted_root_name() -> String {
    "trusted_root.json".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_names_the_secrets_of_its_key_and_of_its_trusted_root() {
        let key = SignaturePolicy {
            public_key: Some(PublicKeySignature {
                secret_ref: SecretKeyReference {
                    name: "cosign".into(),
                    key: "cosign.pub".into(),
                },
            }),
            keyless: None,
        };
        let root = |secret: Option<&str>, config_map: Option<&str>| SignaturePolicy {
            public_key: None,
            keyless: Some(KeylessSignature {
                issuer: Some("https://issuer.example".into()),
                subject: Some("ci".into()),
                trusted_root: Some(TrustedRootReference {
                    secret_ref: secret.map(|name| TrustedRootKey {
                        name: name.into(),
                        key: default_trusted_root_name(),
                    }),
                    config_map_ref: config_map.map(|name| TrustedRootKey {
                        name: name.into(),
                        key: default_trusted_root_name(),
                    }),
                }),
                ..KeylessSignature::default()
            }),
        };
        assert!(key.names_secret("cosign") && !key.names_secret("sigstore"));
        assert!(root(Some("sigstore"), None).names_secret("sigstore"));
        assert!(!root(None, Some("sigstore")).names_secret("sigstore"));
        let parsed: KeylessSignature = serde_json::from_value(serde_json::json!({
            "issuerRegExp": "^https://", "subject": "ci",
            "trustedRoot": {"configMapRef": {"name": "sigstore"}}
        }))
        .unwrap();
        assert_eq!(
            parsed.trusted_root.unwrap().config_map_ref.unwrap().key,
            "trusted_root.json"
        );
    }
}
