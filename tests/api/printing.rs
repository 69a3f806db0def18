//! `kubectl get promotions` and `kubectl get mirrors` print the documented
//! columns for objects with a realistic status, through the real kubectl; the
//! default views of both kinds fit a 120-column terminal with realistic
//! names and long failure messages.

use image_promoter::api::conditions::{READY, RECONCILING, STALLED};
use image_promoter::api::{
    ConditionUpdate, ImagePromotion, ImagePromotionStatus, RegistryMirror, RegistryMirrorStatus,
    SystemClock, TagCounts, set_condition,
};
use image_promoter::controller::status::{SUMMARY_LENGTH, summary};
use kube::api::{Api, Patch, PatchParams, PostParams};
use regex::Regex;
use serde_json::json;

use crate::cluster::Cluster;
use crate::fixtures;

/// The header and the rows of a kubectl table; kubectl pads columns with at
/// least three spaces, and no cell here contains two in a row.
fn table(output: &str) -> (Vec<String>, Vec<Vec<String>>) {
    // kubectl starts each cell where its column's header starts; slicing at
    // those offsets keeps an empty cell (COMPLIANT before a first check) empty.
    let separator = Regex::new(r" {2,}").unwrap();
    let mut lines = output.lines().filter(|l| !l.trim().is_empty());
    let header_line = lines
        .next()
        .unwrap_or_else(|| panic!("no header in {output:?}"));
    let header: Vec<String> = separator
        .split(header_line.trim_end())
        .map(str::to_string)
        .collect();
    let mut starts = vec![0];
    for found in separator.find_iter(header_line.trim_end()) {
        starts.push(header_line[..found.end()].chars().count());
    }
    let split = |line: &str| {
        let chars: Vec<char> = line.chars().collect();
        starts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let end = starts.get(i + 1).copied().unwrap_or(chars.len());
                chars[start.min(chars.len())..end.min(chars.len())]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .collect::<Vec<_>>()
    };
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
async fn kubectl_get_promotions_prints_targets_ready_status_age_and_source_digest_when_wide() {
    let cluster = Cluster::start("api-print-promotions").await;
    promoted(&cluster).await;
    let ns = cluster.namespace.as_str();

    let (header, rows) = table(&cluster.kubectl(&["get", "promotions", "-n", ns]));
    assert_eq!(
        header,
        ["NAME", "TARGETS", "READY", "COMPLIANT", "STATUS", "AGE"]
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0][..5],
        ["app", "2/2", "True", "True", fixtures::PROMOTED_MESSAGE]
    );
    assert_age(&rows[0][5]);

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
    assert_eq!(
        rows[0][..7],
        [
            "app",
            fixtures::SOURCE_IMAGE,
            fixtures::DIGEST,
            "2/2",
            "True",
            "True",
            fixtures::PROMOTED_MESSAGE
        ]
    );

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
async fn kubectl_get_mirrors_prints_counts_ready_status_suspended_and_more_when_wide() {
    let cluster = Cluster::start("api-print-mirrors").await;
    drifted(&cluster).await;
    let ns = cluster.namespace.as_str();

    let (header, rows) = table(&cluster.kubectl(&["get", "mirrors", "-n", ns]));
    assert_eq!(
        header,
        [
            "NAME",
            "IN SYNC",
            "DRIFTED",
            "READY",
            "STATUS",
            "SUSPENDED",
            "AGE"
        ]
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0][..6],
        [
            "operator",
            "42",
            "1",
            "False",
            "TagsDrifted: 1 tag drifted: v1.2.0 at ecr-public",
            "false"
        ]
    );
    assert_age(&rows[0][6]);

    let (header, rows) = table(&cluster.kubectl(&["get", "mirrors", "-n", ns, "-o", "wide"]));
    assert_eq!(
        header,
        [
            "NAME",
            "SOURCE",
            "TIER",
            "IN SYNC",
            "DRIFTED",
            "READY",
            "STATUS",
            "SUSPENDED",
            "LAST SYNC",
            "AGE"
        ]
    );
    assert_eq!(
        [&rows[0][1], &rows[0][2], &rows[0][8]],
        [fixtures::MIRROR_SOURCE, "Gold", "2d2h"]
    );

    for name in ["registrymirrors", "registrymirror", "mirror"] {
        let (_, rows) = table(&cluster.kubectl(&["get", name, "-n", ns]));
        assert_eq!(rows[0][0], "operator", "kubectl get {name}");
    }
}

