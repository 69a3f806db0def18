//! The configuration file changing under a running operator: a promotion
//! stalled by the tenancy rules is reconciled again and promoted once the
//! file allows its namespace; nothing about the object changed.

use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, config_with, create, is};
use crate::world::{GOOD, TAG, World, promotion, quay_target};

/// Writes the test world's configuration with one tenancy rule for `namespace` to `path`.
fn with_tenancy(path: &std::path::Path, world: &World, namespace: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut config: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    config["tenancy"] = json!([{
        "namespaces": [namespace],
        "sources": [format!("{}/promote", world.env.get("PROMOTER_TEST_ECR_REGISTRY"))],
        "targets": [format!("{}/promote", world.env.get("PROMOTER_TEST_QUAY_REGISTRY"))],
    }]);
    // Written whole and renamed, as a ConfigMap volume update is.
    let next = path.with_extension("next");
    std::fs::write(&next, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[tokio::test]
async fn a_changed_configuration_reconciles_stalled_promotions_again() {
    let world = World::new().await;
    let cluster = Cluster::start("op-config").await;
    let config = config_with(&cluster, Vec::new());
    with_tenancy(&config, &world, "some-other-team");
    let mut operator = Operator::start_configured(&cluster, &config, &[]).await;
    let source = world.source("op-config", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-config");
    let name = create(
        &cluster,
        promotion(
            &world,
            &source,
            json!({"encryption": "KMS"}),
            json!([quay_target("quay", &quay_repository)]),
        ),
    )
    .await;
    operator
        .wait_status(&cluster, &name, "Stalled=True RepositoryNotAllowed", |s| {
            is(s, "Stalled", ("True", "RepositoryNotAllowed"))
        })
        .await;

    with_tenancy(&config, &world, &cluster.namespace);
    let status = operator
        .wait_status(
            &cluster,
            &name,
            "Ready=True after the configuration change",
            |s| is(s, "Ready", ("True", "Promoted")),
        )
        .await;
    assert_eq!(
        status.observed_generation,
        Some(1),
        "the object did not change"
    );
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
    assert!(
        operator.log().contains("the configuration changed"),
        "{}",
        operator.log()
    );
}
