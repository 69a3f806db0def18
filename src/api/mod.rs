//! The public API of image-promoter: the `ImagePromotion` and `RegistryMirror`
//! custom resources of group `imagepromoter.dev`, version `v1alpha1`.
//!
//! Everything here is data and pure functions, with no I/O: the types, the
//! validation rules the apiserver enforces on `kubectl apply`, the condition
//! vocabulary and helpers, and the generated CRDs. The controller and the
//! one-shot CLI both take these types as their input. docs/api.md describes
//! them for users.

pub mod catalog;
pub mod conditions;
pub mod crd;
pub mod credentials;
pub mod duration;
pub mod mirror;
pub mod promotion;
pub mod reasons;
pub mod rules;
pub mod validation;
pub mod verify;

pub use catalog::{Architecture, EcrPublicRepository, OperatingSystem};
pub use conditions::{
    Clock, ConditionChange, ConditionStatus, ConditionUpdate, SystemClock, set_condition,
};
pub use crd::{crds, crds_yaml};
pub use credentials::{
    EcrCredentials, EcrPublicCredentials, LocalSecretReference, RegistryCredentials,
};
pub use duration::{DurationError, parse_duration};
pub use mirror::{
    MirrorPhase, MirrorReceipt, MirrorTarget, RegistryMirror, RegistryMirrorSpec,
    RegistryMirrorStatus, SourceRepository, TagCompliance, TagCounts, TagFailure, TagSelector,
    TargetTagCounts,
};
pub use promotion::{
    ComplianceSettings, CopyOptions, ImagePromotion, ImagePromotionSpec, ImagePromotionStatus,
    PromotionTarget, SourceImage, TargetResult, TargetState,
};
pub use verify::{
    EncryptionRequirement, IgnoredFinding, KeylessSignature, PublicKeySignature, ScanPolicy,
    SecretKeyReference, Severity, SignaturePolicy, TrustedRootKey, TrustedRootReference,
    VerificationEvidence, VerificationPolicy,
};

/// The API group of both kinds.
pub const GROUP: &str = "imagepromoter.dev";
/// The API version of both kinds.
pub const VERSION: &str = "v1alpha1";

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    /// Every document in examples/ deserializes into the kind it declares.
    #[test]
    fn every_example_is_an_object_of_its_kind() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        let mut kinds = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for document in serde_yaml_ng::Deserializer::from_str(&text) {
                let value = serde_json::Value::deserialize(document).unwrap();
                let kind = value["kind"].as_str().unwrap_or_default().to_string();
                assert_eq!(
                    value["apiVersion"], "imagepromoter.dev/v1alpha1",
                    "{path:?}"
                );
                match kind.as_str() {
                    "ImagePromotion" => {
                        drop(serde_json::from_value::<ImagePromotion>(value).unwrap())
                    }
                    "RegistryMirror" => {
                        drop(serde_json::from_value::<RegistryMirror>(value).unwrap())
                    }
                    other => panic!("{path:?}: unexpected kind {other:?}"),
                }
                kinds.push(kind);
            }
        }
        assert!(kinds.iter().any(|k| k == "ImagePromotion"));
        assert!(kinds.iter().any(|k| k == "RegistryMirror"));
    }

    /// The Rust defaults are the ones the schema gives the apiserver, so an
    /// object reads the same whether or not the apiserver defaulted it.
    #[test]
    fn omitted_settings_take_their_defaults() {
        let spec: ImagePromotionSpec = serde_json::from_value(json!({
            "source": {"image": "quay.io/acme/app:1.0"},
            "targets": [{"name": "ecr-public", "repository": "public.ecr.aws/acme/app"}],
        }))
        .unwrap();
        assert!(spec.verify.require_tag_immutability);
        assert_eq!(spec.verify.encryption, EncryptionRequirement::Any);
        assert!(spec.verify.scan.required);
        assert_eq!(spec.verify.scan.fail_on_severity, Severity::High);
        assert_eq!(spec.verify.signature, None);
        assert_eq!(spec.copy, CopyOptions::default());
        assert!(spec.copy.signatures && spec.copy.referrers && spec.copy.platforms.is_empty());
        assert_eq!(spec.targets[0].tags, None);

        let spec: RegistryMirrorSpec = serde_json::from_value(json!({
            "source": {"repository": "quay.io/acme/app"},
            "targets": [{"name": "ecr-public", "repository": "public.ecr.aws/acme/app"}],
        }))
        .unwrap();
        assert_eq!(spec.interval, "10m");
        assert!(!spec.suspend);
        assert_eq!(spec.tags, TagSelector::default());

        let yaml = crds_yaml();
        for schema_default in [
            "default: 10m",
            "failOnSeverity: HIGH",
            "default: Any",
            "default: cosign.pub",
        ] {
            assert!(yaml.contains(schema_default), "{schema_default}");
        }
    }

    #[test]
    fn encryption_and_severity_are_ordered_weakest_first() {
        assert!(EncryptionRequirement::Any < EncryptionRequirement::Aes256);
        assert!(EncryptionRequirement::Aes256 < EncryptionRequirement::Kms);
        assert!(Severity::Informational < Severity::Low && Severity::High < Severity::Critical);
        assert_eq!(Severity::Critical.to_string(), "CRITICAL");
        let json =
            serde_json::to_value([EncryptionRequirement::Aes256, EncryptionRequirement::Kms]);
        assert_eq!(json.unwrap(), json!(["AES256", "KMS"]));
    }

    /// A status round-trips through JSON unchanged, in the field names the
    /// printer columns and docs/api.md use.
    #[test]
    fn status_uses_the_documented_field_names() {
        let status = ImagePromotionStatus {
            observed_generation: Some(2),
            source_digest: Some("sha256:00".into()),
            targets_ready: Some("1/2".into()),
            targets: vec![TargetResult {
                name: "quay".into(),
                state: TargetState::Conflict,
                bytes_copied: 10,
                ..Default::default()
            }],
            ..Default::default()
        };
        let value = serde_json::to_value(&status).unwrap();
        assert_eq!(value["targetsReady"], "1/2");
        assert_eq!(value["sourceDigest"], "sha256:00");
        assert_eq!(value["targets"][0]["state"], "Conflict");
        assert_eq!(value["targets"][0]["bytesCopied"], 10);
        assert_eq!(
            serde_json::from_value::<ImagePromotionStatus>(value).unwrap(),
            status
        );

        let mirror = RegistryMirrorStatus {
            tags: Some(TagCounts {
                in_sync: 3,
                drifted: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let value = serde_json::to_value(&mirror).unwrap();
        assert_eq!(value["tags"]["inSync"], 3);
        assert_eq!(value["tags"]["drifted"], 1);
    }

    /// docs/api.md describes every condition type and every reason.
    #[test]
    fn the_user_documentation_covers_every_condition_and_reason() {
        let doc = include_str!("../../docs/api.md");
        let types = [
            conditions::READY,
            conditions::VERIFIED,
            conditions::RECONCILING,
            conditions::STALLED,
        ];
        for name in types.iter().chain(reasons::ALL) {
            assert!(
                doc.contains(&format!("| `{name}` |")),
                "docs/api.md lacks a row for {name}"
            );
        }
    }
}
