//! Signatures and referrers travel with the image when asked, and still verify.

use crate::fixtures::{self, OCI_INDEX, OCI_MANIFEST, engine, quay, repository};
use crate::oci::sha256;
use crate::support::{TestEnv, unique_name};
use image_promoter::registry::{CopyOptions, ImageReference, Platforms, Target};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Command, Output};

/// cosign key pairs in a folder of their own (`<name>.key`, `<name>.pub`),
/// and cosign run with them against the test world; the folder goes with it.
struct Keys<'a> {
    env: &'a TestEnv,
    dir: PathBuf,
}

impl<'a> Keys<'a> {
    fn new(env: &'a TestEnv, names: &[&str]) -> Self {
        let keys = Self {
            env,
            dir: std::env::temp_dir().join(unique_name("promoter-keys")),
        };
        std::fs::create_dir_all(&keys.dir).unwrap();
        for name in names {
            keys.run(&["generate-key-pair", "--output-key-prefix", name]);
        }
        keys
    }

    fn cosign(&self, args: &[&str]) -> Output {
        Command::new(self.env.tool("cosign"))
            .args(args)
            .current_dir(&self.dir)
            .env("COSIGN_PASSWORD", "")
            .env("DOCKER_CONFIG", self.env.get("PROMOTER_TEST_DOCKER_CONFIG"))
            .env("SSL_CERT_FILE", self.env.get("PROMOTER_TEST_CA"))
            .env("TUF_ROOT", self.dir.join("tuf"))
            .output()
            .expect("running cosign")
    }

    fn run(&self, args: &[&str]) {
        let output = self.cosign(args);
        assert!(
            output.status.success(),
            "cosign {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Signs `image` (`host/repo@digest`) with key `name`; `extra` flags too.
    fn sign(&self, name: &str, image: &str, extra: &[&str]) {
        let key = format!("{name}.key");
        let mut args = vec!["sign", "--key", &key, "--tlog-upload=false", "--yes"];
        args.extend(extra);
        args.push(image);
        self.run(&args);
    }

    /// Whether a signature by key `name` of `image` verifies.
    fn verifies(&self, name: &str, image: &str) -> bool {
        let key = format!("{name}.pub");
        self.cosign(&[
            "verify",
            "--key",
            &key,
            "--insecure-ignore-tlog=true",
            image,
        ])
        .status
        .success()
    }
}

impl Drop for Keys<'_> {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

fn target(host: &str, name: &str, tag: &str) -> Target {
    Target {
        repository: repository(host, name),
        tags: vec![tag.to_string()],
        floating: vec![],
    }
}

#[tokio::test]
async fn cosign_signatures_are_copied_and_verify_at_the_target() {
    let env = TestEnv::load();
    let keys = Keys::new(&env, &["cosign"]);
    let seeded = fixtures::multi(&env, "signed", "v1", &[20_000]).await;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    keys.sign(
        "cosign",
        &format!("{quay_host}/{}@{}", seeded.repository, seeded.digest),
        &[],
    );

    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let with = unique_name("signed/with");
    let without = unique_name("signed/without");
    let source =
        ImageReference::parse_image(&format!("{quay_host}/{}:v1", seeded.repository)).unwrap();
    let engine = engine(&env).await;
    let options = CopyOptions {
        signatures: true,
        ..CopyOptions::default()
    };
    let report = engine
        .copy(&source, &[target(ecr_host, &with, "v1")], &options)
        .await
        .unwrap();
    assert!(report.succeeded(), "{:?}", report.targets[0].error);
    assert_eq!(report.targets[0].signatures_copied, 1);
    let plain = engine
        .copy(
            &source,
            &[target(ecr_host, &without, "v1")],
            &CopyOptions::default(),
        )
        .await
        .unwrap();
    assert!(plain.succeeded());
    assert_eq!(plain.targets[0].signatures_copied, 0);

    let verifies =
        |repo: &str| keys.verifies("cosign", &format!("{ecr_host}/{repo}@{}", seeded.digest));
    assert!(verifies(&with));
    assert!(
        !verifies(&without),
        "no signature was asked for, none may verify"
    );

    // A second run finds everything in place.
    let again = engine
        .copy(&source, &[target(ecr_host, &with, "v1")], &options)
        .await
        .unwrap();
    assert!(again.succeeded());
    assert_eq!(
        (
            again.targets[0].blobs_uploaded,
            again.targets[0].manifests_written
        ),
        (0, 0)
    );
}

#[tokio::test]
async fn referrers_are_copied_by_digest_and_listed_in_the_targets_fallback_index() {
    let env = TestEnv::load();
    let seeded = fixtures::single(&env, "sbom", "v1", &[10_000]).await;
    let registry = quay(&env);
    let repo = &seeded.repository;

    // An SBOM referring to the image, listed under the tag-schema fallback tag.
    let sbom = serde_json::to_vec(&json!({"spdxVersion": "SPDX-2.3", "name": repo})).unwrap();
    let sbom_digest = registry.push_blob(repo, &sbom).await.unwrap();
    let empty_digest = registry.push_blob(repo, b"{}").await.unwrap();
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty_digest, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom_digest, "size": sbom.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": seeded.digest, "size": seeded.manifest.len()},
    }))
    .unwrap();
    let referrer_digest = sha256(&referrer);
    registry
        .put_manifest(repo, &referrer_digest, OCI_MANIFEST, &referrer)
        .await
        .unwrap();
    let fallback_tag = seeded.digest.replace(':', "-");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": referrer_digest, "size": referrer.len(), "artifactType": "application/spdx+json"}],
    }))
    .unwrap();
    registry
        .put_manifest(repo, &fallback_tag, OCI_INDEX, &index)
        .await
        .unwrap();

    // The target already lists another referrer; it must be kept.
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let name = unique_name("referrers/target");
    let ecr = fixtures::ecr(&env).await;
    let other = crate::oci::TestImage::new(&name);
    let other_digest = ecr.push_image(&name, &other, "other").await.unwrap();
    let existing = json!({"mediaType": OCI_MANIFEST, "digest": other_digest, "size": other.manifest.len(), "artifactType": "application/vnd.example"});
    let target_index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [existing]}),
    )
    .unwrap();
    ecr.put_manifest(&name, &fallback_tag, OCI_INDEX, &target_index)
        .await
        .unwrap();

    let source = ImageReference::parse_image(&format!(
        "{}/{repo}:v1",
        env.get("PROMOTER_TEST_QUAY_REGISTRY")
    ))
    .unwrap();
    let options = CopyOptions {
        referrers: true,
        ..CopyOptions::default()
    };
    let report = engine(&env)
        .await
        .copy(&source, &[target(ecr_host, &name, "v1")], &options)
        .await
        .unwrap();
    assert!(report.succeeded(), "{:?}", report.targets[0].error);
    assert_eq!(report.targets[0].referrers_copied, 1);

    assert_eq!(
        ecr.manifest_digest(&name, &referrer_digest)
            .await
            .as_deref(),
        Ok(referrer_digest.as_str())
    );
    assert_eq!(ecr.pull_blob(&name, &sbom_digest).await.unwrap(), sbom);
    let (merged, _) = ecr.get_manifest(&name, &fallback_tag).await.unwrap();
    let merged: serde_json::Value = serde_json::from_slice(&merged).unwrap();
    let listed: Vec<&str> = merged["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&referrer_digest.as_str()), "{listed:?}");
    assert!(
        listed.contains(&other_digest.as_str()),
        "existing referrers are kept: {listed:?}"
    );
    assert_eq!(listed.len(), 2);
}

