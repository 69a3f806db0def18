//! The two ways of authenticating that the test world's promoter.yaml does not
//! use: anonymous reads and `auth.basic` with a password file. (The others run
//! in every copy test: `dockerConfig` for the Quay registry, `ecr` for the ECR
//! one, `ecrPublic` for ECR Public; token expiry is in auth.rs.)
//!
//! ECR Public serves anonymous pulls through its bearer challenge, so an image
//! published there is read with no credential at all and written to the Quay
//! registry with its robot account given as `basic`.

use crate::fixtures::{self, OCI_INDEX, quay, repository};
use crate::support::{TestEnv, unique_name};
use image_promoter::config::Config;
use image_promoter::registry::{CopyOptions, Engine, ImageReference, Target};

fn target(host: &str, name: &str, tag: &str) -> Target {
    Target {
        repository: repository(host, name),
        tags: vec![tag.into()],
        floating: vec![],
    }
}

/// A config naming the ECR Public registry with no `auth` and the Quay
/// registry with `basic` credentials read from a file.
fn anonymous_and_basic_config(env: &TestEnv, dir: &std::path::Path) -> Config {
    std::fs::create_dir_all(dir).unwrap();
    let password = dir.join("quay-password");
    std::fs::write(&password, env.get("PROMOTER_TEST_QUAY_PASSWORD")).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, env.ca_pem()).unwrap();
    let config = dir.join("promoter.yaml");
    std::fs::write(
        &config,
        format!(
            "registries:\n\
             - host: \"{public}\"\n  kind: ecrPublic\n  caFile: {ca}\n\
             - host: \"{quay}\"\n  caFile: {ca}\n  auth:\n    basic:\n      username: \"{user}\"\n      passwordFile: {password}\n",
            public = env.get("PROMOTER_TEST_PUBLIC_REGISTRY"),
            quay = env.get("PROMOTER_TEST_QUAY_REGISTRY"),
            user = env.get("PROMOTER_TEST_QUAY_USER"),
            ca = ca.display(),
            password = password.display(),
        ),
    )
    .unwrap();
    Config::load(&config).expect("a valid config")
}

#[tokio::test]
async fn an_anonymous_source_is_copied_to_a_target_with_basic_credentials() {
    let env = TestEnv::load();
    let public_host = env.get("PROMOTER_TEST_PUBLIC_REGISTRY");
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY");

    // Publish an index on ECR Public with the test world's configuration.
    let seeded = fixtures::multi(&env, "anonymous", "1.0.0", &[40_000]).await;
    let name = unique_name("anonymous-app");
    fixtures::create_public_repository(&env, &name).await;
    let public_repo = format!("{}/{name}", env.get("PROMOTER_TEST_PUBLIC_ALIAS"));
    let published = fixtures::engine(&env)
        .await
        .copy(
            &ImageReference::parse_image(&format!("{quay_host}/{}:1.0.0", seeded.repository))
                .unwrap(),
            &[target(public_host, &public_repo, "1.0.0")],
            &CopyOptions::default(),
        )
        .await
        .expect("the seed is readable");
    assert!(published.targets[0].error.is_none(), "{published:?}");

    // Read it back anonymously, write it with basic auth.
    let dir = std::env::temp_dir().join(unique_name("promoter-modes"));
    let config = anonymous_and_basic_config(&env, &dir);
    let engine = Engine::new(config.registries().await.expect("registry clients"));
    let target_repo = unique_name("copy/from-public");
    let report = engine
        .copy(
            &ImageReference::parse_image(&format!("{public_host}/{public_repo}:1.0.0")).unwrap(),
            &[target(quay_host, &target_repo, "1.0.0")],
            &CopyOptions::default(),
        )
        .await
        .expect("anonymous reads are allowed");
    std::fs::remove_dir_all(&dir).ok();
    let copied = &report.targets[0];
    assert!(copied.error.is_none(), "{:?}", copied.error);
    assert_eq!(report.digest.to_string(), seeded.digest);
    assert_eq!(copied.blobs_uploaded as usize, seeded.blobs.len());
    let (bytes, media_type) = quay(&env)
        .get_manifest(&target_repo, "1.0.0")
        .await
        .expect("the index at the target");
    assert_eq!(bytes, seeded.manifest);
    assert_eq!(media_type, OCI_INDEX);

    // Anonymous is read-only: the same engine cannot write to ECR Public.
    let refused = engine
        .copy(
            &ImageReference::parse_image(&format!("{quay_host}/{target_repo}:1.0.0")).unwrap(),
            &[target(public_host, &public_repo, "1.0.1")],
            &CopyOptions::default(),
        )
        .await
        .expect("the source is readable");
    let failure = refused.targets[0].error.as_ref().expect("push refused");
    assert_eq!(
        failure.reason, "RegistryUnauthorized",
        "{}",
        failure.message
    );
}
