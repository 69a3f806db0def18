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
fn promotions_gauge(text: &str) -> f64 {
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
async fn a_mirror_whose_target_changes_starts_from_a_full_listing() {
    let cluster = Cluster::start("op-ledger").await;
    let quay = quay_registry(&cluster);
    let quay_host = cluster.env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let source = unique_name("mirror/op-ledger-source");
    let mut digests = Vec::new();
    for i in 0..10 {
        let tag = format!("1.{i}.0");
        let image = TestImage::new(&format!("{source}-{tag}"));
        digests.push((
            tag.clone(),
            quay.push_image(&source, &image, &tag).await.unwrap(),
        ));
    }
    let first = unique_name("mirror/op-ledger-first");
    let second = unique_name("mirror/op-ledger-second");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let spec = |target: &str| {
        json!({
            "source": {"repository": format!("{quay_host}/{source}")},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/{target}")}],
            "interval": "1h",
        })
    };
    let name = create_mirror(&cluster, spec(&first)).await;
    let api: Api<RegistryMirror> = cluster.typed();
    let in_sync = |generation: i64| {
        let api = api.clone();
        let name = name.clone();
        move || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let status = api.get(&name).await.ok()?.status?;
                (status.observed_generation == Some(generation)
                    && status.tags.as_ref()?.in_sync == 10)
                    .then_some(())
            }
        }
    };
    operator
        .eventually("10 tags in sync at the first target", in_sync(1))
        .await;

    // Same target name, another repository: nothing there yet.
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": spec(&second)})),
    )
    .await
    .unwrap();
    operator
        .eventually("10 tags in sync at the new target", in_sync(2))
        .await;
    for (tag, digest) in &digests {
        assert_eq!(
            &quay.manifest_digest(&second, tag).await.unwrap(),
            digest,
            "{tag}"
        );
    }
}