#[tokio::test]
async fn signatures_added_at_the_target_survive_a_later_copy() {
    let env = TestEnv::load();
    let keys = Keys::new(&env, &["a", "b", "c"]);
    let sign = |key: &str, image: &str| keys.sign(key, image, &[]);
    let verifies = |key: &str, image: &str| keys.verifies(key, image);

    let seeded = fixtures::single(&env, "resigned", "v1", &[20_000]).await;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let at_source = format!("{quay_host}/{}@{}", seeded.repository, seeded.digest);
    let name = unique_name("signed/resigned");
    let at_target = format!("{ecr_host}/{name}@{}", seeded.digest);
    let source =
        ImageReference::parse_image(&format!("{quay_host}/{}:v1", seeded.repository)).unwrap();
    let engine = engine(&env).await;
    let options = CopyOptions {
        signatures: true,
        ..CopyOptions::default()
    };
    let copy = || async {
        let report = engine
            .copy(&source, &[target(ecr_host, &name, "v1")], &options)
            .await
            .unwrap();
        assert!(report.succeeded(), "{:?}", report.targets[0].error);
        assert_eq!(report.targets[0].signatures_copied, 1);
        report.targets[0].manifests_written
    };

    sign("a", &at_source);
    copy().await;
    assert!(verifies("a", &at_target));

    // A release process signs the published image at the target with key B.
    sign("b", &at_target);
    assert!(verifies("b", &at_target));
    // The next copy from the source (which has only A) keeps B: one merged manifest.
    assert_eq!(copy().await, 1);
    assert!(verifies("a", &at_target), "the source's signature");
    assert!(verifies("b", &at_target), "the target's own signature");
    // And writes nothing once the merge is in place.
    assert_eq!(copy().await, 0);

    // A new signature at the source joins them: the source's new signature
    // manifest arrives by digest, and the tag moves to a new merge.
    sign("c", &at_source);
    assert_eq!(copy().await, 2);
    for key in ["a", "b", "c"] {
        assert!(verifies(key, &at_target), "key {key}");
    }
    assert_eq!(copy().await, 0);
}

