//! Realistic objects with realistic statuses, as the controller will write them.

use image_promoter::api::conditions::{COMPLIANT, READY, VERIFIED};
use image_promoter::api::verify::{FindingCounts, ScanEvidence, SignatureEvidence};
use image_promoter::api::{
    Clock, ConditionUpdate, ImagePromotion, ImagePromotionStatus, RegistryMirror,
    RegistryMirrorStatus, SystemClock, TagCounts, TagFailure, TargetResult, TargetState,
    VerificationEvidence, reasons, set_condition,
};
use image_promoter::controller::status::summary;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::SignedDuration;
use serde_json::json;

pub const SOURCE_IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/app:1.4.2";
pub const DIGEST: &str = "sha256:6b3c1e0a4f2d8c9b7a5e3f1d0c2b4a6987e5d3c1b0a2f4e6d8c0b2a4f6e8d0c2";
pub const PROMOTED_MESSAGE: &str = "2/2 targets promoted";
pub const MIRROR_SOURCE: &str = "quay.io/acme/operator";

/// An ImagePromotion to ECR Public and Quay, without status.
pub fn promotion(name: &str) -> ImagePromotion {
    serde_json::from_value(json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"name": name},
        "spec": {
            "source": {"image": SOURCE_IMAGE},
            "targets": [
                {"name": "ecr-public", "repository": "public.ecr.aws/acme/app",
                 "tags": ["1.4.2", "latest"], "floatingTags": ["latest"]},
                {"name": "quay", "repository": "quay.io/acme/app",
                 "credentials": {"secretRef": {"name": "quay-robot"}}}
            ]
        }
    }))
    .expect("a valid ImagePromotion")
}

/// The status of that promotion once both targets are promoted.
pub fn promoted_status() -> ImagePromotionStatus {
    let clock = SystemClock;
    let now = clock.now();
    let mut conditions = Vec::new();
    set_condition(
        &mut conditions,
        ConditionUpdate::new(READY, true, reasons::PROMOTED)
            .message(PROMOTED_MESSAGE)
            .generation(Some(1)),
        &clock,
    );
    set_condition(
        &mut conditions,
        ConditionUpdate::new(VERIFIED, true, reasons::POLICY_SATISFIED)
            .message("immutable tag, KMS, scan complete with no HIGH or CRITICAL finding")
            .generation(Some(1)),
        &clock,
    );
    set_condition(
        &mut conditions,
        ConditionUpdate::new(COMPLIANT, true, reasons::POLICY_SATISFIED)
            .message("the published digest still passes every check of the effective policy")
            .generation(Some(1)),
        &clock,
    );
    let result = |name: &str, tags: &[&str], bytes: i64, copied: i32, mounted: i32| TargetResult {
        name: name.into(),
        digest: Some(DIGEST.into()),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        state: TargetState::Promoted,
        message: None,
        bytes_copied: bytes,
        blobs_copied: copied,
        blobs_skipped: 8 - copied - mounted,
        blobs_mounted: mounted,
        receipt: None,
        last_transition_time: Some(now.clone()),
    };
    ImagePromotionStatus {
        observed_generation: Some(1),
        summary: summary(&conditions),
        conditions,
        source_digest: Some(DIGEST.into()),
        targets_ready: Some("2/2".into()),
        targets: vec![
            result("ecr-public", &["1.4.2", "latest"], 83_886_080, 6, 0),
            result("quay", &["1.4.2"], 41_943_040, 3, 2),
        ],
        verification: Some(VerificationEvidence {
            tag_mutability: Some("IMMUTABLE".into()),
            encryption_type: Some("KMS".into()),
            scan: Some(ScanEvidence {
                status: "COMPLETE".into(),
                completed_at: Some(now.clone()),
                findings: FindingCounts {
                    medium: 3,
                    low: 7,
                    informational: 12,
                    ..Default::default()
                },
                ignored: 0,
            }),
            signature: Some(SignatureEvidence {
                key_id: "sha256:9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0"
                    .into(),
                signature_digest: None,
            }),
        }),
        last_handled_reconcile_at: None,
    }
}

/// A RegistryMirror of a Gold Quay repository to ECR Public, without status.
pub fn mirror(name: &str) -> RegistryMirror {
    serde_json::from_value(json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "RegistryMirror",
        "metadata": {"name": name},
        "spec": {
            "tier": "Gold",
            "source": {"repository": MIRROR_SOURCE},
            "targets": [{"name": "ecr-public", "repository": "public.ecr.aws/acme/operator"}],
            "tags": {"semver": ">=1.0.0"}
        }
    }))
    .expect("a valid RegistryMirror")
}

/// How long ago the mirror's last sync finished: kubectl shows it as `2d2h`.
pub const LAST_SYNC_AGO: SignedDuration = SignedDuration::from_hours(50);

/// The status of that mirror after a sync that found one drifted tag.
pub fn drifted_status() -> RegistryMirrorStatus {
    let clock = SystemClock;
    let last_sync = Time(clock.now().0 - LAST_SYNC_AGO);
    let mut conditions = Vec::new();
    set_condition(
        &mut conditions,
        ConditionUpdate::new(READY, false, reasons::TAGS_DRIFTED)
            .message("1 tag drifted: v1.2.0 at ecr-public")
            .generation(Some(1)),
        &last_sync,
    );
    RegistryMirrorStatus {
        observed_generation: Some(1),
        summary: summary(&conditions),
        conditions,
        tags: Some(TagCounts {
            selected: 43,
            in_sync: 42,
            pending: 0,
            drifted: 1,
            failed: 0,
            refused: 0,
            noncompliant: 0,
        }),
        failures: vec![TagFailure {
            tag: "v1.2.0".into(),
            target: "ecr-public".into(),
            reason: reasons::TAGS_DRIFTED.into(),
            message: Some(format!(
                "points at sha256:0000…0001, the source at {DIGEST}"
            )),
        }],
        last_sync_time: Some(last_sync),
        ..Default::default()
    }
}
