//! The copy engine, end to end against real registries.

use crate::fixtures::{self, OCI_INDEX, engine, quay, repository};
use crate::support::{TestEnv, unique_name};
use image_promoter::registry::copy::MountSources;
use image_promoter::registry::copy::report::CopyReport;
use image_promoter::registry::{CopyOptions, Engine, ImageReference, Platforms, Target};

fn target(host: &str, name: &str, tags: &[&str], floating: &[&str]) -> Target {
    Target {
        repository: repository(host, name),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        floating: floating.iter().map(|t| t.to_string()).collect(),
    }
}

fn source(env: &TestEnv, seeded: &fixtures::Seeded, tag: &str) -> ImageReference {
    ImageReference::parse_image(&format!(
        "{}/{}:{tag}",
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        seeded.repository
    ))
    .unwrap()
}

/// Copies with the default options; the source must be readable.
async fn copy(engine: &Engine, source: &ImageReference, targets: &[Target]) -> CopyReport {
    engine
        .copy(source, targets, &CopyOptions::default())
        .await
        .expect("the source is readable")
}

fn assert_ok(report: &CopyReport) {
    for target in &report.targets {
        assert!(
            target.error.is_none(),
            "{}: {:?}",
            target.repository,
            target.error
        );
    }
}

#[tokio::test]
async fn single_image_arrives_byte_for_byte_with_its_tag() {
    let env = TestEnv::load();
    let seeded = fixtures::single(&env, "single", "v1", &[300_000, 1 << 20]).await;
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let name = unique_name("promoted/single");
    let report = copy(
        &engine(&env).await,
        &source(&env, &seeded, "v1"),
        &[target(ecr_host, &name, &["v1", "latest"], &["latest"])],
    )
    .await;
    assert_ok(&report);
    assert_eq!(report.digest.to_string(), seeded.digest);
    let t = &report.targets[0];
    assert_eq!(t.tags_written, ["v1", "latest"]);
    assert_eq!(t.blobs_uploaded, 3);
    assert_eq!(
        t.bytes_written,
        seeded.blob_bytes() + 2 * seeded.manifest.len() as u64
    );

    let ecr = fixtures::ecr(&env).await;
    for tag in ["v1", "latest"] {
        let (bytes, content_type) = ecr
            .get_manifest(&name, tag)
            .await
            .expect("manifest at target");
        assert_eq!(bytes, seeded.manifest, "manifest bytes must be exact");
        assert_eq!(content_type, fixtures::OCI_MANIFEST);
    }
    for (digest, size) in &seeded.blobs {
        let blob = ecr.pull_blob(&name, digest).await.expect("blob at target");
        assert_eq!(blob.len() as u64, *size);
        assert_eq!(&crate::oci::sha256(&blob), digest);
    }
}

#[tokio::test]
async fn multi_arch_index_copies_every_platform_children_first() {
    let env = TestEnv::load();
    let seeded = fixtures::multi(&env, "multi", "1.0.0", &[200_000, 100_000]).await;
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let name = unique_name("promoted/multi");
    let report = copy(
        &engine(&env).await,
        &source(&env, &seeded, "1.0.0"),
        &[target(ecr_host, &name, &["1.0.0"], &[])],
    )
    .await;
    assert_ok(&report);
    assert_eq!(
        report.digest.to_string(),
        seeded.digest,
        "index digest never changes"
    );
    let t = &report.targets[0];
    assert_eq!(t.blobs_uploaded, seeded.blobs.len() as u64);
    assert_eq!(
        t.manifests_written, 3,
        "two children by digest, then the index under its tag"
    );

    let ecr = fixtures::ecr(&env).await;
    let (index, content_type) = ecr.get_manifest(&name, "1.0.0").await.unwrap();
    assert_eq!(index, seeded.manifest);
    assert_eq!(content_type, OCI_INDEX);
    let parsed: serde_json::Value = serde_json::from_slice(&index).unwrap();
    for child in parsed["manifests"].as_array().unwrap() {
        let digest = child["digest"].as_str().unwrap();
        assert_eq!(
            ecr.manifest_digest(&name, digest).await.as_deref(),
            Ok(digest)
        );
    }
}

