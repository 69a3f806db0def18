//! A sync is paced by its budget, not by its own status writes: a mirror of
//! 12 tags with `maxCopiesPerSync: 2` and an hour's interval copies 2 tags,
//! writes its status, and copies nothing more while the interval runs; a
//! requested reconcile (`image-promoter reconcile mirror`) is one more sync.

use std::time::{Duration, Instant};

use image_promoter::api::RegistryMirror;
use kube::Api;
use serde_json::json;

use crate::cluster::Cluster;
use crate::harness::{Operator, Rbac};
use crate::mirrored::{create_mirror, quay_registry};
use crate::oci::TestImage;
use crate::support::unique_name;

/// How long the test watches for copies that must not happen.
const WATCHED: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_backfill_copies_its_budget_once_per_interval() {
    let cluster = Cluster::start("op-paced").await;
    let quay = quay_registry(&cluster);
    let quay_host = cluster.env.get("PROMOTER_TEST_QUAY_REGISTRY").to_string();
    let source = unique_name("mirror/op-paced-source");
    for i in 0..12 {
        let tag = format!("1.{i}.0");
        let image = TestImage::new(&format!("{source}-{tag}"));
        quay.push_image(&source, &image, &tag).await.unwrap();
    }
    let target = unique_name("mirror/op-paced-target");
    let mut operator = Operator::start(&cluster, Rbac::Full, &[]).await;
    let name = create_mirror(
        &cluster,
        json!({
            "source": {"repository": format!("{quay_host}/{source}")},
            "targets": [{"name": "quay", "repository": format!("{quay_host}/{target}")}],
            "interval": "1h",
            "maxCopiesPerSync": 2,
        }),
    )
    .await;
    let api: Api<RegistryMirror> = cluster.typed();
    operator
        .eventually("the first sync's status (2 in sync)", || {
            let api = api.clone();
            let name = name.clone();
            async move {
                let status = api.get(&name).await.ok()?.status?;
                (status.tags.as_ref()?.in_sync == 2).then_some(())
            }
        })
        .await;

    // The status write woke the mirror; nothing more may be copied before the interval.
    let start = Instant::now();
    while start.elapsed() < WATCHED {
        let copied = quay.tags(&target).await.unwrap_or_default();
        assert!(
            copied.len() <= 2,
            "{} tags copied {:?} after the first sync, with a budget of 2 per hour:\n{}",
            copied.len(),
            start.elapsed(),
            operator.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = api.get(&name).await.unwrap().status.unwrap();
    assert_eq!(status.tags.as_ref().unwrap().in_sync, 2, "{status:#?}");
    assert_eq!(status.tags.as_ref().unwrap().pending, 10, "{status:#?}");

    // A requested reconcile is one more sync, with one more budget.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_image-promoter"))
        .args([
            "reconcile",
            "mirror",
            &name,
            "-n",
            &cluster.namespace,
            "--timeout",
            "90s",
        ])
        .env("KUBECONFIG", cluster.env.get("KUBECONFIG"))
        .output()
        .expect("running image-promoter reconcile");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert_eq!(output.status.code(), Some(1), "still backfilling: {text}");
    assert!(text.contains("Ready=False Backfilling"), "{text}");
    let status = api.get(&name).await.unwrap().status.unwrap();
    assert_eq!(status.tags.as_ref().unwrap().in_sync, 4, "{status:#?}");
    assert_eq!(quay.tags(&target).await.unwrap().len(), 4);
}
