//! `kubectl get promotions` and `kubectl get mirrors` print the documented
//! columns for objects with a realistic status, through the real kubectl.

use image_promoter::api::{ImagePromotion, RegistryMirror};
use kube::api::{Api, Patch, PatchParams, PostParams};
use regex::Regex;
use serde_json::json;

use crate::cluster::Cluster;
use crate::fixtures;

/// The header and the rows of a kubectl table; kubectl pads columns with at
/// least three spaces, and no cell here contains two in a row.
fn table(output: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let separator = Regex::new(r" {2,}").unwrap();
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let split = |line: &str| {
        separator
            .split(line.trim_end())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let header = split(
        lines
            .next()
            .unwrap_or_else(|| panic!("no header in {output:?}")),
    );
    (header, lines.map(split).collect())
}

fn assert_age(cell: &str) {
    let age = Regex::new(r"^[0-9]+(s|m[0-9]*s?)$").unwrap();
    assert!(
        age.is_match(cell),
        "an age of seconds or minutes, got {cell:?}"
    );
}

async fn promoted(cluster: &Cluster) {
    let api: Api<ImagePromotion> = cluster.typed();
    api.create(&PostParams::default(), &fixtures::promotion("app"))
        .await
        .unwrap();
    let apply = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "status": fixtures::promoted_status(),
    });
    api.patch_status(
        "app",
        &PatchParams::apply("image-promoter").force(),
        &Patch::Apply(&apply),
    )
    .await
    .unwrap();
}

async fn drifted(cluster: &Cluster) {
    let api: Api<RegistryMirror> = cluster.typed();
    api.create(&PostParams::default(), &fixtures::mirror("operator"))
        .await
        .unwrap();
    let apply = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "RegistryMirror",
        "status": fixtures::drifted_status(),
    });
    api.patch_status(
        "operator",
        &PatchParams::apply("image-promoter").force(),
        &Patch::Apply(&apply),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn kubectl_get_promotions_prints_source_digest_targets_ready_age() {
    let cluster = Cluster::start("api-print-promotions").await;
    promoted(&cluster).await;
    let ns = cluster.namespace.as_str();

    let (header, rows) = table(&cluster.kubectl(&["get", "promotions", "-n", ns]));
    assert_eq!(
        header,
        [
            "NAME",
            "SOURCE",
            "DIGEST",
            "TARGETS",
            "READY",
            "COMPLIANT",
            "AGE"
        ]
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0][..6],
        [
            "app",
            fixtures::SOURCE_IMAGE,
            fixtures::DIGEST,
            "2/2",
            "True",
            "True"
        ]
    );
    assert_age(&rows[0][6]);

    let (header, rows) = table(&cluster.kubectl(&["get", "promotions", "-n", ns, "-o", "wide"]));
    assert_eq!(
        header,
        [
            "NAME",
            "SOURCE",
            "DIGEST",
            "TARGETS",
            "READY",
            "COMPLIANT",
            "STATUS",
            "AGE"
        ]
    );
    assert_eq!(rows[0][6], fixtures::PROMOTED_MESSAGE);

    for name in [
        "imagepromotions",
        "imagepromotion",
        "promotion",
        "promotions.imagepromoter.dev",
    ] {
        let (_, rows) = table(&cluster.kubectl(&["get", name, "-n", ns]));
        assert_eq!(rows.len(), 1, "kubectl get {name}: {rows:?}");
        assert_eq!(rows[0][0], "app", "kubectl get {name}");
    }
}

#[tokio::test]
async fn kubectl_get_mirrors_prints_source_tier_sync_counts_ready_last_sync_age() {
    let cluster = Cluster::start("api-print-mirrors").await;
    drifted(&cluster).await;
    let ns = cluster.namespace.as_str();

    let (header, rows) = table(&cluster.kubectl(&["get", "mirrors", "-n", ns]));
    assert_eq!(
        header,
        [
            "NAME",
            "SOURCE",
            "TIER",
            "IN SYNC",
            "DRIFTED",
            "READY",
            "LAST SYNC",
            "AGE"
        ]
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0][..7],
        [
            "operator",
            fixtures::MIRROR_SOURCE,
            "Gold",
            "42",
            "1",
            "False",
            "2d2h"
        ]
    );
    assert_age(&rows[0][7]);

    for name in ["registrymirrors", "registrymirror", "mirror"] {
        let (_, rows) = table(&cluster.kubectl(&["get", name, "-n", ns]));
        assert_eq!(rows[0][0], "operator", "kubectl get {name}");
    }
}

#[tokio::test]
async fn kubectl_lists_both_kinds_by_category_and_explains_fields() {
    let cluster = Cluster::start("api-category").await;
    promoted(&cluster).await;
    drifted(&cluster).await;
    let ns = cluster.namespace.as_str();

    let all = cluster.kubectl(&["get", "imagepromoter", "-n", ns, "-o", "name"]);
    let mut names: Vec<_> = all.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "imagepromotion.imagepromoter.dev/app",
            "registrymirror.imagepromoter.dev/operator"
        ]
    );

    // kubectl explain wraps lines; compare with whitespace collapsed.
    let explain = |field: &str| {
        let text = cluster.kubectl(&["explain", field]);
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let text = explain("imagepromotion.spec.source.image");
    assert!(
        text.contains("Full image reference in internal ECR with a tag"),
        "{text}"
    );
    let text = explain("mirror.spec.interval");
    assert!(
        text.contains("as a duration such as `10m` or `1h` (at least 1m)"),
        "{text}"
    );
}
