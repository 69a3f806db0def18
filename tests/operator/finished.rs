//! A finished promotion stays finished: a tag added to a Ready promotion is
//! published and listed in its status, after which each resync is only a
//! drift check (a HEAD per write-once tag, nothing written), so a floating
//! tag another promotion moved later is never moved back. A drift check
//! that cannot run says so (condition, event, metric).

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, events, is, metric};
use crate::world::{GOOD, TAG, World, promotion};
use image_promoter::api::ImagePromotion;

/// The sum of every series of `name` (any labels) in the metrics text.
fn total(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_tag_added_to_a_ready_promotion_is_published_and_latest_is_never_moved_back() {
    let world = World::new().await;
    let cluster = Cluster::start("op-finished").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &["--resync-interval", "2s"]).await;
    let first = world.source("op-finished-a", GOOD).await;
    world.scan(&first, "COMPLETE", &[]).await;
    let (quay_name, quay_repository) = world.quay_target("op-finished");
    let target = |tags: &[&str]| json!([{"name": "quay", "repository": quay_repository, "tags": tags, "floatingTags": ["latest"]}]);
    let a = create(
        &cluster,
        promotion(
            &world,
            &first,
            json!({"encryption": "KMS"}),
            target(&[TAG, "latest"]),
        ),
    )
    .await;
    operator
        .wait_status(&cluster, &a, "A Ready", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;

    // A tag is added to the Ready promotion: published and listed.
    let api: Api<ImagePromotion> = cluster.typed();
    api.patch(
        &a,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"targets": target(&[TAG, "latest", "1.0"])}})),
    )
    .await
    .unwrap();
    let status = operator
        .wait_status(&cluster, &a, "A Ready with the added tag", |s| {
            s.observed_generation == Some(2)
                && is(s, "Ready", ("True", "Promoted"))
                && s.targets
                    .first()
                    .is_some_and(|t| t.tags.contains(&"1.0".to_string()))
        })
        .await;
    assert_eq!(
        status.targets[0].tags.len(),
        3,
        "{:?}",
        status.targets[0].tags
    );
    assert_eq!(
        world.quay_tag(&quay_name, "1.0").await,
        Ok(first.digest.clone())
    );

    // B moves latest to a newer image.
    let second = world.source("op-finished-b", GOOD).await;
    world.scan(&second, "COMPLETE", &[]).await;
    let mut b = promotion(
        &world,
        &second,
        json!({"encryption": "KMS"}),
        json!([
            {"name": "quay", "repository": quay_repository, "tags": ["2.0.0", "latest"], "floatingTags": ["latest"]}
        ]),
    );
    b["metadata"]["name"] = json!(format!("{a}-b"));
    let b = create(&cluster, b).await;
    operator
        .wait_status(&cluster, &b, "B Ready", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;
    assert_eq!(
        world.quay_tag(&quay_name, "latest").await,
        Ok(second.digest.clone())
    );

    // Several resyncs of A (every 2 s): latest stays with B, and nothing is written.
    let quay_host = world.env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let text = operator.metrics().await;
    let reconciles = total(&text, "controller_runtime_reconcile_total", "");
    let puts = total(
        &text,
        "image_promoter_registry_requests_total",
        "method=\"PUT\"",
    );
    let heads = total(
        &text,
        "image_promoter_registry_requests_total",
        &format!("registry=\"{quay_host}\",method=\"HEAD\""),
    );
    operator
        .wait_metric_at_least("controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"requeue_after\"}", reconciles + 8.0)
        .await;
    assert_eq!(
        world.quay_tag(&quay_name, "latest").await,
        Ok(second.digest.clone()),
        "a finished promotion moved latest back:\n{}",
        operator.log()
    );
    let text = operator.metrics().await;
    assert_eq!(
        total(
            &text,
            "image_promoter_registry_requests_total",
            "method=\"PUT\""
        ),
        puts,
        "a resync of a finished promotion writes nothing"
    );
    let more_heads = total(
        &text,
        "image_promoter_registry_requests_total",
        &format!("registry=\"{quay_host}\",method=\"HEAD\""),
    ) - heads;
    assert!(
        more_heads >= 4.0,
        "the resyncs HEAD the write-once tags: {more_heads}"
    );
}

#[tokio::test]
async fn a_drift_check_that_cannot_run_is_never_silent() {
    let world = World::new().await;
    let cluster = Cluster::start("op-unchecked").await;
    // localhost:<port> is the Quay registry under a name the configuration
    // does not declare: only the object's Secret reaches it.
    let host = world
        .env
        .get("PROMOTER_TEST_QUAY_REGISTRY")
        .replace("127.0.0.1", "localhost");
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!(
            "{}:{}",
            world.env.get("PROMOTER_TEST_QUAY_USER"),
            world.env.get("PROMOTER_TEST_QUAY_PASSWORD")
        ),
    );
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "quay-robot"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json!({"auths": {host.clone(): {"auth": auth}}}).to_string()},
    }))
    .unwrap();
    let secrets: Api<Secret> = cluster.typed();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let mut operator = Operator::start(&cluster, Rbac::Full, &["--resync-interval", "2s"]).await;
    let source = world.source("op-unchecked", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (quay_name, _) = world.quay_target("op-unchecked");
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
    operator
        .wait_status(&cluster, &name, "Ready", |s| {
            is(s, "Ready", ("True", "Promoted"))
        })
        .await;

    secrets
        .delete("quay-robot", &DeleteParams::default())
        .await
        .unwrap();
    let status = operator
        .wait_status(&cluster, &name, "DriftCheckFailed=True", |s| {
            is(s, "DriftCheckFailed", ("True", "CredentialsNotFound"))
        })
        .await;
    assert!(
        is(&status, "Ready", ("True", "Promoted")),
        "the images are where they were"
    );
    let noted = events(&cluster.client, &cluster.namespace, &name).await;
    assert!(
        noted
            .iter()
            .any(|(r, _, n)| r == "DriftCheckFailed" && n.contains("quay-robot")),
        "{noted:?}"
    );
    let text = operator.metrics().await;
    assert!(
        metric(
            &text,
            "image_promoter_drift_check_failures_total{reason=\"CredentialsNotFound\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let status = operator
        .wait_status(&cluster, &name, "the drift check running again", |s| {
            s.conditions.iter().all(|c| c.type_ != "DriftCheckFailed")
        })
        .await;
    assert!(is(&status, "Ready", ("True", "Promoted")));
    assert_eq!(
        world.quay_tag(&quay_name, TAG).await,
        Ok(source.digest.clone())
    );
}
