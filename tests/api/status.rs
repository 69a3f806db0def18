//! Status goes through the status subresource with server-side apply, as the
//! controller will write it, and reads back unchanged.

use image_promoter::api::conditions::{COMPLIANT, READY, STALLED, VERIFIED};
use image_promoter::api::{ImagePromotion, RegistryMirror, reasons};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::cluster::{Cluster, MANAGER};
use crate::fixtures;

/// The field manager the controller uses for status.
const CONTROLLER: &str = "image-promoter";

#[tokio::test]
async fn promotion_status_round_trips_through_the_status_subresource() {
    let cluster = Cluster::start("api-status").await;
    let api: Api<ImagePromotion> = cluster.typed();
    api.create(&PostParams::default(), &fixtures::promotion("app"))
        .await
        .unwrap();

    let status = fixtures::promoted_status();
    let apply = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "status": status,
    });
    api.patch_status(
        "app",
        &PatchParams::apply(CONTROLLER).force(),
        &Patch::Apply(&apply),
    )
    .await
    .expect("applying status");

    let read = api.get_status("app").await.unwrap();
    assert_eq!(read.status.as_ref(), Some(&status));
    assert_eq!(
        read.metadata.generation,
        Some(1),
        "a status write is not a spec change"
    );
    let managers = read.metadata.managed_fields.unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some(CONTROLLER)
                && m.subresource.as_deref() == Some("status")),
        "{CONTROLLER} owns status: {managers:?}"
    );

    // Status sent to the main resource is ignored: only the subresource writes it.
    let spoof = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "metadata": {"labels": {"team": "release"}},
        "status": {"targetsReady": "0/2"},
    });
    api.patch("app", &PatchParams::apply(MANAGER), &Patch::Apply(&spoof))
        .await
        .unwrap();
    let read = api.get("app").await.unwrap();
    assert_eq!(
        read.status.as_ref().unwrap().targets_ready.as_deref(),
        Some("2/2")
    );

    // Conditions are a map keyed by type: another manager adds one without
    // taking the others away.
    let stalled = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "ImagePromotion",
        "status": {"conditions": [{
            "type": STALLED, "status": "True", "reason": reasons::TAG_CONFLICT,
            "message": "latest", "lastTransitionTime": "2026-11-01T00:00:00Z",
        }]},
    });
    api.patch_status(
        "app",
        &PatchParams::apply("someone-else"),
        &Patch::Apply(&stalled),
    )
    .await
    .unwrap();
    let read = api.get_status("app").await.unwrap();
    let types: Vec<_> = read
        .status
        .unwrap()
        .conditions
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(types, [READY, VERIFIED, COMPLIANT, STALLED]);
}

#[tokio::test]
async fn mirror_status_round_trips_through_the_status_subresource() {
    let cluster = Cluster::start("api-mirror-status").await;
    let api: Api<RegistryMirror> = cluster.typed();
    api.create(&PostParams::default(), &fixtures::mirror("operator"))
        .await
        .unwrap();
    let status = fixtures::drifted_status();
    let apply = json!({
        "apiVersion": "imagepromoter.dev/v1alpha1",
        "kind": "RegistryMirror",
        "status": status,
    });
    api.patch_status(
        "operator",
        &PatchParams::apply(CONTROLLER).force(),
        &Patch::Apply(&apply),
    )
    .await
    .expect("applying status");
    let read = api.get_status("operator").await.unwrap();
    assert_eq!(read.status.as_ref(), Some(&status));
}
