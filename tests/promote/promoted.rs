//! Sources that pass verification: promoted to both targets (and the ECR
//! Public repository created once, then left alone), promoted despite
//! findings covered by unexpired ignore entries, and a dry run that copies
//! nothing.

use image_promoter::api::TargetState;
use serde_json::json;

use crate::world::{
    GOOD, Key, TAG, World, catalog_data, condition, expect_condition, expect_targets, key_id,
    promotion, public_key_file, public_target, quay_target, signed_kms_policy,
};

#[tokio::test]
async fn a_verified_image_is_promoted_to_quay_and_ecr_public_and_the_repository_left_alone_after() {
    let world = World::new().await;
    let source = world.source("promoted", GOOD).await;
    world
        .scan(&source, "COMPLETE", &[("CVE-2026-0001", "LOW")])
        .await;
    world.sign(&source, Key::Signer);
    let (quay_name, quay_repository) = world.quay_target("promoted");
    let (public_name, public_repository) = world.public_target("promoted");
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
    let key = key.to_str().unwrap();

    let first = world.promote(&object, &["--public-key", key]);
    first.expect_exit(0);
    let status = first.status();
    assert_eq!(
        status.source_digest.as_deref(),
        Some(source.digest.as_str())
    );
    assert_eq!(status.targets_ready.as_deref(), Some("2/2"));
    assert_eq!(status.observed_generation, Some(0));
    expect_condition(&status, "Ready", ("True", "Promoted"));
    expect_condition(&status, "Verified", ("True", "PolicySatisfied"));
    assert_eq!(condition(&status, "Stalled"), None);
    assert_eq!(condition(&status, "Reconciling"), None);
    expect_targets(&status, TargetState::Promoted);
    for target in &status.targets {
        assert_eq!(target.digest.as_deref(), Some(source.digest.as_str()));
        assert!(target.tags.contains(&TAG.to_string()), "{target:?}");
        assert!(
            target.blobs_copied + target.blobs_mounted >= 2,
            "{target:?}"
        );
    }
    assert!(
        status.targets[1]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("created ECR Public repository")),
        "{:?}",
        status.targets[1].message
    );
    let evidence = status.verification.as_ref().expect("verification evidence");
    assert_eq!(evidence.tag_mutability.as_deref(), Some("IMMUTABLE"));
    assert_eq!(evidence.encryption_type.as_deref(), Some("KMS"));
    let scan = evidence.scan.as_ref().expect("scan evidence");
    assert_eq!((scan.status.as_str(), scan.findings.low), ("COMPLETE", 1));
    let signature = evidence.signature.as_ref().expect("signature evidence");
    assert_eq!(signature.key_id, key_id(&world.env, Key::Signer));

    // The registries hold the image by digest, with its tags and its signature.
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
    assert_eq!(
        world.quay_tag(&quay_name, "latest").await,
        Ok(source.digest.clone())
    );
    let sig_tag = format!("{}.sig", source.digest.replace(':', "-"));
    assert!(
        world.quay_tag(&quay_name, &sig_tag).await.is_ok(),
        "the signature was copied"
    );
    assert_eq!(
        world.public_tag(&public_name, TAG).await,
        Ok(source.digest.clone())
    );
    let catalog = world.catalog(&public_name).await;
    let wanted = catalog_data();
    assert_eq!(catalog.description(), wanted["description"].as_str());
    assert_eq!(catalog.about_text(), wanted["aboutText"].as_str());
    assert_eq!(catalog.usage_text(), wanted["usageText"].as_str());
    assert_eq!(catalog.architectures(), ["x86-64", "ARM 64"]);
    assert_eq!(catalog.operating_systems(), ["Linux"]);

    // Someone edits the gallery page; the next run leaves the repository alone.
    world
        .edit_description(&public_name, "edited in the gallery")
        .await;
    let second = world.promote(&object, &["--public-key", key, "--output", "json"]);
    second.expect_exit(0);
    let json: serde_json::Value = serde_json::from_str(&second.stdout).expect("JSON status");
    assert_eq!(json["targetsReady"], "2/2");
    let status = second.status();
    expect_condition(&status, "Ready", ("True", "Promoted"));
    assert_eq!(status.targets[1].message, None, "no repository was created");
    assert!(
        status.targets.iter().all(|t| t.bytes_copied == 0),
        "{:?}",
        status.targets
    );
    assert_eq!(
        world.catalog(&public_name).await.description(),
        Some("edited in the gallery")
    );
    assert!(
        second.stderr.contains("Ready=True Promoted"),
        "{}",
        second.stderr
    );
}

#[tokio::test]
async fn findings_are_promoted_only_while_their_ignore_entries_are_unexpired() {
    let world = World::new().await;
    let source = world.source("ignored", GOOD).await;
    world
        .scan(
            &source,
            "COMPLETE",
            &[("CVE-2026-0101", "CRITICAL"), ("CVE-2026-0102", "HIGH")],
        )
        .await;
    let (quay_name, quay_repository) = world.quay_target("ignored");
    let targets = json!([quay_target("quay", &quay_repository)]);
    let ignore = |expires: &str| {
        json!({"scan": {"ignore": [
            {"id": "CVE-2026-0101", "reason": "not reachable", "expires": "2099-12-31"},
            {"id": "CVE-2026-0102", "reason": "fixed upstream soon", "expires": expires},
        ]}})
    };

    let expired = world.promote(
        &promotion(&world, &source, ignore("2020-01-31"), targets.clone()),
        &[],
    );
    expired.expect_exit(1);
    let status = expired.status();
    let message = expect_condition(&status, "Verified", ("False", "VulnerabilitiesFound"));
    assert!(
        message.contains("CVE-2026-0102 (HIGH, openssl; its ignore entry expired on 2020-01-31)")
            && !message.contains("CVE-2026-0101"),
        "{message}"
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND)
    );

    let unexpired = world.promote(
        &promotion(&world, &source, ignore("2099-12-31"), targets),
        &[],
    );
    unexpired.expect_exit(0);
    let status = unexpired.status();
    expect_condition(&status, "Ready", ("True", "Promoted"));
    let scan = status.verification.unwrap().scan.unwrap();
    assert_eq!(
        (scan.findings.critical, scan.findings.high, scan.ignored),
        (1, 1, 2)
    );
    assert_eq!(world.quay_tag(&quay_name, TAG).await, Ok(source.digest));
}

#[tokio::test]
async fn a_dry_run_verifies_and_copies_nothing() {
    let world = World::new().await;
    let source = world.source("dry-run", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    world.sign(&source, Key::Signer);
    let (quay_name, quay_repository) = world.quay_target("dry-run");
    let (public_name, public_repository) = world.public_target("dry-run");
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

    let run = world.promote(
        &object,
        &["--dry-run", "--public-key", key.to_str().unwrap()],
    );
    run.expect_exit(0);
    let status = run.status();
    assert_eq!(
        status.source_digest.as_deref(),
        Some(source.digest.as_str())
    );
    assert_eq!(status.targets_ready.as_deref(), Some("0/2"));
    expect_condition(&status, "Verified", ("True", "PolicySatisfied"));
    let message = expect_condition(&status, "Ready", ("Unknown", "Progressing"));
    assert!(message.contains("dry run"), "{message}");
    expect_targets(&status, TargetState::Pending);
    assert!(status.verification.unwrap().signature.is_some());
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND)
    );
    assert!(
        !world.public_repository_exists(&public_name).await,
        "no repository is created"
    );
}
