//! Nothing outlives its object: deleted promotions leave no gauge behind,
//! and a mirror whose target changes starts again from a full listing
//! instead of trusting what its old target held.

use image_promoter::api::RegistryMirror;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac, create, is};
use crate::mirrored::{create_mirror, quay_registry};
use crate::oci::TestImage;
use crate::support::unique_name;
use crate::world::{GOOD, World, promotion, quay_target};
use image_promoter::api::ImagePromotion;

/// The sum of `image_promoter_promotions` over every state.
pub fn promotions_gauge(text: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("image_promoter_promotions{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn deleted_promotions_leave_no_gauge_behind() {
    let world = World::new().await;
    let cluster = Cluster::start("op-forget").await;
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let mut names = Vec::new();
    for prefix in ["op-forget-a", "op-forget-b"] {
        let source = world.source(prefix, GOOD).await;
        world.scan(&source, "COMPLETE", &[]).await;
        let (_, repository) = world.quay_target(prefix);
        names.push(
            create(
                &cluster,
                promotion(
                    &world,
                    &source,
                    json!({"encryption": "KMS"}),
                    json!([quay_target("quay", &repository)]),
                ),
            )
            .await,
        );
    }
    for name in &names {
        operator
            .wait_status(&cluster, name, "Ready", |s| {
                is(s, "Ready", ("True", "Promoted"))
            })
            .await;
    }
    let url = operator.metrics_url.clone();
    operator
        .eventually("the gauges to count 2 promotions", || {
            let url = url.clone();
            async move {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                (promotions_gauge(&text) == 2.0).then_some(())
            }
        })
        .await;

    let api: Api<ImagePromotion> = cluster.typed();
    for name in &names {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    operator
        .eventually("the gauges to count no promotion", || {
            let url = url.clone();
            async move {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                (promotions_gauge(&text) == 0.0).then_some(())
            }
        })
        .await;
}

#[tokio::test]
async fn a_mirror_whose_source_changes_starts_from_a_full_listing() {
    let cluster = Cluster::start("op-ledger").await;
    let quay = quay_registry(&cluster);
    let quay_host = cluster.env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    // Two sources with the same ten tag names and different images.
    let first = unique_name("mirror/op-ledger-first");
    let second = unique_name("mirror/op-ledger-second");
    let tags: Vec<String> = (0..10).map(|i| format!("1.{i}.0")).collect();
    for source in [&first, &second] {
        for tag in &tags {
            let image = TestImage::new(&format!("{source}-{tag}"));
            quay.push_image(source, &image, tag).await.unwrap();
        }
    }
    let target = unique_name("mirror/op-ledger-target");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let spec = |source: &str| {
        json!({
            "source": {"repository": format!("{quay_host}/{source}")},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/{target}")}],
            "interval": "1h",
        })
    };
    let name = create_mirror(&cluster, spec(&first)).await;
    let api: Api<RegistryMirror> = cluster.typed();
    let counts = |generation: i64| {
        let api = api.clone();
        let name = name.clone();
        move || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let status = api.get(&name).await.ok()?.status?;
                (status.observed_generation == Some(generation)).then_some(status.tags?)
            }
        }
    };
    let synced = operator
        .eventually("the first sync of the first source", counts(1))
        .await;
    assert_eq!(synced.in_sync, 10, "{synced:?}");

    // Another source: its tags are read again, and every one of them now
    // differs from what the target holds (reported as drift, never rewritten).
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": spec(&second)})),
    )
    .await
    .unwrap();
    let after = operator
        .eventually("the first sync of the new source", counts(2))
        .await;
    assert_eq!(
        (after.in_sync, after.drifted),
        (0, 10),
        "the old source's digests were trusted: {after:?}\n{}",
        operator.log()
    );
}

#[tokio::test]
async fn deleting_a_mirror_cancels_its_sync() {
    use crate::harness::config_with;
    use crate::proxy::{Fault, Proxy, Rule};
    use std::time::Duration;
    let cluster = Cluster::start("op-mirror-delete").await;
    let env = &cluster.env;
    let quay = quay_registry(&cluster);
    let source = unique_name("mirror/op-delete-source");
    let image = TestImage::new(&source);
    quay.push_image(&source, &image, "1.0.0").await.unwrap();
    // The Quay registry behind a proxy whose blob reads hang: a sync caught mid-copy.
    let proxy = Proxy::start(
        env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &env.ca_pem(),
        vec![Rule::new(
            "GET",
            "^/v2/.*/blobs/sha256:",
            Fault::StallAfter(0),
        )],
    )
    .await;
    let password_file =
        std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique_name("quay-password"));
    std::fs::write(&password_file, env.get("PROMOTER_TEST_QUAY_PASSWORD")).unwrap();
    let config = config_with(
        &cluster,
        vec![json!({
            "host": proxy.host(),
            "plainHttp": true,
            "auth": {"basic": {
                "username": env.get("PROMOTER_TEST_QUAY_USER"),
                "passwordFile": password_file,
            }},
        })],
    );
    let mut operator = Operator::start_configured(&cluster, &config, &[]).await;
    let quay_host = env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let target = unique_name("mirror/op-delete-target");
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{}/{source}", proxy.host())},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/{target}")}],
            "interval": "1h",
        }),
    )
    .await;
    proxy
        .wait_for("a hanging blob read", Duration::from_secs(60), |log| {
            log.iter().any(|e| e.fault.is_some())
        })
        .await;
    let api: Api<RegistryMirror> = cluster.typed();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    operator.wait_log("the sync was cancelled").await;
    assert_eq!(
        quay.manifest_digest(&target, "1.0.0").await,
        Err(reqwest::StatusCode::NOT_FOUND),
        "a tag was written for a deleted mirror"
    );
}