#[tokio::test]
async fn a_platform_subset_writes_a_new_index_with_only_that_platform() {
    let env = TestEnv::load();
    let seeded = fixtures::multi(&env, "subset", "v1", &[50_000]).await;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let name = unique_name("promoted/subset");
    let options = CopyOptions {
        platforms: Platforms::Only(vec!["linux/arm64".into()]),
        ..CopyOptions::default()
    };
    let report = engine(&env)
        .await
        .copy(
            &source(&env, &seeded, "v1"),
            &[target(quay_host, &name, &["v1"], &[])],
            &options,
        )
        .await
        .expect("copy");
    assert_ok(&report);
    assert_ne!(
        report.digest.to_string(),
        seeded.digest,
        "a subset is a different index"
    );
    let (index, _) = quay(&env).get_manifest(&name, "v1").await.unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let platforms: Vec<&str> = parsed["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["arm64"]);
    assert_eq!(
        report.targets[0].blobs_mounted + report.targets[0].blobs_uploaded,
        2
    );

    let none = CopyOptions {
        platforms: Platforms::Only(vec!["windows/amd64".into()]),
        ..CopyOptions::default()
    };
    let err = engine(&env)
        .await
        .copy(
            &source(&env, &seeded, "v1"),
            &[target(quay_host, &name, &["v2"], &[])],
            &none,
        )
        .await
        .expect_err("no such platform");
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

#[tokio::test]
async fn a_recopy_costs_one_manifest_head_per_tag_and_uploads_nothing() {
    let env = TestEnv::load();
    let seeded = fixtures::multi(&env, "recopy", "v1", &[100_000]).await;
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let name = unique_name("promoted/recopy");
    let targets = [target(ecr_host, &name, &["v1", "stable"], &[])];
    let engine = engine(&env).await;
    assert_ok(&copy(&engine, &source(&env, &seeded, "v1"), &targets).await);

    let again = copy(&engine, &source(&env, &seeded, "v1"), &targets).await;
    assert_ok(&again);
    let t = &again.targets[0];
    assert_eq!(t.requests, 2, "one manifest HEAD per tag, nothing else");
    assert_eq!(
        (t.blobs_uploaded, t.manifests_written, t.bytes_written),
        (0, 0, 0)
    );
    assert_eq!(t.tags_present, ["v1", "stable"]);
    assert_eq!(
        again.source_requests, 1,
        "the source is read once: its root manifest"
    );
}

#[tokio::test]
async fn a_second_repository_of_the_same_registry_mounts_instead_of_uploading() {
    let env = TestEnv::load();
    let seeded = fixtures::single(&env, "mount", "v1", &[400_000, 400_000]).await;
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let engine = engine(&env).await;
    let first = unique_name("promoted/mount-a");
    let second = unique_name("promoted/mount-b");
    let one = copy(
        &engine,
        &source(&env, &seeded, "v1"),
        &[target(ecr_host, &first, &["v1"], &[])],
    )
    .await;
    assert_ok(&one);
    assert_eq!(one.targets[0].blobs_uploaded, 3);
    let two = copy(
        &engine,
        &source(&env, &seeded, "v1"),
        &[target(ecr_host, &second, &["v1"], &[])],
    )
    .await;
    assert_ok(&two);
    assert_eq!(
        (two.targets[0].blobs_mounted, two.targets[0].blobs_uploaded),
        (3, 0)
    );
    assert_eq!(
        two.source_bytes_read,
        seeded.manifest.len() as u64,
        "no blob read from the source"
    );
    assert_eq!(
        fixtures::ecr(&env)
            .await
            .manifest_digest(&second, "v1")
            .await
            .as_deref(),
        Ok(seeded.digest.as_str())
    );
}

#[tokio::test]
async fn a_mount_borrows_only_from_repositories_the_copy_may_write() {
    let env = TestEnv::load();
    let seeded = fixtures::single(&env, "lend", "v1", &[200_000]).await;
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let engine = engine(&env).await;
    let tenant = unique_name("tenant-a");
    let other = unique_name("tenant-b/app");
    assert_ok(
        &copy(
            &engine,
            &source(&env, &seeded, "v1"),
            &[target(ecr_host, &other, &["v1"], &[])],
        )
        .await,
    );
    let options = CopyOptions {
        mount_from: MountSources::Matching(vec![format!("{ecr_host}/{tenant}/**")]),
        ..CopyOptions::default()
    };
    let copy_to = |name: String| {
        let targets = [target(ecr_host, &name, &["v1"], &[])];
        let engine = &engine;
        let source = source(&env, &seeded, "v1");
        let options = options.clone();
        async move { engine.copy(&source, &targets, &options).await.unwrap() }
    };

    // The blobs are known only in the other tenant's repository: uploaded.
    let first = copy_to(format!("{tenant}/one")).await;
    assert_ok(&first);
    assert_eq!(
        (
            first.targets[0].blobs_mounted,
            first.targets[0].blobs_uploaded
        ),
        (0, 2),
        "nothing borrowed from {other}"
    );
    // Now known in a repository of its own: mounted from there.
    let second = copy_to(format!("{tenant}/two")).await;
    assert_ok(&second);
    assert_eq!(
        (
            second.targets[0].blobs_mounted,
            second.targets[0].blobs_uploaded
        ),
        (2, 0)
    );
}

#[tokio::test]
async fn a_blob_the_source_does_not_have_is_never_mounted_from_elsewhere() {
    let env = TestEnv::load();
    let seeded = fixtures::single(&env, "hollow", "v1", &[200_000]).await;
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let engine = engine(&env).await;
    let lender = unique_name("hollow/lender");
    let borrower = unique_name("hollow/borrower");
    assert_ok(
        &copy(
            &engine,
            &source(&env, &seeded, "v1"),
            &[target(ecr_host, &lender, &["v1"], &[])],
        )
        .await,
    );
    // The source's manifest now names a layer the source no longer holds.
    let (layer, _) = seeded.blobs.last().unwrap();
    quay(&env)
        .delete_blob(&seeded.repository, layer)
        .await
        .unwrap();

    let report = copy(
        &engine,
        &source(&env, &seeded, "v1"),
        &[target(ecr_host, &borrower, &["v1"], &[])],
    )
    .await;

    let result = &report.targets[0];
    assert!(
        result.blobs_mounted <= 1,
        "only the config may be mounted, never the layer the source lacks: {result:?}"
    );
    assert!(
        result.error.is_some(),
        "the layer cannot be read from the source: {result:?}"
    );
    assert_eq!(
        fixtures::ecr(&env).await.pull_blob(&borrower, layer).await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "the layer of {lender} did not reach {borrower}"
    );
}

#[tokio::test]
async fn a_write_once_tag_on_another_digest_is_a_conflict_and_nothing_is_written() {
    let env = TestEnv::load();
    let published = fixtures::single(&env, "published", "v1", &[10_000]).await;
    let rebuilt = fixtures::single(&env, "rebuilt", "v1", &[20_000]).await;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let name = unique_name("promoted/conflict");
    let engine = engine(&env).await;
    let first = copy(
        &engine,
        &source(&env, &published, "v1"),
        &[target(quay_host, &name, &["v1"], &[])],
    )
    .await;
    assert_ok(&first);

    let second = copy(
        &engine,
        &source(&env, &rebuilt, "v1"),
        &[target(quay_host, &name, &["v1", "latest"], &["latest"])],
    )
    .await;
    assert!(!second.succeeded());
    let failure = second.targets[0].error.as_ref().expect("a conflict");
    assert_eq!(failure.reason, "TagConflict");
    assert!(
        failure.message.contains("\"v1\"")
            && failure.message.contains(&published.digest)
            && failure.message.contains(&rebuilt.digest),
        "{}",
        failure.message
    );
    assert_eq!(second.targets[0].blobs_uploaded, 0);

    let registry = quay(&env);
    assert_eq!(
        registry.manifest_digest(&name, "v1").await.as_deref(),
        Ok(published.digest.as_str()),
        "v1 did not move"
    );
    assert!(
        registry.manifest_digest(&name, "latest").await.is_err(),
        "nothing else was written"
    );
    assert!(
        registry
            .manifest_digest(&name, &rebuilt.digest)
            .await
            .is_err()
    );
    for (digest, _) in &rebuilt.blobs {
        assert!(
            registry.pull_blob(&name, digest).await.is_err(),
            "blob {digest} was written"
        );
    }
}

#[tokio::test]
async fn a_floating_tag_moves_to_the_new_digest() {
    let env = TestEnv::load();
    let old = fixtures::single(&env, "float-old", "v1", &[10_000]).await;
    let new = fixtures::single(&env, "float-new", "v2", &[10_000]).await;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let name = unique_name("promoted/floating");
    let engine = engine(&env).await;
    let first = copy(
        &engine,
        &source(&env, &old, "v1"),
        &[target(quay_host, &name, &["v1", "latest"], &["latest"])],
    )
    .await;
    assert_ok(&first);
    let second = copy(
        &engine,
        &source(&env, &new, "v2"),
        &[target(quay_host, &name, &["v2", "latest"], &["latest"])],
    )
    .await;
    assert_ok(&second);
    assert_eq!(second.targets[0].tags_written, ["v2", "latest"]);
    let registry = quay(&env);
    assert_eq!(
        registry.manifest_digest(&name, "latest").await.as_deref(),
        Ok(new.digest.as_str())
    );
    assert_eq!(
        registry.manifest_digest(&name, "v1").await.as_deref(),
        Ok(old.digest.as_str())
    );
}

#[tokio::test]
async fn three_targets_read_each_source_blob_once() {
    let env = TestEnv::load();
    let seeded = fixtures::single(&env, "fanout", "v1", &[2 << 20, 1 << 20]).await;
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let targets = [
        target(ecr_host, &unique_name("fan/a"), &["v1"], &[]),
        target(ecr_host, &unique_name("fan/b"), &["v1"], &[]),
        target(quay_host, &unique_name("fan/c"), &["v1"], &[]),
    ];
    let report = copy(&engine(&env).await, &source(&env, &seeded, "v1"), &targets).await;
    assert_ok(&report);
    assert_eq!(
        report.source_bytes_read,
        seeded.blob_bytes() + seeded.manifest.len() as u64,
        "every blob read from the source exactly once"
    );
    // Two ECR repositories received the blobs in one stream each; the Quay
    // target is the source registry itself, so it mounts from the source repository.
    assert_eq!(
        report.targets[0].blobs_uploaded + report.targets[0].blobs_mounted,
        3
    );
    assert_eq!(
        report.targets[1].blobs_uploaded + report.targets[1].blobs_mounted,
        3
    );
    assert_eq!(report.targets[2].blobs_mounted, 3);
    let ecr = fixtures::ecr(&env).await;
    for t in &targets[..2] {
        assert_eq!(
            ecr.manifest_digest(&t.repository.name, "v1")
                .await
                .as_deref(),
            Ok(seeded.digest.as_str())
        );
    }
}

#[tokio::test]
async fn ecr_public_targets_use_their_token_through_the_bearer_flow() {
    let env = TestEnv::load();
    let seeded = fixtures::multi(&env, "public", "2.0.0", &[30_000]).await;
    let public_host = env.get("PROMOTER_TEST_PUBLIC_REGISTRY");
    let alias = env.get("PROMOTER_TEST_PUBLIC_ALIAS");
    let name = unique_name("public-app");
    fixtures::create_public_repository(&env, &name).await;
    let report = engine(&env)
        .await
        .copy(
            &source(&env, &seeded, "2.0.0"),
            &[target(
                public_host,
                &format!("{alias}/{name}"),
                &["2.0.0"],
                &[],
            )],
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert_ok(&report);
    assert_eq!(
        report.targets[0].digest.as_ref().map(ToString::to_string),
        Some(seeded.digest.clone())
    );

    // ECR Public refuses pushes to a repository nobody created: a clear, permanent error.
    let missing = format!("{alias}/{}", unique_name("never-created"));
    let refused = copy(
        &engine(&env).await,
        &source(&env, &seeded, "2.0.0"),
        &[target(public_host, &missing, &["2.0.0"], &[])],
    )
    .await;
    let failure = refused.targets[0].error.as_ref().expect("push refused");
    assert_eq!(
        failure.reason, "RegistryUnauthorized",
        "{}",
        failure.message
    );
    assert!(!failure.transient);
}
