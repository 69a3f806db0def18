//! Credentials from Secrets: a dockerconfigjson Secret for a registry the
//! configuration does not declare, rotated while the object is stalled on
//! it (the change re-queues the object and the next copy uses it); and the
//! operator without its Secrets rule, which fails visibly.

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, is, public_key_secret};
use crate::world::{GOOD, Key, TAG, World, promotion, signed_kms_policy};

fn docker_config(host: &str, user: &str, password: &str) -> Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    json!({"auths": {host: {"auth": auth}}})
}

fn secret(name: &str, document: &Value) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": document.to_string()},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_rotated_dockerconfig_secret_is_used_on_the_next_copy() {
    let world = World::new().await;
    let cluster = Cluster::start("op-secret").await;
    // localhost:<port> is the Quay registry under a name the configuration
    // does not declare: only the object's Secret authenticates there.
    let host = world
        .env
        .get("PROMOTER_TEST_QUAY_REGISTRY")
        .replace("127.0.0.1", "localhost");
    let user = world.env.get("PROMOTER_TEST_QUAY_USER").to_string();
    let password = world.env.get("PROMOTER_TEST_QUAY_PASSWORD").to_string();
    let secrets: Api<Secret> = cluster.typed();
    secrets
        .create(
            &PostParams::default(),
            &secret(
                "quay-robot",
                &docker_config(&host, &user, "not-the-password"),
            ),
        )
        .await
        .expect("creating the Secret");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let source = world.source("op-secret", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, _) = world.quay_target("op-secret");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([{
                "name": "quay",
                "repository": format!("{host}/{quay_name}"),
                "tags": [TAG],
                "credentials": {"secretRef": {"name": "quay-robot"}},
            }]),
        ),
    )
    .await;
    let stalled = operator
        .wait_status(&cluster, &name, "Stalled=True AuthenticationFailed", |s| {
            is(s, "Stalled", ("True", "AuthenticationFailed"))
        })
        .await;
    let message = &stalled
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(!message.contains("not-the-password"), "{message}");

    // Rotated: the Secret's change re-queues the stalled object.
    let rotated = json!({"stringData": {".dockerconfigjson": docker_config(&host, &user, &password).to_string()}});
    secrets
        .patch(
            "quay-robot",
            &PatchParams::default(),
            &Patch::Merge(&rotated),
        )
        .await
        .expect("rotating the Secret");
    operator
        .wait_status(&cluster, &name, "Ready=True with the rotated Secret", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
    let log = operator.log();
    assert!(
        !log.contains(&password) && !log.contains("not-the-password"),
        "a credential was logged"
    );
}

#[tokio::test]
async fn without_its_secrets_rule_the_operator_is_not_ready_and_says_why() {
    let world = World::new().await;
    let cluster = Cluster::start("op-rbac").await;
    let mut operator = Operator::start(&cluster, Rbac::Without("secrets"), &[]).await;
    let source = world.source("op-rbac", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    world.sign(&source, Key::Signer);
    public_key_secret(&cluster, &world).await;
    let (_, quay_repository) = world.quay_target("op-rbac");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            signed_kms_policy(),
            json!([crate::world::quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    // The object says what is missing...
    let status = operator
        .wait_status(&cluster, &name, "Stalled=True AccessDenied", |s| {
            is(s, "Stalled", ("True", "AccessDenied"))
        })
        .await;
    let message = &status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message;
    assert!(message.contains("may not read Secret"), "{message}");
    // ...the readiness probe fails with the watch's error, and the log says so.
    let url = format!("{}/readyz", operator.health_url);
    let body = operator
        .eventually("/readyz to report the failing watch", || {
            let url = url.clone();
            async move {
                let response = reqwest::get(&url).await.ok()?;
                let code = response.status().as_u16();
                let body = response.text().await.ok()?;
                (code == 503 && body.contains("a watch fails")).then_some(body)
            }
        })
        .await;
    assert!(body.contains("forbidden"), "{body}");
    let log = operator.log();
    assert!(log.contains("watching failed"), "{log}");
}
