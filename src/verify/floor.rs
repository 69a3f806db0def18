//! The operator-wide verification floor.
//!
//! Set once in the operator's configuration (the configuration file embeds
//! this type), the floor is the least every promotion must satisfy. An
//! object's `spec.verify` can only raise it: for every setting the stricter
//! side applies ([`super::policy::evaluate`]). The default floor adds nothing
//! to what objects ask.
//!
//! ```yaml
//! requireTagImmutability: true
//! encryption: KMS
//! scan:
//!   required: true
//!   failOnSeverity: HIGH
//! signature:
//!   publicKeys:
//!     - |
//!       -----BEGIN PUBLIC KEY-----
//!       …
//!       -----END PUBLIC KEY-----
//! ```

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cosign::{KeyError, PublicKey, Verifier};
use crate::api::{EncryptionRequirement, Severity};

/// What every promotion must satisfy, whatever its spec says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerificationFloor {
    /// Require immutable source tags for every promotion.
    #[serde(default)]
    pub require_tag_immutability: bool,
    /// Weakest encryption at rest accepted for any source repository: `Any`, `AES256` or `KMS`.
    #[serde(default)]
    pub encryption: EncryptionRequirement,
    /// Scan requirements for every promotion.
    #[serde(default)]
    pub scan: ScanFloor,
    /// Signature requirements for every promotion.
    #[serde(default)]
    pub signature: SignatureFloor,
}

/// The scan part of the floor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScanFloor {
    /// Require a completed scan for every promotion.
    #[serde(default)]
    pub required: bool,
    /// Refuse any image with a finding of this severity or above. Absent: no
    /// threshold of the operator's (each object's own threshold still applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_on_severity: Option<Severity>,
    /// Whether an object's unexpired ignore entries also exempt a finding from
    /// this threshold. When false, only the object's own threshold honours them.
    #[serde(default = "default_true")]
    pub allow_ignores: bool,
}

impl Default for ScanFloor {
    fn default() -> Self {
        Self {
            required: false,
            fail_on_severity: None,
            allow_ignores: true,
        }
    }
}

/// The signature part of the floor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureFloor {
    /// Require every promotion to verify a signature: the object must name a
    /// key in `spec.verify.signature` unless `publicKeys` is set here.
    #[serde(default)]
    pub required: bool,
    /// PEM public keys (cosign, ECDSA P-256). When set, every image must carry
    /// a signature by one of them, in addition to what its object asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<String>,
}

impl SignatureFloor {
    /// The verifier for the floor's keys, or `None` when it names none.
    /// Configuration loading should call it once so a bad key fails at start-up.
    pub fn verifier(&self) -> Result<Option<Verifier>, KeyError> {
        if self.public_keys.is_empty() {
            return Ok(None);
        }
        let keys = self
            .public_keys
            .iter()
            .map(|pem| PublicKey::from_pem(pem.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Verifier::PublicKeys(keys)))
    }
}

fn default_true() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_floor_adds_nothing_and_unknown_fields_are_refused() {
        let floor: VerificationFloor = serde_yaml_ng::from_str("{}").unwrap();
        assert_eq!(floor, VerificationFloor::default());
        assert!(!floor.require_tag_immutability && !floor.scan.required);
        assert!(floor.scan.allow_ignores);
        assert_eq!(floor.signature.verifier(), Ok(None));
        assert!(serde_yaml_ng::from_str::<VerificationFloor>("scan: {requred: true}").is_err());
    }

    #[test]
    fn a_floor_reads_from_configuration_yaml() {
        let key = include_str!("../../tests/fixtures/cosign/key-a.pub");
        let yaml = format!(
            "requireTagImmutability: true\nencryption: KMS\n\
             scan: {{required: true, failOnSeverity: HIGH, allowIgnores: false}}\n\
             signature:\n  required: true\n  publicKeys:\n    - |\n{}",
            key.lines()
                .map(|l| format!("      {l}\n"))
                .collect::<String>()
        );
        let floor: VerificationFloor = serde_yaml_ng::from_str(&yaml).unwrap();
        assert!(floor.require_tag_immutability);
        assert_eq!(floor.encryption, EncryptionRequirement::Kms);
        assert_eq!(floor.scan.fail_on_severity, Some(Severity::High));
        assert!(!floor.scan.allow_ignores);
        let verifier = floor.signature.verifier().unwrap().unwrap();
        assert_eq!(verifier.trusted().len(), 1);

        let bad = SignatureFloor {
            required: true,
            public_keys: vec!["garbage".into()],
        };
        assert_eq!(bad.verifier(), Err(KeyError::NoPublicKey));
    }
}
