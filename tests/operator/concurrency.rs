//! `--concurrency` bounds the reconciles at work in the whole process, across
//! both kinds: with `--concurrency 1`, a promotion whose copy hangs keeps a
//! RegistryMirror of the same process waiting, and the mirror syncs once the
//! promotion is deleted (its copy cancelled).

use std::time::{Duration, Instant};

use image_promoter::api::{ImagePromotion, RegistryMirror};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, create, hanging_source, metric};
use crate::mirrored::{create_mirror, quay_registry};
use crate::oci::TestImage;
use crate::support::unique_name;
use crate::world::{GOOD, TAG, World, promotion};

/// How long the test watches for a mirror sync that must not happen.
const WATCHED: Duration = Duration::from_secs(10);

#[tokio::test]
async fn one_permit_is_shared_by_both_kinds() {
    let world = World::new().await;
    let cluster = Cluster::start("op-permits").await;
    let (proxy, config) = hanging_source(&world, &cluster, None).await;
    let mut operator = Operator::start_configured(&cluster, &config, &["--concurrency", "1"]).await;
    let source = world.source("op-permits", GOOD).await;
    world.scan(&source, "COMPLETE", &[]).await;
    let (_, quay_repository) = world.quay_target("op-permits");
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

    let quay = quay_registry(&cluster);
    let quay_host = cluster.env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let mirror_source = unique_name("mirror/op-permits-source");
    let image = TestImage::new(&mirror_source);
    quay.push_image(&mirror_source, &image, "1.0.0")
        .await
        .unwrap();
    let target = unique_name("mirror/op-permits-target");
    let mirror = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{quay_host}/{mirror_source}")},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/{target}")}],
            "interval": "1h",
        }),
    )
    .await;
    let mirrors: Api<RegistryMirror> = cluster.typed();
    let start = Instant::now();
    while start.elapsed() < WATCHED {
        let synced = mirrors.get(&mirror).await.unwrap().status.is_some();
        assert!(
            !synced,
            "the mirror synced while the promotion held the only permit:\n{}",
            operator.log()
        );
        let text = operator.metrics().await;
        // One permit for the process: the workers of both controllers together.
        let workers: f64 = ["imagepromotion", "registrymirror"]
            .iter()
            .map(|c| {
                metric(
                    &text,
                    &format!("controller_runtime_active_workers{{controller=\"{c}\"}}"),
                )
                .unwrap_or_else(|| panic!("no active workers gauge for {c}:\n{text}"))
            })
            .sum();
        assert!(workers <= 1.0, "{text}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let promotions: Api<ImagePromotion> = cluster.typed();
    promotions
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    operator
        .eventually("the mirror to sync once the permit is free", || {
            let mirrors = mirrors.clone();
            let mirror = mirror.clone();
            async move {
                let status = mirrors.get(&mirror).await.ok()?.status?;
                (status.tags.as_ref()?.in_sync == 1).then_some(())
            }
        })
        .await;
}
