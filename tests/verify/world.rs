//! The AWS side of the test world: an `SdkConfig` loaded the way the
//! operator loads it (explicit region and credentials standing in for IRSA),
//! the product's clients pointed at moto and the ECR Public stand-in, and
//! moto's test hook for scan findings.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ecr::config::Credentials;
use image_promoter::aws::{EcrInspector, EcrPublic, EcrRegistry, resolve_ecr_registry};

use crate::support::TestEnv;

/// The SDK configuration of the operator: the default loader, given the
/// test world's region and static credentials.
pub async fn sdk_config(env: &TestEnv) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(env.get("AWS_REGION").to_string()))
        .credentials_provider(Credentials::new(
            env.get("AWS_ACCESS_KEY_ID"),
            env.get("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "testenv",
        ))
        .load()
        .await
}

/// The internal registry: a loopback host, so region and account are given explicitly.
pub fn ecr_registry(env: &TestEnv) -> EcrRegistry {
    resolve_ecr_registry(
        env.get("PROMOTER_TEST_ECR_REGISTRY"),
        Some(env.get("AWS_REGION")),
        Some(env.get("PROMOTER_TEST_ECR_ACCOUNT")),
    )
    .expect("the test world's ECR registry with explicit region and account")
}

/// The product's ECR inspector, against moto.
pub async fn inspector(env: &TestEnv) -> EcrInspector {
    EcrInspector::new(
        &sdk_config(env).await,
        ecr_registry(env),
        Some(env.get("AWS_ENDPOINT_URL_ECR")),
    )
}

/// A plain SDK client for moto, to set up what the tests inspect.
pub async fn ecr_client(env: &TestEnv) -> aws_sdk_ecr::Client {
    let config = aws_sdk_ecr::config::Builder::from(&sdk_config(env).await)
        .endpoint_url(env.get("AWS_ENDPOINT_URL_ECR"))
        .build();
    aws_sdk_ecr::Client::from_conf(config)
}

/// The product's ECR Public client, against the stand-in.
pub async fn ecr_public(env: &TestEnv) -> EcrPublic {
    EcrPublic::new(
        &sdk_config(env).await,
        Some(env.get("AWS_ENDPOINT_URL_ECR_PUBLIC")),
    )
}

/// Queues a DescribeImageScanFindings answer in moto: the next call for
/// `result.imageId` in `result.repositoryName` (with the same imageId) returns it.
pub async fn inject_scan_result(env: &TestEnv, result: serde_json::Value) {
    let url = format!(
        "{}/moto-api/static/ecr/scan-finding-results",
        env.get("AWS_ENDPOINT_URL_ECR")
    );
    let response = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({
            "results": [result],
            "region": env.get("AWS_REGION"),
            "account_id": env.get("PROMOTER_TEST_ECR_ACCOUNT"),
        }))
        .send()
        .await
        .expect("POST to moto's scan-finding-results hook");
    assert!(
        response.status().is_success(),
        "moto refused the scan findings: {}",
        response.status()
    );
}
