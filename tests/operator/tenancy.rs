//! The object's own credentials win: a `credentials.secretRef` is used even
//! for a registry the operator's configuration declares, so a wrong
//! password fails the target instead of publishing with the operator's
//! credential, and a mirror that names a missing Secret is not "in sync".

use base64::Engine as _;
use image_promoter::api::RegistryMirror;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, is};
use crate::oci::{Auth, Registry, TestImage};
use crate::support::unique_name;
use crate::world::{GOOD, TAG, World, promotion};

fn wrong_password_secret(name: &str, host: &str, user: &str) -> Secret {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:not-the-password"));
    let document = json!({"auths": {host: {"auth": auth}}});
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": document.to_string()},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_wrong_secret_for_a_configured_registry_fails_instead_of_using_the_operators() {
    let world = World::new().await;
    let cluster = Cluster::start("op-own-secret").await;
    // The Quay registry under the very name the configuration declares (with
    // the operator's robot account).
    let host = world.env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let user = world.env.get("PROMOTER_TEST_QUAY_USER").to_string();
    let secrets: Api<Secret> = cluster.typed();
    secrets
        .create(
            &PostParams::default(),
            &wrong_password_secret("team-robot", &host, &user),
        )
        .await
        .expect("creating the Secret");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let source = world.source("op-own-secret", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-own-secret");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([{
                "name": "quay",
                "repository": quay_repository,
                "tags": [TAG],
                "credentials": {"secretRef": {"name": "team-robot"}},
            }]),
        ),
    )
    .await;
    let status = operator
        .wait_status(&cluster, &name, "Stalled=True AuthenticationFailed", |s| {
            is(s, "Stalled", ("True", "AuthenticationFailed"))
                || is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert!(
        is(&status, "Stalled", ("True", "AuthenticationFailed")),
        "published with the operator's credential instead of the object's Secret: {:?}",
        status.conditions
    );
    assert!(
        world.quay_tag(&quay_name, TAG).await.is_err(),
        "nothing was published"
    );
    assert!(!operator.log().contains("not-the-password"));
}

/// Creates a RegistryMirror with `spec` in the cluster's namespace; its name.
async fn create_mirror(cluster: &Cluster, spec: Value) -> String {
    let name = unique_name("mirror");
    cluster
        .create(&json!({
            "apiVersion": "imagepromoter.dev/v1alpha1",
            "kind": "RegistryMirror",
            "metadata": {"name": name, "namespace": cluster.namespace},
            "spec": spec,
        }))
        .await
        .expect("creating the RegistryMirror");
    name
}

#[tokio::test]
async fn a_mirror_naming_a_missing_secret_is_not_in_sync() {
    let cluster = Cluster::start("op-missing-secret").await;
    let env = &cluster.env;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let quay = Registry::new(
        &quay_host,
        &env.ca_pem(),
        Auth::Basic {
            user: env.get("PROMOTER_TEST_QUAY_USER").into(),
            password: env.get("PROMOTER_TEST_QUAY_PASSWORD").into(),
        },
    );
    let source = unique_name("mirror/missing-secret-source");
    let image = TestImage::new(&source);
    quay.push_image(&source, &image, "1.0.0")
        .await
        .expect("push");
    let target = unique_name("mirror/missing-secret-target");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let name = create_mirror(
        &cluster,
        json!({
            // One host, one set of credentials: the object's own Secret for both.
            "source": {
                "repository": format!("{quay_host}/{source}"),
                "credentials": {"secretRef": {"name": "does-not-exist"}},
            },
            "targets": [{
                "name": "quay",
                "repository": format!("{quay_host}/{target}"),
                "credentials": {"secretRef": {"name": "does-not-exist"}},
            }],
            "interval": "1m",
        }),
    )
    .await;
    operator.wait_ready().await;
    let api: Api<RegistryMirror> = cluster.typed();
    let status = operator
        .eventually("the mirror failed on its Secret, or in sync", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let status = api.get(&name).await.ok()?.status?;
                let failed = status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.reason == "CredentialsNotFound");
                let in_sync = status.tags.as_ref().is_some_and(|t| t.in_sync > 0);
                (failed || in_sync).then_some(status)
            }
        })
        .await;
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False", "{:?}", status.conditions);
    assert_eq!(
        ready.reason, "CredentialsNotFound",
        "{:?}",
        status.conditions
    );
    assert!(
        ready.message.contains("does-not-exist"),
        "{}",
        ready.message
    );
    assert!(
        quay.manifest_digest(&target, "1.0.0").await.is_err(),
        "nothing was mirrored with the operator's credential"
    );
}
