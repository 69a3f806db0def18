//! Sources that may not leave: each single failure of the policy refuses
//! the image with its reason and copies nothing; a running scan is reported
//! as pending; a missing tag or a digest the tag does not name stalls.

use image_promoter::api::TargetState;
use reqwest::StatusCode;
use serde_json::json;

use crate::world::{
    GOOD, Key, SourceRepository, TAG, World, condition, expect_condition, expect_targets,
    promotion, public_key_file, public_target, quay_target, signed_kms_policy,
};

/// One way a source fails verification.
struct Refusal {
    prefix: &'static str,
    repository: SourceRepository,
    findings: &'static [(&'static str, &'static str)],
    signed_by: Option<Key>,
    reason: &'static str,
    /// Something the Verified message must say.
    says: &'static str,
}

/// Seeds the source, runs the Gold policy on it, and checks that it is
/// refused with `refusal.reason` alone and that neither target received anything.
async fn refused(refusal: Refusal) {
    let world = World::new().await;
    let source = world.source(refusal.prefix, refusal.repository).await;
    world.scan(&source, "COMPLETE", refusal.findings).await;
    if let Some(key) = refusal.signed_by {
        world.sign(&source, key);
    }
    let (quay_name, quay_repository) = world.quay_target(refusal.prefix);
    let (public_name, public_repository) = world.public_target(refusal.prefix);
    let object = promotion(
        &world,
        &source,
        signed_kms_policy(),
        json!([
            quay_target("quay", &quay_repository),
            public_target("ecr-public", &public_repository),
        ]),
    );
    let key = public_key_file(&world.env, Key::Signer);

    let run = world.promote(&object, &["--public-key", key.to_str().unwrap()]);
    run.expect_exit(1);
    let status = run.status();
    assert_eq!(
        status.source_digest.as_deref(),
        Some(source.digest.as_str())
    );
    let message = expect_condition(&status, "Verified", ("False", refusal.reason));
    assert!(
        message.contains(refusal.says),
        "{}: {message}",
        refusal.reason
    );
    assert_eq!(
        message.matches("(required by").count(),
        1,
        "exactly one failure expected: {message}"
    );
    expect_condition(&status, "Ready", ("False", refusal.reason));
    expect_condition(&status, "Stalled", ("True", refusal.reason));
    assert_eq!(status.targets_ready.as_deref(), Some("0/2"));
    expect_targets(&status, TargetState::Pending);
    assert!(
        run.stderr
            .contains(&format!("Ready=False {}", refusal.reason)),
        "{}",
        run.stderr
    );

    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(StatusCode::NOT_FOUND)
    );
    assert!(
        !world.public_repository_exists(&public_name).await,
        "the ECR Public repository is not created for a refused image"
    );
}

#[tokio::test]
async fn a_mutable_tag_is_refused() {
    refused(Refusal {
        prefix: "mutable",
        repository: SourceRepository {
            immutable: false,
            kms: true,
        },
        findings: &[],
        signed_by: Some(Key::Signer),
        reason: "TagMutable",
        says: "tag 1.0.0",
    })
    .await;
}

#[tokio::test]
async fn a_repository_without_kms_is_refused_when_kms_is_required() {
    refused(Refusal {
        prefix: "aes256",
        repository: SourceRepository {
            immutable: true,
            kms: false,
        },
        findings: &[],
        signed_by: Some(Key::Signer),
        reason: "EncryptionTooWeak",
        says: "encrypted with AES256, weaker than the required KMS",
    })
    .await;
}

#[tokio::test]
async fn a_critical_finding_is_refused() {
    refused(Refusal {
        prefix: "critical",
        repository: GOOD,
        findings: &[("CVE-2026-0201", "CRITICAL"), ("CVE-2026-0202", "LOW")],
        signed_by: Some(Key::Signer),
        reason: "VulnerabilitiesFound",
        says: "CVE-2026-0201 (CRITICAL, openssl)",
    })
    .await;
}

#[tokio::test]
async fn a_missing_signature_is_refused() {
    refused(Refusal {
        prefix: "unsigned",
        repository: GOOD,
        findings: &[],
        signed_by: None,
        reason: "SignatureMissing",
        says: "",
    })
    .await;
}

#[tokio::test]
async fn a_signature_by_another_key_is_refused() {
    refused(Refusal {
        prefix: "wrong-key",
        repository: GOOD,
        findings: &[],
        signed_by: Some(Key::Other),
        reason: "SignatureInvalid",
        says: "not made by a trusted key",
    })
    .await;
}

#[tokio::test]
async fn a_running_scan_is_pending_and_nothing_is_copied() {
    let world = World::new().await;
    let source = world.source("scanning", GOOD).await;
    world.scan(&source, "IN_PROGRESS", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("scanning");
    let object = promotion(
        &world,
        &source,
        json!({}),
        json!([quay_target("quay", &quay_repository)]),
    );

    let run = world.promote(&object, &[]);
    // 3: try again later, so CI can tell a pending scan from a refusal (1).
    run.expect_exit(3);
    let status = run.status();
    expect_condition(&status, "Verified", ("Unknown", "ScanPending"));
    let message = expect_condition(&status, "Ready", ("Unknown", "ScanPending"));
    assert!(
        message.contains("IN_PROGRESS") && message.contains("run promote again"),
        "{message}"
    );
    expect_condition(&status, "Reconciling", ("True", "ScanPending"));
    assert_eq!(
        condition(&status, "Stalled"),
        None,
        "a pending scan is not stalled"
    );
    expect_targets(&status, TargetState::Pending);
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(StatusCode::NOT_FOUND)
    );
}

#[tokio::test]
async fn a_missing_tag_or_another_digest_stalls_without_copying() {
    let world = World::new().await;
    let source = world.source("pinning", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("pinning");
    let targets = json!([quay_target("quay", &quay_repository)]);

    let mut missing = promotion(&world, &source, json!({}), targets.clone());
    missing["spec"]["source"]["image"] =
        json!(format!("{}:9.9.9", world.source_repository(&source)));
    let run = world.promote(&missing, &[]);
    run.expect_exit(1);
    let status = run.status();
    let message = expect_condition(&status, "Ready", ("False", "SourceNotFound"));
    assert!(message.contains("9.9.9"), "{message}");
    expect_condition(&status, "Stalled", ("True", "SourceNotFound"));
    assert_eq!(condition(&status, "Verified"), None, "nothing was verified");

    let other = format!("sha256:{}", "0".repeat(64));
    let mut mismatch = promotion(&world, &source, json!({}), targets);
    mismatch["spec"]["source"]["digest"] = json!(other);
    let run = world.promote(&mismatch, &[]);
    run.expect_exit(1);
    let status = run.status();
    let message = expect_condition(&status, "Ready", ("False", "SourceDigestMismatch"));
    assert!(
        message.contains(&source.digest) && message.contains(&other),
        "{message}"
    );
    assert_eq!(
        status.source_digest, None,
        "a mismatching digest is not pinned"
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(StatusCode::NOT_FOUND)
    );
}
