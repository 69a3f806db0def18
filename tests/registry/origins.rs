//! Credentials keyed by where they came from: two objects that reach one
//! registry with different Secrets never use each other's credentials.

use crate::fixtures::{self, engine};
use crate::support::{TestEnv, unique_name};
use image_promoter::registry::auth::{Credential, Secret, SharedSource, StaticCredential};
use image_promoter::registry::{CopyOptions, CredentialOrigin, ImageReference, Target};
use std::sync::Arc;

fn robot(password: &str) -> SharedSource {
    Arc::new(StaticCredential(Credential::Basic {
        username: "robot".into(),
        password: Secret::new(password),
    }))
}

#[tokio::test]
async fn two_secrets_for_one_registry_stay_apart() {
    let env = TestEnv::load();
    let seeded = fixtures::single(&env, "origins", "v1", &[10_000]).await;
    let quay = env.get("PROMOTER_TEST_QUAY_REGISTRY");
    let ecr = env.get("PROMOTER_TEST_ECR_REGISTRY");
    let good = env.get("PROMOTER_TEST_QUAY_PASSWORD").to_string();
    let good = Credential::Basic {
        username: env.get("PROMOTER_TEST_QUAY_USER").into(),
        password: Secret::new(good),
    };
    let shared = engine(&env).await;
    let source = ImageReference::parse_image(&format!("{quay}/{}:v1", seeded.repository)).unwrap();
    let targets = [Target {
        repository: fixtures::repository(ecr, &unique_name("origins/copy")),
        tags: vec!["v1".into()],
        floating: vec![],
    }];
    let origin = |id: &str, version: &str| CredentialOrigin {
        id: id.into(),
        version: version.into(),
    };
    let view = |origin: CredentialOrigin, source: SharedSource| {
        let client = shared
            .registries()
            .client_with(quay, &origin, move || source)
            .unwrap();
        shared.with_clients([(quay.to_string(), client)])
    };
    let read = |engine: image_promoter::registry::Engine| {
        let (source, targets) = (source.clone(), targets.clone());
        async move {
            engine
                .copy(&source, &targets, &CopyOptions::default())
                .await
                .map(|report| report.succeeded())
                .map_err(|error| error.reason())
        }
    };

    let wrong = view(origin("Secret team-a/quay", "1"), robot("not-the-password"));
    let right = view(
        origin("Secret team-b/quay", "7"),
        Arc::new(StaticCredential(good.clone())),
    );

    assert_eq!(read(wrong.clone()).await, Err("RegistryUnauthorized"));
    assert_eq!(read(right.clone()).await, Ok(true));
    assert_eq!(
        read(wrong).await,
        Err("RegistryUnauthorized"),
        "team-b's token is not team-a's"
    );
    // The Secret is rotated: its new version gets a fresh client.
    let rotated = view(
        origin("Secret team-a/quay", "2"),
        Arc::new(StaticCredential(good)),
    );
    assert_eq!(read(rotated).await, Ok(true));
    // The shared engine still reaches the host with the configuration's credentials.
    assert_eq!(read(shared.clone()).await, Ok(true));
}