/// Ready and Reconciling or Stalled as the operator sets them, with the
/// summary it writes.
fn failing(
    ready: &str,
    reason: &str,
    message: &str,
    stalled: bool,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let mut conditions = Vec::new();
    let state = match ready {
        "True" => image_promoter::api::ConditionStatus::True,
        "Unknown" => image_promoter::api::ConditionStatus::Unknown,
        _ => image_promoter::api::ConditionStatus::False,
    };
    set_condition(
        &mut conditions,
        ConditionUpdate::new(READY, state, reason)
            .message(message)
            .generation(Some(1)),
        &SystemClock,
    );
    if ready != "True" {
        set_condition(
            &mut conditions,
            ConditionUpdate::new(if stalled { STALLED } else { RECONCILING }, true, reason)
                .message(message)
                .generation(Some(1)),
            &SystemClock,
        );
    }
    conditions
}

async fn apply_status<K>(api: &Api<K>, name: &str, kind: &str, status: serde_json::Value)
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let apply = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": kind,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply("image-promoter").force(),
        &Patch::Apply(&apply),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
}

/// Every line of `output` within `columns`.
fn assert_fits(output: &str, columns: usize) {
    for line in output.lines() {
        let width = line.chars().count();
        assert!(
            width <= columns,
            "{width} columns, more than {columns}:\n{line}\nin\n{output}"
        );
    }
}