#[tokio::test]
async fn attestations_added_at_the_target_survive_a_later_copy() {
    let env = TestEnv::load();
    let keys = Keys::new(&env, &["builder", "promoter"]);
    const KIND: &str = "https://example.com/attestation/v1";
    std::fs::write(keys.dir.join("predicate.json"), r#"{"built": true}"#).unwrap();
    let attest = |key: &str, image: &str| {
        let key = format!("{key}.key");
        keys.run(&[
            "attest",
            "--key",
            &key,
            "--type",
            KIND,
            "--predicate",
            "predicate.json",
            "--tlog-upload=false",
            "--yes",
            image,
        ]);
    };
    let attested = |key: &str, image: &str| {
        let key = format!("{key}.pub");
        keys.cosign(&[
            "verify-attestation",
            "--key",
            &key,
            "--type",
            KIND,
            "--insecure-ignore-tlog=true",
            image,
        ])
        .status
        .success()
    };

    let seeded = fixtures::single(&env, "attested", "v1", &[20_000]).await;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let at_source = format!("{quay_host}/{}@{}", seeded.repository, seeded.digest);
    let name = unique_name("attested/receipt");
    let at_target = format!("{ecr_host}/{name}@{}", seeded.digest);
    let source =
        ImageReference::parse_image(&format!("{quay_host}/{}:v1", seeded.repository)).unwrap();
    let engine = engine(&env).await;
    let options = CopyOptions {
        referrers: true,
        ..CopyOptions::default()
    };
    let copy = || async {
        let report = engine
            .copy(&source, &[target(ecr_host, &name, "v1")], &options)
            .await
            .unwrap();
        assert!(report.succeeded(), "{:?}", report.targets[0].error);
        assert!(report.targets[0].referrers_copied >= 1);
        report.targets[0].manifests_written
    };

    attest("builder", &at_source);
    copy().await;
    assert!(attested("builder", &at_target));

    // The operator attaches its promotion receipt at the target.
    attest("promoter", &at_target);
    assert!(attested("promoter", &at_target));
    // A later copy (a tag added to the object) keeps it beside the source's.
    copy().await;
    assert!(attested("builder", &at_target), "the source's attestation");
    assert!(
        attested("promoter", &at_target),
        "the receipt written at the target"
    );
    assert_eq!(copy().await, 0, "nothing written once merged");
}

#[tokio::test]
async fn a_platform_subset_carries_its_platforms_signatures_and_says_the_index_signature_stayed() {
    let env = TestEnv::load();
    let keys = Keys::new(&env, &["cosign"]);
    let seeded = fixtures::multi(&env, "subset-signed", "v1", &[20_000]).await;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    // The index and each platform manifest, as a release pipeline signs them.
    keys.sign(
        "cosign",
        &format!("{quay_host}/{}@{}", seeded.repository, seeded.digest),
        &["--recursive"],
    );
    let index: serde_json::Value = serde_json::from_slice(&seeded.manifest).unwrap();
    let arm64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();

    let ecr_host = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let name = unique_name("subset/signed");
    let source =
        ImageReference::parse_image(&format!("{quay_host}/{}:v1", seeded.repository)).unwrap();
    let options = CopyOptions {
        signatures: true,
        platforms: Platforms::Only(vec!["linux/arm64".into()]),
        ..CopyOptions::default()
    };
    let report = engine(&env)
        .await
        .copy(&source, &[target(ecr_host, &name, "v1")], &options)
        .await
        .unwrap();

    assert!(report.succeeded(), "{:?}", report.targets[0].error);
    assert_ne!(
        report.digest.to_string(),
        seeded.digest,
        "a subset is a new index"
    );
    let result = &report.targets[0];
    assert_eq!(
        result.signatures_copied, 1,
        "the arm64 manifest's own signature"
    );
    let [warning] = result.warnings.as_slice() else {
        panic!("one warning expected: {:?}", result.warnings)
    };
    assert!(
        warning.starts_with(&format!(
            "cosign signatures of the source index {}",
            seeded.digest
        )) && warning.contains("cosign sign --recursive"),
        "{warning}"
    );
    let verifies = |digest: &str| keys.verifies("cosign", &format!("{ecr_host}/{name}@{digest}"));
    assert!(verifies(&arm64), "the platform's own signature travelled");
    assert!(
        !verifies(&report.digest.to_string()),
        "nothing signed the new index"
    );

    // Without signatures asked for, nothing is said about them.
    let quiet = engine(&env)
        .await
        .copy(
            &source,
            &[target(ecr_host, &unique_name("subset/quiet"), "v1")],
            &CopyOptions {
                platforms: Platforms::Only(vec!["linux/arm64".into()]),
                ..CopyOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(quiet.targets[0].warnings.is_empty());
}
