//! Registries misbehaving under the operator, through the fault-injecting
//! proxy of the fault tests: a burst of 503 at a target is reported as
//! Reconciling and retried with backoff until Ready; an object deleted while its copy hangs has the copy cancelled and
//! no tag written.

use std::time::Duration;

use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, config_with, create, hanging_source, is};
use crate::proxy::{Fault, Proxy, Rule};
use crate::world::{GOOD, TAG, World, promotion};
use image_promoter::api::ImagePromotion;
use kube::Api;
use kube::api::DeleteParams;

#[tokio::test]
async fn a_burst_of_503_at_a_target_is_retried_until_ready() {
    let world = World::new().await;
    let cluster = Cluster::start("op-503").await;
    let burst = Rule::new(
        "PUT",
        "^/v2/.*/manifests/",
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    )
    .times(6);
    let proxy = Proxy::start(
        world.env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &world.env.ca_pem(),
        vec![burst],
    )
    .await;
    let password_file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(crate::support::unique_name("quay-password"));
    std::fs::write(&password_file, world.env.get("PROMOTER_TEST_QUAY_PASSWORD")).unwrap();
    let config = config_with(
        &cluster,
        vec![json!({
            "host": proxy.host(),
            "plainHttp": true,
            "auth": {"basic": {
                "username": world.env.get("PROMOTER_TEST_QUAY_USER"),
                "passwordFile": password_file,
            }},
        })],
    );
    let mut operator = Operator::start_configured(&cluster, &config, &[]).await;
    let source = world.source("op-503", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, _) = world.quay_target("op-503");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([{"name": "quay", "repository": format!("{}/{quay_name}", proxy.host()), "tags": [TAG]}]),
        ),
    )
    .await;
    // Six 503s outlast the client's own six attempts: the reconcile reports
    // the transient failure and the object is retried with backoff.
    let retrying = operator
        .wait_status(
            &cluster,
            &name,
            "Reconciling=True RegistryUnavailable",
            |s| is(s, "Reconciling", ("True", "RegistryUnavailable")),
        )
        .await;
    assert!(retrying.conditions.iter().all(|c| c.type_ != "Stalled"));
    let target = &retrying.targets[0];
    assert!(
        target
            .message
            .as_deref()
            .is_some_and(|m| m.contains("retried with backoff")),
        "{target:?}"
    );
    operator
        .wait_status(&cluster, &name, "Ready=True after the burst", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(proxy.faulted().len(), 6, "{}", proxy.summary());
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
}

#[tokio::test]
async fn an_object_deleted_mid_copy_has_its_copy_cancelled_and_no_tag_written() {
    let world = World::new().await;
    let cluster = Cluster::start("op-delete").await;
    // The source registry behind a proxy whose blob reads hang.
    let (proxy, config) = hanging_source(&world, &cluster, None).await;
    let mut operator = Operator::start_configured(&cluster, &config, &[]).await;
    let source = world.source("op-delete", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-delete");
    let mut object = promotion(
        &world,
        &source,
        json!({"encryption": "KMS"}),
        json!([{"name": "quay", "repository": quay_repository, "tags": [TAG]}]),
    );
    object["spec"]["source"]["image"] = json!(format!("{}/{}:{TAG}", proxy.host(), source.name));
    let name = create(&cluster, object).await;
    proxy
        .wait_for("a hanging blob read", Duration::from_secs(60), |log| {
            log.iter().any(|e| e.fault.is_some())
        })
        .await;
    let api: Api<ImagePromotion> = cluster.typed();
    api.delete(&name, &DeleteParams::default())
        .await
        .expect("deleting the ImagePromotion");
    operator.wait_log("the copy was cancelled").await;
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "a tag was written"
    );
    let log = operator.log();
    let cancelled = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| {
            l["msg"]
                .as_str()
                .is_some_and(|m| m.contains("the copy was cancelled"))
        })
        .unwrap_or_else(|| panic!("no cancellation line in\n{log}"));
    assert_eq!(
        (&cancelled["namespace"], &cancelled["name"]),
        (&json!(cluster.namespace), &json!(name)),
        "the cancellation names the object: {cancelled}"
    );
}