#[tokio::test]
async fn the_default_views_fit_a_120_column_terminal_with_realistic_rows() {
    let cluster = Cluster::start("api-print-width").await;
    let ns = cluster.namespace.as_str();
    let ecr = "123456789012.dkr.ecr.eu-central-1.amazonaws.com";

    // Promotions: names as release pipelines write them, messages as the
    // operator writes them (the longest it writes are several sentences).
    let promotions: Api<ImagePromotion> = cluster.typed();
    let long_failure = "0 of 2 targets promoted; quay: the repository quay.io/acme-corp/payments-gateway does not exist and spec.targets[].createRepository is not set [RepositoryNotFound]; ecr-public: tag 2.14.0-rc.3 points at sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9, not the source [TagConflict]";
    let promotion_rows: [(&str, &str, &str, &str, bool); 4] = [
        (
            "payments-gateway-2-14-0-rc-3",
            "False",
            "RepositoryNotFound",
            long_failure,
            true,
        ),
        (
            "checkout-api-1-4-2",
            "True",
            "Promoted",
            "2/2 targets promoted",
            false,
        ),
        (
            "fraud-model-server-3-0-0",
            "Unknown",
            "ScanPending",
            "nothing copied yet: the image scan of sha256:6b3c1e0a4f2d is IN_PROGRESS. Checked again until the scan has completed",
            false,
        ),
        (
            "ledger-worker-0-9-17",
            "False",
            "VulnerabilitiesFound",
            "nothing copied: the source failed verification: 2 CRITICAL and 11 HIGH findings at or above HIGH are not ignored: CVE-2026-31337, CVE-2026-1000, CVE-2025-99999 and 10 more",
            true,
        ),
    ];
    for (name, ready, reason, message, stalled) in promotion_rows {
        let mut object = fixtures::promotion(name);
        object.spec.source.image = format!("{ecr}/payments/{name}:2.14.0-rc.3");
        promotions
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        let conditions = failing(ready, reason, message, stalled);
        let status = ImagePromotionStatus {
            observed_generation: Some(1),
            summary: summary(&conditions),
            conditions,
            source_digest: Some(fixtures::DIGEST.into()),
            targets_ready: Some(if ready == "True" { "2/2" } else { "0/2" }.into()),
            ..ImagePromotionStatus::default()
        };
        apply_status(&promotions, name, "ImagePromotion", json!(status)).await;
    }
    let output = cluster.kubectl(&["get", "promotions", "-n", ns]);
    assert_fits(&output, 120);
    let (header, rows) = table(&output);
    assert_eq!(
        header,
        ["NAME", "TARGETS", "READY", "COMPLIANT", "STATUS", "AGE"]
    );
    assert_eq!(rows.len(), 4, "{output}");
    let failed = rows
        .iter()
        .find(|r| r[0] == "payments-gateway-2-14-0-rc-3")
        .unwrap();
    assert_eq!(failed[4], "RepositoryNotFound: 0 of 2 targets promoted…");
    for row in &rows {
        assert!(row[4].chars().count() <= SUMMARY_LENGTH, "{row:?}");
    }
    // The digest is still one flag away.
    let wide = cluster.kubectl(&["get", "promotions", "-n", ns, "-o", "wide"]);
    assert!(wide.contains(fixtures::DIGEST), "{wide}");

    // Mirrors: long sources, every state, one suspended.
    let mirrors: Api<RegistryMirror> = cluster.typed();
    type MirrorRow<'a> = (
        &'a str,
        bool,
        &'a str,
        &'a str,
        &'a str,
        (i32, i32, i32, i32),
    );
    let mirror_rows: [MirrorRow<'_>; 4] = [
        (
            "quay-acme-payments-api",
            false,
            "False",
            "TagsDrifted",
            "3 of 1245 selected tags drifted at a target and were left alone",
            (1242, 0, 3, 0),
        ),
        (
            "quay-acme-operator-gold",
            true,
            "True",
            "InSync",
            "1245 selected tags in sync at 3 targets",
            (1245, 0, 0, 0),
        ),
        (
            "quay-acme-ml-inference",
            false,
            "False",
            "CredentialsNotFound",
            "the Secret team-payments/quay-robot-payments-readonly does not exist: create it (type kubernetes.io/dockerconfigjson) or fix spec.source.credentials.secretRef",
            (0, 0, 0, 0),
        ),
        (
            "ecr-public-web-frontend",
            false,
            "False",
            "Backfilling",
            "400 of 1245 selected tags in sync, 845 to copy",
            (400, 845, 0, 0),
        ),
    ];
    for (name, suspended, ready, reason, message, (in_sync, pending, drifted, failed)) in
        mirror_rows
    {
        let mut object = fixtures::mirror(name);
        object.spec.source.repository =
            format!("quay.io/acme-corp/{name}-with-a-long-repository-path");
        object.spec.suspend = suspended;
        object.spec.tier = Some("Silver".into());
        mirrors
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
        let conditions = failing(ready, reason, message, reason == "CredentialsNotFound");
        let status = RegistryMirrorStatus {
            observed_generation: Some(1),
            summary: summary(&conditions),
            conditions,
            tags: Some(TagCounts {
                selected: in_sync + pending + drifted + failed,
                in_sync,
                pending,
                drifted,
                failed,
                refused: 0,
                noncompliant: 0,
            }),
            last_sync_time: Some(image_promoter::api::Clock::now(&SystemClock)),
            ..RegistryMirrorStatus::default()
        };
        apply_status(&mirrors, name, "RegistryMirror", json!(status)).await;
    }
    let output = cluster.kubectl(&["get", "mirrors", "-n", ns]);
    assert_fits(&output, 120);
    let (header, rows) = table(&output);
    assert_eq!(
        header,
        [
            "NAME",
            "IN SYNC",
            "DRIFTED",
            "READY",
            "STATUS",
            "SUSPENDED",
            "AGE"
        ]
    );
    assert_eq!(rows.len(), 4, "{output}");
    let suspended = rows
        .iter()
        .find(|r| r[0] == "quay-acme-operator-gold")
        .unwrap();
    assert_eq!(suspended[5], "true", "{output}");
    let blocked = rows
        .iter()
        .find(|r| r[0] == "quay-acme-ml-inference")
        .unwrap();
    assert!(
        blocked[4].starts_with("CredentialsNotFound: the Secret"),
        "{output}"
    );
    assert!(
        blocked[4].ends_with('…') && blocked[4].chars().count() <= SUMMARY_LENGTH,
        "{output}"
    );
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
