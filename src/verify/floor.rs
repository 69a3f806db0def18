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
//!   # or keyless identities, under a trusted root read once at start-up:
//!   # keyless: [{issuer: https://token.actions.githubusercontent.com, subjectRegExp: ^https://github\.com/acme/}]
//!   # trustedRoot: /etc/image-promoter/trusted_root.json
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::cosign::{KeyError, PublicKey, Verifier};
use super::keyless::{Identity, KeylessVerifier, MAX_TRUSTED_ROOT, TrustedRoot};
use crate::api::{EncryptionRequirement, KeylessSignature, Severity};

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
    /// key or identity in `spec.verify.signature` unless `publicKeys` or
    /// `keyless` is set here.
    #[serde(default)]
    pub required: bool,
    /// PEM public keys (cosign, ECDSA P-256). When set, every image must carry
    /// a signature by one of them, in addition to what its object asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_keys: Vec<String>,
    /// Keyless identities (`issuer` or `issuerRegExp`, `subject` or
    /// `subjectRegExp`, as in `spec.verify.signature.keyless`). When set,
    /// every image must carry a keyless signature by one of them, verified
    /// against `trustedRoot`. Set `publicKeys` or `keyless`, not both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keyless: Vec<KeylessSignature>,
    /// Path of a Sigstore `trusted_root.json`, read once at start-up: the
    /// root of the floor's `keyless` identities, and the default of objects'
    /// `spec.verify.signature.keyless` that name no `trustedRoot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_root: Option<PathBuf>,
    /// The root `trustedRoot` names, once [`SignatureFloor::load`] read it.
    #[serde(skip)]
    #[schemars(skip)]
    pub loaded_root: LoadedRoot,
}

/// A trusted root read from the configuration's `trustedRoot`, compared by digest.
#[derive(Clone, Debug, Default)]
pub struct LoadedRoot(pub Option<Arc<TrustedRoot>>);

impl PartialEq for LoadedRoot {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_ref().map(|r| &r.digest) == other.0.as_ref().map(|r| &r.digest)
    }
}

impl Eq for LoadedRoot {}

/// Why the floor's signature settings cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FloorError {
    /// A public key is unusable.
    #[error("verify.signature.publicKeys: {0}")]
    Key(#[from] KeyError),
    /// The keyless settings are unusable.
    #[error("verify.signature.{0}")]
    Keyless(String),
}

impl SignatureFloor {
    /// Reads `trustedRoot` (once, at start-up) and checks the keyless settings.
    pub fn load(&mut self) -> Result<(), FloorError> {
        if let Some(path) = &self.trusted_root {
            let bytes = std::fs::read(path).map_err(|e| {
                FloorError::Keyless(format!("trustedRoot: reading {}: {e}", path.display()))
            })?;
            if bytes.len() > MAX_TRUSTED_ROOT {
                return Err(FloorError::Keyless(format!(
                    "trustedRoot: {} is larger than {MAX_TRUSTED_ROOT} bytes",
                    path.display()
                )));
            }
            let root = TrustedRoot::from_json(&bytes).map_err(|e| {
                FloorError::Keyless(format!("trustedRoot: {}: {e}", path.display()))
            })?;
            self.loaded_root = LoadedRoot(Some(Arc::new(root)));
        }
        self.verifier().map(|_| ())
    }

    /// The default trusted root for keyless policies, when `trustedRoot` names one.
    pub fn default_root(&self) -> Option<Arc<TrustedRoot>> {
        self.loaded_root.0.clone()
    }

    /// The verifier for the floor's keys or identities, or `None` when it
    /// names none. Configuration loading calls it once so a bad key fails at start-up.
    pub fn verifier(&self) -> Result<Option<Verifier>, FloorError> {
        if !self.keyless.is_empty() {
            if !self.public_keys.is_empty() {
                return Err(FloorError::Keyless(
                    "keyless: set publicKeys or keyless, not both".into(),
                ));
            }
            let identities = self
                .keyless
                .iter()
                .enumerate()
                .map(|(index, spec)| {
                    if spec.trusted_root.is_some() {
                        return Err(FloorError::Keyless(format!(
                            "keyless[{index}].trustedRoot: the floor's identities use \
                             verify.signature.trustedRoot (a file); leave it out here"
                        )));
                    }
                    Identity::from_spec(spec)
                        .map_err(|e| FloorError::Keyless(format!("keyless[{index}]: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let root = self.default_root().ok_or_else(|| {
                FloorError::Keyless(if self.trusted_root.is_some() {
                    "trustedRoot has not been read".into()
                } else {
                    "keyless needs trustedRoot: the path of a Sigstore trusted_root.json".into()
                })
            })?;
            return Ok(Some(Verifier::Keyless(KeylessVerifier {
                identities,
                root,
            })));
        }
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

    /// Whether the floor requires a signature of its own (keys or identities).
    pub fn names_signers(&self) -> bool {
        !self.public_keys.is_empty() || !self.keyless.is_empty()
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
            ..SignatureFloor::default()
        };
        assert_eq!(bad.verifier(), Err(FloorError::Key(KeyError::NoPublicKey)));
    }

    #[test]
    fn keyless_identities_need_a_readable_root_and_exclude_keys() {
        let root = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/keyless/trusted_root.json"
        );
        let yaml = format!(
            "signature:\n  keyless:\n    - {{issuer: https://token.actions.githubusercontent.com, \
             subjectRegExp: '^https://github\\.com/acme/'}}\n  trustedRoot: {root}\n"
        );
        let mut floor: VerificationFloor = serde_yaml_ng::from_str(&yaml).unwrap();
        assert!(
            floor.signature.verifier().is_err(),
            "the root is read by load()"
        );
        floor.signature.load().unwrap();
        let Some(Verifier::Keyless(verifier)) = floor.signature.verifier().unwrap() else {
            panic!("expected a keyless verifier");
        };
        assert_eq!(verifier.identities.len(), 1);
        assert!(floor.signature.names_signers());

        let cases = [
            (
                SignatureFloor {
                    keyless: vec![KeylessSignature::default()],
                    trusted_root: Some(root.into()),
                    ..SignatureFloor::default()
                },
                "keyless[0]: set exactly one of issuer and issuerRegExp",
            ),
            (
                SignatureFloor {
                    keyless: floor.signature.keyless.clone(),
                    ..SignatureFloor::default()
                },
                "keyless needs trustedRoot",
            ),
            (
                SignatureFloor {
                    keyless: floor.signature.keyless.clone(),
                    trusted_root: Some("/nonexistent/trusted_root.json".into()),
                    ..SignatureFloor::default()
                },
                "trustedRoot: reading /nonexistent/trusted_root.json",
            ),
            (
                SignatureFloor {
                    keyless: floor.signature.keyless.clone(),
                    public_keys: vec!["k".into()],
                    trusted_root: Some(root.into()),
                    ..SignatureFloor::default()
                },
                "set publicKeys or keyless, not both",
            ),
        ];
        for (mut floor, message) in cases {
            let err = floor.load().unwrap_err().to_string();
            assert!(err.contains(message), "{err} lacks {message}");
        }
    }
}
