//! The three registries: each accepts its own auth and refuses wrong credentials.

use crate::aws;
use crate::oci::{Auth, Registry, TestImage};
use crate::support::{TestEnv, unique_name};
use reqwest::StatusCode;

fn payload(name: &str) -> Vec<u8> {
    format!("a blob for {name}").repeat(1000).into_bytes()
}

#[tokio::test]
async fn internal_ecr_registry_takes_the_token_the_ecr_api_issues() {
    let env = TestEnv::load();
    let (user, password) = aws::ecr_registry_credentials(&env).await;
    assert_eq!(user, "AWS");
    let repo = unique_name("smoke/ecr");
    let registry = Registry::new(
        env.get("PROMOTER_TEST_ECR_REGISTRY"),
        &env.ca_pem(),
        Auth::Basic {
            user: user.clone(),
            password,
        },
    );
    let blob = payload(&repo);
    let digest = registry
        .push_blob(&repo, &blob)
        .await
        .expect("push with the ECR token");
    assert_eq!(
        registry.pull_blob(&repo, &digest).await.expect("pull"),
        blob
    );

    let wrong = Registry::new(
        env.get("PROMOTER_TEST_ECR_REGISTRY"),
        &env.ca_pem(),
        Auth::Basic {
            user,
            password: "not-the-token".into(),
        },
    );
    assert_eq!(
        wrong.pull_blob(&repo, &digest).await,
        Err(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        wrong.push_blob(&repo, b"x").await,
        Err(StatusCode::UNAUTHORIZED)
    );
    let anonymous = Registry::new(
        env.get("PROMOTER_TEST_ECR_REGISTRY"),
        &env.ca_pem(),
        Auth::Anonymous,
    );
    assert_eq!(
        anonymous.pull_blob(&repo, &digest).await,
        Err(StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn quay_registry_takes_its_robot_account() {
    let env = TestEnv::load();
    let repo = unique_name("smoke/quay");
    let robot = Auth::Basic {
        user: env.get("PROMOTER_TEST_QUAY_USER").into(),
        password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
    };
    let registry = Registry::new(env.get("PROMOTER_TEST_QUAY_REGISTRY"), &env.ca_pem(), robot);
    let image = TestImage::new(&repo);
    let digest = registry
        .push_image(&repo, &image, "v1")
        .await
        .expect("push an image");
    assert_eq!(registry.manifest_digest(&repo, "v1").await, Ok(digest));
    assert_eq!(
        registry
            .pull_blob(&repo, &crate::oci::sha256(&image.layer))
            .await
            .expect("pull"),
        image.layer
    );

    let wrong = Registry::new(
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &env.ca_pem(),
        Auth::Basic {
            user: env.get("PROMOTER_TEST_QUAY_USER").into(),
            password: "wrong".into(),
        },
    );
    assert_eq!(
        wrong.manifest_digest(&repo, "v1").await,
        Err(StatusCode::UNAUTHORIZED)
    );
}

#[tokio::test]
async fn public_registry_runs_the_bearer_flow_with_ecr_public_tokens() {
    let env = TestEnv::load();
    let alias = env.get("PROMOTER_TEST_PUBLIC_ALIAS");
    let name = unique_name("smoke-public");
    aws::ecr_public_client(&env)
        .await
        .create_repository()
        .repository_name(&name)
        .send()
        .await
        .expect("CreateRepository on the ECR Public stand-in");
    let repo = format!("{alias}/{name}");
    let token = aws::ecr_public_registry_password(&env).await;
    let host = env.get("PROMOTER_TEST_PUBLIC_REGISTRY");

    let pusher = Registry::new(
        host,
        &env.ca_pem(),
        Auth::Bearer {
            basic: Some(("AWS".into(), token.clone())),
        },
    );
    let blob = payload(&repo);
    let digest = pusher
        .push_blob(&repo, &blob)
        .await
        .expect("push with a bearer token");

    // ECR Public serves anonymous pulls; pushes need the token.
    let anonymous = Registry::new(host, &env.ca_pem(), Auth::Bearer { basic: None });
    assert_eq!(
        anonymous
            .pull_blob(&repo, &digest)
            .await
            .expect("anonymous pull"),
        blob
    );
    assert_eq!(
        anonymous.push_blob(&repo, b"nope").await,
        Err(StatusCode::UNAUTHORIZED)
    );

    // No token at all: the registry itself refuses, so the bearer check is real.
    let no_token = Registry::new(host, &env.ca_pem(), Auth::Anonymous);
    assert_eq!(
        no_token.pull_blob(&repo, &digest).await,
        Err(StatusCode::UNAUTHORIZED)
    );

    // Wrong credentials are refused by the realm.
    let wrong = Registry::new(
        host,
        &env.ca_pem(),
        Auth::Bearer {
            basic: Some(("AWS".into(), "forged".into())),
        },
    );
    assert_eq!(
        wrong.pull_blob(&repo, &digest).await,
        Err(StatusCode::UNAUTHORIZED)
    );

    // Like ECR Public, a push to a repository nobody created is refused.
    let uncreated = format!("{alias}/{}", unique_name("never-created"));
    assert_eq!(
        pusher.push_blob(&uncreated, b"x").await,
        Err(StatusCode::UNAUTHORIZED)
    );
}
